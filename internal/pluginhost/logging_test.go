package pluginhost

import (
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func TestLineWriter(t *testing.T) {
	cases := []struct {
		name   string
		writes []string
		want   []string
	}{
		{"one line", []string{"hello\n"}, []string{"hello"}},
		{"split across writes", []string{"hel", "lo\nwor", "ld\n"}, []string{"hello", "world"}},
		{"several in one write", []string{"a\nb\n\nc\n"}, []string{"a", "b", "", "c"}},
		{"crlf", []string{"a\r\n"}, []string{"a"}},
		{"unterminated tail is held", []string{"a\nb"}, []string{"a"}},
		{"overlong line is truncated", []string{strings.Repeat("x", maxLogLine+10) + "\nnext\n"},
			[]string{strings.Repeat("x", maxLogLine) + " …(truncated)", "next"}},
		{"overlong across writes", []string{strings.Repeat("x", maxLogLine-1), "yyyy", "z\nok\n"},
			[]string{strings.Repeat("x", maxLogLine-1) + "y …(truncated)", "ok"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			w := &lineWriter{fn: func(l string) { got = append(got, l) }}
			for _, s := range tc.writes {
				if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("lines = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestParseLogLine(t *testing.T) {
	cases := []struct {
		line  string
		ok    bool
		level slog.Level
		msg   string
		attrs []string // key=value
	}{
		{`{"@level":"warn","@message":"slow vendor","@timestamp":"2025-01-01T00:00:00.000000Z","latency_ms":900}`, true, slog.LevelWarn, "slow vendor", []string{"latency_ms=900"}},
		{`{"@level":"debug","@message":"x","@module":"exporter","b":"2","a":1}`, true, slog.LevelDebug, "x", []string{"a=1", "b=2", "module=exporter"}},
		{`{"@level":"trace","@message":"t"}`, true, slog.LevelDebug, "t", nil},
		{`{"@level":"error","@message":"e","err":{"code":5}}`, true, slog.LevelError, "e", []string{"err=map[code:5]"}},
		{`{"@message":"no level"}`, true, slog.LevelInfo, "no level", nil},
		{`{"@message": 5, "@level": "error"}`, false, 0, "", nil},
		{`{"msg":"other json"}`, false, 0, "", nil},
		{`{not json`, false, 0, "", nil},
		{`plain text`, false, 0, "", nil},
		{`[1,2]`, false, 0, "", nil},
	}
	for _, tc := range cases {
		level, msg, attrs, ok := parseLogLine(tc.line)
		if ok != tc.ok {
			t.Errorf("%s: ok = %v, want %v", tc.line, ok, tc.ok)
			continue
		}
		if !ok {
			continue
		}
		var got []string
		for _, a := range attrs {
			got = append(got, a.String())
		}
		if level != tc.level || msg != tc.msg || !slices.Equal(got, tc.attrs) {
			t.Errorf("%s: got %s %q %v, want %s %q %v", tc.line, level, msg, got, tc.level, tc.msg, tc.attrs)
		}
	}
}

func TestStderrLoggerLevelsAndTail(t *testing.T) {
	sink, logger := newSink(t)
	s := &stderrLogger{log: logger}
	lines := []string{"starting", `{"@level":"info","@message":"structured"}`, "", "panic: nil map", "goroutine 1 [running]:"}
	for i := range 10 {
		lines = append(lines, "frame "+string(rune('a'+i)))
	}
	for _, l := range lines {
		s.line(l)
	}
	recs := sink.snapshot()
	if len(recs) != len(lines)-1 { // the blank line is dropped
		t.Fatalf("%d records for %d non-blank lines", len(recs), len(lines)-1)
	}
	if recs[0].level != slog.LevelInfo || recs[0].attrs["stream"] != "stderr" {
		t.Errorf("plain line logged as %v %v", recs[0].level, recs[0].attrs)
	}
	if recs[1].msg != "structured" || recs[1].attrs["stream"] != nil {
		t.Errorf("structured line logged as %q %v", recs[1].msg, recs[1].attrs)
	}
	for _, r := range recs[2:] {
		if r.level != slog.LevelError {
			t.Errorf("panic output %q logged at %s", r.msg, r.level)
		}
	}
	tail := strings.Split(s.lastLines(), "\n")
	if len(tail) != tailLines || tail[len(tail)-1] != "frame j" {
		t.Fatalf("tail = %q", tail)
	}
}

func TestHCLogAdapter(t *testing.T) {
	sink, logger := newSink(t)
	var l hclog.Logger = &hclogAdapter{l: logger}
	l = l.Named("stdio").With("id", 7)
	l.Trace("t")
	l.Info("i", "k", "v")
	l.Error("e")
	l.Log(hclog.Off, "never")
	if l.GetLevel() != hclog.Off {
		t.Fatal("GetLevel must report Off so go-plugin does not parse plugin stderr itself")
	}
	if l.Name() != "stdio" {
		t.Errorf("Name = %q", l.Name())
	}
	recs := sink.snapshot()
	if len(recs) != 3 {
		t.Fatalf("%d records, want 3", len(recs))
	}
	want := []struct {
		level slog.Level
		msg   string
	}{{slog.LevelDebug, "t"}, {slog.LevelInfo, "i"}, {slog.LevelError, "e"}}
	for i, w := range want {
		if recs[i].level != w.level || recs[i].msg != w.msg || recs[i].attrs["id"] != int64(7) {
			t.Errorf("record %d = %v %q %v", i, recs[i].level, recs[i].msg, recs[i].attrs)
		}
	}
	if recs[1].attrs["k"] != "v" {
		t.Errorf("args lost: %v", recs[1].attrs)
	}
	l.StandardLogger(nil).Print("via std")
	if _, ok := sink.find("via std"); !ok {
		t.Error("StandardLogger output not logged")
	}
}
