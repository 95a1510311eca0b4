package store

import (
	"context"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/kern-agents/trace-gateway/internal/model"
)

// Per-minute rollups make the dashboard summary independent of how many
// spans a window holds: every write adds what it changed to two small
// tables (gateway_rollup_traces, gateway_rollup_models) in its own
// transaction, and a summary reads one row per minute, status and duration
// bucket (and per minute and model) instead of every trace and span.
const (
	RollupTracesTable = "gateway_rollup_traces"
	RollupModelsTable = "gateway_rollup_models"
)

// RollupsDDL creates the rollup tables; qualify gives a table's quoted,
// qualified name.
func RollupsDDL(qualify func(string) string) []string {
	return []string{
		`CREATE TABLE IF NOT EXISTS ` + qualify(RollupTracesTable) + ` (
			minute VARCHAR NOT NULL,
			tenant VARCHAR NOT NULL,
			status VARCHAR NOT NULL,
			bucket INTEGER NOT NULL,
			traces BIGINT NOT NULL,
			PRIMARY KEY (minute, tenant, status, bucket)
		)`,
		`CREATE TABLE IF NOT EXISTS ` + qualify(RollupModelsTable) + ` (
			minute VARCHAR NOT NULL,
			tenant VARCHAR NOT NULL,
			model VARCHAR NOT NULL,
			calls BIGINT NOT NULL,
			input_tokens BIGINT NOT NULL,
			output_tokens BIGINT NOT NULL,
			total_tokens BIGINT NOT NULL,
			PRIMARY KEY (minute, tenant, model)
		)`,
	}
}

// Minute is the rollup minute of a TimeLayout time: "2025-11-19T10:30".
func Minute(t string) string {
	if len(t) < 16 {
		return t
	}
	return t[:16]
}

// Durations are counted in buckets: exact below bucketExact ms, then
// log-spaced with bucketGrowth between bounds, so a percentile read from
// them is within about 1% of the exact one while a minute holds at most a few
// hundred buckets whatever its traffic.
const (
	bucketExact  = 100
	bucketGrowth = 1.02
)

// DurationBucket is the bucket of a duration in ms.
func DurationBucket(ms int64) int {
	if ms < bucketExact {
		return int(max(ms, 0))
	}
	return bucketExact + int(math.Log(float64(ms)/bucketExact)/math.Log(bucketGrowth))
}

// BucketValue is the duration a bucket stands for: its exact value, or the
// geometric middle of its bounds.
func BucketValue(b int) float64 {
	if b < bucketExact {
		return float64(b)
	}
	lo := bucketExact * math.Pow(bucketGrowth, float64(b-bucketExact))
	return lo * math.Sqrt(bucketGrowth)
}

// TraceKey is one rollup_traces row's key. Tenant is the authenticated
// tenant that sent the trace ("" without authentication).
type TraceKey struct {
	Minute, Tenant, Status string
	Bucket                 int
}

// ModelKey is one rollup_models row's key.
type ModelKey struct{ Minute, Tenant, Model string }

// Deltas is what one write changes in the rollups.
type Deltas struct {
	Traces map[TraceKey]int64
	Models map[ModelKey]*model.Usage
}

// TraceChanged records a trace row going from old (nil when new) to new
// (nil when deleted).
func (d *Deltas) TraceChanged(old, new *TraceStat) {
	if d.Traces == nil {
		d.Traces = map[TraceKey]int64{}
	}
	if old != nil {
		d.Traces[old.key()]--
	}
	if new != nil {
		d.Traces[new.key()]++
	}
}

// AddTraces records n traces that were not counted yet.
func (d *Deltas) AddTraces(st *TraceStat, n int64) {
	if d.Traces == nil {
		d.Traces = map[TraceKey]int64{}
	}
	d.Traces[st.key()] += n
}

// SpanStored records an LLM span's usage.
func (d *Deltas) SpanStored(start, tenant string, u *model.Usage) {
	if u == nil {
		return
	}
	if d.Models == nil {
		d.Models = map[ModelKey]*model.Usage{}
	}
	k := ModelKey{Minute(start), tenant, u.Model}
	sum := d.Models[k]
	if sum == nil {
		sum = &model.Usage{Model: u.Model}
		d.Models[k] = sum
	}
	sum.Calls += max(u.Calls, 1)
	sum.Input += u.Input
	sum.Output += u.Output
	sum.Total += u.Total
}

// TraceRows returns the non-zero trace deltas in key order (the order the
// stores lock rollup rows in, so writers never deadlock on them).
func (d *Deltas) TraceRows() (keys []TraceKey, n []int64) {
	for k, v := range d.Traces {
		if v != 0 {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b TraceKey) int {
		if c := strings.Compare(a.Minute, b.Minute); c != 0 {
			return c
		}
		if c := strings.Compare(a.Tenant, b.Tenant); c != 0 {
			return c
		}
		if c := strings.Compare(a.Status, b.Status); c != 0 {
			return c
		}
		return a.Bucket - b.Bucket
	})
	for _, k := range keys {
		n = append(n, d.Traces[k])
	}
	return keys, n
}

// ModelRows returns the model deltas in key order.
func (d *Deltas) ModelRows() (keys []ModelKey, u []*model.Usage) {
	for k := range d.Models {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b ModelKey) int {
		if c := strings.Compare(a.Minute, b.Minute); c != 0 {
			return c
		}
		if c := strings.Compare(a.Tenant, b.Tenant); c != 0 {
			return c
		}
		return strings.Compare(a.Model, b.Model)
	})
	for _, k := range keys {
		u = append(u, d.Models[k])
	}
	return keys, u
}

// TraceStat is what a trace row contributes to the rollups.
type TraceStat struct {
	StartTime  string
	Tenant     string
	Status     string
	DurationMS int64
}

func (t *TraceStat) key() TraceKey {
	return TraceKey{Minute(t.StartTime), t.Tenant, t.Status, DurationBucket(t.DurationMS)}
}

// Tenants maps each trace of a batch to the tenant that sent it (the
// tenant of its first span's origin).
func Tenants(spans []model.Span) map[string]string {
	out := map[string]string{}
	for i := range spans {
		if _, ok := out[spans[i].TraceID]; ok {
			continue
		}
		if o := spans[i].Origin; o != nil {
			out[spans[i].TraceID] = o.Tenant
		} else {
			out[spans[i].TraceID] = ""
		}
	}
	return out
}

// TenantOf is a span's tenant.
func TenantOf(sp *model.Span) string {
	if sp.Origin != nil {
		return sp.Origin.Tenant
	}
	return ""
}

// Summary is the dashboard summary of a time window: traces by start time,
// LLM usage by span start time.
type Summary struct {
	Traces, Errors int64
	// Durations counts traces per duration bucket.
	Durations map[int]int64
	Models    []model.Usage // by model name
}

// Add counts n traces of a status in a duration bucket.
func (s *Summary) Add(status string, bucket int, n int64) {
	if n == 0 {
		return
	}
	if s.Durations == nil {
		s.Durations = map[int]int64{}
	}
	s.Traces += n
	if status == model.StatusError {
		s.Errors += n
	}
	s.Durations[bucket] += n
}

// Percentile is the p-quantile (0..1) of the durations, interpolated
// between ranks like PostgreSQL's percentile_cont, over bucket values; false
// when there are no traces.
func (s *Summary) Percentile(p float64) (float64, bool) {
	if s.Traces == 0 {
		return 0, false
	}
	buckets := make([]int, 0, len(s.Durations))
	for b, n := range s.Durations {
		if n > 0 {
			buckets = append(buckets, b)
		}
	}
	slices.Sort(buckets)
	value := func(rank int64) float64 {
		for _, b := range buckets {
			if rank < s.Durations[b] {
				return BucketValue(b)
			}
			rank -= s.Durations[b]
		}
		return BucketValue(buckets[len(buckets)-1])
	}
	pos := p * float64(s.Traces-1)
	lo := int64(math.Floor(pos))
	v := value(lo)
	if frac := pos - float64(lo); frac > 0 {
		v += frac * (value(lo+1) - v)
	}
	return v, true
}

// Summarizer is a store that keeps the rollups.
type Summarizer interface {
	// Summarize summarises [start, end) of one tenant (all tenants when
	// tenant is nil): whole minutes from the rollups, the partial minutes
	// at either end from the rows themselves.
	Summarize(ctx context.Context, start, end time.Time, tenant *string) (*Summary, error)
}

// SummaryWindows splits [start, end) into the whole minutes the rollups
// answer ([fromMinute, toMinute) as minute strings, empty when none) and
// the partial edges read from the rows (as TimeLayout bounds, each
// [lo, hi); none when empty).
func SummaryWindows(start, end time.Time) (fromMinute, toMinute string, edges [][2]string) {
	first := start.UTC().Truncate(time.Minute)
	if first.Before(start) {
		first = first.Add(time.Minute)
	}
	last := end.UTC().Truncate(time.Minute)
	if !first.Before(last) {
		return "", "", [][2]string{{model.FormatTime(start), model.FormatTime(end)}}
	}
	if start.Before(first) {
		edges = append(edges, [2]string{model.FormatTime(start), model.FormatTime(first)})
	}
	if last.Before(end) {
		edges = append(edges, [2]string{model.FormatTime(last), model.FormatTime(end)})
	}
	return Minute(model.FormatTime(first)), Minute(model.FormatTime(last)), edges
}

// MergeModels adds u to the usage list (by model).
func MergeModels(list []model.Usage, u model.Usage) []model.Usage {
	for i := range list {
		if list[i].Model == u.Model {
			list[i].Calls += u.Calls
			list[i].Input += u.Input
			list[i].Output += u.Output
			list[i].Total += u.Total
			return list
		}
	}
	return append(list, u)
}
