package ha

// The leader lease as the loop uses it: taking the key, renewing it, and fencing when the lease
// runs out (the lease and its timer are in lease.go).

import (
	"context"
	"errors"
	"time"

	"github.com/tusker-ha/tusker/dcs"
)

// leaseGrantedAt records a lease counted from start, with the settings of the loop (or of the
// long action) that got it (see lease.grant).
func (n *Node) leaseGrantedAt(start time.Time, s Settings, gen uint64) bool {
	return n.lease.grant(start, s, n.name, gen)
}

// fenceNow is the fence timer's action: postgres stops taking writes before the lease can
// expire for the other members. It runs in the timer's goroutine and reads only its arguments
// and the PostgreSQL handle, which is safe from any goroutine.
func (n *Node) fenceNow(a fenceArgs) {
	if a.settings.Pause {
		n.log.Warn("pause: leader lease about to expire without renewal; postgres left running")
		return
	}
	n.log.Error("leader lease about to expire without renewal: fencing postgres now (it comes back read-only)")
	n.pg.Fence(FenceGrace(View{Me: a.name, Settings: a.settings, LeaseHeld: true, LeaseExpiry: a.expiry}, n.now()))
	n.Wake()
}

func (n *Node) leaseLost() { n.lease.lose() }

// acquire takes the leader key; s are the settings of the caller (the loop's, or a long
// action's copy).
func (n *Node) acquire(ctx context.Context, s Settings) (bool, error) {
	start := n.now()
	ok, err := n.dcs.AcquireLeader(ctx)
	if err != nil || !ok {
		return false, err
	}
	n.leaseGrantedAt(start, s, 0)
	return true, nil
}

func (n *Node) leaseGeneration() uint64 { return n.lease.generation() }

// renew refreshes the lease. ErrNotLeader means the key is gone or someone else's. A running
// primary whose key merely vanished (its lease ran out during a DCS outage that failsafe mode
// rode out) takes it back atomically; if that fails, another member holds it and we fence.
func (n *Node) renew(ctx context.Context) error {
	start := n.now()
	gen := n.leaseGeneration()
	err := n.dcs.RenewLeader(ctx)
	failed := err != nil && !errors.Is(err, dcs.ErrNotLeader)
	defer func() { n.renewFailed = failed }()
	switch {
	case err == nil:
		n.leaseGrantedAt(start, n.settings(), gen)
		n.keepaliveWatchdog()
		return nil
	case errors.Is(err, dcs.ErrNotLeader):
		takeBack, fence := RenewRefused(n.pg.Running(), n.pgReady, !n.lastPG.InRecovery, n.dyn.Pause)
		if takeBack {
			ok, aerr := n.acquire(ctx, n.settings())
			if aerr == nil && ok {
				n.log.Warn("leader key had expired; took it back", "err", err)
				n.keepaliveWatchdog()
				return nil
			}
			if aerr != nil && !errors.Is(aerr, dcs.ErrNotLeader) {
				failed = true
				// The store could not be asked whether somebody else holds the key. Until the
				// lease deadline nobody can (with failsafe mode, every member promised not to
				// race): the lease-deadline rule and the fence timer decide, as for any renewal
				// error. Seen with Consul cut off from a failsafe primary: the backend knew its
				// session had lapsed, while every member still confirmed the primary.
				return err
			}
		}
		// Decide's lost-leader-key rule, applied at once: once the lease is marked lost the
		// next view no longer shows LeaseHeld, and writes must not wait a cycle.
		n.leaseLost()
		if fence {
			n.pg.Fence(0)
		}
		n.Wake()
		return err
	default:
		return err // the lease-deadline rule and the fence timer handle a lasting failure
	}
}

func (n *Node) hasLease() bool {
	held, _ := n.lease.state()
	return held
}
