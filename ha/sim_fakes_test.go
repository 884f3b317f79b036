package ha

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/tusker-ha/tusker/config"
	"github.com/tusker-ha/tusker/dcs"
	"github.com/tusker-ha/tusker/postgres"
)

// The in-memory cluster the scenario tests (scenario_test.go) drive real Nodes with: a manual
// clock, a DCS with leases on that clock (etcd's model: one lease per member, the leader key
// bound to its holder's lease), a PostgreSQL with WAL positions, timelines and streaming, and
// peers that answer from each other's Status. Fakes are for these tests only: every claim about
// a real server is tested against the real one elsewhere.

// manualClock is a Clock that moves only when the simulation says so.
type manualClock struct {
	mu     sync.Mutex
	now    time.Time
	seq    int
	timers []*manualTimer
}

type manualTimer struct {
	c     *manualClock
	at    time.Time
	seq   int
	owner string
	f     func()
}

func (t *manualTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	for i, x := range t.c.timers {
		if x == t {
			t.c.timers = slices.Delete(t.c.timers, i, i+1)
			return true
		}
	}
	return false
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) afterFunc(owner string, d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	t := &manualTimer{c: c, at: c.now.Add(max(d, 0)), seq: c.seq, owner: owner, f: f}
	c.timers = append(c.timers, t)
	return t
}

// next is the earliest pending timer, or nil.
func (c *manualClock) next() *manualTimer {
	c.mu.Lock()
	defer c.mu.Unlock()
	var best *manualTimer
	for _, t := range c.timers {
		if best == nil || t.at.Before(best.at) || (t.at.Equal(best.at) && t.seq < best.seq) {
			best = t
		}
	}
	return best
}

// fire moves the clock to t's time and runs it.
func (c *manualClock) fire(t *manualTimer) {
	if !t.Stop() {
		return
	}
	c.set(t.at)
	t.f()
}

func (c *manualClock) set(at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if at.After(c.now) {
		c.now = at
	}
}

// dropOwner forgets the timers of a process that died.
func (c *manualClock) dropOwner(owner string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.timers = slices.DeleteFunc(c.timers, func(t *manualTimer) bool { return t.owner == owner })
}

// nodeClock is one process's view of the manual clock: its timers die with it.
type nodeClock struct {
	*manualClock
	owner string
}

func (c nodeClock) AfterFunc(d time.Duration, f func()) Timer { return c.afterFunc(c.owner, d, f) }

// ---- DCS -------------------------------------------------------------------------------------

var errStoreDown = errors.New("fake DCS: connection refused")

// fakeStore is the shared state of the fake DCS.
type fakeStore struct {
	mu         sync.Mutex
	clock      *manualClock
	rev        int64
	down       bool
	frozen     bool // down, and its leases still run out (a hung server, not a stopped one)
	ttls       map[string]time.Duration
	cut        map[string]bool // members that cannot reach the store
	initialize *string
	config     *dcs.ConfigKey
	leader     *dcs.Leader
	members    map[string]dcs.Member
	leases     map[string]time.Time // member -> lease expiry
	expiry     map[string]Timer     // member -> the timer that expires its lease
	failover   *dcs.Failover
	status     dcs.Status
	history    []dcs.HistoryEntry
	failsafe   map[string]string
	sync       *dcs.Sync
	changes    map[string]chan struct{}
	// onChange is told about key changes worth a line in the scenario output.
	onChange func(what string)
}

func newFakeStore(c *manualClock) *fakeStore {
	return &fakeStore{clock: c, cut: map[string]bool{}, members: map[string]dcs.Member{},
		leases: map[string]time.Time{}, expiry: map[string]Timer{}, ttls: map[string]time.Duration{}, changes: map[string]chan struct{}{}}
}

// client is member name's connection to the store.
func (s *fakeStore) client(name string, ttl time.Duration) *fakeDCS {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.changes[name] == nil {
		s.changes[name] = make(chan struct{}, 1)
	}
	return &fakeDCS{s: s, me: name, ttl: ttl}
}

// expire drops the keys of lapsed leases; the caller holds s.mu. A stopped store expires
// nothing: its leases are granted afresh when it starts.
func (s *fakeStore) expire() {
	if s.down && !s.frozen {
		return
	}
	now := s.clock.Now()
	for name, exp := range s.leases {
		if now.Before(exp) {
			continue
		}
		delete(s.leases, name)
		delete(s.members, name)
		if s.leader != nil && s.leader.Name == name {
			s.leader = nil
			s.signal("leader key of " + name + " expired")
		}
	}
}

// signal wakes every member's watch; the caller holds s.mu.
func (s *fakeStore) signal(what string) {
	for _, ch := range s.changes {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	if s.onChange != nil && what != "" {
		s.onChange(what)
	}
}

func (s *fakeStore) bump() int64 { s.rev++; return s.rev }

// cas checks a Patroni-style version: 0 create-if-absent, -1 unconditional, else compare.
func cas(exists bool, cur, version int64) error {
	switch {
	case version == -1:
		return nil
	case version == 0 && exists:
		return dcs.ErrConflict
	case version > 0 && (!exists || cur != version):
		return dcs.ErrConflict
	}
	return nil
}

type fakeDCS struct {
	s   *fakeStore
	me  string
	ttl time.Duration
}

// lock takes the store and checks that this member can reach it.
func (d *fakeDCS) lock() error {
	d.s.mu.Lock()
	if d.s.down || d.s.cut[d.me] {
		d.s.mu.Unlock()
		return errStoreDown
	}
	d.s.expire()
	return nil
}

func (d *fakeDCS) Cluster(context.Context) (*dcs.Cluster, error) {
	if err := d.lock(); err != nil {
		return nil, err
	}
	defer d.s.mu.Unlock()
	s := d.s
	c := &dcs.Cluster{Status: s.status, History: slices.Clone(s.history)}
	if s.initialize != nil {
		v := *s.initialize
		c.Initialize = &v
	}
	if s.config != nil {
		c.Config = &dcs.ConfigKey{Value: slices.Clone(s.config.Value), Version: s.config.Version}
	}
	if s.leader != nil {
		l := *s.leader
		c.Leader = &l
	}
	for _, m := range s.members {
		c.Members = append(c.Members, m)
	}
	sort.Slice(c.Members, func(i, j int) bool { return c.Members[i].Name < c.Members[j].Name })
	if s.failover != nil {
		f := *s.failover
		c.Failover = &f
	}
	if s.failsafe != nil {
		c.Failsafe = maps.Clone(s.failsafe)
	}
	if s.sync != nil {
		y := *s.sync
		y.SyncStandby = slices.Clone(y.SyncStandby)
		c.Sync = &y
	}
	return c, nil
}

func (d *fakeDCS) Initialize(_ context.Context, value string, create bool) (bool, error) {
	if err := d.lock(); err != nil {
		return false, err
	}
	defer d.s.mu.Unlock()
	if create && d.s.initialize != nil {
		return false, nil
	}
	d.s.initialize = &value
	d.s.bump()
	return true, nil
}

func (d *fakeDCS) CancelInitialize(context.Context) error {
	if err := d.lock(); err != nil {
		return err
	}
	defer d.s.mu.Unlock()
	d.s.initialize = nil
	d.s.bump()
	return nil
}

// keepalive extends the member's lease.
func (d *fakeDCS) keepalive() { d.s.grant(d.me, d.ttl) }

// grant gives name's lease ttl from now; when it lapses, its keys go and the watchers hear of
// it then, as etcd deletes a lease's keys and notifies the watches at expiry. The caller holds
// s.mu.
func (s *fakeStore) grant(name string, ttl time.Duration) {
	s.leases[name], s.ttls[name] = s.clock.Now().Add(ttl), ttl
	if t := s.expiry[name]; t != nil {
		t.Stop()
	}
	s.expiry[name] = s.clock.afterFunc("dcs", ttl, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if !s.down {
			s.expire()
		}
	})
}

func (d *fakeDCS) AcquireLeader(context.Context) (bool, error) {
	if err := d.lock(); err != nil {
		return false, err
	}
	defer d.s.mu.Unlock()
	// A key that carries this member's name (from before a restart of either) is taken back,
	// as every backend does.
	if d.s.leader != nil && d.s.leader.Name != d.me {
		return false, nil
	}
	d.keepalive()
	d.s.leader = &dcs.Leader{Name: d.me, Version: d.s.bump()}
	d.s.signal("leader key taken by " + d.me)
	return true, nil
}

func (d *fakeDCS) RenewLeader(context.Context) error {
	if err := d.lock(); err != nil {
		return err
	}
	defer d.s.mu.Unlock()
	if d.s.leader == nil || d.s.leader.Name != d.me {
		return dcs.ErrNotLeader
	}
	d.keepalive()
	return nil
}

func (d *fakeDCS) ReleaseLeader(context.Context) error {
	if err := d.lock(); err != nil {
		return err
	}
	defer d.s.mu.Unlock()
	if d.s.leader != nil && d.s.leader.Name == d.me {
		d.s.leader = nil
		d.s.bump()
		d.s.signal("leader key released by " + d.me)
	}
	return nil
}

func (d *fakeDCS) TouchMember(_ context.Context, data dcs.MemberData) error {
	if err := d.lock(); err != nil {
		return err
	}
	defer d.s.mu.Unlock()
	d.keepalive()
	d.s.members[d.me] = dcs.Member{Name: d.me, Data: data, Version: d.s.bump()}
	return nil
}

func (d *fakeDCS) DeleteMember(context.Context) error {
	if err := d.lock(); err != nil {
		return err
	}
	defer d.s.mu.Unlock()
	// Revoking the lease takes every key bound to it, as in etcd.
	delete(d.s.members, d.me)
	delete(d.s.leases, d.me)
	if d.s.leader != nil && d.s.leader.Name == d.me {
		d.s.leader = nil
		d.s.signal("leader key of " + d.me + " revoked")
	}
	d.s.bump()
	return nil
}

func (d *fakeDCS) SetConfig(_ context.Context, value []byte, version int64) error {
	if err := d.lock(); err != nil {
		return err
	}
	defer d.s.mu.Unlock()
	var cur int64
	if d.s.config != nil {
		cur = d.s.config.Version
	}
	if err := cas(d.s.config != nil, cur, version); err != nil {
		return err
	}
	d.s.config = &dcs.ConfigKey{Value: slices.Clone(value), Version: d.s.bump()}
	d.s.signal("")
	return nil
}

func (d *fakeDCS) SetStatus(_ context.Context, st dcs.Status) error {
	if err := d.lock(); err != nil {
		return err
	}
	defer d.s.mu.Unlock()
	d.s.status = st
	d.s.bump()
	return nil
}

func (d *fakeDCS) SetHistory(_ context.Context, h []dcs.HistoryEntry) error {
	if err := d.lock(); err != nil {
		return err
	}
	defer d.s.mu.Unlock()
	d.s.history = slices.Clone(h)
	d.s.bump()
	return nil
}

func (d *fakeDCS) SetFailover(_ context.Context, f dcs.Failover, version int64) error {
	if err := d.lock(); err != nil {
		return err
	}
	defer d.s.mu.Unlock()
	var cur int64
	if d.s.failover != nil {
		cur = d.s.failover.Version
	}
	if err := cas(d.s.failover != nil, cur, version); err != nil {
		return err
	}
	f.Version = d.s.bump()
	d.s.failover = &f
	d.s.signal("failover key written")
	return nil
}

func (d *fakeDCS) DeleteFailover(context.Context) error {
	if err := d.lock(); err != nil {
		return err
	}
	defer d.s.mu.Unlock()
	if d.s.failover != nil {
		d.s.failover = nil
		d.s.bump()
		d.s.signal("failover key deleted")
	}
	return nil
}

func (d *fakeDCS) SetSync(_ context.Context, y dcs.Sync, version int64) error {
	if err := d.lock(); err != nil {
		return err
	}
	defer d.s.mu.Unlock()
	var cur int64
	if d.s.sync != nil {
		cur = d.s.sync.Version
	}
	if err := cas(d.s.sync != nil, cur, version); err != nil {
		return err
	}
	y.Version = d.s.bump()
	y.SyncStandby = slices.Clone(y.SyncStandby)
	d.s.sync = &y
	d.s.signal("")
	return nil
}

func (d *fakeDCS) DeleteSync(context.Context) error {
	if err := d.lock(); err != nil {
		return err
	}
	defer d.s.mu.Unlock()
	d.s.sync = nil
	d.s.bump()
	return nil
}

func (d *fakeDCS) SetFailsafe(_ context.Context, members map[string]string) error {
	if err := d.lock(); err != nil {
		return err
	}
	defer d.s.mu.Unlock()
	d.s.failsafe = maps.Clone(members)
	d.s.bump()
	return nil
}

func (d *fakeDCS) DeleteCluster(context.Context) error { return errors.New("fake DCS: not supported") }
func (d *fakeDCS) SetTTL(ttl time.Duration) {
	d.s.mu.Lock()
	defer d.s.mu.Unlock()
	d.ttl = ttl
}
func (d *fakeDCS) SetRetryTimeout(time.Duration) {}
func (d *fakeDCS) Changes() <-chan struct{} {
	d.s.mu.Lock()
	defer d.s.mu.Unlock()
	return d.s.changes[d.me]
}
func (d *fakeDCS) Close() error { return nil }

var _ dcs.DCS = (*fakeDCS)(nil)

// ---- PostgreSQL ------------------------------------------------------------------------------

// walStep is what one "write" adds to a primary's WAL.
const walStep = 0x100

// fakePG is one member's PostgreSQL: a data directory with a system identifier, a timeline
// history and a WAL position, and a server that runs as a primary or as a streaming replica.
type fakePG struct {
	sim     *sim
	name    string
	mu      sync.Mutex
	exists  bool // the data directory holds a cluster
	sysID   string
	tl      int
	wal     int64
	history map[int]int64 // timeline -> the LSN it branched at
	running bool
	replica bool // in recovery (standby.signal)
	clean   bool // the last stop was a clean shutdown
	up      string
	stream  bool
	noRecv  bool // the scenario stopped its WAL receiver
	opts    postgres.StartOptions
	params  map[string]string
	ssn     string // synchronous_standby_names in effect
	slots   []postgres.SlotInfo
	// failures the scenario asked for: operation -> remaining count
	fail map[string]int
}

func newFakePG(s *sim, name string) *fakePG {
	return &fakePG{sim: s, name: name, history: map[int]int64{}, fail: map[string]int{}}
}

// failing reports (and uses up) a failure the scenario injected for op.
func (p *fakePG) failing(op string) error {
	if p.fail[op] > 0 {
		p.fail[op]--
		p.event("%s fails (injected)", op)
		return fmt.Errorf("fake postgres: %s failed (injected)", op)
	}
	return nil
}

func (p *fakePG) event(format string, args ...any) {
	p.sim.event(p.name, fmt.Sprintf(format, args...))
}

func (p *fakePG) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.running
}

func (p *fakePG) Start(_ context.Context, opts postgres.StartOptions) error {
	defer p.sim.checkSafety()
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.failing("start"); err != nil {
		return err
	}
	if !p.exists {
		return errors.New("fake postgres: no data directory")
	}
	p.running, p.opts, p.clean = true, opts, false
	p.replica = opts.Role == postgres.Replica
	p.up, p.stream = "", false
	if opts.Upstream != nil {
		p.up = opts.Upstream.Name
	}
	p.ssn = p.params["synchronous_standby_names"]
	if p.replica {
		if p.up == "" {
			p.event("postgres started as a replica with no upstream")
		} else {
			p.event("postgres started as a replica of %q", p.up)
		}
	} else {
		p.event("postgres started as primary")
	}
	return nil
}

func (p *fakePG) stopLocked(how string) {
	if !p.running {
		return
	}
	p.running, p.stream, p.clean = false, false, true
	p.event("postgres stopped (%s)", how)
}

func (p *fakePG) Stop(_ context.Context, mode postgres.StopMode) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	how := "fast"
	if mode == postgres.StopImmediate {
		how = "immediate"
	}
	p.stopLocked(how)
	return nil
}

func (p *fakePG) Fence(time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopLocked("fenced")
}

// crash kills the server as SIGKILL would: no clean shutdown.
func (p *fakePG) crash() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.running {
		p.running, p.stream, p.clean = false, false, false
		p.event("postgres crashed")
	}
}

func (p *fakePG) Reload(context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ssn = p.params["synchronous_standby_names"]
	return nil
}

func (p *fakePG) Options() postgres.StartOptions {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.opts
}

func (p *fakePG) SetConfig(cfg postgres.Config) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.params = cfg.Parameters
}

func (p *fakePG) PendingRestartSettings(context.Context) (map[string]string, error) { return nil, nil }

func (p *fakePG) State(context.Context) (postgres.State, error) {
	p.mu.Lock()
	running, replica, tl, wal, stream, up, ssn := p.running, p.replica, p.tl, p.wal, p.stream, p.up, p.ssn
	p.mu.Unlock()
	if !running {
		return postgres.State{}, errors.New("fake postgres: not running")
	}
	st := postgres.State{InRecovery: replica, Timeline: tl, WALPosition: wal, ServerVersion: 150000,
		SyncStandbyNames: ssn}
	if replica {
		st.ReceiveLSN, st.ReplayLSN, st.Streaming = wal, wal, stream
		if u := p.sim.pg(up); stream && u != nil {
			st.UpstreamHost = up
			st.LatestEndLSN = u.position()
		}
		return st, nil
	}
	names, _ := postgres.ParseSyncNames(ssn)
	for _, r := range p.sim.downstream(p.name) {
		row := postgres.ReplicationRow{ApplicationName: r.name, State: "streaming", SyncState: "async",
			FlushLSN: r.position(), ReplayLSN: r.position()}
		for i, n := range names.Names {
			if n == r.name && !names.Empty() {
				row.SyncPriority, row.SyncState = i+1, "sync"
				if names.Any {
					row.SyncPriority, row.SyncState = 1, "quorum"
				}
			}
		}
		st.Replication = append(st.Replication, row)
	}
	return st, nil
}

func (p *fakePG) position() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.wal
}

func (p *fakePG) ControlData(context.Context) (postgres.ControlData, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.exists {
		return postgres.ControlData{}, errors.New("fake postgres: no pg_control")
	}
	state := "in production"
	switch {
	case p.replica && (p.running || !p.clean):
		state = "in archive recovery"
	case p.replica:
		state = "shut down in recovery"
	case !p.running && p.clean:
		state = "shut down"
	}
	return postgres.ControlData{SystemIdentifier: p.sysID, State: state, Timeline: p.tl, CheckpointLSN: p.wal,
		RedoLSN: p.wal, WalLogHints: true, DataChecksums: true}, nil
}

func (p *fakePG) DataDirState() postgres.DataDirState {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exists {
		return postgres.DataDirValid
	}
	return postgres.DataDirEmpty
}

func (p *fakePG) DataDirUnreadable() error { return nil }

func (p *fakePG) StandbySignal() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.replica
}

func (p *fakePG) Promote(context.Context) error {
	defer p.sim.checkSafety()
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.failing("promote"); err != nil {
		return err
	}
	if !p.running || !p.replica {
		return errors.New("fake postgres: not a running replica")
	}
	p.tl++
	p.history[p.tl] = p.wal
	p.replica, p.up, p.stream = false, "", false
	p.event("postgres promoted: timeline %d from %s", p.tl, lsn(p.wal))
	return nil
}

func (p *fakePG) Follow(_ context.Context, up postgres.Upstream) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.running || !p.replica {
		return errors.New("fake postgres: not a running replica")
	}
	p.up, p.stream = up.Name, false
	p.event("postgres follows %q", up.Name)
	return nil
}

func (p *fakePG) Checkpoint(context.Context) error { return nil }

func (p *fakePG) Slots(context.Context) ([]postgres.SlotInfo, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.running {
		return nil, postgres.ErrNotRunning
	}
	return slices.Clone(p.slots), nil
}

func (p *fakePG) ApplySlots(_ context.Context, ops []postgres.SlotOp) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, o := range ops {
		switch o.Kind {
		case postgres.CreateSlot:
			p.slots = append(p.slots, postgres.SlotInfo{Name: o.Name, Logical: o.Logical, Database: o.Database,
				Plugin: o.Plugin, RestartLSN: max(p.wal, 1)})
		case postgres.DropSlot:
			p.slots = slices.DeleteFunc(p.slots, func(s postgres.SlotInfo) bool { return s.Name == o.Name })
		case postgres.AdvanceSlot:
			for i := range p.slots {
				if p.slots[i].Name == o.Name {
					p.slots[i].RestartLSN = max(p.slots[i].RestartLSN, o.LSN)
				}
			}
		}
	}
	return nil
}

func (p *fakePG) CanRewind(context.Context) (bool, string) { return true, "" }

func (p *fakePG) NeedsRewind(_ context.Context, up postgres.Upstream) (bool, error) {
	u := p.sim.pg(up.Name)
	if u == nil {
		return false, fmt.Errorf("fake postgres: no member %q", up.Name)
	}
	return !p.sim.canFollow(p, u), nil
}

func (p *fakePG) Rewind(_ context.Context, up postgres.Upstream) error {
	u := p.sim.pg(up.Name)
	if u == nil {
		return fmt.Errorf("fake postgres: no member %q", up.Name)
	}
	if err := p.failingLocked("rewind"); err != nil {
		return err
	}
	u.mu.Lock()
	tl, hist := u.tl, maps.Clone(u.history)
	u.mu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	if branch, ok := hist[p.tl+1]; ok && p.wal > branch {
		p.wal = branch
	}
	p.tl, p.history, p.replica, p.clean = tl, hist, true, true
	p.event("pg_rewind from %q: timeline %d at %s", up.Name, tl, lsn(p.wal))
	return nil
}

func (p *fakePG) failingLocked(op string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.failing(op)
}

func (p *fakePG) Initdb(context.Context, []string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.failing("initdb"); err != nil {
		return err
	}
	p.sim.sysIDs++
	p.exists, p.sysID, p.tl, p.wal = true, fmt.Sprintf("73000000000000000%02d", p.sim.sysIDs), 1, 0x3000000
	p.history, p.replica, p.clean = map[int]int64{}, false, true
	p.event("initdb: system identifier %s", p.sysID)
	return nil
}

func (p *fakePG) Basebackup(_ context.Context, up postgres.Upstream) error {
	u := p.sim.pg(up.Name)
	if u == nil {
		return fmt.Errorf("fake postgres: no member %q", up.Name)
	}
	if err := p.failingLocked("basebackup"); err != nil {
		return err
	}
	u.mu.Lock()
	if !u.running {
		u.mu.Unlock()
		return fmt.Errorf("fake postgres: %q is not running", up.Name)
	}
	sysID, tl, wal, hist := u.sysID, u.tl, u.wal, maps.Clone(u.history)
	u.mu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.exists, p.sysID, p.tl, p.wal, p.history = true, sysID, tl, wal, hist
	p.replica, p.clean = true, false
	p.event("pg_basebackup from %q at %s", up.Name, lsn(wal))
	return nil
}

func (p *fakePG) EndRecovery(context.Context) error { return nil }

func (p *fakePG) CreateUsers(context.Context, []postgres.User) error { return nil }

func (p *fakePG) MarkStandby() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.replica = true
	return nil
}

func (p *fakePG) RemoveDataDir() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.exists, p.sysID, p.tl, p.wal, p.history, p.replica = false, "", 0, 0, map[int]int64{}, false
	p.event("data directory removed")
	return nil
}

func (p *fakePG) CreateRoles(context.Context) error { return nil }
func (p *fakePG) WritePassfile() error              { return nil }

var _ PG = (*fakePG)(nil)

func lsn(v int64) string { return fmt.Sprintf("%X/%X", uint64(v)>>32, uint32(v)) }

// ---- peers -----------------------------------------------------------------------------------

// simPeers answers probes and failsafe confirmations from the other simulated members.
type simPeers struct{ sim *sim }

func (p simPeers) Probe(_ context.Context, apiURL string) (Peer, error) {
	sn := p.sim.byAPI(apiURL)
	if sn == nil {
		return Peer{}, fmt.Errorf("probing %s: connection refused", apiURL)
	}
	st := sn.node.Status()
	if st == nil {
		return Peer{}, fmt.Errorf("probing %s: 503", apiURL)
	}
	peer := Peer{Reachable: true, Timeline: st.Timeline, Priority: 1, WatchdogFailed: st.WatchdogFailed}
	if st.Role == "primary" {
		peer.Primary = st.State == "running"
		peer.WALEnd = st.XLogLocation
	} else {
		peer.WALEnd = max(st.ReceivedLocation, st.ReplayedLocation)
	}
	return peer, nil
}

func (p simPeers) PostFailsafe(ctx context.Context, apiURL string, req FailsafeRequest, _ *config.Auth) (int64, error) {
	sn := p.sim.byAPI(apiURL)
	if sn == nil {
		return 0, fmt.Errorf("POST %s: connection refused", apiURL)
	}
	lsn, r := sn.node.Failsafe(ctx, req)
	if r.Code != 200 {
		return 0, fmt.Errorf("POST %s: %d %s", apiURL, r.Code, r.Message)
	}
	return lsn, nil
}
