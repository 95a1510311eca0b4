package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kern-agents/trace-gateway/internal/config"
	"github.com/kern-agents/trace-gateway/internal/gateway"
	"github.com/kern-agents/trace-gateway/internal/store"
)

// stringsFlag collects a flag given several times or as a comma-separated
// list.
type stringsFlag []string

func (s *stringsFlag) String() string { return strings.Join(*s, ",") }
func (s *stringsFlag) Set(v string) error {
	for _, part := range strings.Split(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*s = append(*s, part)
		}
	}
	return nil
}

// idsFlag collects dead-letter ids the same way.
type idsFlag []int64

func (s *idsFlag) String() string { return fmt.Sprint(*s) }
func (s *idsFlag) Set(v string) error {
	for _, part := range strings.Split(v, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		id, err := strconv.ParseInt(part, 10, 64)
		if err != nil || id <= 0 {
			return fmt.Errorf("want positive dead-letter ids, got %q", part)
		}
		*s = append(*s, id)
	}
	return nil
}

// openDeliveryLog loads the config and opens the trace database's delivery
// log. The caller closes the returned store.
func openDeliveryLog(ctx context.Context, path string) (*config.Config, store.Store, store.DeliveryLog, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, nil, nil, err
	}
	st, err := gateway.OpenStore(ctx, cfg.Storage)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("open trace database: %w", err)
	}
	dl, ok := st.(store.DeliveryLog)
	if !ok {
		st.Close()
		return nil, nil, nil, fmt.Errorf("the %s store has no delivery log", cfg.Storage.Driver)
	}
	return cfg, st, dl, nil
}

func configured(cfg *config.Config) []string {
	names := make([]string, len(cfg.Destinations))
	for i, d := range cfg.Destinations {
		names[i] = d.Name
	}
	return names
}

// checkDestinations fails for a name the config does not have: spans queued
// for it would never be delivered.
func checkDestinations(cfg *config.Config, names []string) error {
	have := configured(cfg)
	for _, n := range names {
		if !slices.Contains(have, n) {
			if len(have) == 0 {
				return fmt.Errorf("destination %q is not in %s, which configures none", n, cfg.File)
			}
			return fmt.Errorf("destination %q is not in %s (configured: %s)", n, cfg.File, strings.Join(have, ", "))
		}
	}
	return nil
}

const deadLettersUsage = `usage:
  gateway deadletters list    --config FILE [--destination NAME]... [--id N,...] [--limit N] [--json]
  gateway deadletters requeue --config FILE (--destination NAME... | --id N,... | --all)

Dead letters are batches a destination refused for good (or gave up on after
retry.max_elapsed). requeue makes them deliverable again: the running gateway
sends them to their destination with its current routing.
`

func cmdDeadLetters(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "list" && args[0] != "requeue") {
		fmt.Fprint(stderr, deadLettersUsage)
		return 2
	}
	sub := args[0]
	fs := flag.NewFlagSet("deadletters "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "config.yaml", "path to the YAML config file")
	var dests stringsFlag
	var ids idsFlag
	fs.Var(&dests, "destination", "only this destination (repeatable)")
	fs.Var(&ids, "id", "only these dead letters (comma-separated, repeatable)")
	limit := fs.Int("limit", 100, "list at most this many (0: all)")
	asJSON := fs.Bool("json", false, "list as JSON lines, with span ids")
	all := fs.Bool("all", false, "requeue every dead letter of the configured destinations")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "gateway deadletters %s: unexpected arguments %v\n", sub, fs.Args())
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg, st, dl, err := openDeliveryLog(ctx, *path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer st.Close()

	if sub == "list" {
		letters, err := dl.DeadLetters(ctx, store.DeadLetterFilter{Destinations: dests, IDs: ids, Limit: *limit})
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		if *asJSON {
			enc := json.NewEncoder(stdout)
			for _, l := range letters {
				_ = enc.Encode(map[string]any{
					"id": l.ID, "destination": l.Destination, "created_at": l.CreatedAt.UTC().Format(time.RFC3339),
					"reason": l.Reason, "span_ids": l.SpanIDs,
				})
			}
			return 0
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tDESTINATION\tSPANS\tCREATED\tREASON")
		for _, l := range letters {
			reason := strings.NewReplacer("\n", " ", "\t", " ").Replace(l.Reason)
			if len(reason) > 100 {
				reason = reason[:97] + "..."
			}
			fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\n", l.ID, l.Destination, len(l.SpanIDs), l.CreatedAt.UTC().Format(time.RFC3339), reason)
		}
		fmt.Fprintf(tw, "(%d dead letters)\n", len(letters))
		_ = tw.Flush()
		return 0
	}

	if len(dests) == 0 && len(ids) == 0 && !*all {
		fmt.Fprintln(stderr, "gateway deadletters requeue: say what to requeue: --destination NAME, --id N or --all")
		return 2
	}
	if err := checkDestinations(cfg, dests); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	follow := statusCommand(*path, dests)
	if len(dests) == 0 {
		// Dead letters of destinations no longer configured stay put.
		dests = configured(cfg)
		if len(dests) == 0 {
			fmt.Fprintf(stderr, "%s configures no destinations: nothing could deliver requeued spans\n", cfg.File)
			return 1
		}
	}
	letters, spans, err := dl.Requeue(ctx, store.DeadLetterFilter{Destinations: dests, IDs: ids})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "requeued %d dead letters (%d spans); the gateway delivers them again\n", letters, spans)
	if letters > 0 {
		fmt.Fprintf(stdout, "follow their delivery with: %s\n", follow)
	}
	return 0
}

// statusCommand is the `gateway status` command line that follows the
// delivery of dests.
func statusCommand(path string, dests []string) string {
	cmd := "gateway status --config " + shellQuote(path)
	for _, d := range dests {
		cmd += " --destination " + shellQuote(d)
	}
	return cmd
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=@,+", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

const replayUsage = `usage: gateway replay --config FILE --destination NAME (--since DURATION | --trace ID)

Sends stored spans to one destination again: those stored in the last
DURATION (e.g. 2h), or every span of one trace. The spans are queued in the
database; the running gateway (any replica) delivers them through the
destination's routing, retries and dead letters, or the next one to start.
`

func cmdReplay(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, replayUsage) }
	path := fs.String("config", "config.yaml", "path to the YAML config file")
	dest := fs.String("destination", "", "destination to send to")
	since := fs.Duration("since", 0, "replay spans stored this long ago or later (e.g. 2h)")
	trace := fs.String("trace", "", "replay every span of this trace (32 hex digits)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var problems []string
	if fs.NArg() > 0 {
		problems = append(problems, fmt.Sprintf("unexpected arguments %v", fs.Args()))
	}
	if *dest == "" {
		problems = append(problems, "--destination is required")
	}
	switch {
	case (*since > 0) == (*trace != ""):
		problems = append(problems, "give exactly one of --since DURATION and --trace ID")
	case *since < 0:
		problems = append(problems, "--since must be positive")
	case *trace != "":
		*trace = strings.ToLower(*trace)
		if b, err := hex.DecodeString(*trace); err != nil || len(b) != 16 {
			problems = append(problems, fmt.Sprintf("--trace wants 32 hex digits, got %q", *trace))
		}
	}
	if len(problems) > 0 {
		fmt.Fprintf(stderr, "gateway replay: %s\n\n%s", strings.Join(problems, "; "), replayUsage)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cfg, st, dl, err := openDeliveryLog(ctx, *path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer st.Close()
	if err := checkDestinations(cfg, []string{*dest}); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	sel := store.ReplaySelection{TraceID: *trace}
	what := "of trace " + *trace
	if *since > 0 {
		sel.Since = time.Now().Add(-*since)
		what = "stored since " + sel.Since.UTC().Format(time.RFC3339)
	}
	n, err := dl.Replay(ctx, *dest, sel)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if n == 0 {
		fmt.Fprintf(stderr, "no stored spans %s\n", what)
		return 1
	}
	fmt.Fprintf(stdout, "queued %d spans %s for %s; the gateway delivers them\n", n, what, *dest)
	fmt.Fprintf(stdout, "follow their delivery with: %s\n", statusCommand(*path, []string{*dest}))
	return 0
}
