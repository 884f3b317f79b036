package ha

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
		diverged:   map[string]bool{}, rewindFailed: map[string]bool{}}
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
		SyncMode:            n.dyn.SyncMode(),
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
		Priority:                  n.cfg.Tags.Priority(),
	}
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

// observe reads the DCS, the local postgres and, when racing, the peers, into one View.
func (n *Node) observe(ctx context.Context) View {
	_, _, rt := n.dyn.TimingDurations()
	v := View{Me: n.cfg.Name}

	cl, err := n.dcs.Cluster(ctx)
	if err != nil {
		if n.since(n.dcsErrLogged) > 10*time.Second {
			n.log.Warn("reading the cluster from the DCS failed", "err", err)
			n.dcsErrLogged = n.now()
		}
		v.Cluster = n.lastCluster
		if v.Cluster == nil {
			v.Cluster = &dcs.Cluster{}
		}
	} else {
		v.DCSOK = true
		v.Cluster = cl
		n.dcsErrLogged = time.Time{}
		n.lastCluster, n.lastSeen = cl, n.now()
		if l := cl.LeaderName(); l != "" {
			n.lastLeader = l
		}
		ttl, _, _ := n.dyn.TimingDurations()
		n.members.update(cl, n.lastSeen, 2*ttl)
		for _, k := range cl.Invalid {
			n.log.Debug("skipping a DCS key with an unparsable value", "key", k)
		}
		n.applyDynamic(cl)
	}
	v.Settings = n.settings()

	v.LeaseHeld, v.LeaseExpiry = n.lease.state()
	v.Job = n.job
	v.RaceBackoffUntil = n.raceBackoff
	v.RenewFailed = n.renewFailed
	v.FailsafeLeader = n.failsafeLeader()

	v.Local = n.observeLocal(ctx, rt, v.Cluster)
	v.Local.Upstream = n.upstream
	v.Local.HandedOver = n.handedOver && !v.Local.Running
	v.Local.WatchdogUsable = n.watchdogUsable()
	n.observeSync(&v)
	leader := v.Cluster.LeaderName()

	n.observeProgress(&v.Local, leader)
	if d, ok := n.diverged[leader]; ok && leader != "" {
		v.Local.Diverged = &d
	}
	v.Local.RewindFailed = n.rewindFailed[leader]

	if needPeers(v, n.cfg.Name, n.now()) {
		probe := v.Cluster
		if leader == "" {
			// A race: ask the members whose keys expired in a DCS outage too.
			probe = &dcs.Cluster{Members: n.members.withAbsent(v.Cluster)}
		}
		v.Peers = n.probePeers(ctx, probe, rt)
		v.PeersProbed = true
	}

	// Failsafe mode: a leader cut off from the DCS asks every member to confirm it.
	if FailsafeConfirmationNeeded(v) {
		n.failsafeRound(ctx, &v, rt)
	}
	n.failsafeOn = v.FailsafeConfirmed
	v.Now = n.now()
	return v
}

// observeProgress keeps the timers of the local server's progress: since when the leader's
// postgres is down (primary_start_timeout), since when a replica's receiver stalled, and when the
// WAL position last moved (primary_race_backoff).
func (n *Node) observeProgress(l *Local, leader string) {
	// Bookkeeping for primary_start_timeout and primary_race_backoff.
	if leader == n.cfg.Name && l.DataDir == DataDirValid && !l.Ready {
		if n.downSince.IsZero() {
			n.downSince = n.now()
		}
	} else if l.Ready {
		n.downSince = time.Time{}
	}
	l.DownSince = n.downSince
	if l.Ready && !l.Primary && !n.lastPG.Streaming && l.Upstream != "" {
		if n.stalledSince.IsZero() || n.stalledFrom != l.Upstream {
			n.stalledSince, n.stalledFrom = n.now(), l.Upstream
		}
	} else {
		n.stalledSince, n.stalledFrom = time.Time{}, ""
	}
	l.StalledSince = n.stalledSince
	if l.WALEnd != n.lastWAL {
		n.lastWAL, n.walChangedAt = l.WALEnd, n.now()
	}
	l.WALChangedAt = n.walChangedAt
}

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

func (n *Node) connURL() string { return "postgres://" + n.cfg.PostgreSQL.ConnectAddress + "/postgres" }
func (n *Node) apiURL() string {
	scheme := "http://"
	if n.cfg.RestAPI.CertFile != "" {
		scheme = "https://"
	}
	return scheme + n.cfg.RestAPI.ConnectAddress + "/patroni"
}

// applyDynamic adopts the dynamic configuration from the config key when it parses and is valid.
func (n *Node) applyDynamic(cl *dcs.Cluster) {
	if cl.Config == nil || cl.Config.Version == n.dynVersion {
		return // unchanged since the last read: applied, or already reported as invalid
	}
	n.dynVersion = cl.Config.Version
	d, err := config.ParseDynamic(cl.Config.Value)
	if err != nil {
		n.log.Warn("ignoring the config key: it does not parse", "err", err)
		return
	}
	if probs := d.Validate(); len(probs) > 0 {
		n.log.Warn("ignoring the config key: invalid", "problems", strings.Join(probs, "; "))
		return
	}
	if d.TTL != n.dyn.TTL {
		n.dcs.SetTTL(time.Duration(d.TTL) * time.Second)
	}
	if d.RetryTimeout != n.dyn.RetryTimeout {
		n.dcs.SetRetryTimeout(time.Duration(d.RetryTimeout) * time.Second)
	}
	switch {
	case d.Pause && !n.dyn.Pause:
		n.log.Warn("PAUSE: maintenance mode on: tusker will not change postgres automatically")
		n.disableWatchdog()
	case !d.Pause && n.dyn.Pause:
		n.log.Info("maintenance mode off: resuming automatic management")
		// Checks made while paused may no longer hold (Patroni's sanity checks on resume).
		n.forgetRejoin()
	}
	n.dyn = d
	n.log.Info("dynamic configuration applied", "version", cl.Config.Version,
		"ttl", d.TTL, "loop_wait", d.LoopWait, "retry_timeout", d.RetryTimeout,
		"primary_start_timeout", d.PrimaryStartTimeout, "pause", d.Pause, "failsafe_mode", d.FailsafeMode)
}

func (n *Node) observeLocal(ctx context.Context, rt time.Duration, cl *dcs.Cluster) Local {
	var l Local
	switch n.pg.DataDirState() {
	case postgres.DataDirEmpty:
		l.DataDir = DataDirEmpty
		n.sysID, n.canRewind = "", nil
		// Whatever runs in this directory later was started by this process (bootstrap, clone),
		// which fires on_start itself: nothing is left to adopt.
		n.adopted = true
		return l
	case postgres.DataDirInvalid:
		l.DataDir = DataDirInvalid
		if err := n.pg.DataDirUnreadable(); err != nil {
			l.DataDirError = err.Error()
		}
		return l
	}
	l.DataDir = DataDirValid
	l.Running = n.pg.Running()
	if !n.adopted {
		n.adopted, n.adoptRunning = true, l.Running
	}
	if !l.Running || n.sysID == "" {
		qctx, cancel := context.WithTimeout(ctx, rt)
		cd, err := n.pg.ControlData(qctx)
		cancel()
		if err != nil {
			n.log.Warn("reading pg_controldata failed", "err", err)
		} else {
			n.sysID = cd.SystemIdentifier
			// A fresh clone's pg_control says "in production" (copied from the primary) but its
			// standby.signal says what it will run as.
			l.WasPrimary = (cd.State == "in production" || cd.State == "shut down") && !n.pg.StandbySignal()
			l.Timeline = cd.Timeline
		}
	}
	l.SysID = n.sysID
	if !l.Running {
		if n.canRewind == nil {
			ok, why := n.pg.CanRewind(ctx)
			n.canRewind = &ok
			if !ok {
				n.log.Info("pg_rewind is not possible on this data directory", "reason", why)
			}
		}
		l.CanRewind = *n.canRewind
		n.pgReady = false
		return l
	}
	qctx, cancel := context.WithTimeout(ctx, rt)
	st, err := n.pg.State(qctx)
	cancel()
	if err != nil {
		n.pgReady = false
		return l
	}
	n.lastPG, n.pgReady = st, true
	if n.adoptRunning {
		// A postgres that was already running when tusker started: on_start fires once for it,
		// as Patroni does.
		n.adoptRunning = false
		if !st.InRecovery {
			n.setRole("primary")
		}
		n.fire("on_start")
	}
	l.Ready = true
	l.Primary = !st.InRecovery
	l.Timeline = st.Timeline
	l.WALEnd = st.WALPosition
	return l
}

// lease bookkeeping --------------------------------------------------------------------------

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
		if n.pg.Running() && n.pgReady && !n.lastPG.InRecovery {
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
		if n.pg.Running() && !n.dyn.Pause {
			n.pg.Fence(0)
		}
		n.Wake()
		return err
	default:
		return err // the lease-deadline rule and the fence timer handle a lasting failure
	}
}

// actions ------------------------------------------------------------------------------------

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
		up, err := n.upstreamOf(v.Cluster, a.Upstream)
		if err != nil {
			return err
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
		up.NoSlot = a.FastForward
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

// clone (a long action) takes a base backup from up, after removing the data directory when
// remove, and starts the replica.
func (n *Node) clone(ctx context.Context, up postgres.Upstream, remove bool) error {
	if remove {
		n.log.Warn("removing the data directory to clone it again", "from", up.Name)
		if err := n.pg.RemoveDataDir(); err != nil {
			return err
		}
	}
	if err := n.pg.Basebackup(ctx, up); err != nil {
		return err
	}
	return n.startReplica(ctx, &up)
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
	n.setRole("replica")
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
		n.Wake()
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

func (n *Node) bootstrap(ctx context.Context) error {
	err := n.doBootstrap(ctx)
	if err == nil {
		return nil
	}
	n.log.Error("bootstrap failed: removing the partial data directory and the initialize key", "err", err)
	_ = n.pg.Stop(context.WithoutCancel(ctx), postgres.StopImmediate)
	_ = n.pg.RemoveDataDir()
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if n.hasLease() {
		_ = n.dcs.ReleaseLeader(cctx)
		n.leaseLost()
	}
	_ = n.dcs.CancelInitialize(cctx)
	return err
}

func (n *Node) hasLease() bool {
	held, _ := n.lease.state()
	return held
}

func (n *Node) doBootstrap(ctx context.Context) error {
	if err := n.activateWatchdog(n.env.dyn); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	if err := n.pg.Initdb(ctx, n.cfg.Bootstrap.Initdb); err != nil {
		return err
	}
	if err := n.pg.Start(ctx, postgres.StartOptions{Role: postgres.Primary}); err != nil {
		return err
	}
	if err := n.pg.CreateRoles(ctx); err != nil {
		return err
	}
	if cmd := n.cfg.Bootstrap.PostBootstrap; cmd != "" {
		// Patroni's contract: one argument, a connection string for the superuser, with the
		// password in PGPASSFILE.
		host, port, _ := config.SplitHostPort(n.cfg.PostgreSQL.ConnectAddress)
		dsn := fmt.Sprintf("dbname=postgres user=%s host=%s port=%d",
			n.cfg.PostgreSQL.Authentication.Superuser.Username, host, port)
		env := []string{"PGPASSFILE=" + n.cfg.PostgreSQL.Pgpass}
		if err := n.pg.WritePassfile(); err != nil {
			return fmt.Errorf("bootstrap: post_bootstrap: %w", err)
		}
		if err := callbacks.Hook(ctx, n.log, "post_bootstrap", cmd, env, dsn); err != nil {
			return fmt.Errorf("bootstrap: post_bootstrap: %w", err)
		}
	}
	cd, err := n.pg.ControlData(ctx)
	if err != nil {
		return err
	}
	ok, err := n.acquire(ctx, n.env.settings)
	if err != nil {
		return fmt.Errorf("taking the leader lock after bootstrap: %w", err)
	}
	if !ok {
		return errors.New("taking the leader lock after bootstrap: another member holds it")
	}
	if _, err := n.dcs.Initialize(ctx, cd.SystemIdentifier, false); err != nil {
		return fmt.Errorf("writing the system identifier to initialize: %w", err)
	}
	js, err := n.cfg.Bootstrap.DCS.JSON()
	if err != nil {
		return fmt.Errorf("encoding bootstrap.dcs: %w", err)
	}
	if err := n.dcs.SetConfig(ctx, js, 0); err != nil && !errors.Is(err, dcs.ErrConflict) {
		return fmt.Errorf("writing the config key: %w", err)
	}
	n.post(func() { n.sysID = "" })
	n.log.Info("bootstrapped a new cluster", "system_identifier", cd.SystemIdentifier)
	// As Patroni: on_start once the new cluster's leader holds the lock.
	n.setRole("primary")
	n.fire("on_start")
	return nil
}

// promote turns the local replica into the primary, checkpoints (so that the old primary can
// pg_rewind against us) and records the timeline switch in the history key.
func (n *Node) promote(ctx context.Context) error {
	if err := n.prePromote(ctx); err != nil {
		return err
	}
	f := false
	n.post(func() {
		n.checkpointed = &f
		n.forgetRejoin()
	})
	if err := n.pg.Promote(ctx); err != nil {
		return err
	}
	n.postUpstream("")
	n.setRole("primary")
	n.fire("on_role_change")
	n.log.Info("promoted to primary")
	// Publish the new role now: the slots and the checkpoint below take a few hundred ms that
	// health checks (/primary) and load balancers need not wait for.
	n.Wake()
	// The other members reconnect at once; their slots must be there when they do (otherwise
	// each waits wal_retrieve_retry_interval before trying again).
	if n.env.dyn.PostgreSQL.UseSlots && n.env.cluster != nil {
		if err := n.pg.EnsureSlots(ctx, n.memberSlots(n.env.cluster)); err != nil {
			n.log.Warn("creating replication slots after promotion failed", "err", err)
		}
	}
	if err := n.pg.Checkpoint(ctx); err != nil {
		n.log.Warn("checkpoint after promote failed", "err", err)
	}
	t := true
	n.post(func() { n.checkpointed = &t })
	n.recordHistory(ctx)
	return nil
}

// recordHistory (part of the promote action) appends the timeline switch to the history key.
func (n *Node) recordHistory(ctx context.Context) {
	qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	st, err := n.pg.State(qctx)
	if err != nil {
		return
	}
	entry, ok := readTimelineSwitch(n.cfg.PostgreSQL.DataDir, st.Timeline)
	if !ok {
		return
	}
	entry.Timestamp = n.now().Format("2006-01-02T15:04:05.999999-07:00")
	entry.NewLeader = n.cfg.Name
	var hist []dcs.HistoryEntry
	if n.env.cluster != nil {
		hist = append(hist, n.env.cluster.History...)
	}
	for _, h := range hist {
		if h.Timeline == entry.Timeline {
			return
		}
	}
	hist = append(hist, entry)
	if err := n.dcs.SetHistory(qctx, hist); err != nil {
		n.log.Warn("writing the history key failed", "err", err)
	}
}

// handover is the leader's side of a switchover: checkpoint (so that the shutdown checkpoint is
// quick), stop cleanly, publish the final WAL position, then release the lock so that the target,
// woken by its watch on the leader key, takes over at once.
func (n *Node) handover(ctx context.Context, target string) error {
	ttl, _, rt := n.env.dyn.TimingDurations()
	start := n.now()
	cctx, cancel := context.WithTimeout(ctx, max(2*rt, 10*time.Second))
	if err := n.pg.Checkpoint(cctx); err != nil {
		n.log.Warn("switchover: checkpoint before stopping failed", "err", err)
	}
	cancel()
	n.beforeStop(ctx, rt)
	n.disableWatchdog()
	stopAt := n.now()
	if err := n.pg.Stop(ctx, postgres.StopFast); err != nil {
		return fmt.Errorf("switchover: stopping postgres: %w", err)
	}
	n.fire("on_stop") // told the role postgres had when it stopped
	n.setRole("demoted")
	backoff := n.now().Add(ttl)
	n.post(func() {
		n.upstream = ""
		n.forgetRejoin()
		// Stay down until the new leader is known (Decide's crash-handover rule), then rejoin.
		n.raceBackoff, n.handedOver = backoff, true
	})

	final := int64(0)
	dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), rt)
	defer dcancel()
	if cd, err := n.pg.ControlData(dctx); err == nil && cd.State == "shut down" {
		final = cd.CheckpointLSN
		if err := n.dcs.SetStatus(dctx, dcs.Status{Optime: final}); err != nil {
			n.log.Warn("switchover: publishing the final WAL position failed", "err", err)
		}
	}
	// No waiting for the target here: postgres' walsenders do not finish a shutdown before the
	// connected standbys have flushed everything, and the target checks its own position
	// against the final one before it promotes (a target that lacks WAL leaves the decision to
	// the normal race, which picks the most advanced member).
	n.leaseLost()
	if err := n.dcs.ReleaseLeader(dctx); err != nil {
		return fmt.Errorf("switchover: releasing the leader key: %w", err)
	}
	n.log.Info("switchover: leader key released", "to", target, "final_lsn", patroni.FormatLSN(final),
		"stop_took", n.since(stopAt).Round(time.Millisecond), "took", n.since(start).Round(time.Millisecond))
	return nil
}

// prePromote arms the watchdog and runs pre_promote. When either refuses, the lock is released
// and this member stays out of the race for a ttl (Patroni's rule), so that another can win.
func (n *Node) prePromote(ctx context.Context) error {
	err := n.activateWatchdog(n.env.dyn)
	if err == nil && n.cfg.PostgreSQL.PrePromote != "" {
		_, _, rt := n.env.dyn.TimingDurations()
		// Bounded: the lease is renewed by the loop meanwhile, but a hung fencing script must not
		// keep the cluster without a primary for long.
		hctx, cancel := context.WithTimeout(ctx, max(2*rt, 10*time.Second))
		err = callbacks.Hook(hctx, n.log, "pre_promote", n.cfg.PostgreSQL.PrePromote, nil)
		cancel()
	}
	if err == nil {
		return nil
	}
	ttl, _, rt := n.env.dyn.TimingDurations()
	backoff := n.now().Add(ttl)
	n.post(func() { n.raceBackoff = backoff })
	n.leaseLost()
	n.disableWatchdog()
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rt)
	defer cancel()
	if rerr := n.dcs.ReleaseLeader(rctx); rerr != nil {
		n.log.Warn("releasing the leader key after a refused promotion failed", "err", rerr)
	}
	return fmt.Errorf("promotion refused, leader key released: %w", err)
}

// readTimelineSwitch reads the last line of pg_wal/<timeline>.history: "<old tl>\t<lsn>\t<reason>".
func readTimelineSwitch(dataDir string, tl int) (dcs.HistoryEntry, bool) {
	b, err := os.ReadFile(filepath.Join(dataDir, "pg_wal", fmt.Sprintf("%08X.history", tl)))
	if err != nil {
		return dcs.HistoryEntry{}, false
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	f := strings.SplitN(lines[len(lines)-1], "\t", 3)
	if len(f) < 2 {
		return dcs.HistoryEntry{}, false
	}
	old, err1 := strconv.Atoi(strings.TrimSpace(f[0]))
	lsn, err2 := patroni.ParseLSN(strings.TrimSpace(f[1]))
	if err1 != nil || err2 != nil {
		return dcs.HistoryEntry{}, false
	}
	e := dcs.HistoryEntry{Timeline: old, LSN: lsn, Reason: "no recovery target specified"}
	if len(f) == 3 {
		e.Reason = strings.TrimSpace(f[2])
	}
	return e, true
}

// upstreamOf resolves a member's PostgreSQL address from its conn_url.
func (n *Node) upstreamOf(c *dcs.Cluster, name string) (postgres.Upstream, error) {
	m := c.Member(name)
	if m == nil {
		return postgres.Upstream{}, fmt.Errorf("member %q has no member key", name)
	}
	host, port, err := patroni.ConnHostPort(m.Data.ConnURL)
	if err != nil {
		return postgres.Upstream{}, fmt.Errorf("member %q: %w", name, err)
	}
	return postgres.Upstream{Name: name, Host: host, Port: port}, nil
}

// publish writes the member key and swaps in the new Status.
func (n *Node) publish(v View, p Plan) {
	ttl, _, rt := n.dyn.TimingDurations()
	leaseHeld, leaseExpiry := n.lease.state()
	job, checkpointed := n.job, n.checkpointed
	failsafeOn, restartAt := n.failsafeOn, n.restartAt
	// A replica takes part in failsafe mode while the primary's confirmations keep coming.
	failsafeReplica := n.failsafeLeader() != ""
	isLeader := HoldsLock(leaseHeld, v.Cluster.LeaderName(), n.cfg.Name)
	running := n.pg.Running()

	st := &Status{
		Name: n.cfg.Name, Scope: n.cfg.Scope, Version: n.version,
		State: pgState(job, running, n.pgReady), Role: "uninitialized",
		SystemIdentifier: n.sysID, Timeline: v.Local.Timeline,
		IsLeader: isLeader, ClusterUnlocked: v.Cluster.LeaderName() == "" || !v.DCSOK,
		DCSReachable: v.DCSOK, DCSLastSeen: n.lastSeen, Pause: n.dyn.Pause,
		LeaderOptime: v.Cluster.Status.Optime, Cluster: v.Cluster, Tags: n.cfg.Tags.Map(),
		TTL: ttl, MaximumLagOnFailover: n.dyn.MaximumLagOnFailover, LastLoop: n.now(),
		FailsafeEnabled: n.dyn.FailsafeMode, FailsafeActive: (failsafeOn || failsafeReplica) && !v.DCSOK,
		WatchdogFailed: n.wd.Failed() || !n.watchdogUsable(), ScheduledRestart: restartAt,
		lastLeader: n.lastLeader, dyn: n.dyn, job: job, cfg: n.cfg,
	}
	if isLeader {
		st.LeaderUntil = leaseExpiry.Add(-FenceMargin(n.settings()))
	}
	switch {
	case job == JobClone || job == JobReclone:
		// pg_basebackup is still writing: its pg_control is the primary's, the data a replica's.
		st.Role = "replica"
	case job == JobBootstrap:
		// initdb's cluster runs as the primary once it is there.
		if v.Local.DataDir == DataDirValid {
			st.Role = "primary"
		}
	case v.Local.DataDir == DataDirValid:
		st.Role = "replica"
		if v.Local.Primary || (!running && v.Local.WasPrimary) {
			st.Role = "primary"
		}
	}
	md := dcs.MemberData{
		ConnURL: n.connURL(),
		APIURL:  n.apiURL(),
		State:   st.State, Role: st.Role, Version: n.version, Timeline: v.Local.Timeline,
		Tags: st.Tags, CheckpointAfterPromote: checkpointed, Pause: n.dyn.Pause,
		ScheduledRestart: restartAt.Member(),
	}
	if len(md.Tags) == 0 {
		md.Tags = nil
	}
	st.SyncMode = n.dyn.SyncMode()
	if st.Role == "replica" && v.Cluster.Sync.Has(n.cfg.Name) {
		st.SyncStandby = st.SyncMode == "on"
		st.QuorumStandby = st.SyncMode == "quorum"
	}
	if running && n.pgReady {
		n.publishPostgres(st, &md, rt)
	}
	n.status.Store(st)
	if from := n.metrics.role(st.Role); from != "" {
		n.log.Info("role changed", "from", from, "to", st.Role, "state", st.State, "running", running)
	}

	if !v.DCSOK {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), rt)
	defer cancel()
	if err := n.dcs.TouchMember(ctx, md); err != nil {
		n.log.Warn("writing the member key failed", "err", err)
	}
	if isLeader && running && n.pgReady && !n.lastPG.InRecovery {
		n.leaderHousekeeping(ctx, v)
	}
}

// publishPostgres fills in what the running postgres reported this cycle, in the status and in
// the member key.
func (n *Node) publishPostgres(st *Status, md *dcs.MemberData, rt time.Duration) {
	pg := n.lastPG
	st.PostmasterStartTime, st.ServerVersion, st.PendingRestart = pg.PostmasterStartTime, pg.ServerVersion, pg.PendingRestart
	st.Timeline = pg.Timeline
	md.Timeline = pg.Timeline
	md.PendingRestart = pg.PendingRestart
	if pg.PendingRestart {
		st.PendingRestartReason = n.pendingRestartReason(rt)
		md.PendingRestartReason = st.PendingRestartReason
	}
	wal := pg.WALPosition
	md.XLogLocation = &wal
	if pg.InRecovery {
		st.ReceivedLocation, st.ReplayedLocation = pg.ReceiveLSN, pg.ReplayLSN
		st.ReplayedTimestamp, st.ReplayPaused = pg.ReplayTimestamp, pg.ReplayPaused
		st.LatestEndLSN = pg.LatestEndLSN
		st.ReplicationState = "in archive recovery"
		if pg.Streaming {
			st.ReplicationState = "streaming"
		}
		rl, pl := pg.ReceiveLSN, pg.ReplayLSN
		md.ReceiveLSN, md.ReplayLSN, md.ReplicationState = &rl, &pl, st.ReplicationState
	} else {
		st.XLogLocation = pg.WALPosition
		for _, r := range pg.Replication {
			st.Replication = append(st.Replication, Replication{Usename: r.Usename, ApplicationName: r.ApplicationName,
				ClientAddr: r.ClientAddr, State: r.State, SyncState: r.SyncState, SyncPriority: r.SyncPriority})
		}
	}
}

// pendingRestartReason pairs the running value of each parameter waiting for a restart with the
// configured one (Patroni's pending_restart_reason).
func (n *Node) pendingRestartReason(rt time.Duration) map[string]PendingChange {
	ctx, cancel := context.WithTimeout(context.Background(), rt)
	defer cancel()
	running, err := n.pg.PendingRestartSettings(ctx)
	if err != nil || len(running) == 0 {
		return nil
	}
	out := make(map[string]PendingChange, len(running))
	for name, old := range running {
		out[name] = PendingChange{OldValue: old, NewValue: n.pgConf.Parameters[name]}
	}
	return out
}

// leaderHousekeeping keeps the status key and the replicas' slots in step.
func (n *Node) leaderHousekeeping(ctx context.Context, v View) {
	pg := n.lastPG
	n.maintainFailsafe(ctx, v.Cluster)
	if v.Cluster.Status.Optime != pg.WALPosition {
		if err := n.dcs.SetStatus(ctx, dcs.Status{Optime: pg.WALPosition}); err != nil {
			n.log.Warn("writing the status key failed", "err", err)
		}
	}
	if !n.dyn.PostgreSQL.UseSlots {
		return
	}
	if err := n.pg.EnsureSlots(ctx, n.memberSlots(v.Cluster)); err != nil {
		n.log.Warn("managing replication slots failed", "err", err)
	}
}

// memberSlots names the replication slot of every other member.
func (n *Node) memberSlots(c *dcs.Cluster) []string {
	var want []string
	for _, m := range c.Members {
		if m.Name != n.cfg.Name {
			want = append(want, postgres.SlotName(m.Name))
		}
	}
	return want
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

func pgState(job Job, running, ready bool) string {
	switch job {
	case JobBootstrap:
		return "initializing new cluster"
	case JobClone, JobReclone:
		return "creating replica"
	case JobStart, JobRewind:
		return "starting"
	case JobDemote:
		return "stopping"
	}
	switch {
	case running && ready:
		return "running"
	case running:
		return "starting"
	}
	return "stopped"
}

// publishShutdown shows state ("stopping", then "stopped") in the REST status while tusker shuts
// down. The replicas probe this member before they race for the lock it releases: a status still
// saying "running primary" would make them wait a loop for it to go away. And /primary stops
// answering 200 before postgres stops taking writes.
func (n *Node) publishShutdown(state string) {
	cur := n.status.Load()
	if cur == nil {
		return
	}
	st := *cur
	st.State = state
	if state == "stopped" {
		st.IsLeader, st.LeaderUntil = false, time.Time{}
	}
	n.status.Store(&st)
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
