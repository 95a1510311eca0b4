package redact

import (
	"context"
	"fmt"
	"log/slog"
)

// ReplaceAttr is a slog.HandlerOptions.ReplaceAttr that masks log
// attributes: string values under secret keys become Mask, and every string
// value (the message included; errors and Stringers by their text) has
// embedded credentials masked. Numbers, booleans, times and durations pass
// unchanged, so counters named like secrets (tokens) still log.
func ReplaceAttr(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 {
		switch a.Key {
		case slog.TimeKey, slog.LevelKey, slog.SourceKey:
			return a
		}
	}
	return redactAttr(a)
}

func redactAttr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindGroup:
		attrs := v.Group()
		out := make([]slog.Attr, len(attrs))
		for i, g := range attrs {
			out[i] = redactAttr(g)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(out...)}
	case slog.KindString:
		if IsSecretKey(a.Key) && v.String() != "" {
			return slog.String(a.Key, Mask)
		}
		return slog.String(a.Key, String(v.String()))
	case slog.KindAny:
		var text string
		switch x := v.Any().(type) {
		case error:
			text = x.Error()
		case fmt.Stringer:
			text = x.String()
		case []byte:
			text = string(x)
		case string: // not produced by slog, but harmless
			text = x
		default:
			if IsSecretKey(a.Key) && v.Any() != nil {
				return slog.String(a.Key, Mask)
			}
			return slog.Attr{Key: a.Key, Value: v}
		}
		if IsSecretKey(a.Key) && text != "" {
			return slog.String(a.Key, Mask)
		}
		if masked := String(text); masked != text {
			return slog.String(a.Key, masked)
		}
		return slog.Attr{Key: a.Key, Value: v} // keep the value's type for the handler
	}
	return slog.Attr{Key: a.Key, Value: v}
}

// NewHandler wraps h so that every record is redacted as ReplaceAttr does,
// for handlers that take no ReplaceAttr option.
func NewHandler(h slog.Handler) slog.Handler { return &handler{h: h} }

type handler struct{ h slog.Handler }

func (r *handler) Enabled(ctx context.Context, l slog.Level) bool { return r.h.Enabled(ctx, l) }

func (r *handler) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, String(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(redactAttr(a))
		return true
	})
	return r.h.Handle(ctx, out)
}

func (r *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	out := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		out[i] = redactAttr(a)
	}
	return &handler{h: r.h.WithAttrs(out)}
}

func (r *handler) WithGroup(name string) slog.Handler { return &handler{h: r.h.WithGroup(name)} }
