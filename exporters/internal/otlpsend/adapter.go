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

var (
	_ plugins.Exporter          = (*Adapter)(nil)
	_ plugins.BorrowingExporter = (*Adapter)(nil)
)

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
	sender, mapper, err := a.current()
	if err != nil {
		return err
	}
	return send(ctx, sender, mapper, td)
}

// ExportEncoded implements plugins.EncodedExporter. Without a mapper, a
// sender that can (an EncodedSender) gets the request as the host encoded
// it; a vendor mapping needs pdata, so the request is decoded into it first.
func (a *Adapter) ExportEncoded(ctx context.Context, request []byte) error {
	sender, mapper, err := a.current()
	if err != nil {
		return err
	}
	if es, ok := sender.(EncodedSender); ok && mapper == nil {
		return es.SendEncoded(ctx, request)
	}
	td, err := decodeTraces(request)
	if err != nil {
		return err
	}
	return send(ctx, sender, mapper, td)
}

// BorrowsRequests implements plugins.BorrowingExporter: ExportEncoded is
// done with its request when it returns. The senders send synchronously;
// what they decode is copied out of the request; the one body that reads it
// directly is waited for until the HTTP transport closed it (see post).
func (a *Adapter) BorrowsRequests() {}

// current returns the configured sender and mapper.
func (a *Adapter) current() (Sender, Mapper, error) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if a.sender == nil {
		// A host bug, not a property of the batch: keep it for a later try.
		return nil, nil, plugins.Retryable(errors.New("exporter used before Configure"), 0)
	}
	return a.sender, a.mapper, nil
}

// send maps td (when there is a mapper) and sends it.
func send(ctx context.Context, sender Sender, mapper Mapper, td ptrace.Traces) error {
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
