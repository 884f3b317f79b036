package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tusker-ha/tusker/config"
	"github.com/tusker-ha/tusker/dcs"
)

// fakeDCS is a dcs.DCS holding one cluster in memory, with the compare-and-set semantics of the
// config and failover keys.
type fakeDCS struct {
	mu        sync.Mutex
	c         *dcs.Cluster
	readErr   error
	deleted   bool
	failovers []dcs.Failover
	promote   bool // SetFailover makes the candidate the leader
	// onSetConfig runs before a write (a concurrent writer in conflict tests).
	onSetConfig func()
}

func (f *fakeDCS) Cluster(context.Context) (*dcs.Cluster, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.readErr != nil {
		return nil, f.readErr
	}
	if f.deleted {
		return &dcs.Cluster{}, nil
	}
	c := *f.c
	c.Members = slices.Clone(c.Members) // a snapshot, as a real store returns
	return &c, nil
}

func (f *fakeDCS) SetConfig(_ context.Context, value []byte, version int64) error {
	if f.onSetConfig != nil {
		f.onSetConfig()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.c.Config == nil || f.c.Config.Version != version {
		return fmt.Errorf("writing config at version %d: %w", version, dcs.ErrConflict)
	}
	f.c.Config = &dcs.ConfigKey{Value: value, Version: version + 1}
	return nil
}

func (f *fakeDCS) SetFailover(_ context.Context, fo dcs.Failover, version int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failovers = append(f.failovers, fo)
	if f.promote && fo.Member != "" && fo.ScheduledAt == nil {
		f.c.Leader = &dcs.Leader{Name: fo.Member} // the members carry it out at once
	}
	return nil
}

func (f *fakeDCS) DeleteCluster(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deleted = true
	return nil
}

func (f *fakeDCS) Initialize(context.Context, string, bool) (bool, error) { return false, nil }
func (f *fakeDCS) CancelInitialize(context.Context) error                 { return nil }
func (f *fakeDCS) AcquireLeader(context.Context) (bool, error)            { return false, nil }
func (f *fakeDCS) RenewLeader(context.Context) error                      { return nil }
func (f *fakeDCS) ReleaseLeader(context.Context) error                    { return nil }
func (f *fakeDCS) TouchMember(context.Context, dcs.MemberData) error      { return nil }
func (f *fakeDCS) DeleteMember(context.Context) error                     { return nil }
func (f *fakeDCS) SetStatus(context.Context, dcs.Status) error            { return nil }
func (f *fakeDCS) SetHistory(context.Context, []dcs.HistoryEntry) error   { return nil }
func (f *fakeDCS) DeleteFailover(context.Context) error                   { return nil }
func (f *fakeDCS) SetFailsafe(context.Context, map[string]string) error   { return nil }
func (f *fakeDCS) SetSync(context.Context, dcs.Sync, int64) error         { return nil }
func (f *fakeDCS) DeleteSync(context.Context) error                       { return nil }
func (f *fakeDCS) SetTTL(time.Duration)                                   {}
func (f *fakeDCS) SetRetryTimeout(time.Duration)                          {}
func (f *fakeDCS) Changes() <-chan struct{}                               { return nil }
func (f *fakeDCS) Close() error                                           { return nil }

// update changes the cluster under the lock (what a member would do meanwhile).
func (f *fakeDCS) update(fn func(c *dcs.Cluster)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f.c)
}

func (f *fakeDCS) failoverWrites() []dcs.Failover {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]dcs.Failover(nil), f.failovers...)
}

func (f *fakeDCS) wasDeleted() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.deleted
}

func (f *fakeDCS) snapshot() dcs.Cluster {
	f.mu.Lock()
	defer f.mu.Unlock()
	return *f.c
}

var _ dcs.DCS = (*fakeDCS)(nil)

// request is one call a fake member received.
type request struct {
	Method, Path string
	Body         map[string]any
	User, Pass   string
}

// fakeMember is a member's REST API: it records requests and answers with reply.
type fakeMember struct {
	srv   *httptest.Server
	mu    sync.Mutex
	reqs  []request
	reply func(r request) (int, string)
}

func newFakeMember(t *testing.T, reply func(r request) (int, string)) *fakeMember {
	fm := &fakeMember{reply: reply}
	fm.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		req := request{Method: r.Method, Path: r.URL.Path}
		req.User, req.Pass, _ = r.BasicAuth()
		if len(b) > 0 {
			_ = json.Unmarshal(b, &req.Body)
		}
		fm.mu.Lock()
		fm.reqs = append(fm.reqs, req)
		reply := fm.reply
		fm.mu.Unlock()
		code, body := 200, "{}"
		if reply != nil {
			code, body = reply(req)
		}
		w.WriteHeader(code)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(fm.srv.Close)
	return fm
}

func (fm *fakeMember) apiURL() string { return fm.srv.URL + "/patroni" }

func (fm *fakeMember) requests() []request {
	fm.mu.Lock()
	defer fm.mu.Unlock()
	return append([]request(nil), fm.reqs...)
}

// managementRequests leaves out the GETs.
func (fm *fakeMember) managementRequests() []request {
	var out []request
	for _, r := range fm.requests() {
		if r.Method != http.MethodGet {
			out = append(out, r)
		}
	}
	return out
}

func int64p(v int64) *int64 { return &v }

// testCluster is a healthy three-member cluster: n1 leads, n2 streams 1 MB behind, n3 is tagged
// nofailover. The members' api_urls point at the fake servers given.
func testCluster(apis ...string) *dcs.Cluster {
	id := "7300000000000000001"
	api := func(i int) string {
		if i < len(apis) {
			return apis[i]
		}
		return ""
	}
	return &dcs.Cluster{
		Initialize: &id,
		Config:     &dcs.ConfigKey{Value: []byte(`{"ttl":6,"loop_wait":1,"retry_timeout":2,"postgresql":{"parameters":{"max_connections":40}}}`), Version: 7},
		Leader:     &dcs.Leader{Name: "n1"},
		Status:     dcs.Status{Optime: 50 << 20},
		History:    []dcs.HistoryEntry{{Timeline: 1, LSN: 50331808, Reason: "no recovery target specified", Timestamp: "2024-05-01T10:00:00.123456+00:00", NewLeader: "n1"}},
		Members: []dcs.Member{
			{Name: "n1", Data: dcs.MemberData{ConnURL: "postgres://127.0.0.1:5432/postgres", APIURL: api(0), State: "running", Role: "primary", Timeline: 2, XLogLocation: int64p(50 << 20)}},
			{Name: "n2", Data: dcs.MemberData{ConnURL: "postgres://127.0.0.1:5433/postgres", APIURL: api(1), State: "running", Role: "replica", ReplicationState: "streaming", Timeline: 2,
				XLogLocation: int64p(49 << 20), ReceiveLSN: int64p(50 << 20), ReplayLSN: int64p(49 << 20)}},
			{Name: "n3", Data: dcs.MemberData{ConnURL: "postgres://127.0.0.1:5434/postgres", APIURL: api(2), State: "stopped", Role: "replica", Tags: map[string]any{"nofailover": true}}},
		},
	}
}

// harness runs Main against a fake DCS and fake members.
type harness struct {
	t     *testing.T
	store *fakeDCS
	env   Env
	// extra is appended to the environment: by default a DCS URL (so that no configuration file
	// is needed) and PATRONI_SCOPE=demo.
	extra []string
}

func newHarness(t *testing.T, c *dcs.Cluster) *harness {
	h := &harness{t: t, store: &fakeDCS{c: c}, extra: []string{"DCS_URL=etcd3://127.0.0.1:2379", "PATRONI_SCOPE=demo"}}
	h.env = Env{
		Environ: []string{"HOME=" + t.TempDir()},
		Version: "1.2.3",
		Now:     func() time.Time { return time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC) },
		OpenDCS: func(cfg *config.Config, scope string) (dcs.DCS, error) {
			if scope != "demo" {
				return &fakeDCS{c: &dcs.Cluster{}}, nil
			}
			return h.store, nil
		},
	}
	return h
}

// run runs tuskerctl with stdin and returns stdout, stderr and the exit code.
func (h *harness) run(stdin string, args ...string) (string, string, int) {
	var out, errOut bytes.Buffer
	env := h.env
	env.Stdin, env.Stdout, env.Stderr = strings.NewReader(stdin), &out, &errOut
	env.Environ = append(append([]string{}, env.Environ...), h.extra...)
	code := Main(context.Background(), args, env)
	return out.String(), errOut.String(), code
}

// mustRun fails the test unless the exit code is want.
func (h *harness) mustRun(want int, stdin string, args ...string) (string, string) {
	h.t.Helper()
	out, errOut, code := h.run(stdin, args...)
	require.Equal(h.t, want, code, "tuskerctl %v\nstdout:\n%s\nstderr:\n%s", args, out, errOut)
	return out, errOut
}
