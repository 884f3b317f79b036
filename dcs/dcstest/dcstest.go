// Package dcstest is the conformance suite every DCS backend passes against a real server: the
// same calls, the same races and the same faults, so that the HA loop can rely on one contract
// whichever store a user runs.
package dcstest

import (
	"testing"
	"time"

	"github.com/tusker-ha/tusker/dcs"
)

// Target is one backend against one real server, as the suite drives it.
type Target struct {
	// New opens a backend for member name in scope with the given ttl and retry_timeout. The suite
	// closes it (Close, without DeleteMember when it simulates a crash). Scopes are fresh per
	// subtest, so a target never needs to clean keys up.
	New func(t testing.TB, scope, name string, ttl, retryTimeout time.Duration) dcs.DCS
	// TTL is the shortest ttl the backend supports well; the lease tests use it (etcd, ZooKeeper
	// and Kubernetes: a few seconds; Consul: 20 s, as its sessions last at least 10 s = ttl/2).
	TTL time.Duration
	// Expiry bounds how long after its last renewal a crashed holder's leader key may still be
	// seen (default TTL plus a second for the server's own bookkeeping).
	Expiry time.Duration
	// Crashed is called after the suite closed member name's backend without cleaning up, to do
	// what the owner's death does besides (Kubernetes: delete the member's pod). May be nil.
	Crashed func(t testing.TB, scope, name string)
	// Restart stops the server and starts it again with its data.
	Restart func(t testing.TB)
	// Outage makes the server unreachable (stopped, or black-holed by a proxy) until the returned
	// function is called, which brings it back and waits until it answers.
	Outage func(t testing.TB) (restore func())
}

// retry is the retry_timeout every backend in the suite runs with; slack is what a bounded call may
// take beyond it (scheduling on a loaded 2-core machine, a connection being torn down).
const (
	retry = 2 * time.Second
	slack = 1500 * time.Millisecond
)

// Run runs the whole suite against one target. Subtests run one after another, each in a scope of
// its own, because the fault subtests stop the server for everybody.
func Run(t *testing.T, tg Target) {
	if tg.TTL <= 0 {
		t.Fatal("dcstest: Target.TTL must be set")
	}
	if tg.Expiry <= 0 {
		tg.Expiry = tg.TTL + time.Second
	}
	s := &suite{tg: tg}
	t.Run("initialize race", s.initializeRace)
	t.Run("leader acquire, renew, release", s.leaderLifecycle)
	t.Run("leader race has one winner", s.leaderRace)
	t.Run("leader outlives its ttl only while renewed", s.leaderRenewedKeepsKey)
	t.Run("crashed leader's key expires after ttl", s.leaderCrashExpiry)
	t.Run("stalled leader loses the key and cannot renew", s.leaderStalled)
	t.Run("ttl change keeps the lock", s.ttlChange)
	t.Run("config CAS", func(t *testing.T) { s.casKey(t, configKey) })
	t.Run("failover CAS", func(t *testing.T) { s.casKey(t, failoverKey) })
	t.Run("sync CAS", func(t *testing.T) { s.casKey(t, syncKey) })
	t.Run("concurrent CAS has one winner", s.concurrentCAS)
	t.Run("member keys", s.members)
	t.Run("crashed member's key vanishes", s.memberCrash)
	t.Run("status, history and failsafe", s.statusHistoryFailsafe)
	t.Run("watch wakes on leader, config and failover changes", s.watch)
	t.Run("delete cluster", s.deleteCluster)
	t.Run("server restart", s.restart)
	t.Run("server outage", s.outage)
}
