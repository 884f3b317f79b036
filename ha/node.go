package ha

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tusker-ha/tusker/config"
	"github.com/tusker-ha/tusker/dcs"
	"github.com/tusker-ha/tusker/postgres"
)

// ErrForeignData ends Run when the data directory belongs to another cluster.
var ErrForeignData = errors.New("data directory belongs to another cluster")

// Options wire a Node to its configuration, store and PostgreSQL.
type Options struct {
	Config  *config.Config
	DCS     dcs.DCS
	PG      *postgres.Postgres
	Logger  *slog.Logger
	Version string
	// Prober asks other members for their state during a leader race (default: HTTP GET /patroni).
	Prober Prober
}

// Node runs the HA loop of one member: observe, decide, act, publish.
type Node struct {
	cfg     *config.Config
	dcs     dcs.DCS
	pg      *postgres.Postgres
	log     *slog.Logger
	version string
	prober  Prober

	status atomic.Pointer[Status]
	wake   chan struct{}

	// Loop-owned state (only the loop goroutine touches these).
	dyn         config.Dynamic
	lastCluster *dcs.Cluster
	lastSeen    time.Time
	lastReason  string
	// dcsErrLogged rate-limits the DCS error log line during an outage.
	dcsErrLogged time.Time
	sysID        string
	canRewind    *bool
	lastPG       postgres.State
	pgReady      bool

	// Shared with actions running in goroutines.
	mu           sync.Mutex
	leaseHeld    bool
	leaseExpiry  time.Time
	fenceTimer   *time.Timer
	fenceGen     uint64
	action       string
	actionCancel context.CancelFunc
	actionDone   chan struct{}
	upstream     string
	diverged     map[string]bool // leader name -> rewind check result
	rewindFailed map[string]bool
	checkpointed *bool // checkpoint_after_promote published in our member key
}

// NewNode builds a node; Run starts it.
func NewNode(o Options) *Node {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Prober == nil {
		o.Prober = HTTPProber{}
	}
	return &Node{cfg: o.Config, dcs: o.DCS, pg: o.PG, log: o.Logger, version: o.Version, prober: o.Prober,
		wake: make(chan struct{}, 1), dyn: o.Config.Bootstrap.DCS,
		diverged: map[string]bool{}, rewindFailed: map[string]bool{}}
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
	var fatal error
	streak := 0
	for ctx.Err() == nil {
		start := time.Now()
		plan, view := n.cycle(ctx)
		if plan.Has(RefuseForeignData) {
			fatal = fmt.Errorf("%w: %s", ErrForeignData, plan.Reason)
			break
		}
		// Right after taking or giving up the lock the next cycle runs at once (a promotion should
		// not wait for loop_wait), but never more than twice in a row: an action that keeps failing
		// must not turn the loop into a busy one.
		immediate := plan.Has(AcquireLeader) || plan.Has(ReleaseLeader) || plan.Has(Fence) || plan.Has(Bootstrap)
		n.publish(view, plan)
		if immediate && streak < 2 {
			streak++
			continue
		}
		streak = 0
		_, loopWait, _ := n.dyn.TimingDurations()
		wait := loopWait - time.Since(start)
		if wait < 50*time.Millisecond {
			wait = 50 * time.Millisecond
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-timer.C:
		case <-n.dcs.Changes():
		case <-n.wake:
		case <-n.actionDoneChan():
		}
		timer.Stop()
	}
	n.shutdown()
	return fatal
}

func (n *Node) actionDoneChan() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.actionDone == nil {
		return nil
	}
	return n.actionDone
}

// settings derives the rule inputs from the dynamic and local configuration.
func (n *Node) settings() Settings {
	ttl, lw, rt := n.dyn.TimingDurations()
	pgc := n.cfg.PostgreSQL
	return Settings{
		TTL: ttl, LoopWait: lw, RetryTimeout: rt,
		MaximumLagOnFailover:      n.dyn.MaximumLagOnFailover,
		CheckTimeline:             n.dyn.CheckTimeline,
		UsePgRewind:               n.cfg.EffectiveUsePgRewind(n.dyn),
		RemoveOnRewindFailure:     pgc.RemoveDataDirectoryOnRewindFailure,
		RemoveOnDivergedTimelines: pgc.RemoveDataDirectoryOnDivergedTimelines,
		NoFailover:                !n.cfg.Tags.Eligible(),
		Priority:                  n.cfg.Tags.Priority(),
	}
}

// cycle is one observe-decide-act round.
func (n *Node) cycle(ctx context.Context) (Plan, View) {
	view := n.observe(ctx)
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
		if time.Since(n.dcsErrLogged) > 10*time.Second {
			n.log.Warn("reading the cluster from the DCS failed", "err", err)
			n.dcsErrLogged = time.Now()
		}
		v.Cluster = n.lastCluster
		if v.Cluster == nil {
			v.Cluster = &dcs.Cluster{}
		}
	} else {
		v.DCSOK = true
		v.Cluster = cl
		n.dcsErrLogged = time.Time{}
		n.lastCluster, n.lastSeen = cl, time.Now()
		for _, k := range cl.Invalid {
			n.log.Debug("skipping a DCS key with an unparsable value", "key", k)
		}
		n.applyDynamic(cl)
	}
	v.Settings = n.settings()

	n.mu.Lock()
	v.LeaseHeld, v.LeaseExpiry = n.leaseHeld, n.leaseExpiry
	v.Action = n.action
	upstream := n.upstream
	n.mu.Unlock()

	v.Local = n.observeLocal(ctx, rt, v.Cluster)
	v.Local.Upstream = upstream
	leader := v.Cluster.LeaderName()
	n.mu.Lock()
	if d, ok := n.diverged[leader]; ok && leader != "" {
		v.Local.Diverged = &d
	}
	v.Local.RewindFailed = n.rewindFailed[leader]
	n.mu.Unlock()

	// Probe the others only when it matters: no leader, and we might race.
	if v.DCSOK && leader == "" && v.Action == "" && v.Local.Running && !v.Local.Primary && v.Settings.NoFailover == false {
		v.Peers = n.probePeers(ctx, v.Cluster, rt)
		v.PeersProbed = true
	}
	v.Now = time.Now()
	return v
}

// applyDynamic adopts the dynamic configuration from the config key when it parses and is valid.
func (n *Node) applyDynamic(cl *dcs.Cluster) {
	if cl.Config == nil {
		return
	}
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
	n.dyn = d
}

func (n *Node) observeLocal(ctx context.Context, rt time.Duration, cl *dcs.Cluster) Local {
	var l Local
	switch n.pg.DataDirState() {
	case postgres.DataDirEmpty:
		l.DataDir = DataDirEmpty
		n.sysID, n.canRewind = "", nil
		return l
	case postgres.DataDirInvalid:
		l.DataDir = DataDirInvalid
		return l
	}
	l.DataDir = DataDirValid
	l.Running = n.pg.Running()
	if !l.Running || n.sysID == "" {
		qctx, cancel := context.WithTimeout(ctx, rt)
		cd, err := n.pg.ControlData(qctx)
		cancel()
		if err != nil {
			n.log.Warn("reading pg_controldata failed", "err", err)
		} else {
			n.sysID = cd.SystemIdentifier
			l.WasPrimary = cd.State == "in production" || cd.State == "shut down"
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
	l.Ready = true
	l.Primary = !st.InRecovery
	l.Timeline = st.Timeline
	l.WAL = st.WALPosition
	return l
}

// lease bookkeeping --------------------------------------------------------------------------

func (n *Node) leaseGranted(start time.Time) {
	ttl, _, _ := n.dyn.TimingDurations()
	margin := FenceMargin(n.settings())
	n.mu.Lock()
	defer n.mu.Unlock()
	n.leaseHeld = true
	n.leaseExpiry = start.Add(ttl)
	n.fenceGen++
	gen := n.fenceGen
	if n.fenceTimer != nil {
		n.fenceTimer.Stop()
	}
	// The fence fires even if the loop is stuck (a hung call, a slow action): postgres stops
	// accepting writes before the lease can expire for the other members.
	n.fenceTimer = time.AfterFunc(time.Until(n.leaseExpiry.Add(-margin)), func() {
		n.mu.Lock()
		fire := n.fenceGen == gen && n.leaseHeld
		if fire {
			n.leaseHeld = false
		}
		n.mu.Unlock()
		if fire {
			n.log.Error("leader lease about to expire without renewal: stopping postgres now")
			n.pg.Fence()
			n.Wake()
		}
	})
}

func (n *Node) leaseLost() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.leaseHeld = false
	n.fenceGen++
	if n.fenceTimer != nil {
		n.fenceTimer.Stop()
		n.fenceTimer = nil
	}
}

func (n *Node) acquire(ctx context.Context) (bool, error) {
	start := time.Now()
	ok, err := n.dcs.AcquireLeader(ctx)
	if err != nil || !ok {
		return false, err
	}
	n.leaseGranted(start)
	return true, nil
}

// actions ------------------------------------------------------------------------------------

func (n *Node) execute(ctx context.Context, a Action, v View) error {
	switch a.Kind {
	case Fence:
		n.leaseLost()
		n.forgetRejoin()
		n.pg.Fence()
		return nil
	case RenewLeader:
		start := time.Now()
		err := n.dcs.RenewLeader(ctx)
		switch {
		case err == nil:
			n.leaseGranted(start)
			return nil
		case errors.Is(err, dcs.ErrNotLeader):
			// Decide's lost-leader-key rule, applied at once: once the lease is marked lost the
			// next view no longer shows LeaseHeld, and writes must not wait a cycle.
			n.leaseLost()
			if n.pg.Running() {
				n.pg.Fence()
			}
			n.Wake()
			return err
		default:
			return err // the lease-deadline rule and the fence timer handle a lasting failure
		}
	case AcquireLeader:
		ok, err := n.acquire(ctx)
		if err == nil && ok {
			n.log.Info("acquired the leader lock")
		}
		return err
	case ReleaseLeader:
		n.leaseLost()
		return n.dcs.ReleaseLeader(ctx)
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
		return n.startAction(ctx, "bootstrap", n.bootstrap)
	case Clone:
		up, err := n.upstreamOf(v.Cluster, a.Upstream)
		if err != nil {
			return err
		}
		return n.startAction(ctx, "clone", func(ctx context.Context) error {
			if err := n.pg.Basebackup(ctx, up); err != nil {
				return err
			}
			return n.startReplica(ctx, &up)
		})
	case Reclone:
		up, err := n.upstreamOf(v.Cluster, a.Upstream)
		if err != nil {
			return err
		}
		return n.startAction(ctx, "reclone", func(ctx context.Context) error {
			n.log.Warn("removing the data directory to clone it again", "from", up.Name)
			if err := n.pg.RemoveDataDir(); err != nil {
				return err
			}
			if err := n.pg.Basebackup(ctx, up); err != nil {
				return err
			}
			return n.startReplica(ctx, &up)
		})
	case StartPrimary:
		n.forgetRejoin()
		return n.startAction(ctx, "start", func(ctx context.Context) error {
			return n.pg.Start(ctx, postgres.StartOptions{Role: postgres.Primary})
		})
	case StartReplica:
		var up *postgres.Upstream
		if a.Upstream != "" {
			u, err := n.upstreamOf(v.Cluster, a.Upstream)
			if err != nil {
				return err
			}
			up = &u
		}
		return n.startAction(ctx, "start", func(ctx context.Context) error { return n.startReplica(ctx, up) })
	case Follow:
		up, err := n.upstreamOf(v.Cluster, a.Upstream)
		if err != nil {
			return err
		}
		return n.startAction(ctx, "follow", func(ctx context.Context) error {
			if err := n.pg.Follow(ctx, up); err != nil {
				return err
			}
			n.setUpstream(up.Name)
			return nil
		})
	case Promote:
		return n.startAction(ctx, Promote.String(), n.promote)
	case Demote:
		n.setUpstream("")
		n.forgetRejoin()
		return n.startAction(ctx, "demote", func(ctx context.Context) error {
			n.pg.Fence()
			return n.pg.Stop(ctx, postgres.StopImmediate)
		})
	case ProbeRewind:
		up, err := n.upstreamOf(v.Cluster, a.Upstream)
		if err != nil {
			return err
		}
		return n.startAction(ctx, "rewind check", func(ctx context.Context) error {
			d, err := n.pg.NeedsRewind(ctx, up)
			if err != nil {
				return err
			}
			n.mu.Lock()
			n.diverged[up.Name] = d
			n.mu.Unlock()
			n.log.Info("rewind check", "leader", up.Name, "diverged", d)
			return nil
		})
	case Rewind:
		up, err := n.upstreamOf(v.Cluster, a.Upstream)
		if err != nil {
			return err
		}
		return n.startAction(ctx, "rewind", func(ctx context.Context) error {
			if err := n.pg.Rewind(ctx, up); err != nil {
				n.mu.Lock()
				n.rewindFailed[up.Name] = true
				n.mu.Unlock()
				return err
			}
			n.mu.Lock()
			n.diverged[up.Name] = false
			n.mu.Unlock()
			return n.startReplica(ctx, &up)
		})
	}
	return fmt.Errorf("unknown action %v", a.Kind)
}

// forgetRejoin drops rewind-check results: after a role change they no longer describe the data.
func (n *Node) forgetRejoin() {
	n.mu.Lock()
	n.diverged, n.rewindFailed = map[string]bool{}, map[string]bool{}
	n.mu.Unlock()
}

func (n *Node) setUpstream(name string) {
	n.mu.Lock()
	n.upstream = name
	n.mu.Unlock()
}

func (n *Node) startReplica(ctx context.Context, up *postgres.Upstream) error {
	if err := n.pg.Start(ctx, postgres.StartOptions{Role: postgres.Replica, Upstream: up}); err != nil {
		return err
	}
	if up != nil {
		n.setUpstream(up.Name)
	} else {
		n.setUpstream("")
	}
	return nil
}

// startAction runs a long action in its own goroutine; the loop sees its name until it ends.
func (n *Node) startAction(ctx context.Context, name string, fn func(context.Context) error) error {
	n.mu.Lock()
	if n.action != "" {
		n.mu.Unlock()
		return fmt.Errorf("%s: %s already in progress", name, n.action)
	}
	actx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	n.action, n.actionCancel, n.actionDone = name, cancel, done
	n.mu.Unlock()
	go func() {
		defer close(done)
		defer cancel()
		start := time.Now()
		err := fn(actx)
		n.mu.Lock()
		// Clearing actionDone matters: a closed channel left in the loop's select would make it
		// spin without waiting.
		n.action, n.actionCancel, n.actionDone = "", nil, nil
		n.mu.Unlock()
		if err != nil {
			n.log.Error(name+" failed", "err", err, "took", time.Since(start).Round(time.Millisecond))
		} else {
			n.log.Info(name+" done", "took", time.Since(start).Round(time.Millisecond))
		}
	}()
	return nil
}

// cancelAction stops a running action and waits for it.
func (n *Node) cancelAction() {
	n.mu.Lock()
	cancel, done := n.actionCancel, n.actionDone
	n.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
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
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.leaseHeld
}

func (n *Node) doBootstrap(ctx context.Context) error {
	if err := n.pg.Initdb(ctx, n.cfg.Bootstrap.Initdb); err != nil {
		return err
	}
	if err := n.pg.Start(ctx, postgres.StartOptions{Role: postgres.Primary}); err != nil {
		return err
	}
	if err := n.pg.CreateRoles(ctx); err != nil {
		return err
	}
	cd, err := n.pg.ControlData(ctx)
	if err != nil {
		return err
	}
	ok, err := n.acquire(ctx)
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
	n.sysID = ""
	n.log.Info("bootstrapped a new cluster", "system_identifier", cd.SystemIdentifier)
	return nil
}

// promote turns the local replica into the primary, checkpoints (so that the old primary can
// pg_rewind against us) and records the timeline switch in the history key.
func (n *Node) promote(ctx context.Context) error {
	f := false
	n.mu.Lock()
	n.checkpointed = &f
	n.mu.Unlock()
	n.forgetRejoin()
	if err := n.pg.Promote(ctx); err != nil {
		return err
	}
	n.setUpstream("")
	n.log.Info("promoted to primary")
	if err := n.pg.Checkpoint(ctx); err != nil {
		n.log.Warn("checkpoint after promote failed", "err", err)
	}
	t := true
	n.mu.Lock()
	n.checkpointed = &t
	n.mu.Unlock()
	n.recordHistory(ctx)
	return nil
}

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
	entry.Timestamp = time.Now().Format("2006-01-02T15:04:05.999999-07:00")
	entry.NewLeader = n.cfg.Name
	var hist []dcs.HistoryEntry
	if n.lastCluster != nil {
		hist = append(hist, n.lastCluster.History...)
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
	lsn, err2 := postgres.ParseLSN(strings.TrimSpace(f[1]))
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
	host, port, err := ConnHostPort(m.Data.ConnURL)
	if err != nil {
		return postgres.Upstream{}, fmt.Errorf("member %q: %w", name, err)
	}
	return postgres.Upstream{Name: name, Host: host, Port: port}, nil
}

// ConnHostPort extracts host and port from a member's conn_url (postgres://host:port/db).
func ConnHostPort(connURL string) (string, int, error) {
	u, err := url.Parse(connURL)
	if err != nil || u.Host == "" {
		return "", 0, fmt.Errorf("conn_url %q is not postgres://host:port/...", connURL)
	}
	host, ps, err := net.SplitHostPort(u.Host)
	if err != nil {
		return u.Host, 5432, nil
	}
	port, err := strconv.Atoi(ps)
	if err != nil {
		return "", 0, fmt.Errorf("conn_url %q: bad port", connURL)
	}
	return host, port, nil
}

// publish writes the member key and swaps in the new Status.
func (n *Node) publish(v View, p Plan) {
	ttl, _, rt := n.dyn.TimingDurations()
	n.mu.Lock()
	leaseHeld, action, checkpointed := n.leaseHeld, n.action, n.checkpointed
	n.mu.Unlock()
	isLeader := leaseHeld && v.Cluster.LeaderName() == n.cfg.Name
	running := n.pg.Running()

	st := &Status{
		Name: n.cfg.Name, Scope: n.cfg.Scope, Version: n.version,
		State: pgState(action, running, n.pgReady), Role: "uninitialized",
		SystemIdentifier: n.sysID, Timeline: v.Local.Timeline,
		IsLeader: isLeader, ClusterUnlocked: v.Cluster.LeaderName() == "" || !v.DCSOK,
		DCSReachable: v.DCSOK, DCSLastSeen: n.lastSeen, Pause: n.dyn.Pause,
		LeaderOptime: v.Cluster.Status.Optime, Cluster: v.Cluster, Tags: n.cfg.Tags.Map(),
		TTL: ttl, MaximumLagOnFailover: n.dyn.MaximumLagOnFailover, LastLoop: time.Now(),
	}
	if v.Local.DataDir == DataDirValid {
		st.Role = "replica"
		if v.Local.Primary || (!running && v.Local.WasPrimary) {
			st.Role = "primary"
		}
	}
	md := dcs.MemberData{
		ConnURL: "postgres://" + n.cfg.PostgreSQL.ConnectAddress + "/postgres",
		APIURL:  "http://" + n.cfg.RestAPI.ConnectAddress + "/patroni",
		State:   st.State, Role: st.Role, Version: n.version, Timeline: v.Local.Timeline,
		Tags: st.Tags, CheckpointAfterPromote: checkpointed,
	}
	if len(md.Tags) == 0 {
		md.Tags = nil
	}
	if running && n.pgReady {
		pg := n.lastPG
		st.PostmasterStartTime, st.ServerVersion, st.PendingRestart = pg.PostmasterStartTime, pg.ServerVersion, pg.PendingRestart
		st.Timeline = pg.Timeline
		md.Timeline = pg.Timeline
		md.PendingRestart = pg.PendingRestart
		wal := pg.WALPosition
		md.XLogLocation = &wal
		if pg.InRecovery {
			st.ReceivedLocation, st.ReplayedLocation = pg.ReceiveLSN, pg.ReplayLSN
			st.ReplayedTimestamp, st.ReplayPaused = pg.ReplayTimestamp, pg.ReplayPaused
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
	n.status.Store(st)

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

// leaderHousekeeping keeps the status key and the replicas' slots in step.
func (n *Node) leaderHousekeeping(ctx context.Context, v View) {
	pg := n.lastPG
	if v.Cluster.Status.Optime != pg.WALPosition {
		if err := n.dcs.SetStatus(ctx, dcs.Status{Optime: pg.WALPosition}); err != nil {
			n.log.Warn("writing the status key failed", "err", err)
		}
	}
	if !n.dyn.PostgreSQL.UseSlots {
		return
	}
	var want []string
	for _, m := range v.Cluster.Members {
		if m.Name != n.cfg.Name {
			want = append(want, postgres.SlotName(m.Name))
		}
	}
	if err := n.pg.EnsureSlots(ctx, want); err != nil {
		n.log.Warn("managing replication slots failed", "err", err)
	}
}

func pgState(action string, running, ready bool) string {
	switch action {
	case "bootstrap":
		return "initializing new cluster"
	case "clone", "reclone":
		return "creating replica"
	case "start", "rewind":
		return "starting"
	case "demote":
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

// shutdown stops postgres cleanly and hands the lock over: the leader key is released only after
// postgres stopped, so the replicas have received everything it wrote.
func (n *Node) shutdown() {
	n.cancelAction()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if n.pg.Running() {
		n.log.Info("shutting down: stopping postgres")
		if err := n.pg.Stop(ctx, postgres.StopFast); err != nil {
			n.log.Error("stopping postgres failed", "err", err)
		}
	}
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
