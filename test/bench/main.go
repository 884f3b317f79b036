// Command bench is `make bench`: it starts a 3-node tusker cluster on this machine and measures
// time to healthy, memory and CPU per tusker process, REST API throughput and latency of the
// health checks (with Patroni 3.0.2's for comparison), the switchover write gap, unplanned
// failover time, rejoin time, the healing of a DCS outage, and the write gap and lost
// acknowledged writes of a failover in synchronous_mode on and quorum. -rest-only measures just
// the REST figures, -sync-only just the synchronous failover, -memory-only just the idle memory
// and CPU figures and -failover-only just the failover write gaps, on every DCS in turn (or those
// -dcs names).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tusker-ha/tusker/internal/proc"
	"github.com/tusker-ha/tusker/test/harness"
)

func main() {
	tusker := flag.String("tusker", "bin/tusker", "tusker binary")
	idle := flag.Duration("idle", 60*time.Second, "idle period for the RSS/CPU figures")
	restOnly := flag.Bool("rest-only", false, "measure only the REST API figures (tusker's and Patroni's)")
	syncOnly := flag.Bool("sync-only", false,
		"measure only the synchronous failover (synchronous_mode on, then quorum: write gap and lost acknowledged writes after kill -9 of the primary)")
	memOnly := flag.Bool("memory-only", false,
		"measure only the idle figures (RSS, PSS, anonymous memory and CPU per member, binary size), on each DCS of -dcs in turn")
	stores := flag.String("dcs", strings.Join(memStores, ","), "with -memory-only or -failover-only: the DCSs to measure on, comma-separated")
	flag.Parse()
	if *memOnly {
		if err := memoryOnly(*tusker, *idle, strings.Split(*stores, ",")); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	if *failoverOnly {
		if err := failoverPerDCS(*tusker, strings.Split(*stores, ","), *failoverRuns); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	if *restOnly && *syncOnly {
		fmt.Fprintln(os.Stderr, "bench: -rest-only and -sync-only exclude each other")
		os.Exit(2)
	}
	if err := run(*tusker, *idle, *restOnly, *syncOnly); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(tusker string, idle time.Duration, restOnly, syncOnly bool) error {
	ctx := context.Background()
	s, err := harness.PrepareLocal(os.TempDir(), tusker)
	if err != nil {
		return err
	}
	defer os.RemoveAll(s.Dir)
	e, err := s.StartEtcd()
	if err != nil {
		return err
	}
	defer e.Stop()
	c, err := harness.NewCluster(harness.ClusterOptions{Dir: s.Dir, Scope: "bench", Nodes: 3, TuskerBin: s.Tusker,
		PGBinDir: s.PGBin, EtcdHost: e.HostPort, Cred: s.Cred})
	if err != nil {
		return err
	}
	defer c.Stop(60 * time.Second)

	fmt.Println("tusker benchmark: 3 nodes, PostgreSQL 15, etcd, default timing (ttl 6, loop_wait 1, retry_timeout 2)")
	if err := startFigure(ctx, c); err != nil {
		return err
	}

	if syncOnly {
		lost, err := syncFigures(ctx, c)
		if err != nil {
			return err
		}
		return lostError(lost)
	}
	if !restOnly {
		idleFigures(c, idle)
	}

	p, err := c.Primary(ctx)
	if err != nil {
		return err
	}
	if err := p.Exec(ctx, "CREATE TABLE IF NOT EXISTS bench (id bigserial PRIMARY KEY, at timestamptz DEFAULT now())"); err != nil {
		return err
	}

	// REST API throughput of the health checks, with the cluster running normally.
	if err := restFigures(ctx, p, otherNode(c, p)); err != nil {
		return err
	}
	if restOnly {
		return patroniFigure(ctx, s, e.HostPort)
	}

	lost, err := faultFigures(ctx, c, e)
	if err != nil {
		return err
	}

	// The same REST figure for Patroni, last so that its load does not disturb the others.
	if err := patroniFigure(ctx, s, e.HostPort); err != nil {
		return err
	}
	return lostError(lost)
}

// faultFigures measures, in this order, the switchovers, the unplanned failover, the old
// primary's rejoin, the DCS outage and the synchronous failover, each starting from the cluster
// the previous one left, and returns how many acknowledged writes the synchronous failover lost.
func faultFigures(ctx context.Context, c *harness.Cluster, e *harness.Etcd) (int, error) {
	if err := switchoverFigures(ctx, c); err != nil {
		return 0, err
	}
	old, err := failoverFigure(ctx, c)
	if err != nil {
		return 0, err
	}
	if err := rejoinFigure(ctx, c, old); err != nil {
		return 0, err
	}

	// DCS outage: etcd stopped for longer than ttl, then back.
	if err := outageFigures(ctx, c, e, *outageFor, 2); err != nil {
		return 0, err
	}

	// Failover in synchronous mode: the same kill -9, with a writer that counts acknowledged
	// writes the new primary lacks.
	return syncFigures(ctx, c)
}

// startFigure starts the cluster and prints how long it took to become healthy: the first
// figure, and the state every later one starts from.
func startFigure(ctx context.Context, c *harness.Cluster) error {
	start := time.Now()
	if err := c.Start(); err != nil {
		return err
	}
	if err := harness.WaitFor(ctx, 180*time.Second, 50*time.Millisecond, func() error { return c.Healthy(ctx) }); err != nil {
		return fmt.Errorf("cluster did not become healthy: %w", err)
	}
	fmt.Printf("%-44s %8.2f s\n", "time to healthy from start (3 nodes)", time.Since(start).Seconds())
	return nil
}

// otherNode is the first of c's nodes that is not n: the replica the REST figures load, the
// candidate of a switchover.
func otherNode(c *harness.Cluster, n *harness.Node) *harness.Node {
	for _, o := range c.Nodes {
		if o != n {
			return o
		}
	}
	return nil
}

// switchoverFigures measures three planned switchovers and prints each write gap and their
// median: a writer inserts as fast as it can into whichever node accepts writes; the write gap
// is the longest pause between two successful inserts around the switchover.
func switchoverFigures(ctx context.Context, c *harness.Cluster) error {
	var gaps []float64
	for i := 0; i < 3; i++ {
		if err := harness.WaitFor(ctx, 60*time.Second, 50*time.Millisecond, func() error { return c.Healthy(ctx) }); err != nil {
			return fmt.Errorf("cluster not healthy before switchover %d: %w", i+1, err)
		}
		cur, err := c.Primary(ctx)
		if err != nil {
			return err
		}
		cand := otherNode(c, cur)
		gap, took, err := switchoverGap(ctx, c.Nodes, cur, cand)
		if err != nil {
			return err
		}
		gaps = append(gaps, gap.Seconds())
		fmt.Printf("%-44s %8.3f s (%s -> %s; the API call took %.2f s)\n", fmt.Sprintf("switchover write gap #%d", i+1),
			gap.Seconds(), cur.Name, cand.Name, took.Seconds())
	}
	sort.Float64s(gaps)
	fmt.Printf("%-44s %8.3f s\n", "switchover write gap (median of 3)", gaps[1])
	return nil
}

// failoverFigure measures an unplanned failover: SIGKILL of the primary's node; a writer tries
// every 100 ms on every other node until one accepts a write. It returns the killed node, which
// rejoinFigure brings back.
func failoverFigure(ctx context.Context, c *harness.Cluster) (*harness.Node, error) {
	if err := harness.WaitFor(ctx, 60*time.Second, 50*time.Millisecond, func() error { return c.Healthy(ctx) }); err != nil {
		return nil, fmt.Errorf("cluster not healthy before the failover: %w", err)
	}
	p, err := c.Primary(ctx)
	if err != nil {
		return nil, err
	}
	var candidates []*harness.Node
	for _, n := range c.Nodes {
		if n != p {
			candidates = append(candidates, n)
		}
	}
	if err := p.Exec(ctx, "INSERT INTO bench DEFAULT VALUES"); err != nil {
		return nil, err
	}
	lastOld := time.Now()
	killed := time.Now()
	p.KillNode()
	first, who, err := firstWrite(ctx, candidates, 60*time.Second)
	if err != nil {
		return nil, fmt.Errorf("no failover: %w", err)
	}
	fmt.Printf("%-44s %8.2f s (new primary %s; gap since the last write on the old one %.2f s)\n",
		"unplanned failover (kill -9 to first write)", first.Sub(killed).Seconds(), who, first.Sub(lastOld).Seconds())
	return p, nil
}

// rejoinFigure measures how long the killed old primary p takes to come back as a streaming
// replica.
func rejoinFigure(ctx context.Context, c *harness.Cluster, p *harness.Node) error {
	rs := time.Now()
	if err := p.Start(); err != nil {
		return err
	}
	if err := harness.WaitFor(ctx, 120*time.Second, 50*time.Millisecond, func() error { return c.Healthy(ctx) }); err != nil {
		return fmt.Errorf("old primary did not rejoin: %w", err)
	}
	fmt.Printf("%-44s %8.2f s\n", "rejoin of the old primary (start to streaming)", time.Since(rs).Seconds())
	return nil
}

// lostError fails the bench when acknowledged writes were lost in synchronous mode: that is a bug.
func lostError(lost int) error {
	if lost > 0 {
		return fmt.Errorf("%d acknowledged writes lost in a synchronous failover (tusker logs kept, see above)", lost)
	}
	return nil
}

// switchoverGap runs a writer against every node while it asks from for a switchover to to, and
// returns the longest time between two successful writes and how long the API call took.
func switchoverGap(ctx context.Context, nodes []*harness.Node, from, to *harness.Node) (time.Duration, time.Duration, error) {
	wctx, stop := context.WithCancel(ctx)
	var (
		mu      sync.Mutex
		last    time.Time
		maxGap  time.Duration
		writes  int
		stopped = make(chan struct{})
	)
	go func() {
		defer close(stopped)
		conns := map[*harness.Node]*pgx.Conn{}
		defer func() {
			for _, c := range conns {
				c.Close(context.Background())
			}
		}()
		cur := from
		for wctx.Err() == nil {
			for _, n := range append([]*harness.Node{cur}, nodes...) {
				conn := conns[n]
				if conn == nil || conn.IsClosed() {
					cctx, cancel := context.WithTimeout(wctx, 100*time.Millisecond)
					c, err := pgx.Connect(cctx, n.DSN())
					cancel()
					if err != nil {
						continue
					}
					conn, conns[n] = c, c
				}
				ectx, cancel := context.WithTimeout(wctx, 200*time.Millisecond)
				_, err := conn.Exec(ectx, "INSERT INTO bench DEFAULT VALUES")
				cancel()
				if err != nil {
					if conn.IsClosed() || !strings.Contains(err.Error(), "read-only") {
						conn.Close(context.Background())
						delete(conns, n)
					}
					continue
				}
				now := time.Now()
				mu.Lock()
				if !last.IsZero() && now.Sub(last) > maxGap {
					maxGap = now.Sub(last)
				}
				last = now
				writes++
				mu.Unlock()
				cur = n
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	time.Sleep(500 * time.Millisecond)
	body := fmt.Sprintf(`{"leader":%q,"candidate":%q}`, from.Name, to.Name)
	start := time.Now()
	resp, err := http.Post(from.APIURL()+"/switchover", "application/json", strings.NewReader(body))
	took := time.Since(start)
	if err == nil {
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			err = fmt.Errorf("switchover answered %d %s", resp.StatusCode, msg)
		}
	}
	time.Sleep(time.Second)
	stop()
	<-stopped
	if err != nil {
		return 0, 0, err
	}
	mu.Lock()
	defer mu.Unlock()
	if writes == 0 {
		return 0, 0, fmt.Errorf("the writer never succeeded")
	}
	return maxGap, took, nil
}

// firstWrite keeps trying an INSERT on every candidate, each from its own goroutine every 20 ms
// (a connection is kept while it works; a failed one is replaced), until one succeeds, and
// returns when and where. An attempt may take up to a second: a short client timeout on a busy
// machine would count a slow first commit as no commit at all.
func firstWrite(ctx context.Context, nodes []*harness.Node, timeout time.Duration) (time.Time, string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	type win struct {
		at  time.Time
		who string
	}
	won := make(chan win, len(nodes))
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var conn *pgx.Conn
			defer func() {
				if conn != nil {
					conn.Close(context.Background())
				}
			}()
			for ctx.Err() == nil {
				if conn == nil {
					cctx, ccancel := context.WithTimeout(ctx, time.Second)
					c, err := pgx.Connect(cctx, n.DSN())
					ccancel()
					if err == nil {
						conn = c
					}
				}
				if conn != nil {
					cctx, ccancel := context.WithTimeout(ctx, time.Second)
					_, err := conn.Exec(cctx, "INSERT INTO bench DEFAULT VALUES")
					ccancel()
					if err == nil {
						won <- win{time.Now(), n.Name}
						cancel()
						return
					}
					if conn.IsClosed() {
						conn = nil
					}
				}
				select {
				case <-ctx.Done():
				case <-time.After(20 * time.Millisecond):
				}
			}
		}()
	}
	wg.Wait()
	close(won)
	first := win{}
	for w := range won {
		if first.at.IsZero() || w.at.Before(first.at) {
			first = w
		}
	}
	if first.at.IsZero() {
		return time.Time{}, "", fmt.Errorf("no node accepted a write within %s", timeout)
	}
	return first.at, first.who, nil
}

func rssMB(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return -1
}

func cpuSeconds(pid int) float64 {
	st, err := proc.ReadStat(pid)
	if err != nil {
		return 0
	}
	return st.CPUSeconds
}

// idleFigures prints each tusker's RSS and the CPU it used over idle, then memoryFigures.
func idleFigures(c *harness.Cluster, idle time.Duration) {
	before := map[int]float64{}
	for _, n := range c.Nodes {
		before[n.PID()] = cpuSeconds(n.PID())
	}
	time.Sleep(idle)
	for _, n := range c.Nodes {
		pid := n.PID()
		fmt.Printf("%-44s %8.1f MB RSS, %.2f CPU s over %s\n", "tusker "+n.Name+" idle", rssMB(pid),
			cpuSeconds(pid)-before[pid], idle)
	}
	memoryFigures(c)
}
