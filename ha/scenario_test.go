package ha

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"

	"github.com/tusker-ha/tusker/config"
	"github.com/tusker-ha/tusker/dcs"
	"github.com/tusker-ha/tusker/patroni"
)

// TestScenarios runs the failure stories under testdata/scenarios: real Nodes (observe, Decide,
// execute, publish, the fence timer) on the in-memory cluster of sim_fakes_test.go, in simulated
// time. Each file is a script of commands and the output they must print (the roles, keys and
// actions); a new failure story is a new file. The commands:
//
//	cluster a b c [ttl=30] [loop_wait=10] [retry_timeout=10] [failsafe] [sync=on|quorum]
//	        [primary_start_timeout=300] [maximum_lag_on_failover=N]
//	                      members with empty data directories, tusker not yet started
//	start a [b...]        start tusker on the members
//	run for=DUR           let time pass; prints what happened (actions, postgres, leader key)
//	kill a                SIGKILL of the whole member: tusker and postgres
//	crash a               postgres dies, tusker stays
//	stop a                tusker shuts down cleanly (postgres stopped, keys removed)
//	dcs stop|start        the whole store stops; started again it grants every lease a full
//	                      ttl (etcd's restart), so the keys survive a long outage
//	dcs freeze|thaw       the store hangs; when it wakes, leases that ran out meanwhile go
//	dcs cut a | heal a    one member loses (or regains) the store
//	write a [n=1]         a client writes on a's postgres; prints ok or refused
//	receiver a off|on     a's WAL receiver stops (a replica falls behind) or resumes
//	switchover from=a [to=b] | failover to=b     writes the failover key as the REST API does
//	config key=value...   changes the dynamic configuration (the config key)
//	fail a op [n=1]       a's next n postgres operations op (start, promote, basebackup,
//	                      initdb, rewind) fail
//	status                roles, postgres and keys
//
// Run with -rewrite to regenerate the expected output after an intended change, then read
// the diff. TUSKER_SCENARIO_LOG=1 prints every Node's log.
//
// After every step and every timer, the simulation checks that at most one postgres accepts
// writes.
func TestScenarios(t *testing.T) {
	datadriven.Walk(t, "testdata/scenarios", func(t *testing.T, path string) {
		s := newSim(t)
		defer s.close()
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			return s.do(t, d)
		})
	})
}

var simEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

type sim struct {
	t      *testing.T
	clock  *manualClock
	store  *fakeStore
	nodes  map[string]*simNode
	pgs    map[string]*fakePG
	names  []string
	dyn    config.Dynamic
	sysIDs int
	out    bytes.Buffer
	logs   bytes.Buffer
	dir    string
	logAll bool
}

type simNode struct {
	name   string
	node   *Node
	dcs    *fakeDCS
	ctx    context.Context
	cancel context.CancelFunc
	nextAt time.Time
	streak int
	last   string // the last plan line printed
	job    *manualTimer
}

// jobTime is how long each long action takes in the simulation.
var jobTime = map[Job]time.Duration{
	JobBootstrap: 3 * time.Second, JobClone: 5 * time.Second, JobReclone: 5 * time.Second,
	JobStart: time.Second, JobPromote: 100 * time.Millisecond, JobDemote: 500 * time.Millisecond, JobDemoteCluster: time.Second,
	JobFollow: 100 * time.Millisecond, JobStopReplica: 500 * time.Millisecond,
	JobRewindCheck: 200 * time.Millisecond, JobRewind: 2 * time.Second, JobSwitchover: time.Second,
	JobRestart: 2 * time.Second, JobReinitialize: 5 * time.Second,
}

func newSim(t *testing.T) *sim {
	c := &manualClock{now: simEpoch}
	s := &sim{t: t, clock: c, store: newFakeStore(c), nodes: map[string]*simNode{}, pgs: map[string]*fakePG{},
		dir: t.TempDir(), logAll: os.Getenv("TUSKER_SCENARIO_LOG") != ""}
	s.store.onChange = func(what string) { s.event("dcs", what) }
	return s
}

func (s *sim) close() {
	for _, n := range s.nodes {
		n.cancel()
	}
}

// event adds one line to the current command's output.
func (s *sim) event(who, what string) {
	fmt.Fprintf(&s.out, "%7.2f %-3s %s\n", s.clock.Now().Sub(simEpoch).Seconds(), who, what)
}

func (s *sim) pg(name string) *fakePG { return s.pgs[name] }

func (s *sim) byAPI(apiURL string) *simNode {
	for _, n := range s.nodes {
		if n.node.apiURL() == apiURL {
			return n
		}
	}
	return nil
}

// downstream is the replicas streaming from name.
func (s *sim) downstream(name string) []*fakePG {
	var out []*fakePG
	for _, n := range s.names {
		p := s.pgs[n]
		p.mu.Lock()
		ok := p.running && p.replica && p.stream && p.up == name
		p.mu.Unlock()
		if ok {
			out = append(out, p)
		}
	}
	return out
}

// canFollow: r's WAL is a prefix of u's history (same system, and r has nothing u's timeline
// left behind when it branched off).
func (s *sim) canFollow(r, u *fakePG) bool {
	r.mu.Lock()
	rsys, rtl, rwal := r.sysID, r.tl, r.wal
	r.mu.Unlock()
	u.mu.Lock()
	defer u.mu.Unlock()
	switch {
	case rsys != u.sysID || rtl > u.tl:
		return false
	case rtl == u.tl:
		return true
	}
	branch, ok := u.history[rtl+1]
	return ok && rwal <= branch
}

// flow streams WAL from every running upstream to its replicas.
func (s *sim) flow() {
	for range 3 { // cascades settle in a few rounds
		for _, n := range s.names {
			r := s.pgs[n]
			r.mu.Lock()
			up := r.up
			ok := r.running && r.replica && up != "" && !r.noRecv
			if r.noRecv {
				r.stream = false
			}
			r.mu.Unlock()
			if !ok || s.pgs[up] == nil {
				continue
			}
			u := s.pgs[up]
			follow := s.canFollow(r, u)
			u.mu.Lock()
			urun, tl, wal, hist := u.running, u.tl, u.wal, maps.Clone(u.history)
			u.mu.Unlock()
			r.mu.Lock()
			r.stream = urun && follow
			if r.stream {
				r.tl, r.history = tl, hist
				r.wal = max(r.wal, wal)
			}
			r.mu.Unlock()
		}
	}
}

// checkSafety fails the test when two postgres servers accept writes at once.
func (s *sim) checkSafety() {
	var writable []string
	for _, n := range s.names {
		p := s.pgs[n]
		p.mu.Lock()
		if p.running && !p.replica {
			writable = append(writable, n)
		}
		p.mu.Unlock()
	}
	if len(writable) > 1 {
		s.t.Errorf("two primaries accept writes at %s: %v\n%s", s.clock.Now().Sub(simEpoch), writable, s.out.String())
	}
}

func (s *sim) do(t *testing.T, d *datadriven.TestData) string {
	s.t = t
	s.out.Reset()
	args := map[string]string{}
	var pos []string
	for _, a := range d.CmdArgs {
		if len(a.Vals) == 0 {
			pos = append(pos, a.Key)
			continue
		}
		args[a.Key] = strings.Join(a.Vals, ",")
	}
	switch d.Cmd {
	case "cluster":
		var names []string
		for _, p := range pos {
			if p == "failsafe" {
				args[p] = "true"
			} else {
				names = append(names, p)
			}
		}
		s.cluster(t, names, args)
	case "start":
		for _, name := range pos {
			s.start(t, name)
		}
	case "run":
		dur, err := time.ParseDuration(args["for"])
		if err != nil {
			d.Fatalf(t, "run: for=%q: %v", args["for"], err)
		}
		s.run(t, dur)
	case "kill":
		for _, name := range pos {
			s.kill(name)
			s.pgs[name].crash()
		}
	case "crash":
		for _, name := range pos {
			s.pgs[name].crash()
		}
	case "stop":
		for _, name := range pos {
			s.stop(name)
		}
	case "dcs":
		s.dcsCmd(t, d, pos)
	case "write":
		s.write(pos, args)
	case "switchover", "failover":
		s.failoverKey(t, d.Cmd, args)
	case "config":
		s.configCmd(t, args)
	case "fail":
		if len(pos) != 2 {
			d.Fatalf(t, "fail MEMBER OP [n=N]")
		}
		n := 1
		if v, ok := args["n"]; ok {
			n, _ = strconv.Atoi(v)
		}
		p := s.pgs[pos[0]]
		p.mu.Lock()
		p.fail[pos[1]] += n
		p.mu.Unlock()
	case "receiver":
		if len(pos) != 2 || (pos[1] != "on" && pos[1] != "off") {
			d.Fatalf(t, "receiver MEMBER on|off")
		}
		p := s.pgs[pos[0]]
		p.mu.Lock()
		p.noRecv = pos[1] == "off"
		p.mu.Unlock()
		s.flow()
	case "status":
		s.status()
	default:
		d.Fatalf(t, "unknown command %q", d.Cmd)
	}
	if t.Failed() || s.logAll {
		t.Log("logs:\n" + s.logs.String())
	}
	s.logs.Reset()
	return s.out.String()
}

func (s *sim) cluster(t *testing.T, names []string, args map[string]string) {
	s.names = names
	d := config.DefaultDynamic()
	d.TTL, d.LoopWait, d.RetryTimeout = 30, 10, 10
	for k, v := range args {
		s.setDynamic(t, &d, k, v)
	}
	s.dyn = d
	for _, n := range names {
		s.pgs[n] = newFakePG(s, n)
	}
}

// setDynamic sets one dynamic key from its scenario spelling, through the same JSON a PATCH
// /config would carry.
func (s *sim) setDynamic(t *testing.T, d *config.Dynamic, k, v string) {
	raw, err := d.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	switch k {
	case "failsafe":
		k, v = "failsafe_mode", "true"
	case "sync":
		k = "synchronous_mode"
	}
	var val any = v
	if err := json.Unmarshal([]byte(v), &val); err != nil {
		val = v // a plain string
	}
	m[k] = val
	raw, _ = json.Marshal(m)
	nd, err := config.ParseDynamic(raw)
	if err != nil {
		t.Fatalf("config %s=%s: %v", k, v, err)
	}
	if probs := nd.Validate(); len(probs) > 0 {
		t.Fatalf("config %s=%s: %v", k, v, probs)
	}
	*d = nd
}

func (s *sim) nodeConfig(t *testing.T, name string) *config.Config {
	dd := filepath.Join(s.dir, name)
	yml := fmt.Sprintf(`scope: sim
name: %[1]s
restapi:
  listen: 127.0.0.1:8008
  connect_address: %[1]s:8008
etcd3:
  host: 127.0.0.1:2379
postgresql:
  listen: 127.0.0.1:5432
  connect_address: %[1]s:5432
  data_dir: %[2]s
watchdog:
  mode: "off"
`, name, dd)
	p := filepath.Join(s.dir, name+".yml")
	if err := os.WriteFile(p, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.LoadWithEnv(p, nil)
	if err != nil {
		t.Fatalf("config of %s: %v", name, err)
	}
	c.Bootstrap.DCS = s.dyn
	return c
}

func (s *sim) start(t *testing.T, name string) {
	if s.pgs[name] == nil {
		t.Fatalf("start %s: no such member (cluster first)", name)
	}
	if _, ok := s.nodes[name]; ok {
		t.Fatalf("start %s: already running", name)
	}
	c := s.nodeConfig(t, name)
	ttl, _, _ := s.dyn.TimingDurations()
	d := s.store.client(name, ttl)
	log := slog.New(slog.NewTextHandler(prefixWriter{w: &s.logs, prefix: name + " "},
		&slog.HandlerOptions{Level: slog.LevelDebug, ReplaceAttr: dropTime}))
	n := NewNode(Options{Config: c, DCS: d, PG: s.pgs[name], Logger: log, Version: "4.0.0",
		Prober: simPeers{s}, Failsafe: simPeers{s}, Clock: nodeClock{s.clock, name}})
	sn := &simNode{name: name, node: n, dcs: d}
	n.runJob = func(job Job, run func()) {
		// A job takes simulated time: the loop goes on meanwhile, as it does around a real one.
		sn.job = s.clock.afterFunc(name, jobTime[job], func() {
			sn.job = nil
			run()
		}).(*manualTimer)
	}
	n.awaitJob = func(<-chan struct{}) {
		// Cancelled: it ends now (the fakes do their work at once, so it completes).
		if t := sn.job; t != nil && t.Stop() {
			sn.job = nil
			t.f()
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.prepare(ctx)
	sn.ctx, sn.cancel, sn.nextAt = ctx, cancel, s.clock.Now()
	s.nodes[name] = sn
	s.event(name, "tusker started")
}

func dropTime(_ []string, a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}

type prefixWriter struct {
	w      io.Writer
	prefix string
}

func (p prefixWriter) Write(b []byte) (int, error) {
	_, err := p.w.Write(append([]byte(p.prefix), b...))
	return len(b), err
}

// kill ends a member's tusker at once: no shutdown, its timers gone with it.
func (s *sim) kill(name string) {
	n := s.nodes[name]
	if n == nil {
		return
	}
	n.cancel()
	s.clock.dropOwner(name)
	delete(s.nodes, name)
	s.event(name, "tusker killed")
}

func (s *sim) stop(name string) {
	n := s.nodes[name]
	if n == nil {
		return
	}
	n.cancel()
	n.node.shutdown()
	s.clock.dropOwner(name)
	delete(s.nodes, name)
	s.event(name, "tusker stopped")
}

// run advances simulated time by dur, running each member's cycles when its loop would and
// firing timers (the fence) at their time. Ties go in member name order.
func (s *sim) run(t *testing.T, dur time.Duration) {
	end := s.clock.Now().Add(dur)
	for steps := 0; ; steps++ {
		if steps > 100000 {
			t.Fatalf("run: no progress (a busy loop?)\n%s", s.out.String())
		}
		var next *simNode
		for _, name := range s.names {
			if n := s.nodes[name]; n != nil && (next == nil || n.nextAt.Before(next.nextAt)) {
				next = n
			}
		}
		tm := s.clock.next()
		switch {
		case tm != nil && !tm.at.After(end) && (next == nil || tm.at.Before(next.nextAt)):
			s.clock.fire(tm)
			s.checkSafety()
			s.wakeWoken()
		case next != nil && !next.nextAt.After(end):
			s.clock.set(next.nextAt)
			s.stepNode(t, next)
		default:
			s.clock.set(end)
			return
		}
	}
}

// wakeWoken moves up the next cycle of every member whose loop was woken (a DCS watch, a Wake).
func (s *sim) wakeWoken() {
	soon := s.clock.Now().Add(10 * time.Millisecond)
	for _, n := range s.nodes {
		woken := false
		select {
		case <-n.node.wake:
			woken = true
		default:
		}
		select {
		case <-n.dcs.Changes():
			woken = true
		default:
		}
		if woken && n.nextAt.After(soon) {
			n.nextAt = soon
		}
	}
}

func (s *sim) stepNode(t *testing.T, sn *simNode) {
	s.flow()
	start := s.clock.Now()
	mark := s.out.Len()
	plan, err := sn.node.step(sn.ctx)
	s.flow()
	s.checkSafety()
	s.report(sn, plan, mark)
	if err != nil {
		s.event(sn.name, "tusker exits: "+err.Error())
		s.kill(sn.name)
		return
	}
	_, loopWait, _ := sn.node.dyn.TimingDurations()
	switch {
	case RunAgainNow(plan) && sn.streak < 2:
		sn.streak++
		sn.nextAt = start.Add(10 * time.Millisecond)
	default:
		sn.streak = 0
		sn.nextAt = start.Add(NextCycleWait(loopWait, start, s.clock.Now(), plan.WakeAt, sn.node.scheduledRestartAt()))
	}
	s.wakeWoken()
}

var digits = regexp.MustCompile(`[0-9][0-9.:TZ-]*`)

// report prints a member's plan when it does something other than holding on to what it has.
func (s *sim) report(sn *simNode, p Plan, at int) {
	var kinds []string
	for _, k := range kindsOf(p) {
		if k != "renew leader" {
			kinds = append(kinds, k)
		}
	}
	line := p.Reason
	if len(kinds) > 0 {
		line = strings.Join(kinds, ", ") + ": " + p.Reason
	}
	// A reason that only counts down (the lease left) is the same story: print it once.
	if key := digits.ReplaceAllString(line, "#"); key == sn.last {
		return
	} else {
		sn.last = key
	}
	if len(kinds) > 0 || !strings.Contains(line, "no action") {
		// Before what its actions printed.
		after := s.out.String()[at:]
		s.out.Truncate(at)
		s.event(sn.name, line)
		s.out.WriteString(after)
	}
}

func (s *sim) dcsCmd(t *testing.T, d *datadriven.TestData, pos []string) {
	if len(pos) == 0 {
		d.Fatalf(t, "dcs stop|start|freeze|thaw|cut M|heal M")
	}
	st := s.store
	st.mu.Lock()
	defer st.mu.Unlock()
	switch pos[0] {
	case "stop", "freeze":
		st.down, st.frozen = true, pos[0] == "freeze"
	case "start":
		// A restarted etcd grants every lease a full ttl from its start: the keys survive.
		st.down = false
		for name := range st.leases {
			st.grant(name, st.ttls[name])
		}
	case "thaw":
		// A frozen one wakes with its overdue leases revoked at once.
		st.down, st.frozen = false, false
		st.expire()
	case "cut", "heal":
		for _, m := range pos[1:] {
			st.cut[m] = pos[0] == "cut"
		}
	default:
		d.Fatalf(t, "dcs %s: unknown", pos[0])
	}
}

func (s *sim) write(pos []string, args map[string]string) {
	n := 1
	if v, ok := args["n"]; ok {
		n, _ = strconv.Atoi(v)
	}
	for _, name := range pos {
		p := s.pgs[name]
		p.mu.Lock()
		if p.running && !p.replica {
			p.wal += int64(n) * walStep
			fmt.Fprintf(&s.out, "%s: ok, WAL at %s\n", name, lsn(p.wal))
		} else {
			fmt.Fprintf(&s.out, "%s: refused\n", name)
		}
		p.mu.Unlock()
	}
	s.flow()
}

// failoverKey writes the failover key as POST /switchover (from, to) or /failover (to) does.
func (s *sim) failoverKey(t *testing.T, cmd string, args map[string]string) {
	f := dcs.Failover{Member: args["to"]}
	if cmd == "switchover" {
		f.Leader = args["from"]
	}
	d := s.store.client("operator", 0)
	if err := d.SetFailover(context.Background(), f, -1); err != nil {
		fmt.Fprintf(&s.out, "refused: %v\n", err)
		return
	}
	s.wakeWoken()
}

// configCmd patches the config key as PATCH /config does.
func (s *sim) configCmd(t *testing.T, args map[string]string) {
	st := s.store
	st.mu.Lock()
	cur := s.dyn
	if st.config != nil {
		if d, err := config.ParseDynamic(st.config.Value); err == nil {
			cur = d
		}
	}
	st.mu.Unlock()
	keys := make([]string, 0, len(args))
	for k := range args {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		s.setDynamic(t, &cur, k, args[k])
	}
	raw, err := cur.JSON()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.store.client("operator", 0).SetConfig(context.Background(), raw, -1); err != nil {
		fmt.Fprintf(&s.out, "refused: %v\n", err)
		return
	}
	s.wakeWoken()
}

// status prints each member (what its REST API says, and its postgres) and the keys.
func (s *sim) status() {
	for _, name := range s.names {
		p := s.pgs[name]
		p.mu.Lock()
		pgs := "no data"
		if p.exists {
			pgs = "stopped"
			if p.running {
				pgs = "primary"
				if p.replica {
					pgs = "replica"
					if p.up != "" {
						pgs += " of " + p.up
					}
					if p.stream {
						pgs += " (streaming)"
					}
				}
			}
			pgs += fmt.Sprintf(" tl=%d wal=%s", p.tl, lsn(p.wal))
		}
		p.mu.Unlock()
		api := "tusker down"
		if n := s.nodes[name]; n != nil {
			if st := n.node.Status(); st != nil {
				api = st.Role + "/" + st.State
				if st.IsLeader {
					api += " leader"
				}
			}
		}
		fmt.Fprintf(&s.out, "%-3s %-26s postgres: %s\n", name, api, pgs)
	}
	st := s.store
	st.mu.Lock()
	defer st.mu.Unlock()
	leader := "-"
	if st.leader != nil {
		leader = st.leader.Name
	}
	members := slices.Sorted(maps.Keys(st.members))
	fmt.Fprintf(&s.out, "keys: leader=%s members=%s", leader, strings.Join(members, ","))
	if st.initialize != nil {
		fmt.Fprintf(&s.out, " initialize=%s", *st.initialize)
	}
	if st.failover != nil {
		fmt.Fprintf(&s.out, " failover=%s->%s", st.failover.Leader, st.failover.Member)
	}
	if st.sync != nil {
		fmt.Fprintf(&s.out, " sync=%s:%s", st.sync.Leader, strings.Join(st.sync.SyncStandby, ","))
	}
	if st.failsafe != nil {
		fmt.Fprintf(&s.out, " failsafe=%s", strings.Join(slices.Sorted(maps.Keys(st.failsafe)), ","))
	}
	if st.status.Optime != 0 {
		fmt.Fprintf(&s.out, " optime=%s", patroni.FormatLSN(st.status.Optime))
	}
	if st.config != nil {
		if d, err := config.ParseDynamic(st.config.Value); err == nil && d.Pause {
			s.out.WriteString(" pause")
		}
	}
	if st.down {
		s.out.WriteString(" (store down)")
	}
	s.out.WriteString("\n")
}
