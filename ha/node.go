package ha

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/tusker-ha/tusker/callbacks"
	"github.com/tusker-ha/tusker/config"
	"github.com/tusker-ha/tusker/dcs"
	"github.com/tusker-ha/tusker/patroni"
	"github.com/tusker-ha/tusker/postgres"
	"github.com/tusker-ha/tusker/watchdog"
)

// ErrForeignData ends Run when the data directory belongs to another cluster.
var ErrForeignData = errors.New("data directory belongs to another cluster")

// Options wire a Node to its configuration, store and PostgreSQL.
type Options struct {
	Config  *config.Config
	DCS     dcs.DCS
	PG      PG
	Logger  *slog.Logger
	Version string
	// Prober asks other members for their state during a leader race (default: HTTP GET /patroni).
	Prober Prober
	// PeerClient makes the requests to other members' REST APIs (probes with the default Prober,
	// failsafe confirmations); default: plain HTTP with keep-alive. With TLS between members it
	// carries the CA and the client certificate (see internal/apiclient).
	PeerClient *http.Client
	// ReloadConfig re-reads the local configuration for POST /reload (as SIGHUP does); nil means
	// POST /reload only reloads postgres.
	ReloadConfig func() (*config.Config, error)
	// Clock is the loop's time source (default: the wall clock).
	Clock Clock
	// Failsafe sends the POST /failsafe confirmations (default: HTTP with PeerClient).
	Failsafe FailsafePoster
}

// errLostRace ends a plan when another member took the lock first.
var errLostRace = errors.New("another member took the leader lock first")

// Node runs the HA loop of one member: observe, decide, act, publish.
type Node struct {
	cfg     *config.Config
	dcs     dcs.DCS
	pg      PG
	log     *slog.Logger
	version string
	prober  Prober
	clock   Clock
	fsPost  FailsafePoster
	reread  func() (*config.Config, error)
	metrics *metrics

	lease  *lease // the leader lease and its fence timer (lease.go): not the loop's
	status atomic.Pointer[Status]
	wake   chan struct{}
	// name and scope never change: management calls read them from other goroutines.
	name, scope string
	cb          *callbacks.Runner
	wd          *watchdog.Watchdog
	// cfgUpdates carries a re-read local configuration (SIGHUP) to the loop.
	cfgUpdates chan *config.Config
	reloadReq  atomic.Bool // POST /reload: reload postgres on the next cycle

	// inbox carries the reports of long actions and the requests of management calls to the
	// loop (mailbox.go); loopDone is closed when Run returned.
	inbox    *mailbox
	loopDone chan struct{}
	// initialDyn is bootstrap.dcs: the dynamic configuration management calls see before the
	// first published status.
	initialDyn config.Dynamic
	// cbRole is the role callbacks are told (primary, replica, demoted): set by whoever changes
	// the role, the loop or a long action, and read by both when they fire a callback.
	cbRole atomic.Pointer[string]
	// failsafeGrant is the last POST /failsafe this replica accepted: the REST handler stores
	// it without waiting for the loop (a busy loop must not make the primary fence), and the
	// loop reads it.
	failsafeGrant atomic.Pointer[failsafeGrant]

	// The loop's state: only the loop goroutine reads or writes these (long actions and
	// management calls go through the inbox).
	dyn         config.Dynamic
	dynVersion  int64 // version of the config key last applied (or rejected)
	lastCluster *dcs.Cluster
	lastSeen    time.Time
	lastReason  string
	// dcsErrLogged rate-limits the DCS error log line during an outage.
	dcsErrLogged time.Time
	sysID        string
	canRewind    *bool
	lastPG       postgres.State
	pgReady      bool
	downSince    time.Time // leader: postgres first seen down
	stalledSince time.Time // replica: WAL receiver first seen not streaming (from stalledFrom)
	stalledFrom  string
	lastWAL      int64
	walChangedAt time.Time
	adopted      bool // the first observation of postgres was made
	adoptRunning bool // ... and found it running: on_start is still due
	pgConf       postgres.Config
	// syncGUC is the synchronous_standby_names tusker sets (nil: the configured one), and
	// syncConfirm the WAL position from which it is known to be in effect (0: unknown).
	syncGUC      *postgres.SyncNames
	syncConfirm  int64
	members      memberMemory // who was in the DCS lately
	job          Job
	jobCancel    context.CancelFunc
	jobDone      chan struct{} // closed when the running job's goroutine returned
	raceBackoff  time.Time
	lastLeader   string // the leader key's holder when one was last seen (POST /failsafe)
	failsafeOn   bool   // leader: failsafe confirmations are keeping it primary
	renewFailed  bool   // leader: the last renewal failed with the store not answering (View.RenewFailed)
	failsafeGen  uint64 // the lease's generation when the last confirmation round started
	restartAt    *ScheduledRestart
	handedOver   bool            // stopped as the old primary of a switchover, not started since
	runCtx       context.Context // the loop's context, for actions started by management calls
	upstream     string
	diverged     map[string]bool // leader name -> rewind check result
	rewindFailed map[string]bool
	checkpointed *bool // checkpoint_after_promote published in our member key
	// Replication slots (slots.go): when the leader last saw each member slot (retain_slots),
	// the slots this process knows are tusker's (the only ones it may drop), and the slots it
	// already warned about.
	retainSeen  map[string]time.Time
	slotsOwned  map[string]bool
	slotsWarned map[string]bool

	// runJob, when set, runs a long action instead of a goroutine of its own, and awaitJob
	// waits for a cancelled one: the scenario tests run jobs at a simulated time, which makes
	// a simulated cluster deterministic.
	runJob   func(job Job, run func())
	awaitJob func(done <-chan struct{})
	// env is the running long action's copy of the loop's state (jobEnv): written by startJob
	// before the action starts, read only by the action.
	env jobEnv
}

// NewNode builds a node; Run starts it.
func NewNode(o Options) *Node {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.PeerClient == nil {
		o.PeerClient = probeClient
	}
	if o.Prober == nil {
		o.Prober = HTTPProber{Client: o.PeerClient}
	}
	if o.Clock == nil {
		o.Clock = wallClock{}
	}
	if o.Failsafe == nil {
		o.Failsafe = HTTPFailsafe{Client: o.PeerClient}
	}
	c := o.Config
	n := &Node{cfg: c, dcs: o.DCS, pg: o.PG, log: o.Logger, version: o.Version, prober: o.Prober, clock: o.Clock, fsPost: o.Failsafe, reread: o.ReloadConfig,
		wake: make(chan struct{}, 1), dyn: c.Bootstrap.DCS, name: c.Name, scope: c.Scope,
		cfgUpdates: make(chan *config.Config, 1), inbox: newMailbox(), loopDone: make(chan struct{}),
		initialDyn: c.Bootstrap.DCS,
		diverged:   map[string]bool{}, rewindFailed: map[string]bool{},
		slotsOwned: map[string]bool{}, slotsWarned: map[string]bool{}}
	n.metrics = newMetrics(c.Scope, c.Name)
	n.lease = &lease{clock: o.Clock, renewedAt: &n.metrics.renewedAt, fence: n.fenceNow}
	if o.DCS != nil {
		n.dcs = timedDCS{DCS: o.DCS, m: n.metrics}
	}
	n.cb = callbacks.New(o.Logger, nil)
	mode, err := watchdog.ParseMode(c.Watchdog.Mode)
	if err != nil {
		mode = watchdog.Automatic
	}
	n.wd = watchdog.New(watchdog.Config{Mode: mode, Device: c.Watchdog.Device,
		SafetyMargin: c.Watchdog.EffectiveSafetyMargin(n.dyn.TTL)}, o.Logger)
	return n
}

// UpdateConfig hands a re-read local configuration (SIGHUP) to the loop, which applies it once
// no long action is running.
func (n *Node) UpdateConfig(c *config.Config) {
	select {
	case <-n.cfgUpdates:
	default:
	}
	n.cfgUpdates <- c
	n.Wake()
}

// Status is the latest published status (nil before the first cycle).
func (n *Node) Status() *Status { return n.status.Load() }

// Wake makes the loop run a cycle now.
func (n *Node) Wake() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// Run loops until ctx ends, then shuts down: postgres stopped cleanly, the leader key released,
// the member key removed. It returns a non-nil error only for conditions that must stop tusker.
func (n *Node) Run(ctx context.Context) error {
	n.prepare(ctx)
	var fatal error
	streak := 0
	for ctx.Err() == nil {
		start, wallStart := n.now(), time.Now()
		plan, err := n.step(ctx)
		if err != nil {
			fatal = err
			break
		}
		n.metrics.loop.Observe(time.Since(wallStart).Seconds())
		// At most twice in a row: an action that keeps failing must not make the loop a busy one.
		if RunAgainNow(plan) && streak < 2 {
			streak++
			continue
		}
		streak = 0
		_, loopWait, _ := n.dyn.TimingDurations()
		n.wait(ctx, NextCycleWait(loopWait, start, n.now(), plan.WakeAt, n.scheduledRestartAt()))
	}
	n.shutdown()
	close(n.loopDone)
	n.drain() // what was posted meanwhile: an ask waiting for the loop gets errNotRunning
	return fatal
}

// wait sleeps until the next cycle is due: d passed, a DCS watch event on the leader, failover or
// config key, a Wake (a long action ended, a management call), or ctx ended. It serves the inbox
// meanwhile, so that a management call is answered without waiting for the next cycle.
func (n *Node) wait(ctx context.Context, d time.Duration) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
			return
		case <-n.dcs.Changes():
			return
		case <-n.wake:
			return
		case <-n.inbox.ready:
			n.drain()
		}
	}
}

// settings derives the rule inputs from the dynamic and local configuration.
func (n *Node) settings() Settings {
	ttl, lw, rt := n.dyn.TimingDurations()
	pgc := n.cfg.PostgreSQL
	return Settings{
		Pause:               n.dyn.Pause,
		PrimaryStartTimeout: time.Duration(n.dyn.PrimaryStartTimeout) * time.Second,
		PrimaryRaceBackoff:  time.Duration(n.dyn.PrimaryRaceBackoff) * time.Second,
		FailsafeMode:        n.dyn.FailsafeMode,
		WatchdogRequired:    n.wd.Mode() == watchdog.Required,
		SyncMode:            syncModeOf(n.dyn),
		SyncStrict:          n.dyn.SynchronousModeStrict,
		SyncNodeCount:       n.dyn.SynchronousNodeCount,
		MaxLagOnSyncnode:    n.dyn.MaximumLagOnSyncnode,
		TTL:                 ttl, LoopWait: lw, RetryTimeout: rt,
		MaximumLagOnFailover:      n.dyn.MaximumLagOnFailover,
		CheckTimeline:             n.dyn.CheckTimeline,
		UsePgRewind:               n.cfg.EffectiveUsePgRewind(n.dyn),
		RemoveOnRewindFailure:     pgc.RemoveDataDirectoryOnRewindFailure,
		RemoveOnDivergedTimelines: pgc.RemoveDataDirectoryOnDivergedTimelines,
		NoFailover:                !n.cfg.Tags.Eligible(),
		ReplicateFrom:             patroni.ReplicateFrom(n.cfg.Tags.Extra),
		Priority:                  n.cfg.Tags.Priority(),
		CloneWithoutLeader:        slices.ContainsFunc(pgc.CreateReplicaMethods, config.ReplicaMethod.WorksWithoutLeader),
		StandbyCluster:            n.dyn.Standby() != nil,
	}
}

// syncModeOf is the synchronous mode in effect: off in a standby cluster, whose leader
// replicates from the remote primary and has no commits of its own to wait for (as Patroni).
func syncModeOf(d config.Dynamic) string {
	if d.Standby() != nil {
		return "off"
	}
	return d.SyncMode()
}

// prepare readies a Node for its first cycle.
func (n *Node) prepare(ctx context.Context) {
	n.runCtx = ctx
	n.pgConf = n.postgresConfig()
}

// step is one whole cycle: observe, decide, act, publish. The error is one that must stop tusker.
func (n *Node) step(ctx context.Context) (Plan, error) {
	plan, view := n.cycle(ctx)
	if plan.Has(RefuseForeignData) {
		return plan, fmt.Errorf("%w: %s", ErrForeignData, plan.Reason)
	}
	n.publish(view, plan)
	return plan, nil
}

// cycle is one observe-decide-act round.
func (n *Node) cycle(ctx context.Context) (Plan, View) {
	n.applyLocalChanges(ctx)
	view := n.observe(ctx)
	if n.adopted && view.Job == NoJob {
		// Dynamic parameters or pg_hba changed (or were first read after start): apply them.
		n.reloadPostgres(ctx, false)
	}
	plan := Decide(view)
	if plan.Reason != n.lastReason {
		n.log.Info(plan.Reason, "actions", fmt.Sprint(kindsOf(plan)))
		n.lastReason = plan.Reason
	}
	for _, a := range plan.Actions {
		if err := n.execute(ctx, a, view); err != nil {
			n.log.Error("action failed", "action", a.Kind.String(), "upstream", a.Upstream, "err", err)
			break
		}
	}
	// A renewal that failed in this cycle (the store not answering) starts a failsafe round at
	// once: waiting for the next cycle's read, which can take retry_timeout too after the member
	// key's write did, would let the fence timer stop a primary every member still confirms.
	if !view.FailsafeConfirmed && plan.Has(RenewLeader) {
		after := view
		after.RenewFailed = n.renewFailed
		after.LeaseHeld, _ = n.lease.state()
		if FailsafeConfirmationNeeded(after) {
			_, _, rt := n.dyn.TimingDurations()
			n.failsafeRound(ctx, &after, rt)
			if Decide(after).Has(ExtendLease) {
				if err := n.extendLease(after); err != nil {
					n.log.Warn(err.Error())
				} else {
					n.failsafeOn = true
				}
			}
		}
	}
	return plan, view
}

func kindsOf(p Plan) []string {
	out := make([]string, 0, len(p.Actions))
	for _, a := range p.Actions {
		s := a.Kind.String()
		if a.Upstream != "" {
			s += "(" + a.Upstream + ")"
		}
		out = append(out, s)
	}
	return out
}

// shutdown stops postgres cleanly and hands the lock over: the leader key is released only after
// postgres stopped, so the replicas have received everything it wrote.
func (n *Node) shutdown() {
	n.cancelAction()
	defer n.cb.Close()
	if n.dyn.Pause {
		// Maintenance mode: postgres keeps running and the leader key stays (it expires with the
		// lease unless a restarted tusker renews it first); replicas do not race while paused.
		n.leaseLost()
		n.disableWatchdog()
		n.log.Info("pause: shutting down tusker, leaving postgres running")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if n.pg.Running() {
		n.publishShutdown("stopping")
		n.log.Info("shutting down: stopping postgres")
		if err := n.stopPostgres(ctx, postgres.StopFast, true, n.retryTimeout()); err != nil {
			n.log.Error("stopping postgres failed", "err", err)
		}
	}
	n.disableWatchdog()
	n.publishShutdown("stopped")
	_, _, rt := n.dyn.TimingDurations()
	dctx, dcancel := context.WithTimeout(context.Background(), rt)
	defer dcancel()
	if n.hasLease() {
		n.leaseLost()
		if err := n.dcs.ReleaseLeader(dctx); err != nil {
			n.log.Warn("releasing the leader key failed; it expires with the lease", "err", err)
		} else {
			n.log.Info("released the leader key")
		}
	}
	if err := n.dcs.DeleteMember(dctx); err != nil {
		n.log.Warn("removing the member key failed; it expires with the lease", "err", err)
	}
}

func (n *Node) retryTimeout() time.Duration {
	_, _, rt := n.dyn.TimingDurations()
	return rt
}
