// Command nemesis is `make nemesis`: a fault-injection run against a 3-node tusker cluster on real
// PostgreSQL 15 and etcd, each host in its own network namespace. Writers next to every node insert
// unique values through clients that follow the node's REST GET /primary answer and record which
// were acknowledged, while a seeded random schedule SIGKILLs tusker, postgres or both, freezes
// tusker for longer than ttl, cuts a node off the network, cuts the primary off the DCS and takes
// the DCS away, with switchovers in between. After every fault it waits for the cluster to heal
// (one primary, every replica streaming from it, a write acknowledged); at the end it checks that
// no two nodes accepted writes at overlapping times and, in synchronous modes, that no
// acknowledged write is missing. See docs/nemesis.md.
//
// NEMESIS_FAULTS (default 100) and NEMESIS_SEED (default: from the clock, printed) pick the run;
// NEMESIS_MODE is synchronous_mode: on (default), quorum, strict (on + synchronous_mode_strict) or
// off; NEMESIS_KINDS (comma-separated) limits the faults drawn. The last line is `nemesis: faults=N lost=L split_brain=B max_heal_s=H seed=S`.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tusker-ha/tusker/test/harness"
)

// Options pick a run.
type Options struct {
	Tusker string // tusker binary
	Faults int
	Seed   uint64
	Mode   string        // on, quorum, strict, off
	Kinds  []string      // the faults to draw from (nil: all)
	Out    io.Writer     // progress, table and final line
	HealBy time.Duration // a fault not healed by then fails the run
}

// Result is what the final line says, and why the run failed, if it did.
type Result struct {
	Faults      int
	Lost        int
	SplitBrains int
	MaxHeal     time.Duration
	Seed        uint64
	Divergent   []string // nodes whose rows differ from the primary's at the end
	Err         error    // the run could not finish (a fault did not heal, a component failed)
}

// Line is the run's last line.
func (r Result) Line() string {
	return fmt.Sprintf("nemesis: faults=%d lost=%d split_brain=%d max_heal_s=%.1f seed=%d",
		r.Faults, r.Lost, r.SplitBrains, r.MaxHeal.Seconds(), r.Seed)
}

// Failed says why the run proves a fault in tusker (or could not finish), "" when it passed.
func (r Result) Failed(mode string) string {
	var why []string
	if r.Err != nil {
		why = append(why, r.Err.Error())
	}
	if r.SplitBrains > 0 {
		why = append(why, fmt.Sprintf("%d split brains", r.SplitBrains))
	}
	if r.Lost > 0 && mode != "off" {
		why = append(why, fmt.Sprintf("%d acknowledged writes lost in synchronous_mode %s", r.Lost, mode))
	}
	if len(r.Divergent) > 0 {
		why = append(why, "rows differ from the primary's on "+strings.Join(r.Divergent, ", "))
	}
	return strings.Join(why, "; ")
}

func main() {
	tusker := flag.String("tusker", "bin/tusker", "tusker binary")
	flag.Parse()
	opts, err := OptionsFromEnv(*tusker)
	if err != nil {
		fmt.Fprintln(os.Stderr, "nemesis:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res := Run(ctx, opts)
	if why := res.Failed(opts.Mode); why != "" {
		fmt.Fprintln(os.Stderr, "nemesis: FAILED:", why)
		fmt.Println(res.Line())
		os.Exit(1)
	}
	fmt.Println(res.Line())
}

// OptionsFromEnv reads NEMESIS_FAULTS, NEMESIS_SEED, NEMESIS_MODE and NEMESIS_KINDS.
func OptionsFromEnv(tusker string) (Options, error) {
	o := Options{Tusker: tusker, Faults: 100, Seed: uint64(time.Now().UnixNano() % 1e9), Mode: "on",
		Out: os.Stdout, HealBy: 120 * time.Second}
	if v := os.Getenv("NEMESIS_FAULTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return o, fmt.Errorf("NEMESIS_FAULTS=%q: want a positive number of faults", v)
		}
		o.Faults = n
	}
	if v := os.Getenv("NEMESIS_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return o, fmt.Errorf("NEMESIS_SEED=%q: want a non-negative integer (the seed a run printed)", v)
		}
		o.Seed = n
	}
	if v := os.Getenv("NEMESIS_MODE"); v != "" {
		if !slices.Contains([]string{"on", "quorum", "strict", "off"}, v) {
			return o, fmt.Errorf("NEMESIS_MODE=%q: want on, quorum, strict or off", v)
		}
		o.Mode = v
	}
	if v := os.Getenv("NEMESIS_KINDS"); v != "" {
		for _, k := range strings.Split(v, ",") {
			k = strings.TrimSpace(k)
			if !slices.Contains(faultKinds, k) {
				return o, fmt.Errorf("NEMESIS_KINDS=%q: %q is not a fault (want some of %s)", v, k, strings.Join(faultKinds, ","))
			}
			o.Kinds = append(o.Kinds, k)
		}
	}
	return o, nil
}

type runner struct {
	opts    Options
	ttl     time.Duration
	net     *Network
	c       *harness.Cluster
	writers map[string]*writer
	window  atomic.Int64
	out     io.Writer
}

func (r *runner) logf(format string, args ...any) {
	fmt.Fprintf(r.out, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// Run runs the whole thing and always returns a Result (Err set when it could not finish).
func Run(ctx context.Context, opts Options) Result {
	res := Result{Seed: opts.Seed}
	r := &runner{opts: opts, ttl: 6 * time.Second, out: opts.Out, writers: map[string]*writer{}}
	r.window.Store(-1)
	steps := schedule(opts.Seed, opts.Faults, r.ttl, opts.Kinds)
	replay := fmt.Sprintf("NEMESIS_SEED=%d NEMESIS_FAULTS=%d NEMESIS_MODE=%s", opts.Seed, opts.Faults, opts.Mode)
	if len(opts.Kinds) > 0 {
		replay += " NEMESIS_KINDS=" + strings.Join(opts.Kinds, ",")
	}
	fmt.Fprintf(r.out, "nemesis: %d faults, synchronous_mode %s, seed %d (replay: %s)\n", opts.Faults, opts.Mode, opts.Seed, replay)

	s, err := harness.PrepareLocal(os.TempDir(), opts.Tusker)
	if err != nil {
		res.Err = err
		return res
	}
	keep := false
	defer func() {
		if !keep {
			os.RemoveAll(s.Dir)
		}
	}()
	hosts := map[string]string{"dcs": dcsIP}
	for i := 1; i <= 3; i++ {
		hosts[fmt.Sprintf("n%d", i)] = nodeIP(i)
	}
	r.net, err = NewNetwork(ctx, hosts)
	if err != nil {
		res.Err = err
		return res
	}
	defer r.net.Close()

	etcdDir := filepath.Join(s.Dir, "etcd-server")
	if err := os.MkdirAll(etcdDir, 0o700); err != nil {
		res.Err = err
		return res
	}
	s.Own(etcdDir)
	e, err := harness.NewEtcdAt(etcdDir, s.Etcd, s.Cred, dcsIP, r.net.Hosts["dcs"].Wrap(s.Cred))
	if err == nil {
		err = e.Start()
	}
	if err != nil {
		res.Err = fmt.Errorf("starting etcd in its namespace: %w", err)
		return res
	}
	defer e.Stop()

	r.c, err = harness.NewCluster(harness.ClusterOptions{Dir: s.Dir, Scope: "nemesis", Nodes: 3, TuskerBin: s.Tusker,
		PGBinDir: s.PGBin, EtcdHost: e.HostPort, Cred: s.Cred, Network: subnet,
		Host: func(n string) string { return r.net.Hosts[n].IP },
		Wrap: func(n string) []string { return r.net.Hosts[n].Wrap(s.Cred) }})
	if err != nil {
		res.Err = err
		return res
	}
	defer r.c.Stop(30 * time.Second)

	res.Err = r.exercise(ctx, steps, &res)
	if res.Err != nil || res.Failed(opts.Mode) != "" {
		keep = true
		r.diagnose()
		fmt.Fprintf(r.out, "nemesis: kept the nodes' directories and logs in %s\n", s.Dir)
	}
	return res
}

// exercise brings the cluster up, starts a writer next to every node, injects the steps one by
// one and checks and reports the writes. It owns the writers' goroutines: they stop before the
// histories are read, and at the latest when it returns.
func (r *runner) exercise(ctx context.Context, steps []step, res *Result) error {
	start := time.Now()
	if err := r.bringUp(ctx, start); err != nil {
		return err
	}

	var seq atomic.Int64
	wctx, stopWriters := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stopWriters(); wg.Wait() }()
	for _, n := range r.c.Nodes {
		w := newWriter(n, r.net.Hosts[n.Name], &seq, &r.window)
		r.writers[n.Name] = w
		wg.Add(1)
		go func() { defer wg.Done(); w.run(wctx) }()
	}
	if _, err := r.waitHealed(ctx, time.Now(), nil); err != nil {
		return fmt.Errorf("before the first fault: %w", err)
	}

	events, runErr := r.injectSteps(ctx, steps, res)
	stopWriters()
	wg.Wait()

	history, lost, runErr := r.tally(ctx, events, runErr, res)
	fmt.Fprintln(r.out)
	res.MaxHeal = report(r.out, events, history, lost)
	fmt.Fprintf(r.out, "run took %.1f min\n", time.Since(start).Minutes())
	return runErr
}

// bringUp starts the cluster, logs how long since start it took to become healthy, creates the
// writers' table on the primary and sets the synchronous mode: the state every fault starts from.
func (r *runner) bringUp(ctx context.Context, start time.Time) error {
	if err := r.c.Start(); err != nil {
		return err
	}
	if err := harness.WaitFor(ctx, 180*time.Second, 100*time.Millisecond, func() error { return r.c.Healthy(ctx) }); err != nil {
		return fmt.Errorf("the cluster did not come up: %w", err)
	}
	r.logf("cluster healthy in %.1f s", time.Since(start).Seconds())
	p, err := r.c.Primary(ctx)
	if err != nil {
		return err
	}
	if err := p.Exec(ctx, createTable); err != nil {
		return fmt.Errorf("creating the table: %w", err)
	}
	return r.setMode(ctx, p)
}

// injectSteps injects each step's fault, waits for it to heal and runs the switchover that
// follows it, if any, counting the faults in res; it stops at the first that fails or does not
// heal and returns why. It returns the events for the report: an event is recorded before it
// starts, so that the writes made during it are counted in its window; Healed stays negative
// when it never healed.
func (r *runner) injectSteps(ctx context.Context, steps []step, res *Result) ([]event, error) {
	var events []event
	for i, st := range steps {
		events = append(events, event{Kind: st.Kind, What: st.Kind, Healed: -1})
		r.window.Store(int64(len(events) - 1))
		what, extra, err := r.inject(ctx, st)
		lifted := time.Now()
		events[len(events)-1].What = what
		if err != nil {
			return events, fmt.Errorf("fault %d (%s): %w", i+1, what, err)
		}
		res.Faults++
		healed, err := r.waitHealed(ctx, lifted, extra)
		if err != nil {
			return events, fmt.Errorf("fault %d (%s, held %.1f s) did not heal: %w", i+1, what, st.Hold.Seconds(), err)
		}
		events[len(events)-1].Healed = healed
		r.logf("[%d/%d] %s held %.1f s: healed in %.1f s", i+1, len(steps), what, st.Hold.Seconds(), healed.Seconds())
		if st.Switchover {
			events = append(events, event{Kind: switchover, What: switchover, Healed: -1})
			r.window.Store(int64(len(events) - 1))
			what, healed, err := r.switchover(ctx, st.Replica)
			events[len(events)-1].What = what
			if err != nil {
				return events, fmt.Errorf("switchover after fault %d: %w", i+1, err)
			}
			events[len(events)-1].Healed = healed
			r.logf("        %s: healed in %.1f s", what, healed.Seconds())
		}
	}
	return events, nil
}

// tally reads the stopped writers' histories, logs and counts the split brains in res and, when
// the run finished (runErr nil), compares the acknowledged writes with the final rows: it logs
// up to 20 lost writes and sets res.Lost and res.Divergent. It returns the histories and the
// lost writes for the report, and runErr, or why the final rows could not be read.
func (r *runner) tally(ctx context.Context, events []event, runErr error, res *Result) (map[string][]op, []op, error) {
	history := map[string][]op{}
	for name, w := range r.writers {
		history[name] = w.history()
	}
	for _, sb := range findSplitBrains(history) {
		r.logf("SPLIT BRAIN: %s", sb)
		res.SplitBrains++
	}
	var lost []op
	if runErr == nil {
		final, divergent, err := r.finalRows(ctx)
		if err != nil {
			runErr = err
		} else {
			lost = lostWrites(history, final)
			res.Lost, res.Divergent = len(lost), divergent
			for i, o := range lost {
				if i == 20 {
					r.logf("... and %d more", len(lost)-20)
					break
				}
				r.logf("LOST: value %d acknowledged at %s (during %s)", o.Value, o.End.Format("15:04:05.000"), windowName(events, o.Window))
			}
		}
	}
	return history, lost, runErr
}

func windowName(events []event, w int) string {
	if w < 0 || w >= len(events) {
		return "steady state"
	}
	return events[w].What
}

// setMode turns on the synchronous mode the run asked for and waits for the sync key to name a
// standby.
func (r *runner) setMode(ctx context.Context, p *harness.Node) error {
	body := map[string]any{}
	switch r.opts.Mode {
	case "off":
		return nil
	case "strict":
		body["synchronous_mode"] = "on"
		body["synchronous_mode_strict"] = true
	default:
		body["synchronous_mode"] = r.opts.Mode
	}
	if code, msg, err := r.call(ctx, p, http.MethodPatch, "/config", body); err != nil || code != 200 {
		return fmt.Errorf("PATCH /config %v: %d %s %v", body, code, msg, err)
	}
	return harness.WaitFor(ctx, 60*time.Second, 100*time.Millisecond, func() error {
		if r.syncStandby(ctx, p) == nil {
			return errors.New("no synchronous standby yet")
		}
		return nil
	})
}

// syncStandby is a replica whose /sync (mode on) or /quorum answers 200; nil when there is none.
func (r *runner) syncStandby(ctx context.Context, p *harness.Node) *harness.Node {
	path := "/sync"
	if r.opts.Mode == "quorum" {
		path = "/quorum"
	}
	for _, n := range r.c.Nodes {
		if n != p && n.Check(ctx, path) == 200 {
			return n
		}
	}
	return nil
}

// waitHealed waits until the cluster is whole again after a fault lifted at since: every tusker
// running, one node answering /primary, both others streaming replicas that the primary lists as
// streaming and that receive its WAL, in synchronous modes a synchronous standby, and a write
// through the primary's client acknowledged after since. It returns how long that took from since.
func (r *runner) waitHealed(ctx context.Context, since time.Time, extra func() error) (time.Duration, error) {
	var healed time.Time
	type lsnMark struct {
		primary *harness.Node
		lsn     string
	}
	var mark lsnMark
	err := harness.WaitFor(ctx, r.opts.HealBy, 100*time.Millisecond, func() error {
		if extra != nil {
			if err := extra(); err != nil {
				return err
			}
		}
		for _, n := range r.c.Nodes {
			if !n.Running() {
				return fmt.Errorf("tusker on %s is not running", n.Name)
			}
		}
		if err := r.c.Healthy(ctx); err != nil {
			return err
		}
		p, err := r.c.Primary(ctx)
		if err != nil {
			return err
		}
		st, _, err := p.Patroni(ctx)
		if err != nil {
			return err
		}
		streaming := map[string]bool{}
		if reps, ok := st["replication"].([]any); ok {
			for _, x := range reps {
				if m, ok := x.(map[string]any); ok && m["state"] == "streaming" {
					streaming[fmt.Sprint(m["application_name"])] = true
				}
			}
		}
		for _, n := range r.c.Nodes {
			if n != p && !streaming[n.Name] {
				return fmt.Errorf("the primary %s does not list %s as streaming", p.Name, n.Name)
			}
		}
		// Statuses are up to a loop old, and a primary lists a replica as streaming until
		// wal_sender_timeout: only WAL positions read now tell that a replica really receives.
		// Each replica must have received what the primary had written one poll earlier.
		lsn, err := p.QueryString(ctx, "SELECT pg_current_wal_lsn()::text")
		if err != nil {
			return fmt.Errorf("primary %s: %w", p.Name, err)
		}
		prev := mark
		mark = lsnMark{p, lsn}
		if prev.primary != p {
			return fmt.Errorf("the primary %s: checking its replicas' positions next", p.Name)
		}
		for _, n := range r.c.Nodes {
			if n == p {
				continue
			}
			ok, err := n.QueryString(ctx, "SELECT (pg_last_wal_receive_lsn() >= $1::pg_lsn)::text", prev.lsn)
			if err != nil {
				return fmt.Errorf("%s: %w", n.Name, err)
			}
			if ok != "true" {
				return fmt.Errorf("%s has not received the primary's WAL up to %s", n.Name, prev.lsn)
			}
		}
		if r.opts.Mode != "off" && r.syncStandby(ctx, p) == nil {
			return fmt.Errorf("no synchronous standby of %s", p.Name)
		}
		if !r.writers[p.Name].ackedSince(since) {
			return fmt.Errorf("no write acknowledged by %s yet", p.Name)
		}
		healed = time.Now()
		return nil
	})
	if err != nil {
		return 0, err
	}
	return healed.Sub(since), nil
}

// switchover asks the primary to hand over to a standby (the synchronous one in mode on, else
// the replica-th by name) and waits until the cluster is whole again with that standby as the
// primary.
func (r *runner) switchover(ctx context.Context, replica int) (string, time.Duration, error) {
	p, err := r.c.Primary(ctx)
	if err != nil {
		return "", 0, err
	}
	var cand *harness.Node
	if r.opts.Mode == "on" || r.opts.Mode == "strict" {
		// Only a synchronous standby may take over (Patroni's rule): the others may miss commits.
		cand = r.syncStandby(ctx, p)
	}
	if cand == nil {
		var reps []*harness.Node
		for _, n := range r.c.Nodes {
			if n != p {
				reps = append(reps, n)
			}
		}
		cand = reps[replica%len(reps)]
	}
	what := fmt.Sprintf("switchover %s -> %s", p.Name, cand.Name)
	since := time.Now()
	code, msg, err := r.call(ctx, p, http.MethodPost, "/switchover", map[string]any{"leader": p.Name, "candidate": cand.Name})
	if err != nil || code != 200 {
		return what, 0, fmt.Errorf("%s: %d %s %v", what, code, msg, err)
	}
	healed, err := r.waitHealed(ctx, since, nil)
	if err != nil {
		return what, 0, err
	}
	if np, err := r.c.Primary(ctx); err != nil || np != cand {
		return what, 0, fmt.Errorf("%s: the primary is %v (%v)", what, np, err)
	}
	return what, healed, nil
}

// finalRows waits until every replica replayed the primary's last WAL, then reads every node's
// rows. It returns the primary's values and the nodes whose rows differ.
func (r *runner) finalRows(ctx context.Context) (map[int64]bool, []string, error) {
	p, err := r.c.Primary(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("at the end: %w", err)
	}
	lsn, err := p.QueryString(ctx, "SELECT pg_current_wal_lsn()::text")
	if err != nil {
		return nil, nil, fmt.Errorf("at the end, on %s: %w", p.Name, err)
	}
	for _, n := range r.c.Nodes {
		if n == p {
			continue
		}
		err := harness.WaitFor(ctx, 60*time.Second, 100*time.Millisecond, func() error {
			caught, err := n.QueryString(ctx, "SELECT (pg_last_wal_replay_lsn() >= $1::pg_lsn)::text", lsn)
			if err != nil {
				return err
			}
			if caught != "true" {
				return fmt.Errorf("%s has not replayed up to %s", n.Name, lsn)
			}
			return nil
		})
		if err != nil {
			return nil, nil, fmt.Errorf("at the end: %w", err)
		}
	}
	rows := map[string]map[int64]bool{}
	for _, n := range r.c.Nodes {
		set, err := values(ctx, n)
		if err != nil {
			return nil, nil, fmt.Errorf("reading %s's rows: %w", n.Name, err)
		}
		rows[n.Name] = set
	}
	var divergent []string
	for _, n := range r.c.Nodes {
		if n != p && !sameSet(rows[n.Name], rows[p.Name]) {
			divergent = append(divergent, n.Name)
		}
	}
	return rows[p.Name], divergent, nil
}

func values(ctx context.Context, n *harness.Node) (map[int64]bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, n.DSN())
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	rs, err := conn.Query(ctx, "SELECT v FROM nemesis")
	if err != nil {
		return nil, err
	}
	set := map[int64]bool{}
	for rs.Next() {
		var v int64
		if err := rs.Scan(&v); err != nil {
			return nil, err
		}
		set[v] = true
	}
	return set, rs.Err()
}

func sameSet(a, b map[int64]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for v := range a {
		if !b[v] {
			return false
		}
	}
	return true
}

// call sends an operator's request to n from n's own network namespace, as tuskerctl run on that
// machine would: changes are accepted only from a member's own address by default.
func (r *runner) call(ctx context.Context, n *harness.Node, method, path string, body any) (int, string, error) {
	client := n.HTTPClient()
	if h := r.net.Hosts[n.Name]; h != nil {
		client = &http.Client{Transport: &http.Transport{DialContext: h.DialContext, DisableKeepAlives: true}}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, method, n.APIURL()+path, bytes.NewReader(b))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(msg)), nil
}

// diagnose prints what an operator would look at first: every node's view and its log's tail.
func (r *runner) diagnose() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, n := range r.c.Nodes {
		st, code, err := n.Patroni(ctx)
		fmt.Fprintf(r.out, "--- %s: running=%v /patroni %d %v %v\n", n.Name, n.Running(), code, st, err)
		lines := strings.Split(strings.TrimRight(n.Log(), "\n"), "\n")
		if len(lines) > 40 {
			lines = lines[len(lines)-40:]
		}
		fmt.Fprintln(r.out, strings.Join(lines, "\n"))
	}
}
