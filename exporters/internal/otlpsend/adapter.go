package otlpsend

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kern-agents/trace-gateway/plugins"
)

// Mapper adds a vendor's attributes to a batch. It must not modify its
// argument (the host may hand the same batch to a retry) and returns the
// batch to send.
type Mapper func(ptrace.Traces) ptrace.Traces

// BuildFunc validates a destination's config block and returns the sender
// and mapper for it. Invalid config yields a *plugins.ConfigError.
type BuildFunc func(config map[string]any) (Sender, Mapper, error)

// Adapter is a plugins.Exporter made of a BuildFunc: each vendor package
// supplies how to read its config and map attributes; sending, error
// translation and lifecycle live here.
type Adapter struct {
	build BuildFunc

	mu     sync.RWMutex
	sender Sender
	mapper Mapper
}

var _ plugins.Exporter = (*Adapter)(nil)

// NewAdapter returns an unconfigured exporter.
func NewAdapter(build BuildFunc) *Adapter { return &Adapter{build: build} }

// Configure implements plugins.Exporter. It may be called again to replace
// the configuration.
func (a *Adapter) Configure(ctx context.Context, config map[string]any) error {
	sender, mapper, err := a.build(config)
	if err != nil {
		return err
	}
	a.mu.Lock()
	old := a.sender
	a.sender, a.mapper = sender, mapper
	a.mu.Unlock()
	if old != nil {
		return old.Shutdown(ctx)
	}
	return nil
}

// Export implements plugins.Exporter.
func (a *Adapter) Export(ctx context.Context, td ptrace.Traces) error {
	a.mu.RLock()
	sender, mapper := a.sender, a.mapper
	a.mu.RUnlock()
	if sender == nil {
		// A host bug, not a property of the batch: keep it for a later try.
		return plugins.Retryable(errors.New("exporter used before Configure"), 0)
	}
	if mapper != nil {
		td = mapper(td)
	}
	return sender.Send(ctx, td)
}

// Shutdown implements plugins.Exporter.
func (a *Adapter) Shutdown(ctx context.Context) error {
	a.mu.Lock()
	sender := a.sender
	a.sender = nil
	a.mu.Unlock()
	if sender == nil {
		return nil
	}
	return sender.Shutdown(ctx)
}

// logPartial logs what a successful attempt still reported (rejected spans
// in an OTLP partial success, an unreadable success body) and passes
// classified through.
func logPartial(host string, classified, raw error) error {
	if classified == nil && raw != nil {
		slog.Warn("destination accepted the batch with a warning", "host", host, "error", raw)
	}
	return classified
}
