package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kern-agents/trace-gateway/internal/config"
	"github.com/kern-agents/trace-gateway/internal/gateway"
	"github.com/kern-agents/trace-gateway/internal/model"
	"github.com/kern-agents/trace-gateway/internal/store"
	"github.com/kern-agents/trace-gateway/internal/store/deliverytest"
	"github.com/kern-agents/trace-gateway/internal/testdb"
)

// cliStore is the trace database as the commands open it.
type cliStore interface {
	store.Store
	store.DeliveryLog
}

// eachDriver writes a config with destinations lf and jsonl over a fresh
// SQLite file and a fresh PostgreSQL schema in turn, and runs fn with its
// path and the store the commands open.
func eachDriver(t *testing.T, fn func(t *testing.T, cfgPath string, s cliStore)) {
	storage := map[string]func(t *testing.T) string{
		"sqlite": func(t *testing.T) string {
			return fmt.Sprintf("  driver: sqlite\n  dsn: file:%s\n", filepath.Join(t.TempDir(), "traces.db"))
		},
		"postgres": func(t *testing.T) string {
			dsn, schema := testdb.Postgres(t)
			return fmt.Sprintf("  driver: postgres\n  dsn: %s\n  schema: %s\n", dsn, schema)
		},
	}
	for _, driver := range []string{"sqlite", "postgres"} {
		t.Run(driver, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "gw.yaml")
			src := "storage:\n" + storage[driver](t) + `destinations:
  - name: lf
    plugin: langfuse
  - name: jsonl
    plugin: ./jsonl
`
			if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			st, err := gateway.OpenStore(context.Background(), cfg.Storage)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			fn(t, path, st.(cliStore))
		})
	}
}

// ageLog makes every delivery-log row look written age ago.
func ageLog(t *testing.T, s cliStore, age time.Duration) {
	t.Helper()
	q := `UPDATE gateway_delivery_log SET created_at = $1`
	arg := any(time.Now().Add(-age))
	if s.Dialect() == "sqlite" {
		q, arg = `UPDATE gateway_delivery_log SET created_at = ?`, model.FormatTime(time.Now().Add(-age))
	} else {
		traces, _ := s.Tables()
		q = strings.Replace(q, "gateway_delivery_log", traces[:strings.LastIndex(traces, ".")+1]+`"gateway_delivery_log"`, 1)
	}
	if _, err := s.DB().Exec(q, arg); err != nil {
		t.Fatal(err)
	}
}

// TestStatusCLI runs `gateway status` against a database with a known
// backlog, dead letters, queued replay and requeue work and replica
// reports, and checks the table and the JSON.
func TestStatusCLI(t *testing.T) {
	eachDriver(t, func(t *testing.T, cfg string, s cliStore) {
		ctx := context.Background()
		for _, d := range []string{"lf", "jsonl", "retired"} {
			if err := s.EnsureCursor(ctx, d); err != nil {
				t.Fatal(err)
			}
		}
		spans := deliverytest.Spans(12, 3, time.Now())
		if err := s.Write(ctx, spans); err != nil {
			t.Fatal(err)
		}
		ageLog(t, s, 90*time.Second)
		dead := func(dest string, n int) {
			if _, err := s.AddDeadLetter(ctx, store.DeadLetter{Destination: dest, SpanIDs: ids(spans[:n]), Reason: "400 bad span"}); err != nil {
				t.Fatal(err)
			}
		}
		dead("lf", 2)
		dead("lf", 1)
		dead("jsonl", 2)
		dead("retired", 1)
		report := func(r store.WorkerReport) {
			r.ValidFor = time.Minute
			if err := s.RecordWorker(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		report(store.WorkerReport{Destination: "lf", Owner: "replica-a", Circuit: store.CircuitOpen, Failures: 4, Retries: 9,
			LastError: "503 Service Unavailable\nfrom the vendor", LastErrorAt: time.Now().Add(-2 * time.Minute)})
		report(store.WorkerReport{Destination: "lf", Owner: "replica-b", Circuit: store.CircuitClosed, Retries: 2})

		// Replay and requeue queue work and say how to follow it.
		code, out, errs := runCLI("replay", "--config", cfg, "--destination", "lf", "--trace", spans[0].TraceID)
		if code != 0 || !strings.Contains(out, "queued 3 spans") ||
			!strings.Contains(out, "follow their delivery with: gateway status --config "+cfg+" --destination lf\n") {
			t.Fatalf("replay: exit %d, %q %q", code, out, errs)
		}
		code, out, errs = runCLI("deadletters", "requeue", "--config", cfg, "--destination", "jsonl")
		if code != 0 || !strings.Contains(out, "requeued 1 dead letters (2 spans)") ||
			!strings.Contains(out, "follow their delivery with: gateway status --config "+cfg+" --destination jsonl\n") {
			t.Fatalf("requeue: exit %d, %q %q", code, out, errs)
		}

		code, out, errs = runCLI("status", "--config", cfg)
		if code != 0 {
			t.Fatalf("status: exit %d: %s", code, errs)
		}
		rows := []string{
			`(?m)^DESTINATION +BACKLOG +LAG +CIRCUIT +REPLICAS +RETRIES +DEAD LETTERS +QUEUED +LAST ERROR$`,
			// 12 stored + 3 replayed; the log rows were aged 90s; the worst
			// circuit of the two replicas; their retries summed.
			`(?m)^lf +15 +1m3\ds +open +2 +11 +2 \(3 spans\) +3 +2m\d+s ago: 503 Service Unavailable from the vendor$`,
			`(?m)^jsonl +14 +1m3\ds +- +0 +0 +0 \(0 spans\) +2 +-$`,
			`(?m)^retired +12 +1m3\ds +- +0 +0 +1 \(1 spans\) +0 +-$`,
			`(?m)^jsonl: no gateway replica reports running it now\.$`,
			`(?m)^retired is not in ` + regexp.QuoteMeta(cfg) + `; the database still keeps its state\.`,
		}
		for _, re := range rows {
			if !regexp.MustCompile(re).MatchString(out) {
				t.Errorf("status output does not match %s:\n%s", re, out)
			}
		}

		code, out, errs = runCLI("status", "--config", cfg, "--json")
		if code != 0 {
			t.Fatalf("status --json: exit %d: %s", code, errs)
		}
		var doc struct {
			CheckedAt    time.Time           `json:"checked_at"`
			Destinations []destinationStatus `json:"destinations"`
		}
		if err := json.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatalf("status --json: %v\n%s", err, out)
		}
		if len(doc.Destinations) != 3 || time.Since(doc.CheckedAt) > time.Minute {
			t.Fatalf("status --json = %s", out)
		}
		lf, jsonl, retired := doc.Destinations[0], doc.Destinations[1], doc.Destinations[2]
		if lf.Name != "lf" || !lf.Configured || !lf.Started || lf.BacklogSpans != 15 || lf.QueuedSpans != 3 ||
			lf.DeadLetters != 2 || lf.DeadLetterSpans != 3 || lf.Circuit != "open" || lf.ReplicasRunning != 2 ||
			lf.Retries != 11 || lf.ConsecutiveFailures != 4 || lf.LastError != "503 Service Unavailable\nfrom the vendor" ||
			lf.LastErrorAt == nil || len(lf.Replicas) != 2 || lf.OldestPending == nil {
			t.Errorf("lf = %+v", lf)
		}
		if lf.LagSeconds < 85 || lf.LagSeconds > 600 {
			t.Errorf("lf lag = %gs, want about 90s", lf.LagSeconds)
		}
		if jsonl.Name != "jsonl" || jsonl.BacklogSpans != 14 || jsonl.QueuedSpans != 2 || jsonl.DeadLetters != 0 ||
			jsonl.Circuit != "" || jsonl.ReplicasRunning != 0 || jsonl.LastError != "" || len(jsonl.Replicas) != 0 {
			t.Errorf("jsonl = %+v", jsonl)
		}
		if retired.Name != "retired" || retired.Configured || retired.DeadLetters != 1 || retired.BacklogSpans != 12 {
			t.Errorf("retired = %+v", retired)
		}

		code, out, _ = runCLI("status", "--config", cfg, "--destination", "jsonl", "--json")
		if code != 0 || json.Unmarshal([]byte(out), &doc) != nil || len(doc.Destinations) != 1 || doc.Destinations[0].Name != "jsonl" {
			t.Errorf("status --destination jsonl: exit %d, %s", code, out)
		}
		if code, _, errs := runCLI("status", "--config", cfg, "--destination", "nope"); code != 1 ||
			!strings.Contains(errs, `destination "nope" is neither in`) {
			t.Errorf("status of an unknown destination: exit %d, %q", code, errs)
		}
	})
}

func ids(spans []model.Span) []string {
	out := make([]string, len(spans))
	for i := range spans {
		out[i] = spans[i].SpanID
	}
	return out
}
