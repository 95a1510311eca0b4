package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/kern-agents/trace-gateway/internal/config"
	"github.com/kern-agents/trace-gateway/internal/pluginhost"
	"github.com/kern-agents/trace-gateway/plugins"
)

// handoff holds a plugin started ahead of its fan-out worker until the
// worker takes it, so that one the worker never took can still be closed.
type handoff struct {
	p atomic.Pointer[pluginhost.Destination]
}

func newHandoff(p *pluginhost.Destination) *handoff {
	h := &handoff{}
	h.p.Store(p)
	return h
}

// take returns the plugin, once; nil after that or when there was none.
func (h *handoff) take() *pluginhost.Destination {
	if h == nil {
		return nil
	}
	return h.p.Swap(nil)
}

// closeHandoffs closes the plugins no worker took.
func closeHandoffs(ctx context.Context, hs []*handoff) {
	var wg sync.WaitGroup
	for _, h := range hs {
		if p := h.take(); p != nil {
			wg.Go(func() { _ = p.Close(ctx) })
		}
	}
	wg.Wait()
}

// startPlugins starts and configures the plugins of dests at once; the
// results are by index, a *pluginhost.StartError for each that failed.
func startPlugins(ctx context.Context, dests []config.Destination, opts Options, log *slog.Logger) ([]*pluginhost.Destination, []error) {
	started := make([]*pluginhost.Destination, len(dests))
	errs := make([]error, len(dests))
	var wg sync.WaitGroup
	for i, d := range dests {
		wg.Go(func() { started[i], errs[i] = pluginhost.Start(ctx, pluginSpec(d, opts, log)) })
	}
	wg.Wait()
	return started, errs
}

// CheckDestinations starts every destination's plugin, hands it its config
// block and stops it again: what `gateway validate` checks beyond the file.
// It returns config.Errors, one per problem, each located at the
// destination: at the rejected field of its config block when the plugin
// names one, else at its config block (a rejection) or its plugin setting.
func CheckDestinations(ctx context.Context, cfg *config.Config, opts Options) error {
	log := opts.Logger
	if log == nil {
		// Failures come back as errors; the plugins' own chatter is noise.
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	started, errs := startPlugins(ctx, cfg.Destinations, opts, log)
	hs := make([]*handoff, len(started))
	for i, p := range started {
		hs[i] = newHandoff(p)
	}
	closeHandoffs(ctx, hs)
	var out config.Errors
	for i, err := range errs {
		if err != nil {
			out = append(out, destinationErrors(cfg, i, err)...)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// destinationErrors locates why destination i's plugin did not start.
func destinationErrors(cfg *config.Config, i int, err error) config.Errors {
	entry := fmt.Sprintf("destinations[%d]", i)
	label := fmt.Sprintf("%s (%s)", entry, cfg.Destinations[i].Name)
	at := entry + ".plugin"
	var se *pluginhost.StartError
	if errors.As(err, &se) {
		err = se.Err // the label names the destination
		if se.Kind == pluginhost.ConfigRejected {
			at = entry + ".config"
		}
	}
	var ce *plugins.ConfigError
	if !errors.As(err, &ce) || len(ce.Fields) == 0 {
		return config.Errors{{File: cfg.File, Line: cfg.Line(at), Field: label, Msg: err.Error()}}
	}
	out := make(config.Errors, len(ce.Fields))
	for j, f := range ce.Fields {
		field := "config." + f.Field
		if f.Field == "(config)" { // the plugin named no field
			field = "config"
		}
		out[j] = config.Error{File: cfg.File, Line: cfg.Line(entry + "." + field), Field: label, Msg: field + ": " + f.Message}
	}
	return out
}
