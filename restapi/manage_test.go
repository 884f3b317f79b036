package restapi

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tusker-ha/tusker/ha"
)

// fakeManager records every call and answers with res (200 "ok" when unset).
type fakeManager struct {
	mu      sync.Mutex
	calls   []string
	sw      []ha.SwitchoverRequest
	rs      []ha.RestartRequest
	ri      []ha.ReinitRequest
	bodies  [][]byte // PatchConfig and PutConfig
	fs      []ha.FailsafeRequest
	ctxs    []context.Context
	ctxErrs []error // ctx.Err() when each call returned

	res         ha.Result
	config      []byte
	lsn         int64
	members     map[string]string
	failsafeOff bool
	wait        time.Duration // every call blocks this long (or until ctx ends)
}

func (f *fakeManager) record(ctx context.Context, name string) ha.Result {
	if f.wait > 0 {
		select {
		case <-time.After(f.wait):
		case <-ctx.Done():
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, name)
	f.ctxs = append(f.ctxs, ctx)
	f.ctxErrs = append(f.ctxErrs, ctx.Err())
	if f.res.Code == 0 {
		return ha.Result{Code: http.StatusOK, Message: "ok"}
	}
	return f.res
}

func (f *fakeManager) Switchover(ctx context.Context, req ha.SwitchoverRequest) ha.Result {
	res := f.record(ctx, "Switchover")
	f.mu.Lock()
	f.sw = append(f.sw, req)
	f.mu.Unlock()
	return res
}

func (f *fakeManager) CancelSwitchover(ctx context.Context) ha.Result {
	return f.record(ctx, "CancelSwitchover")
}

func (f *fakeManager) Restart(ctx context.Context, req ha.RestartRequest) ha.Result {
	res := f.record(ctx, "Restart")
	f.mu.Lock()
	f.rs = append(f.rs, req)
	f.mu.Unlock()
	return res
}

func (f *fakeManager) CancelRestart(ctx context.Context) ha.Result {
	return f.record(ctx, "CancelRestart")
}
func (f *fakeManager) Reload(ctx context.Context) ha.Result { return f.record(ctx, "Reload") }

func (f *fakeManager) Reinitialize(ctx context.Context, req ha.ReinitRequest) ha.Result {
	res := f.record(ctx, "Reinitialize")
	f.mu.Lock()
	f.ri = append(f.ri, req)
	f.mu.Unlock()
	return res
}

func (f *fakeManager) Config(ctx context.Context) ([]byte, ha.Result) {
	return f.config, f.record(ctx, "Config")
}

func (f *fakeManager) PatchConfig(ctx context.Context, patch []byte) ([]byte, ha.Result) {
	res := f.record(ctx, "PatchConfig")
	f.mu.Lock()
	f.bodies = append(f.bodies, patch)
	f.mu.Unlock()
	return f.config, res
}

func (f *fakeManager) PutConfig(ctx context.Context, body []byte) ([]byte, ha.Result) {
	res := f.record(ctx, "PutConfig")
	f.mu.Lock()
	f.bodies = append(f.bodies, body)
	f.mu.Unlock()
	return body, res
}

func (f *fakeManager) Failsafe(ctx context.Context, req ha.FailsafeRequest) (int64, ha.Result) {
	res := f.record(ctx, "Failsafe")
	f.mu.Lock()
	f.fs = append(f.fs, req)
	f.mu.Unlock()
	return f.lsn, res
}

func (f *fakeManager) FailsafeMembers() (map[string]string, bool) {
	f.record(context.Background(), "FailsafeMembers")
	return f.members, !f.failsafeOff
}

func (f *fakeManager) callNames() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// mgmtNow is the fixtures' clock as the management tests see it: t0 + 1 s.
var mgmtNow = t0.Add(time.Second)

func mgmtServer(st *ha.Status, m ha.Manager) *Server {
	box := &statusBox{}
	box.p.Store(st)
	return New(Config{Now: func() time.Time { return mgmtNow }, Manager: m, Scope: "demo", Version: version}, box.get)
}

func pausedPrimary() *ha.Status {
	st := primary()
	st.Pause = true
	return st
}

// send runs one request with body; chunked sends it without a Content-Length.
func send(t testing.TB, s *Server, method, target, body string, chunked bool) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	req.RemoteAddr = testClient // this host: the default allowlist lets it in
	if chunked {
		req.ContentLength = -1
	}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	return rec
}

// assertText checks a text/plain answer.
func assertText(t *testing.T, rec *httptest.ResponseRecorder, code int, msg string) {
	t.Helper()
	assert.Equal(t, code, rec.Code, "body %q", rec.Body)
	assert.Equal(t, msg, rec.Body.String())
	assert.Equal(t, "text/plain; charset=utf-8", rec.Header().Get("Content-Type"))
}

const (
	future    = "2024-01-02T16:00:00+00:00"
	past      = "2024-01-02T15:00:00Z"
	justNow   = "2024-01-02T15:04:05.5Z" // 0.62 s before now: still accepted
	tooEarly  = "2024-01-02T15:04:04.9Z" // 1.22 s before now
	noTZ      = "2024-01-02T16:00:00"
	badMethod = http.StatusMethodNotAllowed
)

func TestSwitchoverChecks(t *testing.T) {
	at := time.Date(2024, 1, 2, 16, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		path    string
		paused  bool
		body    string
		chunked bool
		code    int
		msg     string
		want    *ha.SwitchoverRequest // the Manager's call; nil: none
	}{
		// The body.
		{name: "garbage", path: "/switchover", body: "garbage", code: 400, msg: msgInvalidJSON},
		{name: "empty body", path: "/switchover", body: "", code: 400, msg: msgInvalidJSON},
		{name: "empty object", path: "/failover", body: "{}", code: 400, msg: msgInvalidJSON},
		{name: "array", path: "/switchover", body: `[{"leader":"n1"}]`, code: 400, msg: msgInvalidJSON},
		{name: "null", path: "/switchover", body: "null", code: 400, msg: msgInvalidJSON},
		{name: "string", path: "/switchover", body: `"n1"`, code: 400, msg: msgInvalidJSON},
		{name: "trailing data", path: "/switchover", body: `{"leader":"n1"} {}`, code: 400, msg: msgInvalidJSON},
		{name: "truncated", path: "/switchover", body: `{"leader":"n1"`, code: 400, msg: msgInvalidJSON},
		{name: "not UTF-8", path: "/switchover", body: "{\"leader\":\"n\xff\"}", code: 400, msg: msgInvalidJSON},
		{name: "chunked", path: "/switchover", body: `{"leader":"n1"}`, chunked: true, code: 411, msg: msgLengthRequired},
		{name: "leader not a string", path: "/switchover", body: `{"leader":1}`, code: 400, msg: "leader should be a string"},
		{name: "candidate not a string", path: "/switchover", body: `{"leader":"n1","candidate":["n2"]}`, code: 400, msg: "candidate should be a string"},
		{name: "member not a string", path: "/failover", body: `{"member":true}`, code: 400, msg: "member should be a string"},

		// Patroni's checks, in its order.
		{name: "failover without candidate", path: "/failover", body: `{"leader":"n1"}`, code: 400,
			msg: "Failover could be performed only to a specific candidate"},
		{name: "failover with null candidate", path: "/failover", body: `{"candidate":null}`, code: 400,
			msg: "Failover could be performed only to a specific candidate"},
		{name: "switchover without leader", path: "/switchover", body: `{"candidate":"n2"}`, code: 400,
			msg: "Switchover could be performed only from a specific leader"},
		{name: "switchover with empty leader", path: "/switchover", body: `{"leader":"","candidate":"n2"}`, code: 400,
			msg: "Switchover could be performed only from a specific leader"},
		{name: "failover scheduled", path: "/failover", body: `{"candidate":"n2","scheduled_at":"` + future + `"}`, code: 400,
			msg: "Failover can't be scheduled"},
		{name: "failover with leader scheduled", path: "/failover", body: `{"leader":"n1","candidate":"n2","scheduled_at":"` + future + `"}`,
			code: 400, msg: "Failover can't be scheduled"},
		{name: "scheduled while paused", path: "/switchover", paused: true, body: `{"leader":"n1","candidate":"n2","scheduled_at":"` + future + `"}`,
			code: 400, msg: "Can't schedule switchover in the paused state"},
		{name: "no time zone", path: "/switchover", body: `{"leader":"n1","scheduled_at":"` + noTZ + `"}`, code: 400,
			msg: "Timezone information is mandatory for the scheduled switchover"},
		{name: "date only", path: "/switchover", body: `{"leader":"n1","scheduled_at":"2030-01-01"}`, code: 400,
			msg: "Timezone information is mandatory for the scheduled switchover"},
		{name: "unparseable", path: "/switchover", body: `{"leader":"n1","scheduled_at":"tomorrow"}`, code: 422,
			msg: "Unable to parse scheduled timestamp (tomorrow)"},
		{name: "bad month", path: "/switchover", body: `{"leader":"n1","scheduled_at":"2024-13-02T16:00:00Z"}`, code: 422,
			msg: "Unable to parse scheduled timestamp (2024-13-02T16:00:00Z)"},
		{name: "number schedule", path: "/switchover", body: `{"leader":"n1","scheduled_at":1704211200}`, code: 422,
			msg: "Unable to parse scheduled timestamp (1704211200)"},
		{name: "in the past", path: "/switchover", body: `{"leader":"n1","scheduled_at":"` + past + `"}`, code: 422,
			msg: "Cannot schedule switchover in the past"},
		{name: "more than a second ago", path: "/switchover", body: `{"leader":"n1","scheduled_at":"` + tooEarly + `"}`, code: 422,
			msg: "Cannot schedule switchover in the past"},
		{name: "paused without candidate", path: "/switchover", paused: true, body: `{"leader":"n1"}`, code: 400,
			msg: "Switchover is possible only to a specific candidate in a paused state"},
		{name: "same source and target", path: "/switchover", body: `{"leader":"n1","candidate":"n1"}`, code: 400,
			msg: "Switchover target and source are the same"},
		{name: "failover from and to the same", path: "/failover", body: `{"leader":"n2","member":"n2"}`, code: 400,
			msg: "Switchover target and source are the same"},

		// Requests that reach the Manager.
		{name: "switchover", path: "/switchover", body: `{"leader":"n1"}`, code: 200, msg: "ok",
			want: &ha.SwitchoverRequest{Leader: "n1"}},
		{name: "switchover to a candidate", path: "/switchover", body: `{"leader":"n1","candidate":"n2"}`, code: 200, msg: "ok",
			want: &ha.SwitchoverRequest{Leader: "n1", Candidate: "n2"}},
		{name: "member is candidate", path: "/switchover", body: `{"leader":"n1","member":"n3"}`, code: 200, msg: "ok",
			want: &ha.SwitchoverRequest{Leader: "n1", Candidate: "n3"}},
		{name: "candidate wins over member", path: "/switchover", body: `{"leader":"n1","candidate":"n2","member":"n3"}`, code: 200, msg: "ok",
			want: &ha.SwitchoverRequest{Leader: "n1", Candidate: "n2"}},
		{name: "empty candidate falls back to member", path: "/failover", body: `{"candidate":"","member":"n3"}`, code: 200, msg: "ok",
			want: &ha.SwitchoverRequest{Candidate: "n3", Failover: true}},
		{name: "failover", path: "/failover", body: `{"candidate":"n2"}`, code: 200, msg: "ok",
			want: &ha.SwitchoverRequest{Candidate: "n2", Failover: true}},
		{name: "failover to a member", path: "/failover", body: `{"member":"n2"}`, code: 200, msg: "ok",
			want: &ha.SwitchoverRequest{Candidate: "n2", Failover: true}},
		{name: "failover with leader is a switchover", path: "/failover", body: `{"leader":"n1","candidate":"n2"}`, code: 200, msg: "ok",
			want: &ha.SwitchoverRequest{Leader: "n1", Candidate: "n2"}},
		{name: "failover while paused", path: "/failover", paused: true, body: `{"candidate":"n2"}`, code: 200, msg: "ok",
			want: &ha.SwitchoverRequest{Candidate: "n2", Failover: true}},
		{name: "switchover while paused", path: "/switchover", paused: true, body: `{"leader":"n1","candidate":"n2"}`, code: 200, msg: "ok",
			want: &ha.SwitchoverRequest{Leader: "n1", Candidate: "n2"}},
		{name: "scheduled", path: "/switchover", body: `{"leader":"n1","scheduled_at":"` + future + `"}`, code: 200, msg: "ok",
			want: &ha.SwitchoverRequest{Leader: "n1", At: at}},
		{name: "scheduled with an offset and a space", path: "/switchover", body: `{"leader":"n1","scheduled_at":"2024-01-02 18:00:00.000+0200"}`,
			code: 200, msg: "ok", want: &ha.SwitchoverRequest{Leader: "n1", At: at}},
		{name: "scheduled just now", path: "/switchover", body: `{"leader":"n1","scheduled_at":"` + justNow + `"}`, code: 200, msg: "ok",
			want: &ha.SwitchoverRequest{Leader: "n1", At: time.Date(2024, 1, 2, 15, 4, 5, 500000000, time.UTC)}},
		{name: "null schedule is now", path: "/switchover", body: `{"leader":"n1","scheduled_at":null}`, code: 200, msg: "ok",
			want: &ha.SwitchoverRequest{Leader: "n1"}},
		{name: "empty schedule is now", path: "/switchover", paused: true, body: `{"leader":"n1","candidate":"n2","scheduled_at":""}`,
			code: 200, msg: "ok", want: &ha.SwitchoverRequest{Leader: "n1", Candidate: "n2"}},
		{name: "failover with empty schedule", path: "/failover", body: `{"candidate":"n2","scheduled_at":""}`, code: 200, msg: "ok",
			want: &ha.SwitchoverRequest{Candidate: "n2", Failover: true}},
		{name: "repeated key: the last value", path: "/switchover", body: `{"leader":"x","leader":"n1"}`, code: 200, msg: "ok",
			want: &ha.SwitchoverRequest{Leader: "n1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &fakeManager{}
			st := primary()
			st.Pause = tt.paused
			rec := send(t, mgmtServer(st, m), http.MethodPost, tt.path, tt.body, tt.chunked)
			assertText(t, rec, tt.code, tt.msg)
			if tt.want == nil {
				assert.Empty(t, m.callNames())
				return
			}
			require.Len(t, m.sw, 1)
			got := m.sw[0]
			assert.True(t, tt.want.At.Equal(got.At), "At %v, want %v", got.At, tt.want.At)
			got.At, tt.want.At = time.Time{}, time.Time{}
			assert.Equal(t, *tt.want, got)
		})
	}
}

// TestManagerResults checks that a Manager's Result is written as it is, for every endpoint.
func TestManagerResults(t *testing.T) {
	calls := []struct {
		method, path, body, call string
	}{
		{"POST", "/switchover", `{"leader":"n1"}`, "Switchover"},
		{"POST", "/failover", `{"candidate":"n2"}`, "Switchover"},
		{"DELETE", "/switchover", "", "CancelSwitchover"},
		{"POST", "/restart", "", "Restart"},
		{"DELETE", "/restart", "", "CancelRestart"},
		{"POST", "/reload", "", "Reload"},
		{"POST", "/reinitialize", "", "Reinitialize"},
		{"GET", "/config", "", "Config"},
		{"PATCH", "/config", `{"ttl":20}`, "PatchConfig"},
		{"PUT", "/config", `{"ttl":20}`, "PutConfig"},
		{"POST", "/failsafe", `{"name":"n1"}`, "Failsafe"},
	}
	results := []ha.Result{
		{Code: 202, Message: "Switchover scheduled"},
		{Code: 404, Message: "no switchover is scheduled"},
		{Code: 409, Message: "Another restart is already scheduled"},
		{Code: 412, Message: "leader name does not match"},
		{Code: 500, Message: "Running as a leader"},
		{Code: 502, Message: "Failsafe mode is not enabled"},
		{Code: 503, Message: `status unknown after 20 seconds; operation may still be in progress`},
		{Code: 503}, // no message: the status text
	}
	for _, c := range calls {
		for _, res := range results {
			m := &fakeManager{res: res}
			rec := send(t, mgmtServer(withFailsafeKey(primary()), m), c.method, c.path, c.body, false)
			msg := res.Message
			if msg == "" {
				msg = http.StatusText(res.Code)
			}
			assertText(t, rec, res.Code, msg)
			assert.Equal(t, []string{c.call}, m.callNames(), "%s %s", c.method, c.path)
			assert.Nil(t, rec.Header()["lsn"], "%s %s: lsn header on %d", c.method, c.path, res.Code)
		}
	}

	// A code no response can carry is a Manager bug: 500.
	for _, code := range []int{100, 199, 600, -1} {
		m := &fakeManager{res: ha.Result{Code: code, Message: "x"}}
		rec := send(t, mgmtServer(primary(), m), "POST", "/reload", "", false)
		assert.Equal(t, 500, rec.Code, "code %d", code)
	}
	rec := httptest.NewRecorder()
	writeResult(rec, httptest.NewRequest("POST", "/reload", nil), ha.Result{}, nil)
	assertText(t, rec, 500, "invalid result code 0")
}

func TestSwitchoverReload(t *testing.T) {
	m := &fakeManager{res: ha.Result{Code: 202, Message: "reload scheduled"}}
	s := mgmtServer(primary(), m)
	// The body of /reload, /switchover DELETE and /restart DELETE is ignored, whatever it is.
	assertText(t, send(t, s, "POST", "/reload", "garbage", true), 202, "reload scheduled")
	assertText(t, send(t, s, "DELETE", "/restart", "{", false), 202, "reload scheduled")
	assertText(t, send(t, s, "DELETE", "/switchover", strings.Repeat("x", 100<<10), true), 202, "reload scheduled")
	assert.Equal(t, []string{"Reload", "CancelRestart", "CancelSwitchover"}, m.callNames())
}

func TestRestartChecks(t *testing.T) {
	at := time.Date(2024, 1, 2, 16, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		paused  bool
		body    string
		chunked bool
		code    int
		msg     string
		want    *ha.RestartRequest
	}{
		{name: "no body", body: "", code: 200, msg: "ok", want: &ha.RestartRequest{}},
		{name: "chunked body", body: `{"role":"replica"}`, chunked: true, code: 200, msg: "ok", want: &ha.RestartRequest{Role: "replica"}},
		{name: "empty object", body: "{}", code: 200, msg: "ok", want: &ha.RestartRequest{}},
		{name: "garbage", body: "restart please", code: 400, msg: msgInvalidJSON},
		{name: "white space only", body: " \n", code: 400, msg: msgInvalidJSON},
		{name: "array", body: `[]`, code: 400, msg: msgInvalidJSON},
		{name: "null", body: `null`, code: 400, msg: msgInvalidJSON},
		{name: "number", body: `1`, code: 400, msg: msgInvalidJSON},
		{name: "trailing", body: `{}x`, code: 400, msg: msgInvalidJSON},

		{name: "role primary", body: `{"role":"primary"}`, code: 200, msg: "ok", want: &ha.RestartRequest{Role: "primary"}},
		{name: "role master", body: `{"role":"master"}`, code: 200, msg: "ok", want: &ha.RestartRequest{Role: "primary"}},
		{name: "role standby_leader", body: `{"role":"standby_leader"}`, code: 200, msg: "ok", want: &ha.RestartRequest{Role: "standby_leader"}},
		{name: "role replica", body: `{"role":"replica"}`, code: 200, msg: "ok", want: &ha.RestartRequest{Role: "replica"}},
		{name: "role leader", body: `{"role":"leader"}`, code: 400, msg: "PostgreSQL role should be either primary, standby_leader, or replica"},
		{name: "role upper case", body: `{"role":"Primary"}`, code: 400, msg: "PostgreSQL role should be either primary, standby_leader, or replica"},
		{name: "role number", body: `{"role":1}`, code: 400, msg: "PostgreSQL role should be either primary, standby_leader, or replica"},
		{name: "role null", body: `{"role":null}`, code: 400, msg: "PostgreSQL role should be either primary, standby_leader, or replica"},

		{name: "version 15.3", body: `{"postgres_version":"15.3"}`, code: 200, msg: "ok", want: &ha.RestartRequest{PostgresVersion: 150003}},
		{name: "version 15", body: `{"postgres_version":"15"}`, code: 200, msg: "ok", want: &ha.RestartRequest{PostgresVersion: 150000}},
		{name: "version 9.6.1", body: `{"postgres_version":"9.6.1"}`, code: 200, msg: "ok", want: &ha.RestartRequest{PostgresVersion: 90601}},
		{name: "version 9.6", body: `{"postgres_version":"9.6"}`, code: 200, msg: "ok", want: &ha.RestartRequest{PostgresVersion: 90600}},
		{name: "version 10.23", body: `{"postgres_version":" 10.23 "}`, code: 200, msg: "ok", want: &ha.RestartRequest{PostgresVersion: 100023}},
		{name: "version 15.3.1", body: `{"postgres_version":"15.3.1"}`, code: 400, msg: "PostgreSQL version should be in the first.major.minor format"},
		{name: "version 9.6.1.2", body: `{"postgres_version":"9.6.1.2"}`, code: 400, msg: "PostgreSQL version should be in the first.major.minor format"},
		{name: "version 9.100", body: `{"postgres_version":"9.100"}`, code: 400, msg: "PostgreSQL version should be in the first.major.minor format"},
		{name: "version letters", body: `{"postgres_version":"16beta1"}`, code: 400, msg: "PostgreSQL version should be in the first.major.minor format"},
		{name: "version empty", body: `{"postgres_version":""}`, code: 400, msg: "PostgreSQL version should be in the first.major.minor format"},
		{name: "version dot", body: `{"postgres_version":"15."}`, code: 400, msg: "PostgreSQL version should be in the first.major.minor format"},
		{name: "version 0", body: `{"postgres_version":"0.1"}`, code: 400, msg: "PostgreSQL version should be in the first.major.minor format"},
		{name: "version negative", body: `{"postgres_version":"-15"}`, code: 400, msg: "PostgreSQL version should be in the first.major.minor format"},
		{name: "version huge", body: `{"postgres_version":"99999999999"}`, code: 400, msg: "PostgreSQL version should be in the first.major.minor format"},
		{name: "version number", body: `{"postgres_version":15.3}`, code: 400, msg: "PostgreSQL version should be in the first.major.minor format"},

		{name: "timeout number", body: `{"timeout":30}`, code: 200, msg: "ok", want: &ha.RestartRequest{Timeout: 30 * time.Second}},
		{name: "timeout fraction", body: `{"timeout":1.5}`, code: 200, msg: "ok", want: &ha.RestartRequest{Timeout: 1500 * time.Millisecond}},
		{name: "timeout string", body: `{"timeout":"30"}`, code: 200, msg: "ok", want: &ha.RestartRequest{Timeout: 30 * time.Second}},
		{name: "timeout 30s", body: `{"timeout":"30s"}`, code: 200, msg: "ok", want: &ha.RestartRequest{Timeout: 30 * time.Second}},
		{name: "timeout 2m", body: `{"timeout":"2m"}`, code: 200, msg: "ok", want: &ha.RestartRequest{Timeout: 2 * time.Minute}},
		{name: "timeout 1h30m", body: `{"timeout":"1h30m"}`, code: 200, msg: "ok", want: &ha.RestartRequest{Timeout: 90 * time.Minute}},
		{name: "timeout 2min", body: `{"timeout":"2min"}`, code: 200, msg: "ok", want: &ha.RestartRequest{Timeout: 2 * time.Minute}},
		{name: "timeout 1d", body: `{"timeout":"1d"}`, code: 200, msg: "ok", want: &ha.RestartRequest{Timeout: 24 * time.Hour}},
		{name: "timeout 0", body: `{"timeout":0}`, code: 400, msg: "Timeout should be a positive number of seconds or a duration"},
		{name: "timeout negative", body: `{"timeout":-5}`, code: 400, msg: "Timeout should be a positive number of seconds or a duration"},
		{name: "timeout -1s", body: `{"timeout":"-1s"}`, code: 400, msg: "Timeout should be a positive number of seconds or a duration"},
		{name: "timeout words", body: `{"timeout":"a while"}`, code: 400, msg: "Timeout should be a positive number of seconds or a duration"},
		{name: "timeout NaN", body: `{"timeout":"NaN"}`, code: 400, msg: "Timeout should be a positive number of seconds or a duration"},
		{name: "timeout Inf", body: `{"timeout":"Inf"}`, code: 400, msg: "Timeout should be a positive number of seconds or a duration"},
		{name: "timeout huge", body: `{"timeout":1e300}`, code: 400, msg: msgLongTimeout},
		{name: "timeout huge string", body: `{"timeout":"99999999999d"}`, code: 400, msg: msgLongTimeout},
		{name: "timeout bool", body: `{"timeout":true}`, code: 400, msg: "Timeout should be a positive number of seconds or a duration"},
		{name: "timeout null", body: `{"timeout":null}`, code: 400, msg: "Timeout should be a positive number of seconds or a duration"},

		{name: "restart_pending", body: `{"restart_pending":true}`, code: 200, msg: "ok", want: &ha.RestartRequest{RestartPending: true}},
		{name: "restart_pending false", body: `{"restart_pending":false}`, code: 200, msg: "ok", want: &ha.RestartRequest{}},
		{name: "restart_pending null", body: `{"restart_pending":null}`, code: 200, msg: "ok", want: &ha.RestartRequest{}},
		{name: "restart_pending string", body: `{"restart_pending":"yes"}`, code: 400, msg: "restart_pending should be true or false"},

		{name: "unknown key", body: `{"force":true}`, code: 400, msg: "Unknown filter for the scheduled restart: force"},
		{name: "unknown key first", body: `{"when":1,"role":"x"}`, code: 400, msg: "Unknown filter for the scheduled restart: when"},
		{name: "bad role first", body: `{"role":"x","when":1}`, code: 400, msg: "PostgreSQL role should be either primary, standby_leader, or replica"},
		{name: "repeated key keeps its place", body: `{"role":"x","when":1,"role":"replica"}`, code: 400, msg: "Unknown filter for the scheduled restart: when"},

		{name: "scheduled", body: `{"schedule":"` + future + `"}`, code: 200, msg: "ok", want: &ha.RestartRequest{Schedule: at}},
		{name: "scheduled while paused", paused: true, body: `{"schedule":"` + future + `"}`, code: 500, msg: "Can't schedule restart in the paused state"},
		{name: "null schedule while paused", paused: true, body: `{"schedule":null}`, code: 500, msg: "Can't schedule restart in the paused state"},
		{name: "paused, now", paused: true, body: `{"role":"primary"}`, code: 200, msg: "ok", want: &ha.RestartRequest{Role: "primary"}},
		{name: "no time zone", body: `{"schedule":"` + noTZ + `"}`, code: 400, msg: "Timezone information is mandatory for the scheduled restart"},
		{name: "in the past", body: `{"schedule":"` + past + `"}`, code: 422, msg: "Cannot schedule restart in the past"},
		{name: "unparseable", body: `{"schedule":"soon"}`, code: 422, msg: "Unable to parse scheduled timestamp (soon)"},
		{name: "null schedule", body: `{"schedule":null}`, code: 422, msg: "Unable to parse scheduled timestamp (null)"},
		{name: "empty schedule", body: `{"schedule":""}`, code: 422, msg: "Unable to parse scheduled timestamp ()"},

		{name: "everything", body: `{"schedule":"2024-01-02T17:00:00+01:00","role":"replica","postgres_version":"16.4","timeout":"45s","restart_pending":true}`,
			code: 200, msg: "ok", want: &ha.RestartRequest{Schedule: at, Role: "replica", PostgresVersion: 160004, Timeout: 45 * time.Second, RestartPending: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &fakeManager{}
			st := primary()
			st.Pause = tt.paused
			rec := send(t, mgmtServer(st, m), http.MethodPost, "/restart", tt.body, tt.chunked)
			assertText(t, rec, tt.code, tt.msg)
			if tt.want == nil {
				assert.Empty(t, m.callNames())
				return
			}
			require.Len(t, m.rs, 1)
			got := m.rs[0]
			assert.True(t, tt.want.Schedule.Equal(got.Schedule), "Schedule %v, want %v", got.Schedule, tt.want.Schedule)
			got.Schedule, tt.want.Schedule = time.Time{}, time.Time{}
			assert.Equal(t, *tt.want, got)
		})
	}
}

func TestReinitializeBody(t *testing.T) {
	tests := []struct {
		name string
		body string
		code int
		msg  string
		want *ha.ReinitRequest
	}{
		{"no body", "", 200, "ok", &ha.ReinitRequest{}},
		{"empty object", "{}", 200, "ok", &ha.ReinitRequest{}},
		{"force", `{"force":true}`, 200, "ok", &ha.ReinitRequest{Force: true}},
		{"from_leader", `{"from_leader":true}`, 200, "ok", &ha.ReinitRequest{FromLeader: true}},
		{"from-leader", `{"from-leader":"yes"}`, 200, "ok", &ha.ReinitRequest{FromLeader: true}},
		{"both spellings", `{"from_leader":false,"from-leader":true}`, 200, "ok", &ha.ReinitRequest{FromLeader: true}},
		{"strings and numbers", `{"force":"ON","from_leader":1}`, 200, "ok", &ha.ReinitRequest{Force: true, FromLeader: true}},
		{"false values", `{"force":"off","from_leader":0}`, 200, "ok", &ha.ReinitRequest{}},
		{"null", `{"force":null}`, 200, "ok", &ha.ReinitRequest{}},
		{"unknown keys are refused", `{"force":false,"from_leadr":true}`, 400,
			`unknown key "from_leadr": expected force, from_leader, from-leader`, nil},
		{"unrecognized string", `{"force":"maybe"}`, 400, "force should be true or false", nil},
		{"object", `{"from_leader":{}}`, 400, "from_leader should be true or false", nil},
		{"fraction", `{"force":1.0}`, 400, "force should be true or false", nil},
		{"garbage", `force`, 400, msgInvalidJSON, nil},
		{"array", `[true]`, 400, msgInvalidJSON, nil},
		{"null body", `null`, 400, msgInvalidJSON, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &fakeManager{}
			rec := send(t, mgmtServer(replica(), m), http.MethodPost, "/reinitialize", tt.body, false)
			assertText(t, rec, tt.code, tt.msg)
			if tt.want == nil {
				assert.Empty(t, m.callNames())
				return
			}
			assert.Equal(t, []ha.ReinitRequest{*tt.want}, m.ri)
		})
	}
}

func TestConfigEndpoint(t *testing.T) {
	cfg := []byte(`{"ttl":30,"loop_wait":10,"postgresql":{"parameters":{"max_connections":100}}}`)

	t.Run("GET", func(t *testing.T) {
		m := &fakeManager{config: cfg}
		rec := send(t, mgmtServer(primary(), m), "GET", "/config", "", false)
		assert.Equal(t, 200, rec.Code)
		assert.Equal(t, string(cfg), rec.Body.String())
		assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
		assert.Equal(t, []string{"Config"}, m.callNames())
	})
	t.Run("HEAD", func(t *testing.T) {
		m := &fakeManager{config: cfg}
		rec := send(t, mgmtServer(primary(), m), "HEAD", "/config", "", false)
		assert.Equal(t, 200, rec.Code)
		assert.Empty(t, rec.Body.String())
		assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
		assert.Equal(t, "77", rec.Header().Get("Content-Length"))
	})
	t.Run("no config", func(t *testing.T) {
		m := &fakeManager{res: ha.Result{Code: 502, Message: "no configuration in the DCS"}}
		assertText(t, send(t, mgmtServer(primary(), m), "GET", "/config", "", false), 502, "no configuration in the DCS")
		rec := send(t, mgmtServer(primary(), m), "HEAD", "/config", "", false)
		assert.Equal(t, 502, rec.Code)
		assert.Empty(t, rec.Body.String())
	})

	for _, method := range []string{"PATCH", "PUT"} {
		call := map[string]string{"PATCH": "PatchConfig", "PUT": "PutConfig"}[method]
		t.Run(method, func(t *testing.T) {
			tests := []struct {
				name    string
				body    string
				chunked bool
				code    int
				msg     string
			}{
				{"chunked", `{"ttl":20}`, true, 411, msgLengthRequired},
				{"empty", "", false, 400, msgInvalidJSON},
				{"empty object", "{}", false, 400, msgInvalidJSON},
				{"garbage", "ttl=20", false, 400, msgInvalidJSON},
				{"array", `[{"ttl":20}]`, false, 400, msgInvalidJSON},
				{"string", `"ttl"`, false, 400, msgInvalidJSON},
				{"null", `null`, false, 400, msgInvalidJSON},
				{"trailing", `{"ttl":20}]`, false, 400, msgInvalidJSON},
				{"unknown key", `{"ttl":20,"tll":5}`, false, 400, "unknown dynamic configuration key: tll"},
				{"too large", `{"x":"` + strings.Repeat("a", maxBodyBytes) + `"}`, false, 413, msgBodyTooLarge},
				{"too large, chunked", `{"x":"` + strings.Repeat("a", maxBodyBytes) + `"}`, true, 411, msgLengthRequired},
			}
			for _, tt := range tests {
				m := &fakeManager{config: cfg}
				rec := send(t, mgmtServer(primary(), m), method, "/config", tt.body, tt.chunked)
				assertText(t, rec, tt.code, tt.msg)
				assert.Empty(t, m.callNames(), tt.name)
			}

			body := `{"ttl":20,"pause":null}`
			m := &fakeManager{config: []byte(`{"ttl":20}`)}
			rec := send(t, mgmtServer(primary(), m), method, "/config", body, false)
			assert.Equal(t, 200, rec.Code)
			assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
			if method == "PATCH" {
				assert.Equal(t, `{"ttl":20}`, rec.Body.String())
			} else {
				assert.Equal(t, body, rec.Body.String())
			}
			assert.Equal(t, []string{call}, m.callNames())
			assert.Equal(t, [][]byte{[]byte(body)}, m.bodies)

			m = &fakeManager{res: ha.Result{Code: 409, Message: "Conflict"}}
			assertText(t, send(t, mgmtServer(primary(), m), method, "/config", body, false), 409, "Conflict")
		})
	}
}

func TestFailsafeEndpoint(t *testing.T) {
	body := `{"name":"n1","conn_url":"postgres://10.0.0.1:5432/postgres","api_url":"http://10.0.0.1:8008/patroni","slots":{"n2":67395656}}`
	t.Run("POST accepted", func(t *testing.T) {
		for _, msg := range []string{"", "Accepted"} {
			m := &fakeManager{lsn: 67395656, res: ha.Result{Code: 200, Message: msg}}
			rec := send(t, mgmtServer(withFailsafeKey(replica()), m), "POST", "/failsafe", body, false)
			assertText(t, rec, 200, "Accepted")
			assert.Equal(t, []string{"67395656"}, rec.Header()["lsn"])
			assert.Equal(t, []ha.FailsafeRequest{{
				Name: "n1", ConnURL: "postgres://10.0.0.1:5432/postgres", APIURL: "http://10.0.0.1:8008/patroni",
				Slots: map[string]int64{"n2": 67395656},
			}}, m.fs)
		}
	})
	t.Run("POST refused", func(t *testing.T) {
		for _, res := range []ha.Result{{Code: 500, Message: "Running as a leader"}, {Code: 502, Message: "Failsafe mode is not enabled"}} {
			m := &fakeManager{lsn: 5, res: res}
			rec := send(t, mgmtServer(withFailsafeKey(primary()), m), "POST", "/failsafe", body, false)
			assertText(t, rec, res.Code, res.Message)
			assert.Nil(t, rec.Header()["lsn"])
		}
	})
	t.Run("POST bad bodies", func(t *testing.T) {
		for _, tt := range []struct {
			body    string
			chunked bool
			code    int
			msg     string
		}{
			{body, true, 411, msgLengthRequired},
			{"", false, 400, msgInvalidJSON},
			{"{}", false, 400, msgInvalidJSON},
			{"[]", false, 400, msgInvalidJSON},
			{"hello", false, 400, msgInvalidJSON},
			{`{"name":5}`, false, 400, "name has the wrong type: expected a string"},
			{`{"name":"n1","slots":{"n2":"0/3000000"}}`, false, 400, "slots has the wrong type: expected a number"},
			{`{"name":"n1","slots":[1]}`, false, 400, "slots has the wrong type: expected an object"},
			{`{"name":"n1","lsn":1}`, false, 400, `unknown key "lsn": expected name, conn_url, api_url, slots`},
		} {
			m := &fakeManager{}
			rec := send(t, mgmtServer(withFailsafeKey(replica()), m), "POST", "/failsafe", tt.body, tt.chunked)
			assertText(t, rec, tt.code, tt.msg)
			assert.Empty(t, m.callNames(), tt.body)
		}
	})
	t.Run("GET", func(t *testing.T) {
		m := &fakeManager{members: map[string]string{"n2": "http://10.0.0.2:8008/patroni", "n1": "http://10.0.0.1:8008/patroni"}}
		s := mgmtServer(replica(), m)
		rec := send(t, s, "GET", "/failsafe", "", false)
		assert.Equal(t, 200, rec.Code)
		assert.Equal(t, `{"n1":"http://10.0.0.1:8008/patroni","n2":"http://10.0.0.2:8008/patroni"}`, rec.Body.String())
		assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
		rec = send(t, s, "HEAD", "/failsafe", "", false)
		assert.Equal(t, 200, rec.Code)
		assert.Empty(t, rec.Body.String())

		rec = send(t, mgmtServer(replica(), &fakeManager{}), "GET", "/failsafe", "", false)
		assert.Equal(t, `{}`, rec.Body.String(), "an empty failsafe key")

		off := &fakeManager{failsafeOff: true}
		assertText(t, send(t, mgmtServer(replica(), off), "GET", "/failsafe", "", false), 502, "Failsafe mode is not enabled")
	})
}

func TestBodyLimits(t *testing.T) {
	huge := `{"leader":"n1","x":"` + strings.Repeat("a", maxBodyBytes) + `"}`
	for _, tt := range []struct{ method, path string }{
		{"POST", "/switchover"}, {"POST", "/failover"}, {"POST", "/restart"}, {"POST", "/reinitialize"},
		{"PATCH", "/config"}, {"PUT", "/config"}, {"POST", "/failsafe"},
	} {
		m := &fakeManager{}
		s := mgmtServer(primary(), m)
		assertText(t, send(t, s, tt.method, tt.path, huge, false), 413, msgBodyTooLarge)
		if tt.path == "/restart" || tt.path == "/reinitialize" {
			// Optional bodies are read without a Content-Length too: the limit applies while reading.
			assertText(t, send(t, s, tt.method, tt.path, huge, true), 413, msgBodyTooLarge)
		}
		assert.Empty(t, m.callNames(), tt.path)
	}
	// Just under the limit is fine.
	body := `{"leader":"n1","candidate":"` + strings.Repeat("a", maxBodyBytes-len(`{"leader":"n1","candidate":""}`)) + `"}`
	require.Len(t, body, maxBodyBytes)
	m := &fakeManager{}
	assertText(t, send(t, mgmtServer(primary(), m), "POST", "/switchover", body, false), 200, "ok")

	// A body that fails while being read.
	req := httptest.NewRequest("POST", "/restart", io.MultiReader(strings.NewReader(`{"role":`), errReader{}))
	req.RemoteAddr = testClient // this host: the default allowlist lets it in
	rec := httptest.NewRecorder()
	mgmtServer(primary(), m).Handler().ServeHTTP(rec, req)
	assertText(t, rec, 400, msgCannotRead)
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

// TestManagementMethods covers the methods of every management path with a Manager: OPTIONS
// answers 200 with Allow, others than Patroni's answer 405.
func TestManagementMethods(t *testing.T) {
	m := &fakeManager{}
	s := mgmtServer(primary(), m)
	tests := []struct {
		method, path string
		code         int
		allow        string
	}{
		{"OPTIONS", "/switchover", 200, "POST, DELETE, OPTIONS"},
		{"OPTIONS", "/failover", 200, "POST, OPTIONS"},
		{"OPTIONS", "/restart", 200, "POST, DELETE, OPTIONS"},
		{"OPTIONS", "/reload", 200, "POST, OPTIONS"},
		{"OPTIONS", "/reinitialize", 200, "POST, OPTIONS"},
		{"OPTIONS", "/config", 200, "GET, HEAD, PATCH, PUT, OPTIONS"},
		{"OPTIONS", "/failsafe", 200, "GET, HEAD, POST, OPTIONS"},
		{"GET", "/switchover", badMethod, "POST, DELETE, OPTIONS"},
		{"HEAD", "/switchover", badMethod, "POST, DELETE, OPTIONS"},
		{"PUT", "/failover", badMethod, "POST, OPTIONS"},
		{"GET", "/restart", badMethod, "POST, DELETE, OPTIONS"},
		{"GET", "/reload", badMethod, "POST, OPTIONS"},
		{"DELETE", "/reinitialize", badMethod, "POST, OPTIONS"},
		{"POST", "/config", badMethod, "GET, HEAD, PATCH, PUT, OPTIONS"},
		{"DELETE", "/config", badMethod, "GET, HEAD, PATCH, PUT, OPTIONS"},
		{"PUT", "/failsafe", badMethod, "GET, HEAD, POST, OPTIONS"},
		{"POST", "/metrics", badMethod, "GET, HEAD, OPTIONS"},
	}
	for _, tt := range tests {
		rec := send(t, s, tt.method, tt.path, "", false)
		assert.Equal(t, tt.code, rec.Code, "%s %s", tt.method, tt.path)
		assert.Equal(t, tt.allow, rec.Header().Get("Allow"), "%s %s", tt.method, tt.path)
		if tt.method == "HEAD" || tt.method == "OPTIONS" {
			assert.Empty(t, rec.Body.String(), "%s %s", tt.method, tt.path)
		}
	}
	assert.Empty(t, m.callNames())

	// Sub-paths and query strings reach the same endpoint, as in Patroni.
	assertText(t, send(t, s, "POST", "/reload/now?x=1", "", false), 200, "ok")
	assert.Equal(t, []string{"Reload"}, m.callNames())
}

// TestNoManager: without a Manager every management endpoint answers 501 and reads nothing.
func TestNoManager(t *testing.T) {
	s := mgmtServer(primary(), nil)
	for _, tt := range []struct{ method, path, body string }{
		{"POST", "/switchover", `{"leader":"n1"}`},
		{"DELETE", "/switchover", ""},
		{"POST", "/failover", "garbage"},
		{"POST", "/restart", `{"schedule":"x"}`},
		{"DELETE", "/restart", ""},
		{"POST", "/reload", ""},
		{"POST", "/reinitialize", ""},
		{"GET", "/config", ""},
		{"PATCH", "/config", `{"ttl":20}`},
		{"PUT", "/config", `{"ttl":20}`},
		{"GET", "/failsafe", ""},
		{"POST", "/failsafe", `{}`},
	} {
		rec := send(t, s, tt.method, tt.path, tt.body, false)
		assert.Equal(t, 501, rec.Code, "%s %s", tt.method, tt.path)
		assert.Equal(t, "not implemented yet\n", rec.Body.String(), "%s %s", tt.method, tt.path)
	}
	rec := send(t, s, "OPTIONS", "/config", "", false)
	assert.Equal(t, 501, rec.Code)
	assert.Equal(t, "GET, HEAD, PATCH, PUT, OPTIONS", rec.Header().Get("Allow"))
}

// TestManagerContext: the Manager gets the request's context.
func TestManagerContext(t *testing.T) {
	type key struct{}
	m := &fakeManager{}
	s := mgmtServer(primary(), m)
	ctx := context.WithValue(context.Background(), key{}, "request")
	req := httptest.NewRequestWithContext(ctx, "POST", "/switchover", strings.NewReader(`{"leader":"n1"}`))
	req.RemoteAddr = testClient // this host: the default allowlist lets it in
	s.Handler().ServeHTTP(httptest.NewRecorder(), req)
	require.Len(t, m.ctxs, 1)
	assert.Equal(t, "request", m.ctxs[0].Value(key{}))
}

// TestManagementDeadlines runs a Manager call longer than the server's read and write timeouts
// over a real connection: the request's context must not end and the answer must arrive.
func TestManagementDeadlines(t *testing.T) {
	m := &fakeManager{wait: 600 * time.Millisecond, res: ha.Result{Code: 200, Message: `Successfully switched over to "n2"`}}
	box := &statusBox{}
	box.p.Store(primary())
	log := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelDebug})) // statusRecorder in the way
	s := New(Config{Manager: m, Logger: log}, box.get)
	s.readTimeout, s.writeTimeout, s.managementTimeout = 200*time.Millisecond, 200*time.Millisecond, 5*time.Second
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = s.Serve(ctx, l) }()

	for _, c := range []struct{ method, path, body string }{
		{"POST", "/switchover", `{"leader":"n1","candidate":"n2"}`},
		{"POST", "/reload", ""},
	} {
		req, err := http.NewRequest(c.method, "http://"+l.Addr().String()+c.path, strings.NewReader(c.body))
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		assert.Equal(t, 200, resp.StatusCode)
		assert.Equal(t, `Successfully switched over to "n2"`, string(body))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	assert.Equal(t, []error{nil, nil}, m.ctxErrs)
}

// TestManagementClientGone: the context passed to the Manager ends when the client goes away.
func TestManagementClientGone(t *testing.T) {
	m := &fakeManager{wait: 10 * time.Second}
	s := mgmtServer(primary(), m)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = s.Serve(ctx, l) }()

	c, err := net.Dial("tcp", l.Addr().String())
	require.NoError(t, err)
	body := `{"leader":"n1"}`
	_, err = io.WriteString(c, "POST /switchover HTTP/1.1\r\nHost: x\r\nContent-Length: 15\r\n\r\n"+body)
	require.NoError(t, err)
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	c.Close()
	require.Eventually(t, func() bool { return len(m.callNames()) == 1 }, 5*time.Second, 10*time.Millisecond)
	assert.Less(t, time.Since(start), 5*time.Second)
	m.mu.Lock()
	defer m.mu.Unlock()
	assert.ErrorIs(t, m.ctxErrs[0], context.Canceled)
}

func TestParseHelpers(t *testing.T) {
	for s, want := range map[string]time.Time{
		"2024-01-02T16:00:00Z":             time.Date(2024, 1, 2, 16, 0, 0, 0, time.UTC),
		"2024-01-02t16:00:00z":             time.Date(2024, 1, 2, 16, 0, 0, 0, time.UTC),
		"2024-01-02 16:00+00:00":           time.Date(2024, 1, 2, 16, 0, 0, 0, time.UTC),
		"2024-01-02T17:00:00.250000+01":    time.Date(2024, 1, 2, 16, 0, 0, 250000000, time.UTC),
		" 2024-01-02T11:30:00-0430 ":       time.Date(2024, 1, 2, 16, 0, 0, 0, time.UTC),
		"2024-01-02T16:00:00.123456789Z":   time.Date(2024, 1, 2, 16, 0, 0, 123456789, time.UTC),
		"2024-01-02T21:30:00.000000+05:30": time.Date(2024, 1, 2, 16, 0, 0, 0, time.UTC),
	} {
		got, tz, ok := parseISO8601(s)
		assert.True(t, ok && tz && got.Equal(want), "parseISO8601(%q) = %v %v %v", s, got, tz, ok)
	}
	for _, s := range []string{"2024-01-02", "2024-01-02T16:00", "2024-01-02 16:00:00.5"} {
		_, tz, ok := parseISO8601(s)
		assert.True(t, ok && !tz, "parseISO8601(%q): want valid without a time zone", s)
	}
	for _, s := range []string{"", "now", "16:00", "2024-01-02T25:00:00Z", "2024-01-02T16:00:00+25:00", "2024-01-02T16:00:00 UTC", "1704211200"} {
		_, _, ok := parseISO8601(s)
		assert.False(t, ok, "parseISO8601(%q)", s)
	}

	for v, want := range map[int]string{0: "", 150003: "15.3", 160000: "16.0", 100023: "10.23", 90601: "9.6.1", 90600: "9.6.0"} {
		assert.Equal(t, want, ha.FormatPostgresVersion(v))
		if v != 0 {
			n, ok := parsePostgresVersion(want)
			assert.True(t, ok && n == v, "parsePostgresVersion(%q) = %d %v", want, n, ok)
		}
	}
}

// TestBasicAuthOnChangingEndpoints: with restapi.authentication set, every request that changes
// something needs the credentials; reads stay open (Patroni's check_access).
func TestBasicAuthOnChangingEndpoints(t *testing.T) {
	m := &fakeManager{res: ha.Result{Code: 202, Message: "reload scheduled"}}
	s := New(Config{Manager: m, Auth: &BasicAuth{Username: "admin", Password: "s3cret"}}, func() *ha.Status { return primary() })
	do := func(method, path, user, pass string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, nil)
		req.RemoteAddr = testClient // this host: the default allowlist lets it in
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		return rec
	}
	rec := do("POST", "/reload", "", "")
	assertText(t, rec, 401, "no auth header received")
	assert.Equal(t, `Basic realm="Patroni"`, rec.Header().Get("WWW-Authenticate"))
	assertText(t, do("POST", "/reload", "admin", "wrong"), 401, "not authenticated")
	assertText(t, do("DELETE", "/switchover", "nobody", "s3cret"), 401, "not authenticated")
	assert.Empty(t, m.callNames(), "nothing reached the manager without credentials")
	assertText(t, do("POST", "/reload", "admin", "s3cret"), 202, "reload scheduled")
	assert.NotEqual(t, 401, do("GET", "/config", "", "").Code, "reads need no credentials")
	assert.Equal(t, 200, do("GET", "/patroni", "", "").Code)
}
