package redact

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

type stringer string

func (s stringer) String() string { return string(s) }

type secretValuer struct{}

func (secretValuer) LogValue() slog.Value {
	return slog.GroupValue(slog.String("password", "valuer-pass"), slog.String("user", "kern"))
}

// logAll writes the same records through l.
func logAll(l *slog.Logger) {
	l.Info("connecting to postgres://kern:msg-pass@db/traces",
		"password", "attr-pass",
		"dsn", "postgres://kern:dsn-pass@db:5432/traces",
		"err", errors.New(`parse "postgres://kern:err-pass@db:x": invalid port`),
		"endpoint", stringer("https://u:stringer-pass@vendor.example"),
		"tokens", 42,
		"header", "Bearer hdr-token",
		slog.Group("auth", slog.String("token", "group-token"), slog.String("tenant", "team-a")),
		"creds", secretValuer{},
		"api_key", []string{"slice-key"},
		"spans", 10,
	)
}

var logSecrets = []string{"msg-pass", "attr-pass", "dsn-pass", "err-pass", "stringer-pass", "hdr-token",
	"group-token", "valuer-pass", "slice-key"}

func checkLog(t *testing.T, out string) {
	t.Helper()
	for _, s := range logSecrets {
		if strings.Contains(out, s) {
			t.Errorf("log reveals %q:\n%s", s, out)
		}
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(out), &rec); err != nil {
		t.Fatalf("not one JSON record: %v\n%s", err, out)
	}
	want := map[string]any{
		"password": Mask,
		"dsn":      "postgres://kern:***@db:5432/traces",
		"tokens":   float64(42), // counters named like secrets still log
		"spans":    float64(10),
		"header":   "Bearer ***",
		"msg":      "connecting to postgres://kern:***@db/traces",
		"api_key":  Mask,
		"level":    "INFO",
	}
	for k, v := range want {
		if rec[k] != v {
			t.Errorf("%s = %#v, want %#v", k, rec[k], v)
		}
	}
	if auth, _ := rec["auth"].(map[string]any); auth["token"] != Mask || auth["tenant"] != "team-a" {
		t.Errorf("auth group = %v", rec["auth"])
	}
	if creds, _ := rec["creds"].(map[string]any); creds["password"] != Mask || creds["user"] != "kern" {
		t.Errorf("creds = %v", rec["creds"])
	}
	if !strings.Contains(rec["err"].(string), "invalid port") {
		t.Errorf("err lost its message: %v", rec["err"])
	}
}

func TestReplaceAttr(t *testing.T) {
	var buf bytes.Buffer
	logAll(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{ReplaceAttr: ReplaceAttr})))
	checkLog(t, buf.String())
}

func TestHandler(t *testing.T) {
	var buf bytes.Buffer
	logAll(slog.New(NewHandler(slog.NewJSONHandler(&buf, nil))))
	checkLog(t, buf.String())

	// Attributes bound with With and groups opened with WithGroup.
	buf.Reset()
	l := slog.New(NewHandler(slog.NewJSONHandler(&buf, nil))).
		With("secret", "with-secret", "dsn", "postgres://a:with-pass@h/db").
		WithGroup("req").With("authorization", "Bearer grp-token")
	l.Warn("x", "tenant", "team-a")
	out := buf.String()
	for _, s := range []string{"with-secret", "with-pass", "grp-token"} {
		if strings.Contains(out, s) {
			t.Errorf("log reveals %q: %s", s, out)
		}
	}
	if !strings.Contains(out, `"tenant":"team-a"`) || !strings.Contains(out, `"req":{`) {
		t.Errorf("structure lost: %s", out)
	}
	if !l.Enabled(t.Context(), slog.LevelInfo) || l.Enabled(t.Context(), slog.LevelDebug) {
		t.Error("Enabled not delegated")
	}
}

// TestTextHandlerUnchanged: with nothing secret, redaction must not alter
// the output (times, levels, errors keep their formatting).
func TestTextHandlerUnchanged(t *testing.T) {
	var plain, redacted bytes.Buffer
	emit := func(l *slog.Logger) {
		l.Error("write failed", "err", errors.New("deadline exceeded"), "spans", 3, "transport", "grpc")
	}
	noTime := func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}
	emit(slog.New(slog.NewTextHandler(&plain, &slog.HandlerOptions{ReplaceAttr: noTime})))
	emit(slog.New(slog.NewTextHandler(&redacted, &slog.HandlerOptions{ReplaceAttr: func(g []string, a slog.Attr) slog.Attr {
		return ReplaceAttr(g, noTime(g, a))
	}})))
	if plain.String() != redacted.String() {
		t.Fatalf("output changed:\n%s\n%s", plain.String(), redacted.String())
	}
}
