package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kern-agents/trace-gateway/internal/store"
	"github.com/kern-agents/trace-gateway/internal/store/deliverytest"
	"github.com/kern-agents/trace-gateway/internal/store/sqlite"
)

// fanoutConfig writes a config with two destinations over a fresh SQLite
// database and returns its path and the opened store.
func fanoutConfig(t *testing.T) (string, *sqlite.Store) {
	t.Helper()
	dir := t.TempDir()
	db := filepath.Join(dir, "traces.db")
	cfg := filepath.Join(dir, "gw.yaml")
	src := fmt.Sprintf(`storage:
  driver: sqlite
  dsn: file:%s
destinations:
  - name: lf
    plugin: langfuse
  - name: jsonl
    plugin: ./jsonl
`, db)
	if err := os.WriteFile(cfg, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := sqlite.Open(context.Background(), store.Options{DSN: "file:" + db})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	for _, d := range []string{"lf", "jsonl"} {
		if err := s.EnsureCursor(context.Background(), d); err != nil {
			t.Fatal(err)
		}
	}
	return cfg, s
}

func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// claimIDs drains dest's deliverable span ids.
func claimIDs(t *testing.T, s *sqlite.Store, dest string) []string {
	t.Helper()
	ctx := context.Background()
	var ids []string
	for {
		c, _, err := s.Claim(ctx, dest, store.ClaimRequest{Owner: "test", Lease: time.Minute, MaxSpans: 10000})
		if err != nil {
			t.Fatal(err)
		}
		if c == nil {
			slices.Sort(ids)
			return ids
		}
		got, err := s.ClaimSpanIDs(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, slices.Concat(got...)...)
		if err := s.Complete(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDeadLettersCLI(t *testing.T) {
	cfg, s := fanoutConfig(t)
	ctx := context.Background()
	add := func(dest string, ids ...string) int64 {
		id, err := s.AddDeadLetter(ctx, store.DeadLetter{Destination: dest, SpanIDs: ids, Reason: "401 Unauthorized: bad key\nsecond line"})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	a := add("lf", "00000000000000a1", "00000000000000a2")
	b := add("jsonl", "00000000000000b1")
	c := add("lf", "00000000000000c1")
	add("removed-destination", "00000000000000d1")

	code, out, errs := runCLI("deadletters", "list", "--config", cfg)
	if code != 0 {
		t.Fatalf("list: exit %d: %s", code, errs)
	}
	for _, want := range []string{"ID", "DESTINATION", "401 Unauthorized: bad key second line", "(4 dead letters)"} {
		if !strings.Contains(out, want) {
			t.Errorf("list output lacks %q:\n%s", want, out)
		}
	}
	if !regexp.MustCompile(fmt.Sprintf(`(?m)^%d +lf +2 `, a)).MatchString(out) {
		t.Errorf("list output lacks the row of dead letter %d:\n%s", a, out)
	}
	code, out, _ = runCLI("deadletters", "list", "--config", cfg, "--destination", "jsonl", "--json")
	var row struct {
		ID      int64    `json:"id"`
		SpanIDs []string `json:"span_ids"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &row) != nil || row.ID != b || !slices.Equal(row.SpanIDs, []string{"00000000000000b1"}) {
		t.Fatalf("list --json: exit %d, %q", code, out)
	}

	cases := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"no subcommand", []string{"deadletters"}, 2, "usage"},
		{"requeue needs a selection", []string{"deadletters", "requeue", "--config", cfg}, 2, "--all"},
		{"unknown destination", []string{"deadletters", "requeue", "--config", cfg, "--destination", "nope"}, 1, `destination "nope" is not in`},
		{"bad id", []string{"deadletters", "list", "--config", cfg, "--id", "x"}, 2, "positive dead-letter ids"},
	}
	for _, tc := range cases {
		if code, _, errs := runCLI(tc.args...); code != tc.code || !strings.Contains(errs, tc.msg) {
			t.Errorf("%s: exit %d, stderr %q; want %d and %q", tc.name, code, errs, tc.code, tc.msg)
		}
	}

	code, out, errs = runCLI("deadletters", "requeue", "--config", cfg, "--id", fmt.Sprint(a))
	if code != 0 || !strings.Contains(out, "requeued 1 dead letters (2 spans)") {
		t.Fatalf("requeue --id: exit %d, %q %q", code, out, errs)
	}
	if got := claimIDs(t, s, "lf"); !slices.Equal(got, []string{"00000000000000a1", "00000000000000a2"}) {
		t.Fatalf("lf can deliver %v after requeue", got)
	}
	if got := claimIDs(t, s, "jsonl"); len(got) != 0 {
		t.Fatalf("jsonl got %v from lf's requeue", got)
	}
	code, out, _ = runCLI("deadletters", "requeue", "--config", cfg, "--all")
	if code != 0 || !strings.Contains(out, "requeued 2 dead letters (2 spans)") {
		t.Fatalf("requeue --all: exit %d, %q", code, out)
	}
	if got := claimIDs(t, s, "lf"); !slices.Equal(got, []string{"00000000000000c1"}) {
		t.Fatalf("lf got %v", got)
	}
	// The dead letter of a destination no longer configured stays.
	left, _ := s.DeadLetters(ctx, store.DeadLetterFilter{})
	if len(left) != 1 || left[0].Destination != "removed-destination" || left[0].ID == c {
		t.Fatalf("left: %+v", left)
	}
}

func TestReplayCLI(t *testing.T) {
	cfg, s := fanoutConfig(t)
	ctx := context.Background()
	old := deliverytest.Spans(6, 3, time.Now().Add(-5*time.Hour))
	recent := deliverytest.Spans(9, 3, time.Now().Add(-time.Minute))
	if err := s.Write(ctx, append(old, recent...)); err != nil {
		t.Fatal(err)
	}
	claimIDs(t, s, "lf")
	claimIDs(t, s, "jsonl")

	code, out, errs := runCLI("replay", "--config", cfg, "--destination", "lf", "--since", "2h")
	if code != 0 || !strings.Contains(out, "queued 9 spans stored since") {
		t.Fatalf("replay --since: exit %d, %q %q", code, out, errs)
	}
	want := make([]string, 0, len(recent))
	for _, sp := range recent {
		want = append(want, sp.SpanID)
	}
	slices.Sort(want)
	if got := claimIDs(t, s, "lf"); !slices.Equal(got, want) {
		t.Fatalf("lf can deliver %v, want %v", got, want)
	}
	if got := claimIDs(t, s, "jsonl"); len(got) != 0 {
		t.Fatalf("jsonl got %v", got)
	}
	code, out, _ = runCLI("replay", "--config", cfg, "--destination", "jsonl", "--trace", strings.ToUpper(old[0].TraceID))
	if code != 0 || !strings.Contains(out, "queued 3 spans of trace "+old[0].TraceID) {
		t.Fatalf("replay --trace: exit %d, %q", code, out)
	}
	if got := claimIDs(t, s, "jsonl"); len(got) != 3 {
		t.Fatalf("jsonl can deliver %v", got)
	}

	cases := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"both selections", []string{"replay", "--config", cfg, "--destination", "lf", "--since", "1h", "--trace", old[0].TraceID}, 2, "exactly one"},
		{"no selection", []string{"replay", "--config", cfg, "--destination", "lf"}, 2, "exactly one"},
		{"no destination", []string{"replay", "--config", cfg, "--since", "1h"}, 2, "--destination is required"},
		{"bad trace id", []string{"replay", "--config", cfg, "--destination", "lf", "--trace", "xyz"}, 2, "32 hex digits"},
		{"unknown destination", []string{"replay", "--config", cfg, "--destination", "nope", "--since", "1h"}, 1, "configured: lf, jsonl"},
		{"nothing matches", []string{"replay", "--config", cfg, "--destination", "lf", "--trace", strings.Repeat("ab", 16)}, 1, "no stored spans"},
	}
	for _, tc := range cases {
		if code, _, errs := runCLI(tc.args...); code != tc.code || !strings.Contains(errs, tc.msg) {
			t.Errorf("%s: exit %d, stderr %q; want %d and %q", tc.name, code, errs, tc.code, tc.msg)
		}
	}
}
