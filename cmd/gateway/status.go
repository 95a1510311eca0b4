package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kern-agents/trace-gateway/internal/config"
	"github.com/kern-agents/trace-gateway/internal/store"
)

const statusUsage = `usage: gateway status --config FILE [--destination NAME]... [--json]

Shows per destination what the trace database says about its delivery, so
the answer is the same whichever replica's host you ask: spans not delivered
yet (backlog) and how long the oldest has waited (lag), the circuit breaker,
consecutive failures, retries and last error the replicas running it report,
dead letters, and the spans queued by replay or requeue still to go.
Destinations no longer in the config whose state the database still keeps
are listed too; 'gateway destinations forget NAME' drops it.
`

// destinationStatus is one destination's row of `gateway status`.
type destinationStatus struct {
	Name       string `json:"name"`
	Configured bool   `json:"configured"`
	// Started: a gateway has run it (it has a delivery cursor).
	Started         bool       `json:"started"`
	BacklogSpans    int64      `json:"backlog_spans"`
	LagSeconds      float64    `json:"lag_seconds"`
	OldestPending   *time.Time `json:"oldest_pending"`
	QueuedSpans     int64      `json:"queued_spans"`
	Claims          int        `json:"claims"`
	ClaimsHeld      int        `json:"claims_held"`
	DeadLetters     int64      `json:"dead_letters"`
	DeadLetterSpans int64      `json:"dead_letter_spans"`
	// From the reports of the replicas running it: the worst circuit state,
	// the most consecutive failures, the sum of retries; empty when none
	// runs it.
	Circuit             string          `json:"circuit"`
	ReplicasRunning     int             `json:"replicas_running"`
	ConsecutiveFailures int             `json:"consecutive_failures"`
	Retries             int64           `json:"retries"`
	LastError           string          `json:"last_error"`
	LastErrorAt         *time.Time      `json:"last_error_at"`
	Replicas            []replicaStatus `json:"replicas"`
}

// replicaStatus is one replica's report on a destination.
type replicaStatus struct {
	Owner               string     `json:"owner"`
	Running             bool       `json:"running"`
	Circuit             string     `json:"circuit"`
	ConsecutiveFailures int        `json:"consecutive_failures"`
	Retries             int64      `json:"retries"`
	LastError           string     `json:"last_error,omitempty"`
	LastErrorAt         *time.Time `json:"last_error_at,omitempty"`
	ReportedAt          time.Time  `json:"reported_at"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// circuitRank orders circuit states from best to worst.
var circuitRank = map[string]int{store.CircuitClosed: 1, store.CircuitHalfOpen: 2, store.CircuitOpen: 3}

// summarize turns the store's status into the command's row.
func summarize(st store.DestinationStatus, configured bool) destinationStatus {
	d := destinationStatus{
		Name: st.Destination, Configured: configured, Started: st.Started,
		BacklogSpans: st.Backlog.Spans, LagSeconds: st.Lag().Round(time.Millisecond).Seconds(),
		OldestPending: timePtr(st.Backlog.Oldest), QueuedSpans: st.Queued,
		Claims: st.Claims, ClaimsHeld: st.Held, DeadLetters: st.DeadLetters, DeadLetterSpans: st.DeadLetterSpans,
		Replicas: []replicaStatus{},
	}
	var lastAt time.Time
	for _, r := range st.Workers {
		d.Replicas = append(d.Replicas, replicaStatus{
			Owner: r.Owner, Running: r.Live, Circuit: r.Circuit, ConsecutiveFailures: r.Failures,
			Retries: r.Retries, LastError: r.LastError, LastErrorAt: timePtr(r.LastErrorAt), ReportedAt: r.UpdatedAt.UTC(),
		})
		if r.LastError != "" && r.LastErrorAt.After(lastAt) {
			lastAt, d.LastError = r.LastErrorAt, r.LastError
		}
		if !r.Live {
			continue
		}
		d.ReplicasRunning++
		if circuitRank[r.Circuit] > circuitRank[d.Circuit] {
			d.Circuit = r.Circuit
		}
		d.ConsecutiveFailures = max(d.ConsecutiveFailures, r.Failures)
		d.Retries += r.Retries
	}
	d.LastErrorAt = timePtr(lastAt)
	return d
}

func cmdStatus(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, statusUsage) }
	path := fs.String("config", "config.yaml", "path to the YAML config file")
	var only stringsFlag
	fs.Var(&only, "destination", "only this destination (repeatable)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "gateway status: unexpected arguments %v\n\n%s", fs.Args(), statusUsage)
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
	rows, err := statuses(ctx, cfg, dl, only)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(map[string]any{"checked_at": time.Now().UTC(), "destinations": rows})
		return 0
	}
	printStatus(stdout, cfg, rows)
	return 0
}

// statuses reads the status of the configured destinations, then of those
// only the database still knows; only, when set, picks names.
func statuses(ctx context.Context, cfg *config.Config, dl store.DeliveryLog, only []string) ([]destinationStatus, error) {
	have := configured(cfg)
	stored, err := dl.KnownDestinations(ctx)
	if err != nil {
		return nil, err
	}
	names := slices.Clone(have)
	for _, n := range stored {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	for _, n := range only {
		if !slices.Contains(names, n) {
			return nil, fmt.Errorf("destination %q is neither in %s nor known to the trace database (known: %s)",
				n, cfg.File, strings.Join(names, ", "))
		}
	}
	rows := []destinationStatus{}
	for _, n := range names {
		if len(only) > 0 && !slices.Contains(only, n) {
			continue
		}
		st, err := dl.Status(ctx, n)
		if err != nil {
			return nil, err
		}
		rows = append(rows, summarize(st, slices.Contains(have, n)))
	}
	return rows, nil
}

// ago renders how long before now t was, to the second.
func ago(t time.Time) string {
	return max(time.Since(t), 0).Round(time.Second).String() + " ago"
}

func printStatus(w io.Writer, cfg *config.Config, rows []destinationStatus) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DESTINATION\tBACKLOG\tLAG\tCIRCUIT\tREPLICAS\tRETRIES\tDEAD LETTERS\tQUEUED\tLAST ERROR")
	var notes []string
	for _, r := range rows {
		circuit := r.Circuit
		if r.ReplicasRunning == 0 {
			circuit = "-"
		}
		lastErr := "-"
		if r.LastError != "" {
			lastErr = strings.NewReplacer("\n", " ", "\t", " ").Replace(r.LastError)
			if len(lastErr) > 80 {
				lastErr = lastErr[:77] + "..."
			}
			lastErr = ago(*r.LastErrorAt) + ": " + lastErr
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%d\t%d (%d spans)\t%d\t%s\n", r.Name, r.BacklogSpans,
			(time.Duration(r.LagSeconds) * time.Second).Round(time.Second), circuit, r.ReplicasRunning, r.Retries,
			r.DeadLetters, r.DeadLetterSpans, r.QueuedSpans, lastErr)
		switch {
		case !r.Configured:
			notes = append(notes, fmt.Sprintf("%s is not in %s; the database still keeps its state. "+
				"'gateway destinations forget %s --config %s' shows what that drops.", r.Name, cfg.File, r.Name, cfg.File))
		case !r.Started:
			notes = append(notes, fmt.Sprintf("%s has not been started by a gateway yet.", r.Name))
		case r.ReplicasRunning == 0:
			notes = append(notes, fmt.Sprintf("%s: no gateway replica reports running it now.", r.Name))
		}
	}
	_ = tw.Flush()
	for _, n := range notes {
		fmt.Fprintln(w, n)
	}
}
