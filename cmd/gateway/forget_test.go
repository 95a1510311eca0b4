package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kern-agents/trace-gateway/internal/store"
	"github.com/kern-agents/trace-gateway/internal/store/deliverytest"
)

// claimNext takes dest's next claim, waiting while PostgreSQL still holds
// the newest rows back behind other tests' open transactions.
func claimNext(t *testing.T, s cliStore, dest string) *store.Claim {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		c, _, err := s.Claim(context.Background(), dest, store.ClaimRequest{Owner: "test", Lease: time.Minute, MaxSpans: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if c != nil {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing to claim for %s after 2m", dest)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestForgetCLI forgets a destination removed from the config that still
// holds handed-back work, queued replay spans and dead letters: refused
// while it is configured or a replica runs it, described without --yes,
// dropped with it, after which trimming deletes the rows its work covered.
func TestForgetCLI(t *testing.T) {
	eachDriver(t, func(t *testing.T, cfg string, s cliStore) {
		ctx := context.Background()
		for _, d := range []string{"lf", "jsonl", "retired"} {
			if err := s.EnsureCursor(ctx, d); err != nil {
				t.Fatal(err)
			}
		}
		spans := deliverytest.Spans(6, 3, time.Now())
		if err := s.Write(ctx, spans); err != nil {
			t.Fatal(err)
		}
		// The configured destinations delivered the row; retired took it
		// and handed it back with 2 spans done when it was removed.
		for _, d := range []string{"lf", "jsonl"} {
			if err := s.Complete(ctx, claimNext(t, s, d)); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Release(ctx, claimNext(t, s, "retired"), 2); err != nil {
			t.Fatal(err)
		}
		if n, err := s.Replay(ctx, "retired", store.ReplaySelection{TraceID: spans[0].TraceID}); err != nil || n != 3 {
			t.Fatalf("Replay = %d, %v", n, err)
		}
		if _, err := s.AddDeadLetter(ctx, store.DeadLetter{Destination: "retired", SpanIDs: ids(spans[:2]), Reason: "401"}); err != nil {
			t.Fatal(err)
		}
		report := func(validFor time.Duration) {
			if err := s.RecordWorker(ctx, store.WorkerReport{Destination: "retired", Owner: "replica-a",
				Circuit: store.CircuitClosed, ValidFor: validFor}); err != nil {
				t.Fatal(err)
			}
		}
		// A replica still runs it: forget refuses.
		report(time.Minute)
		// The line of "  - name: lf" in the config.
		lfLine := map[string]int{"sqlite": 5, "postgres": 6}[s.Dialect()]
		cases := []struct {
			name string
			args []string
			code int
			msg  string
		}{
			{"no name", []string{"destinations", "forget", "--config", cfg}, 2, "exactly one destination"},
			{"no subcommand", []string{"destinations", "--config", cfg}, 2, "usage"},
			{"configured", []string{"destinations", "forget", "lf", "--config", cfg, "--yes"}, 1, fmt.Sprintf(`gw.yaml:%d: destination "lf" is still configured`, lfLine)},
			{"unknown", []string{"destinations", "forget", "nope", "--config", cfg, "--yes"}, 1, `keeps nothing for destination "nope"`},
			{"still running", []string{"destinations", "forget", "retired", "--config", cfg, "--yes"}, 1, "still running on replica replica-a"},
		}
		for _, tc := range cases {
			if code, _, errs := runCLI(tc.args...); code != tc.code || !strings.Contains(errs, tc.msg) {
				t.Errorf("%s: exit %d, stderr %q; want %d and %q", tc.name, code, errs, tc.code, tc.msg)
			}
		}
		report(0) // the replica stopped running it
		// A replica that has not reported but holds its claim also runs it.
		held := claimNext(t, s, "retired")
		if code, _, errs := runCLI("destinations", "forget", "retired", "--config", cfg, "--yes"); code != 1 ||
			!strings.Contains(errs, "holding 1 of its claims under lease") {
			t.Errorf("forget under a held claim: exit %d, %q", code, errs)
		}
		if err := s.Release(ctx, held, 2); err != nil {
			t.Fatal(err)
		}

		code, out, errs := runCLI("destinations", "forget", "retired", "--config", cfg)
		want := `forgetting destination "retired" would drop 7 spans not delivered yet (3 of them queued by replay or requeue), ` +
			"1 claim it handed back, 1 dead letter (2 spans), its delivery cursor, 1 replica report."
		if code != 1 || !strings.Contains(out, want) || !strings.Contains(errs, "add --yes") {
			t.Fatalf("forget without --yes: exit %d, stdout %q, stderr %q; want exit 1 and %q", code, out, errs, want)
		}
		if st, _ := s.Status(ctx, "retired"); !st.Started || st.Backlog.Spans != 7 || st.DeadLetters != 1 {
			t.Fatalf("forget without --yes changed the database: %+v", st)
		}

		code, out, errs = runCLI("destinations", "forget", "--config", cfg, "retired", "--yes")
		if code != 0 || !strings.Contains(out, `forgot destination "retired": dropped 7 spans not delivered yet, `+
			"1 claim it handed back, 1 dead letter (2 spans), its delivery cursor, 1 replica report.") {
			t.Fatalf("forget --yes: exit %d, %q %q", code, out, errs)
		}
		known, err := s.KnownDestinations(ctx)
		if err != nil || strings.Join(known, ",") != "jsonl,lf" {
			t.Fatalf("destinations known after forget = %v, %v", known, err)
		}
		if _, out, _ := runCLI("status", "--config", cfg); strings.Contains(out, "retired") {
			t.Fatalf("status still lists the forgotten destination:\n%s", out)
		}
		// Trimming with the configured destinations deletes the row the
		// forgotten destination's claim covered; the replay row went with it.
		n, err := s.Trim(ctx, []string{"lf", "jsonl"}, 100)
		if err != nil || n != 1 {
			t.Fatalf("Trim after forget = %d, %v; want the 1 row left", n, err)
		}
		if code, _, errs := runCLI("destinations", "forget", "retired", "--config", cfg, "--yes"); code != 1 ||
			!strings.Contains(errs, "keeps nothing") {
			t.Fatalf("forgetting again: exit %d, %q", code, errs)
		}
	})
}
