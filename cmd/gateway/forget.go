package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/kern-agents/trace-gateway/internal/store"
)

const destinationsUsage = `usage: gateway destinations forget NAME --config FILE [--yes]

forget drops everything the trace database keeps for a destination removed
from the config: its cursor, the work it handed back (claims), the spans
queued for it by replay or requeue, its dead letters and its replicas'
reports. Without --yes it only says what it would drop. It refuses a
destination that is still in the config, or that a replica still runs
(remove it from every replica's config and reload them first). If the name
is configured again later, it starts with the spans stored from then on.
`

func cmdDestinations(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "forget" {
		fmt.Fprint(stderr, destinationsUsage)
		return 2
	}
	fs := flag.NewFlagSet("destinations forget", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, destinationsUsage) }
	path := fs.String("config", "config.yaml", "path to the YAML config file")
	yes := fs.Bool("yes", false, "drop it (without: only say what would be dropped)")
	// The name may stand before or after the flags.
	var names []string
	for rest := args[1:]; ; {
		if err := fs.Parse(rest); err != nil {
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		names, rest = append(names, fs.Arg(0)), fs.Args()[1:]
	}
	if len(names) != 1 {
		fmt.Fprintf(stderr, "gateway destinations forget: give exactly one destination name\n\n%s", destinationsUsage)
		return 2
	}
	name := names[0]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg, st, dl, err := openDeliveryLog(ctx, *path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer st.Close()
	if i := slices.Index(configured(cfg), name); i >= 0 {
		fmt.Fprintf(stderr, "%s:%d: destination %q is still configured; remove it from the config and reload every replica before forgetting it\n",
			cfg.File, cfg.Line(fmt.Sprintf("destinations[%d].name", i)), name)
		return 1
	}
	known, err := dl.KnownDestinations(ctx)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if !slices.Contains(known, name) {
		fmt.Fprintf(stderr, "the trace database keeps nothing for destination %q (it knows: %s)\n", name, strings.Join(known, ", "))
		return 1
	}
	s, err := dl.Status(ctx, name)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if running := runningOn(s); len(running) > 0 {
		fmt.Fprintf(stderr, "destination %q is still running on %s; remove it from their config and reload them first\n",
			name, strings.Join(running, ", "))
		return 1
	}
	if !*yes {
		fmt.Fprintf(stdout, "forgetting destination %q would drop %s.\n", name, describeDrop(store.Forgotten{
			Cursor: s.Started, Spans: s.Backlog.Spans, Claims: s.Claims,
			DeadLetters: s.DeadLetters, DeadLetterSpans: s.DeadLetterSpans, Reports: len(s.Workers),
		}, s.Queued))
		fmt.Fprintln(stderr, "nothing dropped: add --yes to forget it")
		return 1
	}
	f, err := dl.Forget(ctx, name)
	if errors.Is(err, store.ErrDestinationRunning) {
		fmt.Fprintf(stderr, "destination %q started running again meanwhile: %v\n", name, err)
		return 1
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "forgot destination %q: dropped %s. If it is configured again, it starts with the spans stored from then on.\n",
		name, describeDrop(f, -1))
	return 0
}

// runningOn names the replicas that still run the destination: a live
// report, or a claim under lease (by a replica that has not reported).
func runningOn(s store.DestinationStatus) []string {
	var out []string
	for _, r := range s.Workers {
		if r.Live {
			out = append(out, fmt.Sprintf("replica %s (reported %s)", r.Owner, ago(r.UpdatedAt)))
		}
	}
	if len(out) == 0 && s.Held > 0 {
		out = append(out, fmt.Sprintf("a replica holding %d of its claims under lease", s.Held))
	}
	return out
}

// describeDrop says what forgetting drops; queued (when not negative) is how
// many of the spans replay or requeue queued.
func describeDrop(f store.Forgotten, queued int64) string {
	spans := plural(f.Spans, "span") + " not delivered yet"
	if queued > 0 {
		spans += fmt.Sprintf(" (%d of them queued by replay or requeue)", queued)
	}
	parts := []string{spans}
	if f.Claims > 0 {
		parts = append(parts, plural(int64(f.Claims), "claim")+" it handed back")
	}
	parts = append(parts, fmt.Sprintf("%s (%s)", plural(f.DeadLetters, "dead letter"), plural(f.DeadLetterSpans, "span")))
	if f.Cursor {
		parts = append(parts, "its delivery cursor")
	}
	if f.Reports > 0 {
		parts = append(parts, plural(int64(f.Reports), "replica report"))
	}
	return strings.Join(parts, ", ")
}

// plural counts n things.
func plural(n int64, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}
