package restapi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tusker-ha/tusker/config"
	"github.com/tusker-ha/tusker/dcs"
	"github.com/tusker-ha/tusker/ha"
)

// sendLocal is send from this host (loopback), which every access default lets in.
func sendLocal(t testing.TB, s *Server, method, target, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	req.RemoteAddr = "127.0.0.1:40001"
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	return rec
}

// TestRestartTimeoutBounds: POST /restart's timeout is at most config.MaxRestartTimeout, in every
// form it can be written in, and no value reaches the Manager as a negative or zero duration.
func TestRestartTimeoutBounds(t *testing.T) {
	for _, tc := range []struct {
		body string
		want time.Duration // 0: refused with msg
		msg  string
	}{
		{`{"timeout":86400}`, 24 * time.Hour, ""},
		{`{"timeout":"86400"}`, 24 * time.Hour, ""},
		{`{"timeout":"24h"}`, 24 * time.Hour, ""},
		{`{"timeout":"1440min"}`, 24 * time.Hour, ""},
		{`{"timeout":"1d"}`, 24 * time.Hour, ""},
		{`{"timeout":0.001}`, time.Millisecond, ""},
		{`{"timeout":86400.001}`, 0, msgLongTimeout},
		{`{"timeout":86401}`, 0, msgLongTimeout},
		{`{"timeout":"24h0m1s"}`, 0, msgLongTimeout},
		{`{"timeout":"2d"}`, 0, msgLongTimeout},
		{`{"timeout":"1441min"}`, 0, msgLongTimeout},
		{`{"timeout":1e9}`, 0, msgLongTimeout},        // accepted before: 31 years
		{`{"timeout":"2562047h"}`, 0, msgLongTimeout}, // the largest Go duration in hours
		{`{"timeout":1e300}`, 0, msgLongTimeout},
		{`{"timeout":1e400}`, 0, msgLongTimeout}, // beyond a float64
		{`{"timeout":"1e300"}`, 0, msgLongTimeout},
		{`{"timeout":"1e400"}`, 0, msgLongTimeout},
		{`{"timeout":"1e400min"}`, 0, msgLongTimeout},
		{`{"timeout":"+Inf"}`, 0, msgBadTimeout},
		{`{"timeout":"99999999999d"}`, 0, msgLongTimeout},
		{`{"timeout":9223372036854775807}`, 0, msgLongTimeout},
		{`{"timeout":"9999999999999h"}`, 0, msgBadTimeout}, // not a Go duration: it overflows one
		{`{"timeout":-1e400}`, 0, msgBadTimeout},
		{`{"timeout":-9223372036854775808}`, 0, msgBadTimeout},
		{`{"timeout":"-Inf"}`, 0, msgBadTimeout},
		{`{"timeout":1e-12}`, 0, msgBadTimeout}, // below a nanosecond
		{`{"timeout":"NaN"}`, 0, msgBadTimeout},
		{`{"timeout":0}`, 0, msgBadTimeout},
	} {
		t.Run(tc.body, func(t *testing.T) {
			m := &fakeManager{}
			rec := sendLocal(t, mgmtServer(primary(), m), http.MethodPost, "/restart", tc.body)
			if tc.want == 0 {
				assertText(t, rec, http.StatusBadRequest, tc.msg)
				assert.Empty(t, m.callNames())
				return
			}
			assertText(t, rec, http.StatusOK, "ok")
			require.Len(t, m.rs, 1)
			assert.Equal(t, tc.want, m.rs[0].Timeout)
		})
	}
}

// TestScheduleBounds: scheduled_at (POST /switchover) and schedule (POST /restart) are at most
// config.MaxScheduleAhead from now.
func TestScheduleBounds(t *testing.T) {
	limit := mgmtNow.Add(config.MaxScheduleAhead)
	for _, tc := range []struct {
		name string
		at   string
		ok   bool
	}{
		{"an hour", mgmtNow.Add(time.Hour).Format(time.RFC3339Nano), true},
		{"366 days", limit.Format(time.RFC3339Nano), true},
		{"366 days and a second", limit.Add(time.Second).Format(time.RFC3339Nano), false},
		{"two years", mgmtNow.AddDate(2, 0, 0).Format(time.RFC3339), false},
		{"year 9999", "9999-12-31T23:59:59Z", false},
		{"year 9999 far east", "9999-12-31T23:59:59-23:59", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &fakeManager{}
			rec := sendLocal(t, mgmtServer(primary(), m), http.MethodPost, "/switchover",
				`{"leader":"n1","candidate":"n2","scheduled_at":"`+tc.at+`"}`)
			if tc.ok {
				assertText(t, rec, http.StatusOK, "ok")
			} else {
				assertText(t, rec, http.StatusUnprocessableEntity,
					"Cannot schedule switchover more than a year ahead (scheduled_at must be at most 366 days from now)")
				assert.Empty(t, m.callNames())
			}

			m = &fakeManager{}
			rec = sendLocal(t, mgmtServer(primary(), m), http.MethodPost, "/restart", `{"schedule":"`+tc.at+`"}`)
			if tc.ok {
				assertText(t, rec, http.StatusOK, "ok")
			} else {
				assertText(t, rec, http.StatusUnprocessableEntity,
					"Cannot schedule restart more than a year ahead (schedule must be at most 366 days from now)")
				assert.Empty(t, m.callNames())
			}
		})
	}
}

// configDCS is the DCS of a real ha.Node serving PATCH and PUT /config: a config key in memory.
type configDCS struct {
	dcs.DCS // nil: the other methods are not called
	mu      sync.Mutex
	value   []byte
	version int64
	writes  int
}

func (c *configDCS) Cluster(context.Context) (*dcs.Cluster, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return &dcs.Cluster{Config: &dcs.ConfigKey{Value: c.value, Version: c.version}}, nil
}

func (c *configDCS) SetConfig(_ context.Context, value []byte, version int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if version != -1 && version != c.version {
		return dcs.ErrConflict
	}
	c.value, c.version, c.writes = value, c.version+1, c.writes+1
	return nil
}

// TestConfigEndpointBounds: PATCH and PUT /config through a real ha.Node refuse a value out of
// bounds, or one that would break postgresql.conf or pg_hba.conf, with 400 and a message naming
// the key, and leave the config key as it was.
func TestConfigEndpointBounds(t *testing.T) {
	const stored = `{"ttl":30,"loop_wait":10,"retry_timeout":10}`
	for _, tc := range []struct {
		name, patch, want string // want: "" when accepted
	}{
		{"ttl a day", `{"ttl":86400}`, ""},
		{"ttl a day and a second", `{"ttl":86401}`, "ttl: must be at most 86400 seconds (1 day), got 86401"},
		{"ttl 2^62", `{"ttl":4611686018427387904}`, "ttl: must be at most 86400 seconds (1 day), got 4611686018427387904"},
		{"ttl 1e300", `{"ttl":1e300}`, "ttl: expected an integer number of seconds, got 1e300"},
		{"ttl 1e400", `{"ttl":1e400}`, `ttl: expected an integer number of seconds, got "1e400"`},
		{"ttl negative", `{"ttl":-30}`, "ttl: must be at least 2 seconds, got -30"},
		{"loop_wait huge", `{"loop_wait":"9223372036854775807"}`, "loop_wait: must be at most 86400 seconds (1 day), got 9223372036854775807"},
		// 10 + 2*2^62 wrapped around into a negative sum that passed the timing rule.
		{"retry_timeout 2^62", `{"retry_timeout":4611686018427387904}`,
			"retry_timeout: must be at most 43200 seconds (12 hours), got 4611686018427387904"},
		{"primary_start_timeout", `{"primary_start_timeout":86401}`, "primary_start_timeout: must be at most 86400 seconds (1 day), got 86401"},
		{"master_start_timeout", `{"master_start_timeout":1e18}`, "primary_start_timeout: must be at most 86400 seconds (1 day), got 1000000000000000000"},
		{"primary_race_backoff", `{"primary_race_backoff":-1}`, "primary_race_backoff: must be >= 0 seconds, got -1"},
		{"parameter newline", `{"postgresql":{"parameters":{"archive_command":"x\nrestore_command = 'y'"}}}`,
			`postgresql.parameters.archive_command: must not contain a line break ("\n")`},
		{"parameter name", `{"postgresql":{"parameters":{"work_mem = '1GB' #":"x"}}}`,
			`postgresql.parameters."work_mem = '1GB' #": not a valid PostgreSQL parameter name`},
		{"pg_hba newline", `{"postgresql":{"pg_hba":["local all all peer\nhost all all 0.0.0.0/0 trust"]}}`,
			`postgresql.pg_hba[0]: must not contain a line break ("\n")`},
		{"recovery_conf", `{"postgresql":{"recovery_conf":{"restore_command":"cp\u0000x"}}}`,
			`postgresql.recovery_conf.restore_command: must not contain a control character ("\x00")`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, method := range []string{http.MethodPatch, http.MethodPut} {
				d := &configDCS{value: []byte(stored), version: 1}
				c := &config.Config{Name: "n1", Scope: "demo", Bootstrap: config.Bootstrap{DCS: config.DefaultDynamic()},
					Watchdog: config.Watchdog{Mode: "off"}}
				node := ha.NewNode(ha.Options{Config: c, DCS: d})
				body := tc.patch
				if method == http.MethodPut {
					body = strings.Replace(stored, "}", ","+strings.TrimPrefix(tc.patch, "{"), 1)
				}
				rec := sendLocal(t, mgmtServer(primary(), node), method, "/config", body)
				if tc.want == "" {
					assert.Equal(t, http.StatusOK, rec.Code, "%s %s: %s", method, body, rec.Body)
					assert.Equal(t, 1, d.writes)
					continue
				}
				assert.Equal(t, http.StatusBadRequest, rec.Code, "%s %s: %s", method, body, rec.Body)
				assert.Contains(t, rec.Body.String(), tc.want, "%s %s", method, body)
				assert.Equal(t, 0, d.writes, "nothing is written")
				assert.Equal(t, stored, string(d.value))
			}
		})
	}
}
