package otlptest

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// jsonReply is a refusal with body as its JSON body, as the vendors' web
// frameworks send them.
func jsonReply(status int, body any) Reply {
	b, _ := json.Marshal(body)
	return Reply{Status: status, Header: map[string]string{"Content-Type": "application/json"}, Body: b}
}

// detail is FastAPI's error body (MLflow, Phoenix).
func detail(msg string) map[string]any { return map[string]any{"detail": msg} }

// mediaType is a Content-Type without its parameters.
func mediaType(contentType string) string {
	mt, _, _ := strings.Cut(contentType, ";")
	return strings.TrimSpace(mt)
}

// MLflowRules are the checks of MLflow's POST /v1/traces
// (mlflow/server/otel_api.py) before it stores spans: FastAPI answers 422
// when the required x-mlflow-experiment-id header is missing; the handler
// answers 400 to a content type other than protobuf (parameters aside),
// to a body that does not decode and to a request without spans.
func MLflowRules() []Rule {
	return []Rule{
		func(r Request) (Reply, bool) {
			if _, ok := r.Header[http.CanonicalHeaderKey("x-mlflow-experiment-id")]; ok {
				return Reply{}, false
			}
			missing := map[string]any{"type": "missing", "loc": []string{"header", "x-mlflow-experiment-id"}, "msg": "Field required", "input": nil}
			return jsonReply(http.StatusUnprocessableEntity, map[string]any{"detail": []any{missing}}), true
		},
		func(r Request) (Reply, bool) {
			if mediaType(r.ContentType) == "application/x-protobuf" {
				return Reply{}, false
			}
			return jsonReply(http.StatusBadRequest, detail("Invalid Content-Type: "+r.ContentType+". Expected: application/x-protobuf")), true
		},
		func(r Request) (Reply, bool) {
			if r.DecodeErr != nil {
				return jsonReply(http.StatusBadRequest, detail("Invalid OpenTelemetry format")), true
			}
			if r.Traces.ResourceSpans().Len() == 0 {
				return jsonReply(http.StatusBadRequest, detail("Invalid OpenTelemetry format - no spans found")), true
			}
			return Reply{}, false
		},
	}
}

// LangfuseRules are the checks of Langfuse's POST
// /api/public/otel/v1/traces (web/src/pages/api/public/otel/v1/traces):
// 401 without credentials, 400 for a content type that is neither
// protobuf nor JSON, for a body that does not decode and for an
// x-langfuse-ingestion-version that is not a number up to 4.
func LangfuseRules() []Rule {
	return []Rule{
		func(r Request) (Reply, bool) {
			if strings.HasPrefix(r.Header.Get("Authorization"), "Basic ") {
				return Reply{}, false
			}
			return jsonReply(http.StatusUnauthorized, map[string]any{"message": "No authorization header"}), true
		},
		func(r Request) (Reply, bool) {
			ct := strings.ToLower(r.ContentType)
			if strings.Contains(ct, "application/x-protobuf") || strings.Contains(ct, "application/json") {
				return Reply{}, false
			}
			return jsonReply(http.StatusBadRequest, map[string]any{"error": "Invalid content type"}), true
		},
		func(r Request) (Reply, bool) {
			if r.DecodeErr == nil {
				return Reply{}, false
			}
			return jsonReply(http.StatusBadRequest, map[string]any{"error": "Failed to parse OTel Protobuf Trace"}), true
		},
		func(r Request) (Reply, bool) {
			v := r.Header.Get("x-langfuse-ingestion-version")
			if v == "" {
				return Reply{}, false
			}
			// Like JavaScript's parseInt: the leading digits count.
			digits := len(v) - len(strings.TrimLeft(v, "0123456789"))
			if n, err := strconv.Atoi(v[:digits]); err == nil && n <= 4 {
				return Reply{}, false
			}
			return jsonReply(http.StatusBadRequest, map[string]any{
				"error": `Unsupported x-langfuse-ingestion-version: "` + v + `". Maximum supported: "4".`,
			}), true
		},
	}
}

// PhoenixRules are the checks of Phoenix's POST /v1/traces
// (src/phoenix/server/api/routers/v1/traces.py): 415 for any content type
// other than exactly application/x-protobuf (no parameters, no JSON) and
// for a content encoding other than gzip or deflate, 422 for a body that
// does not decode.
func PhoenixRules() []Rule {
	return []Rule{
		func(r Request) (Reply, bool) {
			if r.ContentType == "application/x-protobuf" {
				return Reply{}, false
			}
			return jsonReply(http.StatusUnsupportedMediaType, detail("Unsupported content type: "+r.ContentType)), true
		},
		func(r Request) (Reply, bool) {
			switch r.ContentEncoding {
			case "", "gzip", "deflate":
				return Reply{}, false
			}
			return jsonReply(http.StatusUnsupportedMediaType, detail("Unsupported content encoding: "+r.ContentEncoding)), true
		},
		func(r Request) (Reply, bool) {
			if r.DecodeErr == nil {
				return Reply{}, false
			}
			return jsonReply(http.StatusUnprocessableEntity, detail("Request body is invalid ExportTraceServiceRequest")), true
		},
	}
}
