package agentostest

import (
	"testing"
	"time"

	"github.com/kern-agents/trace-gateway/internal/model"
)

// fromISOFormat against what Python 3.9/3.10's datetime.fromisoformat takes
// (after agno's replace("Z", "+00:00")).
func TestFromISOFormat(t *testing.T) {
	for _, tc := range []struct {
		in    string
		ok    bool
		aware bool
		want  time.Time
	}{
		{"2025-11-19T10:30:00.123456+00:00", true, true, time.Date(2025, 11, 19, 10, 30, 0, 123456000, time.UTC)},
		{"2025-11-19T10:30:00+00:00", true, true, time.Date(2025, 11, 19, 10, 30, 0, 0, time.UTC)},
		{"2025-11-19T10:30:00.123Z", true, true, time.Date(2025, 11, 19, 10, 30, 0, 123000000, time.UTC)},
		{"2025-11-19T15:30:00+05:30", true, true, time.Date(2025, 11, 19, 10, 0, 0, 0, time.UTC)},
		{"2025-11-19 10:30", true, false, time.Date(2025, 11, 19, 10, 30, 0, 0, time.UTC)},
		{"2025-11-19", true, false, time.Date(2025, 11, 19, 0, 0, 0, 0, time.UTC)},
		{"2025-11-19T10:30:00.1Z", false, false, time.Time{}},            // 1 fraction digit: 3.11+ only
		{"2025-11-19T10:30:00.1234567+00:00", false, false, time.Time{}}, // 7 digits
		{"2025-11-19T10:30:00+0000", false, false, time.Time{}},          // offset without colon: 3.11+ only
		{"2025-11-19T25:00:00+00:00", false, false, time.Time{}},
		{"2025-02-30T10:00:00+00:00", false, false, time.Time{}},
		{"20251119T103000", false, false, time.Time{}},
		{"", false, false, time.Time{}},
	} {
		got, aware, err := fromISOFormat(tc.in)
		if (err == nil) != tc.ok || aware != tc.aware || (tc.ok && !got.Equal(tc.want)) {
			t.Errorf("fromISOFormat(%q) = %v, aware %v, %v; want ok %v, aware %v, %v", tc.in, got, aware, err, tc.ok, tc.aware, tc.want)
		}
	}
	// Every time the gateway writes is one AgentOS parses, aware.
	for _, ts := range []time.Time{time.Unix(0, 0), time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), time.Unix(1700000000, 999999999)} {
		s := model.FormatTime(ts)
		got, aware, err := fromISOFormat(s)
		if err != nil || !aware || !got.Equal(ts.Truncate(time.Microsecond)) {
			t.Errorf("gateway time %s: fromISOFormat = %v, %v, %v", s, got, aware, err)
		}
	}
}
