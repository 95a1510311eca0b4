package e2e

import (
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
)

// Faults on the ingest path: they need no fan-out.

var databases = []struct {
	name string
	db   func(*testing.T) dbTarget
}{
	{"postgres", postgresDB},
	{"sqlite", sqliteDB},
}

// waitInFlight waits until some export is in flight, so that a fault
// lands mid-request rather than between requests.
func waitInFlight(t *testing.T, l *loadGen) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for l.inflight.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no export in flight within a minute")
		}
		time.Sleep(time.Millisecond)
	}
}

// checkLoad fails the test on answers a fault must never cause and on
// requests the senders had to give up.
func checkLoad(t *testing.T, r loadReport) {
	t.Helper()
	for _, u := range r.Unexpected {
		t.Errorf("unexpected answer: %s", u)
	}
	if r.GaveUp > 0 {
		t.Errorf("%d requests were given up unacknowledged", r.GaveUp)
	}
}

// The gateway is killed with SIGKILL while several senders export, then
// restarted on the same database: every span acknowledged before the crash
// is there, the trace rows agree with their spans and nothing is doubled.
func TestGatewayKilledMidStream(t *testing.T) {
	e2eOnly(t)
	t.Parallel()
	for _, tc := range databases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db := tc.db(t)
			gw := newGateway(t, gatewayConfig{DB: db})
			load := startLoad(t, gw, loadOptions{HTTPSenders: 3, GRPCSenders: 2})
			// Two crashes: the second recovery starts from a database that
			// was itself recovered.
			var ackedAtKill map[string]time.Time
			for range 2 {
				load.waitAcked(load.AckedCount()+2000, time.Minute)
				waitInFlight(t, load)
				gw.Kill()
				ackedAtKill = load.Acked()
				time.Sleep(time.Second) // senders meet a closed port meanwhile
				gw.Restart()
			}
			load.waitAcked(len(ackedAtKill)+2000, time.Minute)
			load.Stop(time.Minute)
			if err := gw.Term(30 * time.Second); err != nil {
				t.Errorf("gateway exit after SIGTERM: %v", err)
			}

			rep := load.Report()
			checkLoad(t, rep)
			if rep.TransportErr == 0 {
				t.Error("no sender noticed the crash: the kill did not happen mid-stream")
			}
			snap := readDB(t, db)
			lost := 0
			for id := range ackedAtKill {
				if _, ok := snap.Spans[id]; !ok {
					lost++
				}
			}
			if lost > 0 {
				t.Errorf("%d of %d spans acknowledged before the last kill are not stored", lost, len(ackedAtKill))
			}
			figs := checkStored(t, snap, load.Acked(), load.Sent())
			t.Logf("FIGURES %s: acknowledged before the last kill %d (all stored: %v); %s; %s",
				t.Name(), len(ackedAtKill), lost == 0, figs, rep)
		})
	}
}

// A private PostgreSQL is stopped for a few seconds under load and started
// again: meanwhile the receivers answer 503 / UNAVAILABLE (never 500, never
// silence), the gateway recovers by itself, and every acknowledged span is
// stored.
func TestPostgresRestartUnderLoad(t *testing.T) {
	e2eOnly(t)
	t.Parallel()
	pg := newPGCluster(t)
	db := dbTarget{Driver: "postgres", DSN: pg.DSN(), Schema: "agno"}
	gw := newGateway(t, gatewayConfig{DB: db})
	load := startLoad(t, gw, loadOptions{HTTPSenders: 3, GRPCSenders: 2})
	load.waitAcked(1500, time.Minute)

	waitInFlight(t, load)
	before := load.Report()
	pg.Stop()
	stopped := time.Now()
	// The gateway itself stays up: it must say it is not ready.
	if code := getStatus(t, "http://"+gw.HTTP+"/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz with the database down = %d, want 503", code)
	}
	// At least a few seconds down, and until both transports have
	// answered a refusal (a busy machine sends less meanwhile).
	downFor := time.Now().Add(4 * time.Second)
	var during loadReport
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(50 * time.Millisecond) {
		during = load.Report()
		refused := during.HTTPStatus[http.StatusServiceUnavailable] > before.HTTPStatus[http.StatusServiceUnavailable] &&
			during.GRPCCode[codes.Unavailable] > before.GRPCCode[codes.Unavailable]
		if refused && time.Now().After(downFor) || time.Now().After(deadline) {
			break // the checks below say what was missing
		}
	}
	pg.Start()
	restarted := time.Now()
	load.waitAcked(during.Acked+2000, time.Minute)
	recovered := load.firstAckAfter(restarted)
	load.Stop(time.Minute)
	if err := gw.Term(30 * time.Second); err != nil {
		t.Errorf("gateway exit after SIGTERM: %v", err)
	}

	rep := load.Report()
	checkLoad(t, rep)
	http503 := during.HTTPStatus[http.StatusServiceUnavailable] - before.HTTPStatus[http.StatusServiceUnavailable]
	grpcUnavailable := during.GRPCCode[codes.Unavailable] - before.GRPCCode[codes.Unavailable]
	if http503 == 0 {
		t.Error("no OTLP/HTTP request was answered 503 while the database was down")
	}
	if grpcUnavailable == 0 {
		t.Error("no OTLP/gRPC request was answered UNAVAILABLE (with RetryInfo) while the database was down")
	}
	if rep.TransportErr > 0 {
		t.Errorf("%d requests got no answer at all; the gateway must keep answering while its database is down", rep.TransportErr)
	}
	if rep.RetryBare > 0 {
		t.Errorf("%d refusals came without Retry-After / RetryInfo", rep.RetryBare)
	}
	figs := checkStored(t, readDB(t, db), load.Acked(), load.Sent())
	t.Logf("FIGURES %s: database down %v; meanwhile HTTP 503 ×%d, gRPC UNAVAILABLE ×%d, acknowledged %d; first acknowledgement %v after the restart; %s; %s",
		t.Name(), restarted.Sub(stopped).Round(time.Millisecond), http503, grpcUnavailable, during.Acked-before.Acked,
		recovered.Sub(restarted).Round(time.Millisecond), figs, rep)
}

// getStatus GETs url and returns the status code (0 when unanswered).
func getStatus(t *testing.T, url string) int {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Logf("GET %s: %v", url, err)
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// SIGTERM under load: the gateway stops accepting, answers every request it
// was already handling (with 200: accepted spans are written before it
// exits), exits 0, and every acknowledged span is stored.
func TestGracefulShutdownUnderLoad(t *testing.T) {
	e2eOnly(t)
	t.Parallel()
	for _, tc := range databases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db := tc.db(t)
			// A long batch delay keeps requests waiting inside the gateway,
			// so that SIGTERM surely finds some in flight.
			gw := newGateway(t, gatewayConfig{DB: db, Ingest: map[string]any{"max_batch_delay": "400ms"}})
			load := startLoad(t, gw, loadOptions{HTTPSenders: 3, GRPCSenders: 3})
			load.waitAcked(1000, time.Minute)

			const margin = 150 * time.Millisecond // in flight at least this long: surely read by the gateway
			// term is taken before looking: a request that began margin
			// before it and is still in flight after it was in flight at
			// term, however long the look took.
			var term time.Time
			for deadline := time.Now().Add(time.Minute); ; time.Sleep(5 * time.Millisecond) {
				term = time.Now()
				if since := load.OldestInFlightStart(); !since.IsZero() && since.Before(term.Add(-margin)) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("no request stayed in flight long enough")
				}
			}
			if err := gw.Term(60 * time.Second); err != nil {
				t.Errorf("gateway exit after SIGTERM: %v (want status 0)", err)
			}
			exited := time.Now()
			load.Abort()

			inFlight, answered := 0, 0
			for _, a := range load.Attempts() {
				if a.start.After(term.Add(-margin)) || a.end.Before(term) {
					continue
				}
				inFlight++
				if a.outcome == outOK {
					answered++
				} else {
					t.Errorf("%s request in flight %v before SIGTERM ended %v after it with %v (%s), want 200/OK",
						a.transport, term.Sub(a.start).Round(time.Millisecond), a.end.Sub(term).Round(time.Millisecond), a.outcome, a.code)
				}
			}
			if inFlight == 0 {
				t.Fatal("no request was in flight at SIGTERM; the test proves nothing")
			}
			if !gw.LogsContain("gateway stopped cleanly") {
				t.Error(`the gateway did not log "gateway stopped cleanly"`)
			}
			rep := load.Report()
			for _, u := range rep.Unexpected {
				t.Errorf("unexpected answer: %s", u)
			}
			figs := checkStored(t, readDB(t, db), load.Acked(), load.Sent())
			t.Logf("FIGURES %s: %d requests in flight at SIGTERM, %d answered 200/OK; exit %v after SIGTERM; %s; %s",
				t.Name(), inFlight, answered, exited.Sub(term).Round(time.Millisecond), figs, rep)
		})
	}
}

// A tiny ingest queue and many concurrent large requests: the gateway pushes
// back with 429 + Retry-After (RESOURCE_EXHAUSTED + RetryInfo on gRPC), and a
// sender that retries as told gets every span stored; nothing acknowledged
// is lost and nothing refused is stored.
func TestIngestBackpressure(t *testing.T) {
	e2eOnly(t)
	t.Parallel()
	for _, tc := range databases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db := tc.db(t)
			gw := newGateway(t, gatewayConfig{DB: db, Ingest: map[string]any{
				"max_queue_spans": 400, "max_batch_spans": 400, "writers": 1,
			}})
			// ~115 spans a request, 12 senders: far more than 400 queued spans.
			load := startLoad(t, gw, loadOptions{HTTPSenders: 8, GRPCSenders: 4, TracesPerRequest: 10, Pause: time.Millisecond})
			deadline := time.Now().Add(time.Minute)
			for {
				r := load.Report()
				if r.HTTPStatus[http.StatusTooManyRequests] > 0 && r.GRPCCode[codes.ResourceExhausted] > 0 && r.Acked > 3000 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no backpressure on both transports within a minute: %s", r)
				}
				time.Sleep(50 * time.Millisecond)
			}
			time.Sleep(2 * time.Second)
			load.Stop(2 * time.Minute)
			if err := gw.Term(30 * time.Second); err != nil {
				t.Errorf("gateway exit after SIGTERM: %v", err)
			}

			rep := load.Report()
			checkLoad(t, rep)
			if rep.RetryBare > 0 {
				t.Errorf("%d refusals came without Retry-After / RetryInfo", rep.RetryBare)
			}
			if rep.TransportErr > 0 {
				t.Errorf("%d requests got no answer; backpressure must be an answer", rep.TransportErr)
			}
			figs := checkStored(t, readDB(t, db), load.Acked(), load.Sent())
			if figs.Unacked > 0 {
				t.Errorf("%d stored spans were never acknowledged: a refused request was stored", figs.Unacked)
			}
			if rep.Acked != rep.Sent {
				t.Errorf("acknowledged %d of %d sent spans; every request should get through by retrying", rep.Acked, rep.Sent)
			}
			t.Logf("FIGURES %s: HTTP 429 ×%d, gRPC RESOURCE_EXHAUSTED ×%d; %s; %s",
				t.Name(), rep.HTTPStatus[http.StatusTooManyRequests], rep.GRPCCode[codes.ResourceExhausted], figs, rep)
		})
	}
}
