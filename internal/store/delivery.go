package store

import (
	"context"
	"errors"
	"time"

	"github.com/kern-agents/trace-gateway/internal/model"
)

// The fan-out's durable state lives beside the traces, in gateway_ tables the
// stores create with their own:
//
//   - gateway_delivery_log: one row per committed Write listing the span ids
//     that Write newly inserted (spans re-sent by an SDK are not listed
//     again), appended in the Write's own transaction; replays and requeued
//     dead letters add rows addressed to one destination;
//   - gateway_cursors: per destination, the log position up to which every
//     row has been claimed;
//   - gateway_claims: rows between a destination's cursor moves that a
//     replica is exporting, under a lease another replica takes over when it
//     expires;
//   - gateway_dead_letters: spans a destination refused for good;
//   - gateway_destination_workers: per destination and replica, what the
//     replica's worker last reported (circuit state, retries, last error),
//     so that `gateway status` is right whichever replica it asks.
//
// Delivery is at least once: a claim is deleted only after the destination
// accepted its spans (or they were dead-lettered).

// ErrLeaseLost means another replica took the claim over after its lease
// expired; the holder must stop working on it.
var ErrLeaseLost = errors.New("delivery claim lease lost to another replica")

// Claim is a run of delivery-log rows one replica exports to one destination.
// Positions are opaque to callers.
type Claim struct {
	ID          int64
	Destination string
	Owner       string
	// From (exclusive) and To (inclusive) bound the claimed log rows.
	From, To Position
	// Spans is how many span ids the claimed rows list for Destination.
	Spans int
	// Done is how many of those span ids (in ClaimSpanIDs order) were
	// already delivered by an earlier holder.
	Done int
	// Oldest is when the oldest claimed row was written.
	Oldest time.Time
	// Attempts counts how often the claim was taken (1 for a fresh claim).
	Attempts int
	// SpanIDs, when not nil, is what ClaimSpanIDs returns for the claim:
	// a store may read it with the claim, sparing a query.
	SpanIDs [][]string
}

// Position is a place in the delivery log: rows are ordered by (Tx, ID). Tx
// is the writing transaction's id where the database needs it to order
// commits (PostgreSQL), else 0.
type Position struct{ Tx, ID int64 }

// ClaimRequest bounds one claim.
type ClaimRequest struct {
	Owner string        // replica id, recorded for takeover and debugging
	Lease time.Duration // how long the claim holds without renewal
	// MaxSpans caps the span ids claimed (a single larger row is still
	// claimed whole, alone).
	MaxSpans int
	// While fewer than MinSpans span ids are waiting, nothing is claimed
	// until the oldest has waited MaxDelay.
	MinSpans int
	MaxDelay time.Duration
}

// Backlog is what a destination still has to deliver.
type Backlog struct {
	Spans  int64     // span ids not yet delivered (claimed or not)
	Oldest time.Time // when the oldest of them was written; zero when none
}

// DeadLetter is a batch a destination refused for good.
type DeadLetter struct {
	ID          int64
	Destination string
	SpanIDs     []string
	Reason      string
	CreatedAt   time.Time
}

// DeadLetterFilter selects dead letters; empty fields match everything.
type DeadLetterFilter struct {
	Destinations []string
	IDs          []int64
	Limit        int // 0: no limit
}

// ReplaySelection picks stored spans to send again: those of one trace, or
// those stored (created_at) at or after Since.
type ReplaySelection struct {
	TraceID string
	Since   time.Time
}

// DeliveryLog is the fan-out's outbox, implemented by the stores that
// implement Store. Every method is safe for concurrent use, and for use by
// several processes sharing one PostgreSQL database.
type DeliveryLog interface {
	// EnsureCursor gives dest a cursor at the current end of the log if it
	// has none, so a new destination starts with spans stored from now on.
	EnsureCursor(ctx context.Context, dest string) error
	// Claim takes the oldest claim of dest whose lease expired, else claims
	// the next committed log rows after dest's cursor and moves the cursor
	// past them. It returns nil when there is nothing to claim yet, with how
	// long the caller may wait before rows become due (0 when none wait).
	Claim(ctx context.Context, dest string, req ClaimRequest) (*Claim, time.Duration, error)
	// ClaimSpanIDs lists the span ids of the claim's rows addressed to its
	// destination, one slice per log row, in log order (the same order
	// every time). Rows are kept apart because every destination claims
	// whole rows: a row is the unit destinations can share work on.
	ClaimSpanIDs(ctx context.Context, c *Claim) ([][]string, error)
	// Spans loads the stored spans with these ids; ids no longer stored
	// (retention) are left out.
	Spans(ctx context.Context, ids []string) ([]model.Span, error)
	// Renew extends the claim's lease from now and records done. It fails
	// with ErrLeaseLost when the claim is gone or held by another owner.
	Renew(ctx context.Context, c *Claim, done int, lease time.Duration) error
	// Complete deletes the claim: every span of it was delivered or
	// dead-lettered. ErrLeaseLost as for Renew.
	Complete(ctx context.Context, c *Claim) error
	// Release ends the claim's lease now so any replica can take it over
	// (at shutdown), keeping its recorded progress.
	Release(ctx context.Context, c *Claim, done int) error
	// Backlog reports what dest has not delivered yet.
	Backlog(ctx context.Context, dest string) (Backlog, error)

	// AddDeadLetter records spans dest refused.
	AddDeadLetter(ctx context.Context, dl DeadLetter) (int64, error)
	// DeadLetters lists dead letters, oldest first.
	DeadLetters(ctx context.Context, f DeadLetterFilter) ([]DeadLetter, error)
	// Requeue turns the selected dead letters back into log rows addressed
	// to their destination and deletes them, in one transaction. It returns
	// how many dead letters and spans were requeued.
	Requeue(ctx context.Context, f DeadLetterFilter) (letters, spans int, err error)
	// Replay appends log rows addressed to dest listing the selected stored
	// spans, and returns how many spans were selected.
	Replay(ctx context.Context, dest string, sel ReplaySelection) (int, error)

	// Trim deletes up to limit log rows every one of dests has claimed and
	// no claim still covers. It returns how many rows it deleted.
	Trim(ctx context.Context, dests []string, limit int) (int64, error)

	// RecordWorker stores what a replica's worker reports about its
	// destination, replacing the replica's previous report. Reports that
	// stopped holding more than WorkerReportKeep ago are deleted.
	RecordWorker(ctx context.Context, r WorkerReport) error
	// KnownDestinations lists, sorted, every destination the database keeps
	// state for (a cursor, claims, dead letters or worker reports).
	KnownDestinations(ctx context.Context) ([]string, error)
	// Status reports dest's delivery state as the database has it, whichever
	// replicas run it.
	Status(ctx context.Context, dest string) (DestinationStatus, error)
	// Forget drops everything the database keeps for dest: its cursor, its
	// claims, the replay and requeue rows addressed to it, its dead letters
	// and worker reports, in one transaction, and says what it dropped. It
	// refuses with ErrDestinationRunning while a replica still runs dest (a
	// live worker report or a claim under lease).
	Forget(ctx context.Context, dest string) (Forgotten, error)
}

// ErrDestinationRunning means a replica still runs the destination.
var ErrDestinationRunning = errors.New("destination still running on a replica")

// WorkerReportKeep is how long a report that stopped holding (its replica
// stopped or died) is kept, for its last error.
const WorkerReportKeep = 24 * time.Hour

// Circuit breaker states as WorkerReport.Circuit names them.
const (
	CircuitClosed   = "closed"
	CircuitHalfOpen = "half-open"
	CircuitOpen     = "open"
)

// WorkerReport is one replica's report on a destination it runs.
type WorkerReport struct {
	Destination string
	Owner       string // the replica (ClaimRequest.Owner)
	Circuit     string // CircuitClosed, CircuitHalfOpen or CircuitOpen
	Failures    int    // consecutive failed exports
	Retries     int64  // exports retried since the replica started the destination
	LastError   string // the latest failure, empty when none
	LastErrorAt time.Time
	// ValidFor is how long the report holds without a newer one: a replica
	// that stops reporting (killed) no longer counts after it. 0 marks the
	// replica as stopped.
	ValidFor time.Duration

	// Set by Status.
	UpdatedAt time.Time
	Live      bool // still holds, on the database's clock
}

// DestinationStatus is a destination's delivery state.
type DestinationStatus struct {
	Destination string
	// Started is whether the destination has a cursor (a gateway ran it).
	Started bool
	// Backlog is every span not delivered yet, queued replays and requeued
	// dead letters included.
	Backlog Backlog
	// Queued is how many of those spans were queued by replay or requeue.
	Queued int64
	// Claims counts runs of the log being exported or handed back; Held
	// how many of them a replica holds under lease now.
	Claims, Held int
	// DeadLetters and DeadLetterSpans count what it refused for good.
	DeadLetters, DeadLetterSpans int64
	// Workers are the replicas' reports, newest first.
	Workers []WorkerReport
	// Now is the database's clock when the status was read.
	Now time.Time
}

// Lag is how long the oldest undelivered span has waited (0 when none).
func (s DestinationStatus) Lag() time.Duration {
	if s.Backlog.Oldest.IsZero() {
		return 0
	}
	return max(s.Now.Sub(s.Backlog.Oldest), 0)
}

// Forgotten is what Forget dropped.
type Forgotten struct {
	Cursor bool // it had a cursor
	// Spans were not delivered yet (its backlog, or the rows addressed to
	// it when it never had a cursor).
	Spans  int64
	Claims int
	// DeadLetters and DeadLetterSpans were refused for good.
	DeadLetters, DeadLetterSpans int64
	// Reports are worker reports of replicas that stopped running it.
	Reports int
}

// Nothing reports whether the database kept nothing for the destination.
func (f Forgotten) Nothing() bool { return f == Forgotten{} }

// LoggedWriter is a Store whose writes report the delivery-log row they
// appended, so the fan-out can build that row's export from the spans it
// still holds instead of reading them back.
type LoggedWriter interface {
	// WriteLogged is Write that also returns the span ids of the log row the
	// write appended, in the row's order; none when every span was stored
	// already.
	WriteLogged(ctx context.Context, spans []model.Span) ([]string, error)
}

// Pruned counts what one Prune round deleted.
type Pruned struct {
	Spans, Traces, LogRows, DeadLetters int64
	// Rollups counts the per-minute rollup rows of minutes before the
	// cutoff, of both rollup tables.
	Rollups int64
}

// Total is the sum of every count.
func (p Pruned) Total() int64 { return p.Spans + p.Traces + p.LogRows + p.DeadLetters + p.Rollups }

// Pruner enforces storage retention.
type Pruner interface {
	// Prune deletes, each in statements of at most limit rows, spans stored
	// before cutoff (created_at), the traces left without spans, and
	// delivery-log rows and dead letters written before cutoff. Callers
	// repeat it until a round deletes fewer than limit of each.
	Prune(ctx context.Context, cutoff time.Time, limit int) (Pruned, error)
}

// LogRow is a delivery-log row as Claim sees it.
type LogRow struct {
	Pos       Position
	Spans     int
	CreatedAt time.Time
}

// PickClaim decides how many of rows (the next committed rows after a
// cursor, in log order; full when the read hit its limit) one claim takes,
// for the stores' Claim. It returns 0 and the wait until they are due when
// too few spans wait and the oldest is younger than req.MaxDelay.
func PickClaim(rows []LogRow, full bool, req ClaimRequest, now time.Time) (n, spans int, wait time.Duration) {
	if len(rows) == 0 {
		return 0, 0, 0
	}
	if !full {
		total := 0
		for _, r := range rows {
			total += r.Spans
		}
		if age := now.Sub(rows[0].CreatedAt); total < req.MinSpans && age < req.MaxDelay {
			return 0, 0, req.MaxDelay - age
		}
	}
	n, spans = 1, rows[0].Spans
	for n < len(rows) && spans+rows[n].Spans <= req.MaxSpans {
		spans += rows[n].Spans
		n++
	}
	return n, spans, 0
}
