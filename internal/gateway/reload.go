package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/kern-agents/trace-gateway/internal/config"
	"github.com/kern-agents/trace-gateway/internal/dispatch"
	"github.com/kern-agents/trace-gateway/internal/redact"
)

// ErrReloadRefused marks a reload that changed nothing: the new
// configuration could not be loaded or applied, and the running one stays.
var ErrReloadRefused = errors.New("configuration not reloaded; the running one stays")

// reloadTimeout bounds one reload: starting the new plugins and letting the
// stopped destinations finish their batch in flight.
const reloadTimeout = time.Minute

// ReloadResult says what a reload applied.
type ReloadResult struct {
	DestinationsAdded   []string `json:"destinations_added"`
	DestinationsRemoved []string `json:"destinations_removed"`
	DestinationsChanged []string `json:"destinations_changed"`
	// RestartRequired lists the keys whose new values apply only at the
	// next start (listen addresses, storage, ingest sizes, log settings);
	// they keep their running values.
	RestartRequired []string `json:"restart_required"`
	// TLSError is set when the TLS files did not load: the previous
	// certificate is still served, the rest was applied.
	TLSError string `json:"tls_error,omitempty"`
}

// Reload applies what can change without a restart: auth tokens (OTLP and
// the API), rate limits, the TLS files (re-read now) and the destinations.
// Destinations added get a worker and a plugin, starting with the spans
// stored from now on (a name that ran before resumes from its cursor);
// removed ones finish their batch in flight or hand their claim back, and
// keep their cursor; changed ones (any setting: plugin, sha256, config,
// routing, batching...) are stopped and started again with the new
// settings, resuming from their cursor.
//
// New plugins are started and configured before anything changes: when one
// fails (a config block its plugin rejects, a missing binary, a bad
// checksum) the reload is refused with an error wrapping ErrReloadRefused and
// everything keeps running as before. An error that does not wrap it means
// only the TLS files failed to load (also in ReloadResult.TLSError).
func (g *Gateway) Reload(ctx context.Context, cfg *config.Config) (ReloadResult, error) {
	g.reloadMu.Lock()
	defer g.reloadMu.Unlock()
	res := ReloadResult{RestartRequired: restartRequired(g.cfg, cfg)}
	added, removed, changed := diffDestinations(g.dests, cfg.Destinations)
	res.DestinationsAdded, res.DestinationsRemoved, res.DestinationsChanged = names(added), removed, names(changed)
	if err := g.updateDestinations(ctx, slices.Concat(added, changed), slices.Concat(removed, names(changed))); err != nil {
		err = fmt.Errorf("%w: %w", ErrReloadRefused, err)
		g.log.Error("configuration not reloaded; the running one stays", "err", err)
		return ReloadResult{}, err
	}
	g.dests = cfg.Destinations

	g.auth.Update(cfg.Server.Auth.AuthTokens())
	g.limiter.Update(rateLimits(cfg))
	var err error
	if g.tls != nil {
		if err = g.tls.Reload(); err != nil {
			res.TLSError = err.Error()
		}
	}
	g.log.Info("configuration reloaded", "auth", g.auth.Enabled(), "tokens", len(cfg.Server.Auth.Tokens),
		"destinations", len(g.dests), "added", res.DestinationsAdded, "removed", res.DestinationsRemoved,
		"changed", res.DestinationsChanged)
	if len(res.RestartRequired) > 0 {
		g.log.Warn("some changed settings apply only at the next start; they keep their running values",
			"keys", strings.Join(res.RestartRequired, ", "))
	}
	return res, err
}

// reloadFromFile re-reads the configuration with Options.LoadConfig and
// applies it (Run's SIGHUP and POST /-/reload).
func (g *Gateway) reloadFromFile(ctx context.Context) (ReloadResult, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), reloadTimeout)
	defer cancel()
	next, err := g.opts.LoadConfig()
	if err != nil {
		err = fmt.Errorf("%w: %w", ErrReloadRefused, err)
		g.log.Error("configuration not reloaded; the running one stays", "err", err)
		return ReloadResult{}, err
	}
	return g.Reload(ctx, next)
}

// updateDestinations starts the plugins of start (new or changed
// destinations), then has the dispatcher stop the destinations named in
// stop and run the new ones. On error nothing changed.
func (g *Gateway) updateDestinations(ctx context.Context, start []config.Destination, stop []string) error {
	if len(start) == 0 && len(stop) == 0 {
		return nil
	}
	if g.fanout == nil {
		return fmt.Errorf("the %s store has no delivery log: destinations need one", g.cfg.Storage.Driver)
	}
	started, errs := startPlugins(ctx, start, g.opts, g.log)
	hs := make([]*handoff, len(started))
	for i, p := range started {
		hs[i] = newHandoff(p)
	}
	if err := errors.Join(errs...); err != nil {
		closeHandoffs(ctx, hs)
		return err
	}
	add := make([]dispatch.Destination, len(start))
	for i, d := range start {
		add[i] = fanoutDestination(d, g.opts, g.log, hs[i])
	}
	if err := g.fanout.Update(ctx, stop, add); err != nil {
		closeHandoffs(ctx, hs)
		return err
	}
	g.handoffMu.Lock()
	// Plugins their workers took need no closing here any more.
	g.handoffs = slices.DeleteFunc(g.handoffs, func(h *handoff) bool { return h.p.Load() == nil })
	g.handoffs = append(g.handoffs, hs...)
	g.handoffMu.Unlock()
	return nil
}

// diffDestinations compares the running destinations with the new list, by
// name: every setting of a destination counts.
func diffDestinations(old, next []config.Destination) (added []config.Destination, removed []string, changed []config.Destination) {
	byName := make(map[string]config.Destination, len(old))
	for _, d := range old {
		byName[d.Name] = d
	}
	removed = []string{}
	seen := map[string]bool{}
	for _, d := range next {
		seen[d.Name] = true
		prev, ok := byName[d.Name]
		switch {
		case !ok:
			added = append(added, d)
		case !reflect.DeepEqual(prev, d):
			changed = append(changed, d)
		}
	}
	for _, d := range old {
		if !seen[d.Name] {
			removed = append(removed, d.Name)
		}
	}
	return added, removed, changed
}

func names(ds []config.Destination) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.Name
	}
	return out
}

// liveKeys are the settings a reload applies; every other difference is
// reported as needing a restart.
var liveKeys = []string{"server.auth", "ingest.rate_limit", "ingest.tenant_rate_limits"}

// restartRequired lists the keys (as written in the file) whose values
// differ between the running configuration and next and cannot change live.
func restartRequired(running, next *config.Config) []string {
	var out []string
	for _, sec := range []struct {
		key  string
		a, b any
	}{
		{"server", running.Server, next.Server},
		{"storage", running.Storage, next.Storage},
		{"ingest", running.Ingest, next.Ingest},
		{"log", running.Log, next.Log},
	} {
		diffKeys(sec.key, reflect.ValueOf(sec.a), reflect.ValueOf(sec.b), &out)
	}
	return out
}

func diffKeys(path string, a, b reflect.Value, out *[]string) {
	if slices.Contains(liveKeys, path) {
		return
	}
	if a.Kind() != reflect.Struct {
		if !reflect.DeepEqual(a.Interface(), b.Interface()) {
			*out = append(*out, path)
		}
		return
	}
	for i := range a.NumField() {
		f := a.Type().Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || tag == "" || tag == "-" {
			continue
		}
		diffKeys(path+"."+tag, a.Field(i), b.Field(i), out)
	}
}

// serveReload is POST /-/reload: it reloads the config file like SIGHUP and
// answers what changed (200), or why nothing did (422).
func (g *Gateway) serveReload(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if g.opts.LoadConfig == nil {
		w.WriteHeader(http.StatusNotImplemented)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "this gateway was not started from a config file"})
		return
	}
	res, err := g.reloadFromFile(r.Context())
	if errors.Is(err, ErrReloadRefused) {
		w.WriteHeader(http.StatusUnprocessableEntity)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": redact.String(err.Error())})
		return
	}
	_ = json.NewEncoder(w).Encode(res)
}
