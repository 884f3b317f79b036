package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"syscall"
	"time"

	"github.com/tusker-ha/tusker/test/harness"
)

// The faults, in the order of docs/nemesis.md.
const (
	killTusker   = "kill-tusker"   // SIGKILL of the tusker process; postgres keeps running
	killPostgres = "kill-postgres" // SIGKILL of the postmaster; tusker stays
	killNode     = "kill-node"     // both at once: a machine that dies
	freezeTusker = "freeze-tusker" // SIGSTOP of tusker for longer than ttl, then SIGCONT
	partition    = "partition"     // the node's network link down: cut from peers, DCS and clients elsewhere
	dcsCut       = "dcs-cut"       // the primary's traffic to the DCS dropped; peers and clients still reach it
	dcsOutage    = "dcs-outage"    // the DCS unreachable from every node
	switchover   = "switchover"    // not a fault: a planned switchover between faults
)

var faultKinds = []string{killTusker, killPostgres, killNode, freezeTusker, partition, dcsCut, dcsOutage}

// A step is one scheduled fault, drawn from the seed before the run starts; which node is "the
// primary" is resolved when the step runs.
type step struct {
	Kind       string
	OnPrimary  bool          // target the primary (else the Replica-th replica, by name)
	Replica    int           // 0 or 1
	Hold       time.Duration // how long the fault lasts (for kills of tusker: until it is restarted)
	Switchover bool          // a switchover follows once the cluster healed
}

// schedule draws n faults of the given kinds (nil: all) from seed. The first ones are every kind
// once, in a random order, so that even a short run sees each fault.
func schedule(seed uint64, n int, ttl time.Duration, only []string) []step {
	rng := rand.New(rand.NewPCG(seed, 0x7e5e5))
	pool := faultKinds
	if len(only) > 0 {
		pool = only
	}
	kinds := make([]string, 0, n)
	first := append([]string(nil), pool...)
	rng.Shuffle(len(first), func(i, j int) { first[i], first[j] = first[j], first[i] })
	kinds = append(kinds, first...)
	for len(kinds) < n {
		kinds = append(kinds, pool[rng.IntN(len(pool))])
	}
	kinds = kinds[:n]
	ms := func(lo, hi time.Duration) time.Duration {
		return lo + time.Duration(rng.Int64N(int64(hi-lo)/int64(time.Millisecond)))*time.Millisecond
	}
	steps := make([]step, n)
	for i, k := range kinds {
		s := step{Kind: k, OnPrimary: rng.IntN(2) == 0, Replica: rng.IntN(2)}
		switch k {
		case killTusker, killNode:
			// Restarted before or well after the lease ran out: adopting a running postgres and
			// rejoining as a replica are both exercised.
			s.Hold = ms(500*time.Millisecond, ttl+3*time.Second)
		case freezeTusker, partition, dcsCut, dcsOutage:
			s.Hold = ms(ttl+time.Second, ttl+3*time.Second)
		}
		switch k {
		case dcsCut:
			s.OnPrimary = true
		case dcsOutage:
			s.OnPrimary = false
		}
		s.Switchover = rng.IntN(3) == 0
		steps[i] = s
	}
	return steps
}

// inject runs one fault to its end (the fault is lifted when inject returns, also on error or
// cancellation) and names what it hit. healed, when not nil, is one more condition of the cluster
// being whole again: a status published before the fault could otherwise pass for healthy.
func (r *runner) inject(ctx context.Context, s step) (string, func() error, error) {
	p, err := r.c.Primary(ctx)
	if err != nil {
		return "", nil, fmt.Errorf("before %s: %w", s.Kind, err)
	}
	target := p
	if !s.OnPrimary {
		var reps []*harness.Node
		for _, n := range r.c.Nodes {
			if n != p {
				reps = append(reps, n)
			}
		}
		target = reps[s.Replica%len(reps)]
	}
	role := "replica"
	if target == p {
		role = "primary"
	}
	what := fmt.Sprintf("%s %s (%s)", s.Kind, target.Name, role)
	host := r.net.Hosts[target.Name]
	dcsHost := r.net.Hosts["dcs"]
	switch s.Kind {
	case killTusker:
		target.Kill()
		sleep(ctx, s.Hold)
		return what, nil, target.Start()
	case killPostgres:
		old := target.PostmasterPID()
		target.KillPostgres()
		healed := func() error {
			// Until tusker noticed, its last status still says "running".
			if pid := target.PostmasterPID(); pid == old || pid == 0 || syscall.Kill(pid, 0) != nil {
				return fmt.Errorf("postgres on %s has not been restarted yet", target.Name)
			}
			return nil
		}
		return what, healed, nil
	case killNode:
		target.KillNode()
		sleep(ctx, s.Hold)
		return what, nil, target.Start()
	case freezeTusker:
		target.Signal(syscall.SIGSTOP)
		sleep(ctx, s.Hold)
		target.Signal(syscall.SIGCONT)
		return what, nil, nil
	case partition:
		if err := host.Cut(ctx); err != nil {
			return what, nil, err
		}
		sleep(ctx, s.Hold)
		return what, nil, host.Heal(context.Background())
	case dcsCut:
		if err := dcsHost.Drop(ctx, host.IP); err != nil {
			return what, nil, err
		}
		sleep(ctx, s.Hold)
		return what, nil, dcsHost.Undrop(context.Background(), host.IP)
	case dcsOutage:
		if err := dcsHost.Cut(ctx); err != nil {
			return s.Kind, nil, err
		}
		sleep(ctx, s.Hold)
		return s.Kind, nil, dcsHost.Heal(context.Background())
	}
	return what, nil, fmt.Errorf("unknown fault %q", s.Kind)
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
