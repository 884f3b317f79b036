package restapi

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/tusker-ha/tusker/config"
)

// FuzzTimeoutAndSchedule sends POST /restart with an arbitrary timeout and schedule, and POST
// /switchover with an arbitrary scheduled_at, each as a JSON string and as the raw JSON value:
// no panic, and what reaches the Manager is within the bounds: a timeout in (0, 1 day], a
// schedule from 1 s ago to 366 days ahead.
func FuzzTimeoutAndSchedule(f *testing.F) {
	for _, s := range []struct{ timeout, at string }{
		{"30", "2024-01-02T16:00:00+00:00"}, {"86400", "2025-01-02T15:04:06Z"}, {"86401", "2025-01-02T15:04:07Z"},
		{"1e300", "9999-12-31T23:59:59-23:59"}, {"1e400", "0001-01-01T00:00:00+23:59"}, {"-1e400", "2024-01-02 15:04:05.5z"},
		{"24h", "2024-01-02T15:04Z"}, {"2562047h", "2024-01-02T15:04+01"}, {"9999999999999h", "2024-13-02T15:04:05Z"},
		{"1d", "2024-01-02"}, {"1e400min", "2024-02-30T00:00:00Z"}, {"NaN", ""}, {"+Inf", "null"}, {"1e-12", "1"},
		{"9223372036854775807", "2024-01-02T15:04:05.999999999999Z"}, {"0x10", "2024-01-02T15:04:05+99:99"},
	} {
		f.Add(s.timeout, s.at)
	}
	f.Fuzz(func(t *testing.T, timeout, at string) {
		quoted := func(s string) string { b, _ := json.Marshal(s); return string(b) }
		var bodies []string
		for _, tv := range []string{quoted(timeout), timeout} {
			for _, av := range []string{quoted(at), at} {
				bodies = append(bodies, `{"timeout":`+tv+`}`, `{"schedule":`+av+`}`, `{"timeout":`+tv+`,"schedule":`+av+`}`)
			}
		}
		m := &fakeManager{}
		s := mgmtServer(primary(), m)
		for _, b := range bodies {
			rec := sendLocal(t, s, http.MethodPost, "/restart", b)
			if !fuzzCodes[rec.Code] {
				t.Fatalf("POST /restart %q: %d %q", b, rec.Code, rec.Body)
			}
		}
		for _, av := range []string{quoted(at), at} {
			b := `{"leader":"n1","candidate":"n2","scheduled_at":` + av + `}`
			if rec := sendLocal(t, s, http.MethodPost, "/switchover", b); !fuzzCodes[rec.Code] {
				t.Fatalf("POST /switchover %q: %d %q", b, rec.Code, rec.Body)
			}
		}
		earliest, latest := mgmtNow.Add(-time.Second), mgmtNow.Add(config.MaxScheduleAhead)
		inWindow := func(at time.Time) bool { return at.IsZero() || !at.Before(earliest) && !at.After(latest) }
		for _, rs := range m.rs {
			if rs.Timeout < 0 || rs.Timeout > config.MaxRestartTimeout {
				t.Fatalf("restart timeout %v from %q", rs.Timeout, timeout)
			}
			if !inWindow(rs.Schedule) {
				t.Fatalf("restart scheduled at %v from %q", rs.Schedule, at)
			}
		}
		for _, sw := range m.sw {
			if !inWindow(sw.At) {
				t.Fatalf("switchover scheduled at %v from %q", sw.At, at)
			}
		}
		// parseTimeout alone: positive and bounded when accepted, and deterministic.
		for _, raw := range []string{quoted(timeout), timeout} {
			d, err := parseTimeout(json.RawMessage(raw))
			d2, err2 := parseTimeout(json.RawMessage(raw))
			if d != d2 || (err == nil) != (err2 == nil) {
				t.Fatalf("parseTimeout(%q) not deterministic", raw)
			}
			if err == nil && (d <= 0 || d > config.MaxRestartTimeout) {
				t.Fatalf("parseTimeout(%q) = %v", raw, d)
			}
			if err != nil && err != errBadTimeout && err != errLongTimeout {
				t.Fatalf("parseTimeout(%q): %v", raw, err)
			}
		}
	})
}
