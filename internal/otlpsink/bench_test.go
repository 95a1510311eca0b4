package otlpsink

import (
	"bytes"
	"encoding/binary"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

// BenchmarkServe is the fake vendor's own work per request (read, decode,
// record), without the network: what a load test pays for it on the
// machine it measures. A round is 40 requests of 2,000 new spans each.
func BenchmarkServe(b *testing.B) {
	const perReq, reqs = 2000, 40
	bodies := make([][]byte, reqs)
	for r := range bodies {
		ids := make([]pcommon.SpanID, perReq)
		for i := range ids {
			binary.BigEndian.PutUint64(ids[i][:], uint64(r*perReq+i+1))
		}
		bodies[r] = body(b, traces(ids...), false)
	}
	s := &Sink{start: time.Now(), got: map[pcommon.SpanID]arrival{}}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if i%reqs == 0 {
			s = &Sink{start: time.Now(), got: map[pcommon.SpanID]arrival{}}
		}
		req := httptest.NewRequest(http.MethodPost, Path, bytes.NewReader(bodies[i%reqs]))
		w := httptest.NewRecorder()
		s.serve(w, req)
		if w.Code != http.StatusOK {
			b.Fatal(w.Code)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*perReq), "ns/span")
}
