package ha

// Failsafe mode on the leader's side: the confirmation round, the lease it extends, the
// failsafe key; and on a replica's side, the confirmation it last accepted.

import (
	"context"
	"errors"
	"maps"
	"time"

	"github.com/tusker-ha/tusker/dcs"
)

// failsafeRound asks every member of the failsafe key to confirm this primary. When all do, each
// accepted at or after start and will not race before start+ttl: the view says so, and Decide
// extends the lease from start (extendLease checks that it was not lost or released while the
// round ran, as a renewal in flight does).
func (n *Node) failsafeRound(ctx context.Context, v *View, rt time.Duration) {
	if n.lastCluster == nil {
		return
	}
	gen := n.leaseGeneration()
	start := n.now()
	req := FailsafeRequest{Name: n.cfg.Name, ConnURL: n.connURL(), APIURL: n.apiURL()}
	if !n.confirmFailsafe(ctx, n.lastCluster.Failsafe, req, n.cfg.RestAPI.Authentication, rt) {
		return
	}
	v.FailsafeConfirmed, v.FailsafeConfirmedAt, n.failsafeGen = true, start, gen
}

// extendLease carries out Decide's failsafe-extend: the lease counts from the confirmation
// round's start, unless it was lost or released while the round ran.
func (n *Node) extendLease(v View) error {
	if !n.leaseGrantedAt(v.FailsafeConfirmedAt, n.settings(), n.failsafeGen) {
		return errors.New("failsafe: the lease changed while the members confirmed it; not extending it")
	}
	n.keepaliveWatchdog()
	return nil
}

// maintainFailsafe keeps the failsafe key listing every member (failsafe_mode) or removes it.
func (n *Node) maintainFailsafe(ctx context.Context, c *dcs.Cluster) {
	if !n.dyn.FailsafeMode {
		if c.Failsafe != nil {
			_ = n.dcs.SetFailsafe(ctx, nil)
		}
		return
	}
	want := map[string]string{}
	for _, m := range c.Members {
		if m.Data.APIURL != "" {
			want[m.Name] = m.Data.APIURL
		}
	}
	want[n.cfg.Name] = n.apiURL()
	if maps.Equal(want, c.Failsafe) {
		return
	}
	if err := n.dcs.SetFailsafe(ctx, want); err != nil {
		n.log.Warn("writing the failsafe key failed", "err", err)
	}
}

// failsafeGrant is a POST /failsafe this replica accepted: from the primary named, at a time.
type failsafeGrant struct {
	from string
	at   time.Time
}

// failsafeLeader is the primary whose POST /failsafe this replica accepted less than a ttl ago,
// or "".
func (n *Node) failsafeLeader() string {
	ttl, _, _ := n.dyn.TimingDurations()
	if g := n.failsafeGrant.Load(); g != nil && n.since(g.at) < ttl {
		return g.from
	}
	return ""
}
