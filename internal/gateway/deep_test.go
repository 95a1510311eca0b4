package gateway

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// deepRequest holds three spans of trace traceByte; the middle one has an
// attribute of depth nested arrays, past pdata's protobuf recursion limit.
func deepRequest(traceByte byte, depth int) ptraceotlp.ExportRequest {
	td := ptrace.NewTraces()
	ss := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty()
	now := pcommon.NewTimestampFromTime(time.Now())
	for i := range 3 {
		sp := ss.Spans().AppendEmpty()
		sp.SetName(fmt.Sprint("s", i))
		sp.SetTraceID(pcommon.TraceID{traceByte, 1})
		sp.SetSpanID(pcommon.SpanID{traceByte, byte(i + 1)})
		sp.SetStartTimestamp(now)
		sp.SetEndTimestamp(now)
		if i == 1 {
			v := sp.Attributes().PutEmpty("deep")
			for range depth {
				v = v.SetEmptySlice().AppendEmpty()
			}
			v.SetStr("leaf")
		}
	}
	return ptraceotlp.NewExportRequestFromTraces(td)
}

// TestDeepAttributesStored: requests with one span nested 50 and 200 levels
// deep are committed whole over OTLP/HTTP (protobuf and JSON) and gRPC, the
// deep value listed in kern.truncated.
func TestDeepAttributesStored(t *testing.T) {
	for _, driver := range []string{"sqlite", "postgres"} {
		t.Run(driver, func(t *testing.T) {
			g := startGateway(t, testConfig(t, driver))
			conn, err := grpc.NewClient(g.Addrs().OTLPGRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			sends := map[string]func(ptraceotlp.ExportRequest) (int64, error){
				"http protobuf": func(r ptraceotlp.ExportRequest) (int64, error) { return postOTLP(g, r, false) },
				"http json":     func(r ptraceotlp.ExportRequest) (int64, error) { return postOTLP(g, r, true) },
				"grpc": func(r ptraceotlp.ExportRequest) (int64, error) {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					resp, err := ptraceotlp.NewGRPCClient(conn).Export(ctx, r)
					if err != nil {
						return 0, err
					}
					return resp.PartialSuccess().RejectedSpans(), nil
				},
			}
			traceByte := byte(0)
			for _, depth := range []int{50, 200} {
				for name, send := range sends {
					traceByte++
					rej, err := send(deepRequest(traceByte, depth))
					if err != nil || rej != 0 {
						t.Fatalf("%s, depth %d: rejected %d, %v", name, depth, rej, err)
					}
					_, spans := g.Store().Tables()
					q := "SELECT count(*) FROM " + spans + " WHERE trace_id = $1"
					var n int
					if err := g.Store().DB().QueryRow(q, pcommon.TraceID{traceByte, 1}.String()).Scan(&n); err != nil {
						t.Fatal(err)
					}
					var attrs string
					q = "SELECT attributes FROM " + spans + " WHERE span_id = $1"
					if err := g.Store().DB().QueryRow(q, pcommon.SpanID{traceByte, 2}.String()).Scan(&attrs); err != nil {
						t.Fatal(err)
					}
					if n != 3 || !bytes.Contains([]byte(attrs), []byte(`"kern.truncated": ["deep"]`)) &&
						!bytes.Contains([]byte(attrs), []byte(`"kern.truncated":["deep"]`)) {
						t.Errorf("%s, depth %d: stored %d spans, deep span %.200s...", name, depth, n, attrs)
					}
				}
			}
		})
	}
}

// postOTLP posts r to the gateway's OTLP/HTTP listener and returns the
// rejected span count of its 200 answer.
func postOTLP(g *Gateway, r ptraceotlp.ExportRequest, asJSON bool) (int64, error) {
	ct, body, err := "application/x-protobuf", []byte(nil), error(nil)
	if asJSON {
		ct = "application/json"
		body, err = r.MarshalJSON()
	} else {
		body, err = r.MarshalProto()
	}
	if err != nil {
		return 0, err
	}
	res, err := http.Post("http://"+g.Addrs().OTLPHTTP+"/v1/traces", ct, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	var answer bytes.Buffer
	if _, err := answer.ReadFrom(res.Body); err != nil {
		return 0, err
	}
	if res.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("status %d: %q", res.StatusCode, answer.Bytes())
	}
	resp := ptraceotlp.NewExportResponse()
	if asJSON {
		err = resp.UnmarshalJSON(answer.Bytes())
	} else {
		err = resp.UnmarshalProto(answer.Bytes())
	}
	return resp.PartialSuccess().RejectedSpans(), err
}
