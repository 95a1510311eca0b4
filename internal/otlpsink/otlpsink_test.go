package otlpsink

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

// traces builds one trace holding a span per id, split over two scopes so
// SpanIDs has to walk more than one.
func traces(ids ...pcommon.SpanID) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	a, b := rs.ScopeSpans().AppendEmpty(), rs.ScopeSpans().AppendEmpty()
	for i, id := range ids {
		ss := a
		if i%2 == 1 {
			ss = b
		}
		sp := ss.Spans().AppendEmpty()
		sp.SetTraceID(pcommon.TraceID{1})
		sp.SetSpanID(id)
	}
	return td
}

func body(t testing.TB, td ptrace.Traces, gz bool) []byte {
	t.Helper()
	b, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	if !gz {
		return b
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func post(t *testing.T, url string, b []byte, gz bool) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	if gz {
		req.Header.Set("Content-Encoding", "gzip")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestSinkRecordsSpans(t *testing.T) {
	id1, id2, id3 := pcommon.SpanID{1}, pcommon.SpanID{2}, pcommon.SpanID{3}
	for _, tc := range []struct {
		name      string
		gzip      bool
		requests  [][]pcommon.SpanID
		wantCount int
		wantDups  int
		want      map[pcommon.SpanID]int
	}{
		{"plain", false, [][]pcommon.SpanID{{id1, id2}}, 2, 0, map[pcommon.SpanID]int{id1: 1, id2: 1}},
		{"gzip", true, [][]pcommon.SpanID{{id1, id2, id3}}, 3, 0, map[pcommon.SpanID]int{id1: 1, id2: 1, id3: 1}},
		{"redelivery", false, [][]pcommon.SpanID{{id1, id2}, {id2, id3}, {id2}}, 3, 2, map[pcommon.SpanID]int{id1: 1, id2: 3, id3: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New()
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			before := time.Now()
			for _, ids := range tc.requests {
				if code := post(t, s.URL(), body(t, traces(ids...), tc.gzip), tc.gzip); code != http.StatusOK {
					t.Fatalf("status %d, want 200", code)
				}
			}
			if got := s.Count(); got != tc.wantCount {
				t.Errorf("Count() = %d, want %d", got, tc.wantCount)
			}
			if got := s.Duplicates(); got != tc.wantDups {
				t.Errorf("Duplicates() = %d, want %d", got, tc.wantDups)
			}
			got := s.Deliveries()
			if len(got) != len(tc.want) {
				t.Errorf("Deliveries() = %v, want %v", got, tc.want)
			}
			for id, n := range tc.want {
				if got[id] != n {
					t.Errorf("span %s delivered %d times, want %d", id, got[id], n)
				}
				at, ok := s.Received(id)
				if !ok || at.Before(before) || at.After(time.Now()) {
					t.Errorf("Received(%s) = %v, %v; want a time since %v", id, at, ok, before)
				}
			}
			if _, ok := s.Received(pcommon.SpanID{9}); ok {
				t.Error("Received reports a span that never came")
			}
			arr := s.Arrivals()
			if len(arr) != len(tc.want) {
				t.Errorf("Arrivals() has %d spans, want %d", len(arr), len(tc.want))
			}
			for _, a := range arr {
				at, _ := s.Received(a.ID)
				if _, ok := tc.want[a.ID]; !ok || !a.First.Equal(at) {
					t.Errorf("Arrivals() has %s at %v; want one of the sent spans at its first arrival %v", a.ID, a.First, at)
				}
			}
		})
	}
}

func TestSinkRejectsBadRequests(t *testing.T) {
	s, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, tc := range []struct {
		name string
		body []byte
		gzip bool
	}{
		{"not protobuf", []byte{0xff, 0xff, 0xff}, false},
		{"not gzip", []byte("plain"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code := post(t, s.URL(), tc.body, tc.gzip); code != http.StatusBadRequest {
				t.Errorf("status %d, want 400", code)
			}
		})
	}
	if code := post(t, s.BaseURL()+"/elsewhere", body(t, traces(pcommon.SpanID{1}), false), false); code != http.StatusNotFound {
		t.Errorf("other path: status %d, want 404", code)
	}
	if n := s.Count(); n != 0 {
		t.Errorf("recorded %d spans from bad requests", n)
	}
}

func TestHookSeesRequestBeforeRecording(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	var counts []int // spans recorded when the hook ran
	var s *Sink
	s, err := New(WithHook(func(r *http.Request, td ptrace.Traces) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, r.Header.Get("Content-Encoding"))
		counts = append(counts, s.Count())
		if td.SpanCount() != 2 {
			t.Errorf("hook got %d spans, want 2", td.SpanCount())
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	td := traces(pcommon.SpanID{1}, pcommon.SpanID{2})
	post(t, s.URL(), body(t, td, true), true)
	post(t, s.URL(), body(t, td, false), false)
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 || seen[0] != "gzip" || seen[1] != "" {
		t.Errorf("hook saw encodings %q, want [gzip \"\"]", seen)
	}
	if len(counts) != 2 || counts[0] != 0 || counts[1] != 2 {
		t.Errorf("spans recorded when the hook ran: %v, want [0 2]", counts)
	}
}

func TestClosedSinkRefusesConnections(t *testing.T) {
	s, err := New()
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if !s.Closed() {
		t.Error("Closed() = false after Close")
	}
	if resp, err := http.Post(s.URL(), "application/x-protobuf", bytes.NewReader(nil)); err == nil {
		resp.Body.Close()
		t.Fatal("a closed sink answered")
	}
}

func TestSpanIDsInOrder(t *testing.T) {
	want := []pcommon.SpanID{{1}, {2}, {3}}
	td := ptrace.NewTraces()
	for _, id := range want {
		td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty().SetSpanID(id)
	}
	got := SpanIDs(td)
	if len(got) != len(want) {
		t.Fatalf("SpanIDs = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("SpanIDs[%d] = %s, want %s", i, got[i], want[i])
		}
	}
}

// TestFirstArrivalIsTheEarliest: requests answered concurrently may queue
// out of order; a span's first arrival is still the earliest, and the later
// one counts as a duplicate.
func TestFirstArrivalIsTheEarliest(t *testing.T) {
	id := pcommon.SpanID{9}
	s := &Sink{start: time.Now(), got: map[pcommon.SpanID]arrival{}}
	s.pending = []request{
		{at: 2 * time.Second, ids: []pcommon.SpanID{id}},
		{at: time.Second, ids: []pcommon.SpanID{id}},
	}
	at, ok := s.Received(id)
	if !ok || at.Sub(s.start) != time.Second {
		t.Fatalf("Received = %v, %v; want 1s after the start", at.Sub(s.start), ok)
	}
	if s.Count() != 1 || s.Duplicates() != 1 || s.Deliveries()[id] != 2 {
		t.Fatalf("count %d, duplicates %d, deliveries %d; want 1, 1, 2", s.Count(), s.Duplicates(), s.Deliveries()[id])
	}
}
