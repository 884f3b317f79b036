package ha

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tusker-ha/tusker/config"
	"github.com/tusker-ha/tusker/dcs"
	"github.com/tusker-ha/tusker/dcs/etcd"
	"github.com/tusker-ha/tusker/test/harness"
)

// No TestMain: the rule tests (decide_test.go and the others) need no server; the tests here
// start their own etcd (harness.StartEtcd finds the binary or fails loudly).

func etcdBackend(t *testing.T, e *harness.Etcd, scope, name string) *etcd.Backend {
	t.Helper()
	b, err := etcd.New(etcd.Options{Endpoints: []string{e.Endpoint}, Namespace: "/service", Scope: scope, Name: name,
		TTL: 6 * time.Second, RetryTimeout: 2 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// racingDCS writes a competing config value just before the node's own conditional write, as a
// concurrent PATCH /config on another member would.
type racingDCS struct {
	dcs.DCS
	rival dcs.DCS
	armed atomic.Bool
}

func (r *racingDCS) SetConfig(ctx context.Context, value []byte, version int64) error {
	if r.armed.Swap(false) {
		if err := r.rival.SetConfig(ctx, []byte(`{"ttl":6,"loop_wait":1,"retry_timeout":2,"pause":true}`), -1); err != nil {
			return err
		}
	}
	return r.DCS.SetConfig(ctx, value, version)
}

func managerNode(t *testing.T, d dcs.DCS) *Node {
	c := &config.Config{Name: "n1", Scope: "m", Bootstrap: config.Bootstrap{DCS: config.DefaultDynamic()},
		Watchdog: config.Watchdog{Mode: "off"}}
	return NewNode(Options{Config: c, DCS: d})
}

// TestDynamicConfigEndpoints runs GET/PATCH/PUT /config against a real etcd: validation with the
// reason, the merge patch, and 409 when another writer changed the key in between.
func TestDynamicConfigEndpoints(t *testing.T) {
	e := harness.StartEtcd(t)
	ctx := context.Background()
	d := &racingDCS{DCS: etcdBackend(t, e, "m", "n1"), rival: etcdBackend(t, e, "m", "n2")}
	n := managerNode(t, d)

	_, r := n.Config(ctx)
	require.Equal(t, http.StatusBadGateway, r.Code, "no config key yet")
	_, r = n.PatchConfig(ctx, []byte(`{"pause":true}`))
	require.Equal(t, http.StatusServiceUnavailable, r.Code)

	body, r := n.PutConfig(ctx, []byte(`{"ttl":6,"loop_wait":1,"retry_timeout":2}`))
	require.Equal(t, http.StatusOK, r.Code, r.Message)
	require.JSONEq(t, `{"ttl":6,"loop_wait":1,"retry_timeout":2}`, string(body))

	_, r = n.PutConfig(ctx, []byte(`{"ttl":"soon"}`))
	require.Equal(t, http.StatusBadRequest, r.Code)
	require.Contains(t, r.Message, "ttl: expected an integer number of seconds")

	_, r = n.PatchConfig(ctx, []byte(`{"loop_wait":5}`))
	require.Equal(t, http.StatusBadRequest, r.Code)
	require.Contains(t, r.Message, "loop_wait + 2*retry_timeout must be <= ttl")

	body, r = n.PatchConfig(ctx, []byte(`{"postgresql":{"parameters":{"work_mem":"8MB"}},"check_timeline":true}`))
	require.Equal(t, http.StatusOK, r.Code, r.Message)
	require.JSONEq(t, `{"ttl":6,"loop_wait":1,"retry_timeout":2,"check_timeline":true,"postgresql":{"parameters":{"work_mem":"8MB"}}}`, string(body))
	got, r := n.Config(ctx)
	require.Equal(t, http.StatusOK, r.Code)
	require.JSONEq(t, string(body), string(got))

	d.armed.Store(true)
	_, r = n.PatchConfig(ctx, []byte(`{"maximum_lag_on_failover":10}`))
	require.Equal(t, http.StatusConflict, r.Code, "a concurrent change wins; this patch is refused, not merged over it")
	got, _ = n.Config(ctx)
	require.Contains(t, string(got), `"pause":true`)
	require.NotContains(t, string(got), "maximum_lag_on_failover")
}

// TestSwitchoverPreconditions: requests that cannot be carried out are refused before anything
// is written to the DCS.
func TestSwitchoverPreconditions(t *testing.T) {
	e := harness.StartEtcd(t)
	ctx := context.Background()
	b := etcdBackend(t, e, "sw", "n1")
	n := managerNode(t, b)

	r := n.Switchover(ctx, SwitchoverRequest{Leader: "n1", Candidate: "n2"})
	require.Equal(t, Result{Code: 412, Message: "leader name does not match"}, r, "no leader at all")
	ok, err := b.AcquireLeader(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	r = n.Switchover(ctx, SwitchoverRequest{Leader: "n9"})
	require.Equal(t, Result{Code: 412, Message: "leader name does not match"}, r)
	r = n.Switchover(ctx, SwitchoverRequest{Leader: "n1", Candidate: "n2"})
	require.Equal(t, Result{Code: 412, Message: "candidate does not exists"}, r)
	r = n.Switchover(ctx, SwitchoverRequest{Leader: "n1"})
	require.Equal(t, Result{Code: 412, Message: "switchover is not possible: cluster does not have members except leader"}, r)
	other := etcdBackend(t, e, "sw", "n2")
	require.NoError(t, other.TouchMember(ctx, dcs.MemberData{APIURL: "http://127.0.0.1:1/patroni", State: "running", Role: "replica"}))
	r = n.Switchover(ctx, SwitchoverRequest{Leader: "n1", Candidate: "n2"})
	require.Equal(t, Result{Code: 412, Message: "switchover is not possible: no good candidates have been found"}, r, "n2 does not answer")
	cl, err := b.Cluster(ctx)
	require.NoError(t, err)
	require.Nil(t, cl.Failover, "nothing was written")

	r = n.CancelSwitchover(ctx)
	require.Equal(t, Result{Code: 404, Message: "no switchover is scheduled"}, r)
	at := time.Now().Add(time.Hour)
	r = n.Switchover(ctx, SwitchoverRequest{Leader: "n1", Candidate: "n2", At: at})
	require.Equal(t, Result{Code: 202, Message: "Switchover scheduled"}, r)
	r = n.CancelSwitchover(ctx)
	require.Equal(t, Result{Code: 200, Message: "scheduled switchover deleted"}, r)

	r = n.Reinitialize(ctx, ReinitRequest{})
	require.Equal(t, Result{Code: 503, Message: "I am the leader, can not reinitialize"}, r)

	// A switchover posted to its own candidate: the candidate answers for itself (it does not
	// probe its own API), and the request goes on to the failover key.
	c2 := &config.Config{Name: "n2", Scope: "sw", Bootstrap: config.Bootstrap{DCS: config.DefaultDynamic()},
		Watchdog: config.Watchdog{Mode: "off"}}
	n2 := NewNode(Options{Config: c2, DCS: other})
	n2.status.Store(&Status{Name: "n2", Role: "replica", State: "running"})
	wctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	r = n2.Switchover(wctx, SwitchoverRequest{Leader: "n1", Candidate: "n2"})
	require.NotEqual(t, 412, r.Code, r.Message)
	cl, err = b.Cluster(ctx)
	require.NoError(t, err)
	require.NotNil(t, cl.Failover, "the failover key was written")
	require.Equal(t, "n2", cl.Failover.Member)
}
