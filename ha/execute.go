package ha

// Act: carrying out Decide's plan. Quick actions run in the loop; long ones (Job) run in a
// goroutine of their own with a copy of what they need (jobEnv), and report back through the
// loop's inbox (mailbox.go).

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tusker-ha/tusker/config"
	"github.com/tusker-ha/tusker/dcs"
	"github.com/tusker-ha/tusker/patroni"
	"github.com/tusker-ha/tusker/postgres"
)

func (n *Node) execute(ctx context.Context, a Action, v View) error {
	switch a.Kind {
	case Fence:
		grace := FenceGrace(v, n.now())
		n.leaseLost()
		n.forgetRejoin()
		n.pg.Fence(grace)
		return nil
	case RenewLeader:
		return n.renew(ctx)
	case ExtendLease:
		return n.extendLease(v)
	case AcquireLeader:
		ok, err := n.acquire(ctx, n.settings())
		if err != nil {
			return err
		}
		if !ok {
			return errLostRace
		}
		n.log.Info("acquired the leader lock")
		return nil
	case ReleaseLeader:
		n.leaseLost()
		if HandoverBackoff(v) {
			// A crashed primary hands over: it stays down until somebody else leads, or for a
			// ttl when nobody can (Decide's crash-handover rule).
			ttl, _, _ := n.dyn.TimingDurations()
			n.raceBackoff = n.now().Add(ttl)
		}
		return n.dcs.ReleaseLeader(ctx)
	case ClearFailover:
		return n.dcs.DeleteFailover(ctx)
	case WriteSyncKey, DeleteSyncKey, SetSyncGUC, RestoreSyncGUC:
		return n.executeSync(ctx, a, v)
	case CancelAction:
		n.cancelAction()
		return nil
	case Handover:
		up := a.Upstream
		return n.startJob(ctx, JobSwitchover, func(ctx context.Context) error { return n.handover(ctx, up) })
	case ClaimInitialize:
		if n.sysID == "" {
			return errors.New("claiming initialize: system identifier unknown")
		}
		_, err := n.dcs.Initialize(ctx, n.sysID, true)
		return err
	case RefuseForeignData:
		return nil
	case Bootstrap:
		won, err := n.dcs.Initialize(ctx, "", true)
		if err != nil || !won {
			return err
		}
		n.log.Info("won the initialize race: bootstrapping a new cluster")
		return n.startJob(ctx, JobBootstrap, n.bootstrap)
	default:
		return n.executeLong(ctx, a, v)
	}
}

// executeLong starts the long actions that change the local PostgreSQL's role or data.
func (n *Node) executeLong(ctx context.Context, a Action, v View) error {
	switch a.Kind {
	case StartPrimary:
		n.forgetRejoin()
		return n.startJob(ctx, JobStart, func(ctx context.Context) error {
			if err := n.activateWatchdog(n.env.dyn); err != nil {
				return fmt.Errorf("starting as primary: %w", err)
			}
			if err := n.pg.Start(ctx, postgres.StartOptions{Role: postgres.Primary}); err != nil {
				return err
			}
			n.setRole("primary")
			n.fire("on_start")
			return nil
		})
	case Promote:
		return n.startJob(ctx, JobPromote, n.promote)
	case DemoteCluster:
		up, err := n.upstreamOf(v.Cluster, RemoteUpstream)
		if err != nil {
			return err
		}
		n.forgetRejoin()
		return n.startJob(ctx, JobDemoteCluster, func(ctx context.Context) error {
			// A clean shutdown: the shutdown checkpoint is streamed to the standbys first, so
			// that this cluster's members need no rewind to follow the new standby leader.
			if err := n.pg.Stop(ctx, postgres.StopFast); err != nil {
				return err
			}
			return n.startReplica(ctx, &up)
		})
	case Demote:
		n.setUpstream("")
		n.forgetRejoin()
		return n.startJob(ctx, JobDemote, func(ctx context.Context) error {
			n.pg.Fence(0)
			n.disableWatchdog()
			if err := n.pg.Stop(ctx, postgres.StopImmediate); err != nil {
				return err
			}
			n.setRole("demoted")
			n.fire("on_role_change")
			return nil
		})
	case StopReplica:
		n.setUpstream("")
		n.forgetRejoin()
		return n.startJob(ctx, JobStopReplica, func(ctx context.Context) error {
			return n.pg.Stop(ctx, postgres.StopFast)
		})
	default:
		return n.executeRejoin(ctx, a, v)
	}
}

// executeRejoin starts the long actions that make this member a replica of another: a clone,
// a start or a re-pointing as replica, the rewind check and the rewind.
func (n *Node) executeRejoin(ctx context.Context, a Action, v View) error {
	switch a.Kind {
	case Clone, Reclone:
		var up *postgres.Upstream // none: no leader runs, a no_leader method restores from a backup
		if a.Upstream != "" || a.Kind == Reclone {
			u, err := n.upstreamOf(v.Cluster, a.Upstream)
			if err != nil {
				return err
			}
			up = &u
		}
		job := JobClone
		if a.Kind == Reclone {
			job = JobReclone
		}
		return n.startJob(ctx, job, func(ctx context.Context) error { return n.clone(ctx, up, a.Kind == Reclone) })
	case StartReplica:
		var up *postgres.Upstream
		if a.Upstream != "" {
			u, err := n.upstreamOf(v.Cluster, a.Upstream)
			if err != nil {
				return err
			}
			up = &u
		}
		return n.startJob(ctx, JobStart, func(ctx context.Context) error { return n.startReplica(ctx, up) })
	case Follow:
		up, err := n.upstreamOf(v.Cluster, a.Upstream)
		if err != nil {
			return err
		}
		// A fast-forward streams without a slot; so does a standby leader whose
		// standby_cluster names no primary_slot_name (the remote cluster has none for it).
		up.NoSlot = up.NoSlot || a.FastForward
		return n.startJob(ctx, JobFollow, func(ctx context.Context) error {
			if err := n.pg.Follow(ctx, up); err != nil {
				return err
			}
			n.postUpstream(up.Name)
			return nil
		})
	case ProbeRewind:
		up, err := n.upstreamOf(v.Cluster, a.Upstream)
		if err != nil {
			return err
		}
		return n.startJob(ctx, JobRewindCheck, func(ctx context.Context) error {
			d, err := n.pg.NeedsRewind(ctx, up)
			if err != nil {
				return err
			}
			n.post(func() { n.diverged[up.Name] = d })
			n.log.Info("rewind check", "leader", up.Name, "diverged", d)
			return nil
		})
	case Rewind:
		up, err := n.upstreamOf(v.Cluster, a.Upstream)
		if err != nil {
			return err
		}
		return n.startJob(ctx, JobRewind, func(ctx context.Context) error {
			if err := n.pg.Rewind(ctx, up); err != nil {
				n.post(func() { n.rewindFailed[up.Name] = true })
				return err
			}
			n.post(func() { n.diverged[up.Name] = false })
			return n.startReplica(ctx, &up)
		})
	}
	return fmt.Errorf("unknown action %v", a.Kind)
}

// clone (a long action) creates the data directory of a replica of up (nil: no leader runs)
// with create_replica_methods, after removing the data directory when remove, and starts the
// replica.
func (n *Node) clone(ctx context.Context, up *postgres.Upstream, remove bool) error {
	if RemoveBeforeClone(ReplicaMethods(n.cfg.PostgreSQL.CreateReplicaMethods, up != nil), remove) {
		n.log.Warn("removing the data directory to clone it again", "from", up.Name)
		if err := n.pg.RemoveDataDir(); err != nil {
			return err
		}
	}
	if err := n.createReplica(ctx, up); err != nil {
		return err
	}
	return n.startReplica(ctx, up)
}

// forgetRejoin drops rewind-check results: after a role change they no longer describe the
// data. Loop goroutine only: a long action posts it.
func (n *Node) forgetRejoin() {
	n.diverged, n.rewindFailed = map[string]bool{}, map[string]bool{}
}

// setUpstream records the member postgres streams from. Loop goroutine only.
func (n *Node) setUpstream(name string) { n.upstream = name }

// postUpstream is setUpstream from a long action.
func (n *Node) postUpstream(name string) { n.post(func() { n.upstream = name }) }

// startReplica (a long action) starts postgres as a replica of up (nil: no upstream).
func (n *Node) startReplica(ctx context.Context, up *postgres.Upstream) error {
	if err := n.pg.Start(ctx, postgres.StartOptions{Role: postgres.Replica, Upstream: up}); err != nil {
		return err
	}
	name := ""
	if up != nil {
		name = up.Name
	}
	n.post(func() { n.handedOver, n.upstream = false, name })
	prev := n.callbackRole()
	role := "replica"
	if up != nil && up.Name == RemoteUpstream {
		role = "standby_leader"
	}
	n.setRole(role)
	if prev == "primary" || prev == "demoted" {
		n.fire("on_role_change")
	} else {
		n.fire("on_start")
	}
	return nil
}

// jobEnv is what a long action may read of the loop's state: a copy taken when it starts. The
// loop goes on changing its own state meanwhile; the action reports back through the inbox.
type jobEnv struct {
	dyn      config.Dynamic
	settings Settings
	cluster  *dcs.Cluster
}

// startJob runs a long action in its own goroutine; the loop sees it in View.Job until it ends.
// Loop goroutine only.
func (n *Node) startJob(ctx context.Context, job Job, fn func(context.Context) error) error {
	return n.startJobResult(ctx, job, fn, nil)
}

// startJobResult is startJob that also sends the action's error (nil: success) to result.
func (n *Node) startJobResult(ctx context.Context, job Job, fn func(context.Context) error, result chan<- error) error {
	name := job.String()
	if n.job != NoJob {
		return fmt.Errorf("%s: %s already in progress", name, n.job)
	}
	actx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	n.job, n.jobCancel, n.jobDone = job, cancel, done
	n.env = jobEnv{dyn: n.dyn, settings: n.settings(), cluster: n.lastCluster}
	run := func() {
		defer close(done)
		defer cancel()
		start := n.now()
		err := fn(actx)
		if err != nil {
			n.log.Error(name+" failed", "err", err, "took", n.since(start).Round(time.Millisecond))
		} else {
			n.log.Info(name+" done", "took", n.since(start).Round(time.Millisecond))
		}
		if result != nil {
			result <- err
		}
		// After every report the action posted: the loop sees it end with its results applied.
		n.post(func() {
			if n.jobDone == done {
				n.job, n.jobCancel, n.jobDone = NoJob, nil, nil
			}
		})
		// A success is acted on at once (a new primary published, the next step taken). A
		// failure is retried on the next regular cycle, as Patroni does once per loop: waking
		// now would retry a start that fails in a second back to back (the scenario tests saw
		// it: crashed-primary).
		if err == nil {
			n.Wake()
		}
	}
	if n.runJob != nil {
		n.runJob(job, run)
	} else {
		go run()
	}
	return nil
}

// cancelAction stops a running action, waits for it and applies what it reported. Loop
// goroutine only.
func (n *Node) cancelAction() {
	cancel, done := n.jobCancel, n.jobDone
	if cancel == nil {
		return
	}
	cancel()
	if n.awaitJob != nil {
		n.awaitJob(done)
	} else {
		<-done
	}
	n.drain()
}

// upstreamOf resolves a member's PostgreSQL address from its conn_url.
func (n *Node) upstreamOf(c *dcs.Cluster, name string) (postgres.Upstream, error) {
	if name == RemoteUpstream {
		return n.remoteUpstream()
	}
	m := c.Member(name)
	if m == nil {
		return postgres.Upstream{}, fmt.Errorf("member %q has no member key", name)
	}
	host, port, err := patroni.ConnHostPort(m.Data.ConnURL)
	if err != nil {
		return postgres.Upstream{}, fmt.Errorf("member %q: %w", name, err)
	}
	up := postgres.Upstream{Name: name, Host: host, Port: port}
	if sc := n.dyn.Standby(); sc != nil {
		// The members of a standby cluster read the remote cluster's archive too (Patroni).
		up.Recovery = map[string]string{}
		if sc.RestoreCommand != "" {
			up.Recovery["restore_command"] = sc.RestoreCommand
		}
		if sc.ArchiveCleanupCommand != "" {
			up.Recovery["archive_cleanup_command"] = sc.ArchiveCleanupCommand
		}
	}
	return up, nil
}

// remoteUpstream is the remote primary of a standby cluster: standby_cluster's host and port
// (none: its archive alone), its slot there, and the recovery settings that come with it.
func (n *Node) remoteUpstream() (postgres.Upstream, error) {
	return remoteOf(n.dyn)
}

// remoteOf is the remote primary of the standby cluster d configures.
func remoteOf(d config.Dynamic) (postgres.Upstream, error) {
	sc := d.Standby()
	if sc == nil {
		return postgres.Upstream{}, errors.New("the remote primary: standby_cluster is not set")
	}
	up := postgres.Upstream{Name: RemoteUpstream, Slot: sc.PrimarySlotName, NoSlot: sc.PrimarySlotName == "",
		Recovery: map[string]string{}}
	if sc.Host != "" {
		up.Host, up.Port = sc.Host, sc.RemotePort()
	}
	for k, v := range map[string]string{"restore_command": sc.RestoreCommand,
		"archive_cleanup_command": sc.ArchiveCleanupCommand, "recovery_min_apply_delay": sc.RecoveryMinApplyDelay} {
		if v != "" {
			up.Recovery[k] = v
		}
	}
	return up, nil
}
