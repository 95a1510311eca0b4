package plugins

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/kern-agents/trace-gateway/internal/plugincodec"
	"github.com/kern-agents/trace-gateway/plugins/pluginpb"
)

// fakeExporter records calls and answers with preset errors.
type fakeExporter struct {
	configureErr error
	exportErr    error
	panicMsg     string
	gotConfig    map[string]any
	gotSpans     int
	calls        []string      // the export methods called, in order
	block        chan struct{} // exports wait on it when non-nil
	shutdowns    int
}

func (f *fakeExporter) Configure(_ context.Context, cfg map[string]any) error {
	f.gotConfig = cfg
	return f.configureErr
}

func (f *fakeExporter) Export(_ context.Context, td ptrace.Traces) error {
	f.enter("Export")
	f.gotSpans += td.SpanCount()
	return f.exportErr
}

// enter records a call to method, then blocks or panics as preset.
func (f *fakeExporter) enter(method string) {
	f.calls = append(f.calls, method)
	if f.block != nil {
		<-f.block
	}
	if f.panicMsg != "" {
		panic(f.panicMsg)
	}
}

// fakeEncoded is a fakeExporter that also takes batches as encoded.
type fakeEncoded struct {
	*fakeExporter
	gotRequests [][]byte
}

func (f *fakeEncoded) ExportEncoded(_ context.Context, request []byte) error {
	f.enter("ExportEncoded")
	f.gotRequests = append(f.gotRequests, request)
	if td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(request); err == nil {
		f.gotSpans += td.SpanCount()
	}
	return f.exportErr
}

// exporterKinds are the two ways Serve hands a batch over: decoded to an
// Exporter, or as sent to an EncodedExporter. wrap returns the exporter to
// serve around the fake that records the calls.
var exporterKinds = []struct {
	method string
	wrap   func(*fakeExporter) Exporter
}{
	{"Export", func(f *fakeExporter) Exporter { return f }},
	{"ExportEncoded", func(f *fakeExporter) Exporter { return &fakeEncoded{fakeExporter: f} }},
	{"ExportEncoded", func(f *fakeExporter) Exporter { return &fakeBorrowing{&fakeEncoded{fakeExporter: f}} }},
}

// fakeBorrowing is a fakeEncoded that promises not to keep requests.
type fakeBorrowing struct{ *fakeEncoded }

func (*fakeBorrowing) BorrowsRequests() {}

func (f *fakeExporter) Shutdown(context.Context) error {
	f.shutdowns++
	return nil
}

func encode(t *testing.T, n int) []byte {
	t.Helper()
	td := ptrace.NewTraces()
	spans := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans()
	for range n {
		spans.AppendEmpty().SetName("s")
	}
	b, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestServerExportResults(t *testing.T) {
	cases := []struct {
		name    string
		err     error
		panic   string
		result  pluginpb.Result
		afterMs int64
		msg     string
	}{
		{"accepted", nil, "", pluginpb.Result_RESULT_ACCEPTED, 0, ""},
		{"retryable with delay", Retryable(errors.New("429 from vendor"), 2500*time.Millisecond), "", pluginpb.Result_RESULT_RETRYABLE, 2500, "429 from vendor"},
		{"wrapped retryable", errWrap(Retryable(errors.New("503"), time.Second)), "", pluginpb.Result_RESULT_RETRYABLE, 1000, "503"},
		{"permanent", Permanent(errors.New("401 bad key")), "", pluginpb.Result_RESULT_PERMANENT, 0, "401 bad key"},
		{"wrapped permanent", errWrap(Permanent(errors.New("400"))), "", pluginpb.Result_RESULT_PERMANENT, 0, "400"},
		{"unmarked is retryable", errors.New("connection reset"), "", pluginpb.Result_RESULT_RETRYABLE, 0, "connection reset"},
		{"panic is permanent", nil, "nil map write", pluginpb.Result_RESULT_PERMANENT, 0, " panicked: nil map write"},
	}
	for _, kind := range exporterKinds {
		for _, tc := range cases {
			t.Run(kind.method+"/"+tc.name, func(t *testing.T) {
				exp := &fakeExporter{exportErr: tc.err, panicMsg: tc.panic}
				s := newServer(kind.wrap(exp))
				resp, err := s.Export(context.Background(), &pluginpb.ExportRequest{Traces: encode(t, 3)})
				if err != nil {
					t.Fatal(err)
				}
				msg := tc.msg
				if tc.panic != "" {
					msg = kind.method + msg // the report names the method that panicked
				}
				if resp.Result != tc.result || resp.RetryAfterMs != tc.afterMs || !strings.Contains(resp.Message, msg) {
					t.Fatalf("got %v %dms %q, want %v %dms containing %q", resp.Result, resp.RetryAfterMs, resp.Message, tc.result, tc.afterMs, msg)
				}
				if len(exp.calls) != 1 || exp.calls[0] != kind.method {
					t.Fatalf("calls %v, want one %s", exp.calls, kind.method)
				}
				if tc.panic == "" && exp.gotSpans != 3 {
					t.Fatalf("exporter saw %d spans, want 3", exp.gotSpans)
				}
			})
		}
	}
}

func errWrap(err error) error { return errors.Join(errors.New("context"), err) }

func TestServerExportGarbage(t *testing.T) {
	garbage := []byte{0xff, 0xff, 0xff}
	cases := []struct {
		name   string
		kind   int // index into exporterKinds
		err    error
		result pluginpb.Result
		msg    string
		calls  int
	}{
		{"Export: Serve refuses it", 0, nil, pluginpb.Result_RESULT_PERMANENT, "decoding batch", 0},
		{"ExportEncoded: the exporter judges it", 1, Permanent(errors.New("not OTLP")), pluginpb.Result_RESULT_PERMANENT, "not OTLP", 1},
		{"ExportEncoded: Serve does not check it", 1, nil, pluginpb.Result_RESULT_ACCEPTED, "", 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			exp := &fakeExporter{exportErr: tc.err}
			wrapped := exporterKinds[tc.kind].wrap(exp)
			resp, err := newServer(wrapped).Export(context.Background(), &pluginpb.ExportRequest{Traces: garbage})
			if err != nil {
				t.Fatal(err)
			}
			if resp.Result != tc.result || !strings.Contains(resp.Message, tc.msg) {
				t.Fatalf("got %v %q, want %v containing %q", resp.Result, resp.Message, tc.result, tc.msg)
			}
			if len(exp.calls) != tc.calls {
				t.Fatalf("exporter called %d times (%v), want %d", len(exp.calls), exp.calls, tc.calls)
			}
			if enc, ok := wrapped.(*fakeEncoded); ok && !bytes.Equal(enc.gotRequests[0], garbage) {
				t.Fatalf("ExportEncoded got %x, want the bytes as sent %x", enc.gotRequests[0], garbage)
			}
		})
	}
}

func TestServerHandsTheRequestBytesOver(t *testing.T) {
	exp := &fakeEncoded{fakeExporter: &fakeExporter{}}
	reqs := [][]byte{encode(t, 1), encode(t, 4)}
	for _, r := range reqs {
		if _, err := newServer(exp).Export(context.Background(), &pluginpb.ExportRequest{Traces: r}); err != nil {
			t.Fatal(err)
		}
	}
	if len(exp.gotRequests) != len(reqs) {
		t.Fatalf("ExportEncoded called %d times, want %d", len(exp.gotRequests), len(reqs))
	}
	for i, r := range reqs {
		if !bytes.Equal(exp.gotRequests[i], r) {
			t.Fatalf("request %d arrived changed", i)
		}
	}
	if exp.gotSpans != 5 {
		t.Fatalf("exporter saw %d spans, want 5", exp.gotSpans)
	}
}

// TestServerLendsRequestsToBorrowers: only an exporter that promised not to
// keep requests gets them in reused memory, which goes back once its call
// returned; the others get a fresh copy each.
func TestServerLendsRequestsToBorrowers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		exp    Exporter
		reused bool
	}{
		{"encoded", &fakeEncoded{fakeExporter: &fakeExporter{}}, false},
		{"borrowing", &fakeBorrowing{&fakeEncoded{fakeExporter: &fakeExporter{}}}, true},
		{"borrowing, refusing", &fakeBorrowing{&fakeEncoded{fakeExporter: &fakeExporter{exportErr: Permanent(errors.New("no"))}}}, true},
		{"borrowing, panicking", &fakeBorrowing{&fakeEncoded{fakeExporter: &fakeExporter{panicMsg: "boom"}}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(tc.exp)
			if (s.reuse != nil) != tc.reused {
				t.Fatalf("requests reused: %v, want %v", s.reuse != nil, tc.reused)
			}
			codec := plugincodec.Codec{Reuse: s.reuse}
			bs, err := codec.Marshal(&pluginpb.ExportRequest{Traces: encode(t, 3)})
			if err != nil {
				t.Fatal(err)
			}
			req := new(pluginpb.ExportRequest)
			if err := codec.Unmarshal(bs, req); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Export(context.Background(), req); err != nil {
				t.Fatal(err)
			}
			if released := req.Traces == nil; released != tc.reused {
				t.Fatalf("request released after the call: %v, want %v", released, tc.reused)
			}
		})
	}
}

func TestServerConfigure(t *testing.T) {
	cfg, err := structpb.NewStruct(map[string]any{
		"endpoint": "https://x", "port": 4318.0, "ratio": 0.5, "big": 1e20,
		"tls": map[string]any{"insecure": true}, "list": []any{1.0, "a", nil},
	})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		err    error
		fields []*pluginpb.FieldError
		msg    string
	}{
		{"accepted", nil, nil, ""},
		{"field errors", &ConfigError{Fields: []FieldError{{"endpoint", "must be https"}, {"tls.ca_file", "missing"}}}, []*pluginpb.FieldError{{Field: "endpoint", Message: "must be https"}, {Field: "tls.ca_file", Message: "missing"}}, ""},
		{"wrapped field errors", errWrap(&ConfigError{Fields: []FieldError{{"a", "b"}}}), []*pluginpb.FieldError{{Field: "a", Message: "b"}}, ""},
		{"empty ConfigError is a plain error", &ConfigError{}, nil, "invalid config"},
		{"other error", errors.New("cannot reach vendor"), nil, "cannot reach vendor"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			exp := &fakeExporter{configureErr: tc.err}
			resp, err := newServer(exp).Configure(context.Background(), &pluginpb.ConfigureRequest{Config: cfg})
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.FieldErrors) != len(tc.fields) {
				t.Fatalf("field errors %v, want %v", resp.FieldErrors, tc.fields)
			}
			for i, f := range tc.fields {
				if resp.FieldErrors[i].Field != f.Field || resp.FieldErrors[i].Message != f.Message {
					t.Errorf("field error %d = %v, want %v", i, resp.FieldErrors[i], f)
				}
			}
			if !strings.Contains(resp.Error, tc.msg) || (tc.msg == "" && resp.Error != "") {
				t.Errorf("error = %q, want %q", resp.Error, tc.msg)
			}
			want := map[string]any{"endpoint": "https://x", "port": 4318, "ratio": 0.5, "big": 1e20,
				"tls": map[string]any{"insecure": true}, "list": []any{1, "a", nil}}
			gotJSON, _ := json.Marshal(exp.gotConfig)
			wantJSON, _ := json.Marshal(want)
			if string(gotJSON) != string(wantJSON) {
				t.Errorf("config = %s, want %s", gotJSON, wantJSON)
			}
			if _, isInt := exp.gotConfig["port"].(int); !isInt {
				t.Errorf("port arrived as %T, want int", exp.gotConfig["port"])
			}
		})
	}
}

func TestServerSerialisesAndShutsDownOnce(t *testing.T) {
	for _, kind := range exporterKinds {
		t.Run(kind.method, func(t *testing.T) { testSerialisesAndShutsDownOnce(t, kind.wrap) })
	}
}

func testSerialisesAndShutsDownOnce(t *testing.T, wrap func(*fakeExporter) Exporter) {
	exp := &fakeExporter{block: make(chan struct{})}
	s := newServer(wrap(exp))
	first := &pluginpb.ExportRequest{Traces: encode(t, 1)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = s.Export(context.Background(), first)
	}()
	// Wait until the Export holds the exporter.
	for len(s.sem) == 0 {
		time.Sleep(time.Millisecond)
	}
	// A call behind the stuck Export gives up with its context.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := s.Export(ctx, &pluginpb.ExportRequest{Traces: encode(t, 1)}); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("queued Export = %v, want DeadlineExceeded", err)
	}
	resp, _ := s.Shutdown(ctx, &pluginpb.ShutdownRequest{})
	if !strings.Contains(resp.GetError(), "waiting for the running call") {
		t.Fatalf("Shutdown behind a stuck Export = %q", resp.GetError())
	}
	close(exp.block)
	<-done
	for range 2 {
		if resp, err := s.Shutdown(context.Background(), &pluginpb.ShutdownRequest{}); err != nil || resp.Error != "" {
			t.Fatalf("Shutdown = %v, %v", resp, err)
		}
	}
	if exp.shutdowns != 1 {
		t.Fatalf("exporter shut down %d times, want 1", exp.shutdowns)
	}
}

func TestLogHandlerSpeaksHCLogJSON(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(newLogHandler(&buf, slog.LevelInfo))
	l.Debug("hidden")
	l.Warn("slow vendor", "latency_ms", 900, slog.Group("req", "id", "r1"))
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatalf("not one JSON line: %q", buf.String())
	}
	if m["@level"] != "warn" || m["@message"] != "slow vendor" || m["latency_ms"] != 900.0 {
		t.Fatalf("record = %v", m)
	}
	ts, _ := m["@timestamp"].(string)
	if _, err := time.Parse(hclogTimeFormat, ts); err != nil {
		t.Fatalf("@timestamp %q: %v", ts, err)
	}
	if req, _ := m["req"].(map[string]any); req["id"] != "r1" {
		t.Fatalf("group lost: %v", m)
	}
}

func TestParseLevel(t *testing.T) {
	for in, want := range map[string]slog.Level{"debug": slog.LevelDebug, "WARN": slog.LevelWarn, "error": slog.LevelError, "": slog.LevelInfo, "loud": slog.LevelInfo} {
		if got := parseLevel(in); got != want {
			t.Errorf("parseLevel(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestWatchHost(t *testing.T) {
	gone := make(chan struct{})
	// A parent that is not ours counts as gone at the first check.
	go watchHost(os.Getppid()+1_000_000, 5*time.Millisecond, func() { close(gone) })
	select {
	case <-gone:
	case <-time.After(time.Minute):
		t.Fatal("watchHost did not notice the parent changed")
	}

	// Our real parent is still there: no call.
	stay := make(chan struct{}, 1)
	go watchHost(os.Getppid(), 5*time.Millisecond, func() { stay <- struct{}{} })
	select {
	case <-stay:
		t.Fatal("watchHost fired while the parent is alive")
	case <-time.After(100 * time.Millisecond):
	}
}

func TestLeaveStopToHost(t *testing.T) {
	// While the host runs, stop signals are ignored. The channel is
	// unbuffered: once the second send is taken, the first was handled.
	sigs := make(chan os.Signal)
	gone := make(chan struct{})
	done := make(chan struct{})
	go func() {
		leaveStopToHost(sigs, os.Getppid(), func() { close(gone) })
		close(done)
	}()
	sigs <- syscall.SIGTERM
	sigs <- syscall.SIGINT
	close(sigs)
	<-done
	select {
	case <-gone:
		t.Fatal("a stop signal ended the plugin while its host runs")
	default:
	}

	// Once the host is gone, a signal ends the plugin at once.
	sigs = make(chan os.Signal, 1)
	gone = make(chan struct{})
	go leaveStopToHost(sigs, os.Getppid()+1_000_000, func() { close(gone) })
	sigs <- syscall.SIGTERM
	select {
	case <-gone:
	case <-time.After(time.Minute):
		t.Fatal("a stop signal did not end a plugin whose host is gone")
	}
}

func TestHostPID(t *testing.T) {
	t.Setenv(EnvHostPID, "4242")
	if got := hostPID(); got != 4242 {
		t.Fatalf("hostPID = %d, want 4242", got)
	}
	t.Setenv(EnvHostPID, "junk")
	if got := hostPID(); got != os.Getppid() {
		t.Fatalf("hostPID = %d, want the parent %d", got, os.Getppid())
	}
}

func TestCauseMessageDropsClassification(t *testing.T) {
	cases := []struct {
		err  error
		want string
	}{
		{Permanent(errors.New("401 bad key")), "401 bad key"},
		{Retryable(errors.New("429"), time.Second), "429"},
		{fmt.Errorf("posting: %w", Permanent(errors.New("400"))), "posting: permanent: 400"},
		{errors.New("plain"), "plain"},
	}
	for _, tc := range cases {
		if got := exportResponse(tc.err).Message; got != tc.want {
			t.Errorf("message for %v = %q, want %q", tc.err, got, tc.want)
		}
	}
}
