// Command jsonl is a complete example of a custom exporter plugin: it appends
// each span it receives as one JSON line to a file.
//
//	destinations:
//	  - name: local-jsonl
//	    plugin: ./bin/jsonl-plugin
//	    config:
//	      path: /var/log/kern/spans.jsonl
//
// It uses only the public plugins package and pdata, like any plugin written
// outside this repository.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kern-agents/trace-gateway/plugins"
)

func main() {
	plugins.Serve(&exporter{})
}

type exporter struct {
	file *os.File
}

// Configure validates the config block and opens the file.
func (e *exporter) Configure(_ context.Context, config map[string]any) error {
	var errs plugins.ConfigError
	path, ok := config["path"].(string)
	switch {
	case config["path"] == nil:
		errs.Add("path", "is required")
	case !ok || path == "":
		errs.Add("path", "must be a non-empty string, got %v", config["path"])
	}
	for k := range config {
		if k != "path" {
			errs.Add(k, "unknown field")
		}
	}
	if err := errs.Err(); err != nil {
		return err
	}
	if dir := filepath.Dir(path); !isDir(dir) {
		errs.Add("path", "directory %s does not exist", dir)
		return errs.Err()
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		errs.Add("path", "cannot open: %v", err)
		return errs.Err()
	}
	e.file = f
	slog.Info("writing spans", "path", path)
	return nil
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// line is one span as written to the file.
type line struct {
	TraceID       string         `json:"trace_id"`
	SpanID        string         `json:"span_id"`
	ParentSpanID  string         `json:"parent_span_id,omitempty"`
	Name          string         `json:"name"`
	Kind          string         `json:"kind"`
	StartTime     time.Time      `json:"start_time"`
	EndTime       time.Time      `json:"end_time"`
	StatusCode    string         `json:"status_code"`
	StatusMessage string         `json:"status_message,omitempty"`
	Attributes    map[string]any `json:"attributes,omitempty"`
	Events        []event        `json:"events,omitempty"`
	Resource      map[string]any `json:"resource,omitempty"`
	Scope         string         `json:"scope,omitempty"`
}

type event struct {
	Name       string         `json:"name"`
	Time       time.Time      `json:"time"`
	Attributes map[string]any `json:"attributes,omitempty"`
}

// Export encodes the whole batch first and appends it with a single write.
func (e *exporter) Export(_ context.Context, td ptrace.Traces) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		resource := rs.Resource().Attributes().AsRaw()
		for j := 0; j < rs.ScopeSpans().Len(); j++ {
			ss := rs.ScopeSpans().At(j)
			for k := 0; k < ss.Spans().Len(); k++ {
				sp := ss.Spans().At(k)
				l := line{
					TraceID:       sp.TraceID().String(),
					SpanID:        sp.SpanID().String(),
					ParentSpanID:  sp.ParentSpanID().String(),
					Name:          sp.Name(),
					Kind:          sp.Kind().String(),
					StartTime:     sp.StartTimestamp().AsTime(),
					EndTime:       sp.EndTimestamp().AsTime(),
					StatusCode:    sp.Status().Code().String(),
					StatusMessage: sp.Status().Message(),
					Attributes:    sp.Attributes().AsRaw(),
					Resource:      resource,
					Scope:         ss.Scope().Name(),
				}
				for n := 0; n < sp.Events().Len(); n++ {
					ev := sp.Events().At(n)
					l.Events = append(l.Events, event{Name: ev.Name(), Time: ev.Timestamp().AsTime(), Attributes: ev.Attributes().AsRaw()})
				}
				if err := enc.Encode(l); err != nil {
					// A span JSON cannot represent will never encode.
					return plugins.Permanent(fmt.Errorf("encoding span %s: %w", l.SpanID, err))
				}
			}
		}
	}
	if _, err := e.file.Write(buf.Bytes()); err != nil {
		return plugins.Retryable(fmt.Errorf("writing %s: %w", e.file.Name(), err), 0)
	}
	return nil
}

// Shutdown flushes the file to disk and closes it.
func (e *exporter) Shutdown(context.Context) error {
	if e.file == nil {
		return nil
	}
	if err := e.file.Sync(); err != nil {
		e.file.Close()
		return fmt.Errorf("syncing %s: %w", e.file.Name(), err)
	}
	return e.file.Close()
}
