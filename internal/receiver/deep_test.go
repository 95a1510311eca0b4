package receiver

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

// deepTraces is testTraces(3) with span1 carrying an attribute of depth
// nested arrays and one of depth nested maps.
func deepTraces(depth int) ptrace.Traces {
	td := testTraces(3)
	attrs := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(1).Attributes()
	for _, key := range []string{"nested.array", "nested.map"} {
		v := attrs.PutEmpty(key) // valid until the next Put on attrs
		for range depth {
			if key == "nested.map" {
				v = v.SetEmptyMap().PutEmpty("k")
			} else {
				v = v.SetEmptySlice().AppendEmpty()
			}
		}
		v.SetStr("leaf")
	}
	return td
}

// TestDeepAttributes: a request mixing valid spans with one whose attributes
// nest past pdata's protobuf recursion limit is stored whole, in protobuf
// and JSON, over HTTP and gRPC: every span kept, the deep values cut to null
// and listed in kern.truncated, the same row whatever the transport.
func TestDeepAttributes(t *testing.T) {
	for _, depth := range []int{50, 200} {
		td := deepTraces(depth)
		if err := ptraceotlp.NewExportRequest().UnmarshalProto(protoBody(t, td)); err == nil {
			t.Fatalf("pdata decodes depth %d: the case does not reach the recursion limit", depth)
		}
		sends := []struct {
			name string
			send func(t *testing.T, sink *fakeSink) (rejected int64)
		}{
			{"http protobuf", httpSender(contentTypeProto, "", protoBody(t, td))},
			{"http protobuf gzip", httpSender(contentTypeProto, "gzip", gzipped(t, protoBody(t, td)))},
			{"http json", httpSender(contentTypeJSON, "", jsonBody(t, td))},
			{"grpc", func(t *testing.T, sink *fakeSink) int64 {
				conn := startGRPC(t, testOptions(), sink)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				resp, err := exportRaw(ctx, conn, protoBody(t, td))
				if err != nil {
					t.Fatalf("export: %v", err)
				}
				return resp.PartialSuccess().RejectedSpans()
			}},
		}
		var first []byte
		for _, s := range sends {
			t.Run(fmt.Sprintf("%d/%s", depth, s.name), func(t *testing.T) {
				sink := &fakeSink{}
				if rej := s.send(t, sink); rej != 0 {
					t.Errorf("rejected_spans %d, want 0", rej)
				}
				if got := sink.names(); !slices.Equal(got, []string{"span0", "span1", "span2"}) {
					t.Fatalf("stored %v, want span0..span2", got)
				}
				deep := sink.spans()[1]
				a := attrs(t, deep)
				if got := fmt.Sprint(a["kern.truncated"]); got != "[nested.array nested.map]" {
					t.Errorf("kern.truncated = %s", got)
				}
				if a["i"] == nil || a["nested.array"] == nil {
					t.Errorf("attributes lost: %s", deep.Attributes)
				}
				if first == nil {
					first = deep.Attributes
				} else if !bytes.Equal(deep.Attributes, first) {
					t.Errorf("stored\n%s\nthe first transport stored\n%s", deep.Attributes, first)
				}
			})
		}
	}
}

// httpSender posts body to a real HTTP server running the handler and
// returns rejected_spans of the 200 answer.
func httpSender(contentType, encoding string, body []byte) func(*testing.T, *fakeSink) int64 {
	return func(t *testing.T, sink *fakeSink) int64 {
		srv := httptest.NewServer(NewHTTPHandler(testOptions(), sink))
		defer srv.Close()
		req, err := http.NewRequest(http.MethodPost, srv.URL+TracesPath, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", contentType)
		if encoding != "" {
			req.Header.Set("Content-Encoding", encoding)
		}
		res, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		answer := readAll(t, res.Body)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %q", res.StatusCode, answer)
		}
		resp := ptraceotlp.NewExportResponse()
		if contentType == contentTypeJSON {
			err = resp.UnmarshalJSON(answer)
		} else {
			err = resp.UnmarshalProto(answer)
		}
		if err != nil {
			t.Fatalf("answer %q: %v", answer, err)
		}
		return resp.PartialSuccess().RejectedSpans()
	}
}
