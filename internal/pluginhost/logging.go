package pluginhost

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
)

// maxLogLine caps one line of plugin output kept in memory; longer lines are
// truncated.
const maxLogLine = 16 << 10

// hclogAdapter sends go-plugin's own log messages to slog.
//
// GetLevel reports Off on purpose: go-plugin then skips its own parsing of
// the plugin's stderr (which panics on JSON lines whose "@message" is not a
// string, and would let a plugin crash the gateway) and we parse the lines
// ourselves from ClientConfig.Stderr (see stderrLogger).
type hclogAdapter struct {
	l    *slog.Logger
	name string
	// exited, when set, picks the level and message of go-plugin's "plugin
	// process exited" report from how the process ended.
	exited func(exitErr string) (slog.Level, string)
}

var _ hclog.Logger = (*hclogAdapter)(nil)

func (a *hclogAdapter) Log(level hclog.Level, msg string, args ...any) {
	if level == hclog.Off || level == hclog.NoLevel {
		return
	}
	lvl := slogLevel(level)
	if msg == processExited && a.exited != nil {
		lvl, msg = a.exited(argString(args, "error"))
	}
	a.l.Log(context.Background(), lvl, msg, args...)
}

// processExited is go-plugin's log message when a plugin process ends,
// with "error" naming how unless it exited 0.
const processExited = "plugin process exited"

// argString is the string value of key in hclog's key, value args.
func argString(args []any, key string) string {
	for i := 0; i+1 < len(args); i += 2 {
		if k, ok := args[i].(string); ok && k == key {
			s, _ := args[i+1].(string)
			return s
		}
	}
	return ""
}

func (a *hclogAdapter) Trace(msg string, args ...any) { a.Log(hclog.Trace, msg, args...) }
func (a *hclogAdapter) Debug(msg string, args ...any) { a.Log(hclog.Debug, msg, args...) }
func (a *hclogAdapter) Info(msg string, args ...any)  { a.Log(hclog.Info, msg, args...) }
func (a *hclogAdapter) Warn(msg string, args ...any)  { a.Log(hclog.Warn, msg, args...) }
func (a *hclogAdapter) Error(msg string, args ...any) { a.Log(hclog.Error, msg, args...) }

func (a *hclogAdapter) enabled(l slog.Level) bool { return a.l.Enabled(context.Background(), l) }
func (a *hclogAdapter) IsTrace() bool             { return a.enabled(slog.LevelDebug) }
func (a *hclogAdapter) IsDebug() bool             { return a.enabled(slog.LevelDebug) }
func (a *hclogAdapter) IsInfo() bool              { return a.enabled(slog.LevelInfo) }
func (a *hclogAdapter) IsWarn() bool              { return a.enabled(slog.LevelWarn) }
func (a *hclogAdapter) IsError() bool             { return a.enabled(slog.LevelError) }
func (a *hclogAdapter) ImpliedArgs() []any        { return nil }
func (a *hclogAdapter) Name() string              { return a.name }
func (a *hclogAdapter) SetLevel(hclog.Level)      {}
func (a *hclogAdapter) GetLevel() hclog.Level     { return hclog.Off }

func (a *hclogAdapter) With(args ...any) hclog.Logger {
	return &hclogAdapter{l: a.l.With(args...), name: a.name, exited: a.exited}
}

func (a *hclogAdapter) Named(name string) hclog.Logger {
	if a.name != "" {
		name = a.name + "." + name
	}
	return &hclogAdapter{l: a.l, name: name, exited: a.exited}
}

func (a *hclogAdapter) ResetNamed(name string) hclog.Logger {
	return &hclogAdapter{l: a.l, name: name, exited: a.exited}
}

func (a *hclogAdapter) StandardLogger(*hclog.StandardLoggerOptions) *log.Logger {
	return slog.NewLogLogger(a.l.Handler(), slog.LevelDebug)
}

func (a *hclogAdapter) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return slog.NewLogLogger(a.l.Handler(), slog.LevelDebug).Writer()
}

func slogLevel(l hclog.Level) slog.Level {
	switch {
	case l <= hclog.Debug:
		return slog.LevelDebug
	case l == hclog.Info:
		return slog.LevelInfo
	case l == hclog.Warn:
		return slog.LevelWarn
	default:
		return slog.LevelError
	}
}

// lineWriter splits a byte stream into lines for fn. Lines longer than
// maxLogLine are truncated.
type lineWriter struct {
	mu   sync.Mutex
	buf  []byte
	over bool // the current line already overflowed
	fn   func(line string)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i]
		}
		if room := maxLogLine - len(w.buf); room < len(chunk) {
			chunk = chunk[:max(room, 0)]
			w.over = true
		}
		w.buf = append(w.buf, chunk...)
		if i < 0 {
			break
		}
		line := strings.TrimRight(string(w.buf), "\r")
		if w.over {
			line += " …(truncated)"
		}
		w.buf, w.over = w.buf[:0], false
		w.fn(line)
		p = p[i+1:]
	}
	return n, nil
}

// stderrLogger logs the lines a plugin writes to its real stderr: JSON lines
// in hclog's layout (what plugins.Serve emits) keep their level and fields;
// anything else is logged as is. It remembers the last lines so a plugin that
// dies at start-up can be explained.
type stderrLogger struct {
	log *slog.Logger

	mu      sync.Mutex
	inPanic bool
	tail    []string
}

// The last lines of stderr are kept to explain a plugin that died.
const (
	tailLines     = 8
	tailLineBytes = 512
)

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + " …(truncated)"
}

func (s *stderrLogger) line(line string) {
	if strings.TrimSpace(line) == "" {
		return
	}
	s.mu.Lock()
	s.tail = append(s.tail, truncate(line, tailLineBytes))
	if len(s.tail) > tailLines {
		s.tail = slices.Delete(s.tail, 0, len(s.tail)-tailLines)
	}
	if strings.HasPrefix(line, "panic: ") || strings.HasPrefix(line, "fatal error: ") {
		s.inPanic = true
	}
	inPanic := s.inPanic
	s.mu.Unlock()

	if level, msg, attrs, ok := parseLogLine(line); ok {
		s.log.LogAttrs(context.Background(), level, msg, attrs...)
		return
	}
	level := slog.LevelInfo
	if inPanic {
		level = slog.LevelError
	}
	s.log.LogAttrs(context.Background(), level, line, slog.String("stream", "stderr"))
}

// lastLines returns what the plugin last wrote to stderr, for error messages.
func (s *stderrLogger) lastLines() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.tail, "\n")
}

// parseLogLine reads one hclog-style JSON log line. Anything unexpected (not
// JSON, no string "@message") is reported as not a log line.
func parseLogLine(line string) (slog.Level, string, []slog.Attr, bool) {
	if !strings.HasPrefix(line, "{") {
		return 0, "", nil, false
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		return 0, "", nil, false
	}
	msg, ok := m["@message"].(string)
	if !ok {
		return 0, "", nil, false
	}
	lvl, _ := m["@level"].(string)
	level := slog.LevelInfo
	switch strings.ToLower(lvl) {
	case "trace", "debug":
		level = slog.LevelDebug
	case "warn", "warning":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	}
	attrs := make([]slog.Attr, 0, len(m))
	for k, v := range m {
		switch k {
		case "@message", "@level", "@timestamp", "@caller":
			continue
		}
		attrs = append(attrs, slog.Any(strings.TrimPrefix(k, "@"), v))
	}
	slices.SortFunc(attrs, func(a, b slog.Attr) int { return strings.Compare(a.Key, b.Key) })
	return level, msg, attrs, true
}

// streamLogger logs what the plugin prints to stdout or stderr after the
// handshake (forwarded by go-plugin over gRPC).
func streamLogger(l *slog.Logger, stream string) io.Writer {
	return &lineWriter{fn: func(line string) {
		if strings.TrimSpace(line) == "" {
			return
		}
		l.LogAttrs(context.Background(), slog.LevelInfo, line, slog.String("stream", stream))
	}}
}
