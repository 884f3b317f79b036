// Command bench is `make bench`: it starts a 3-node tusker cluster on this machine and measures
// time to healthy, unplanned failover time, rejoin time, and memory and CPU per tusker process.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
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
	flag.Parse()
	if err := run(*tusker, *idle); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(tusker string, idle time.Duration) error {
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
	start := time.Now()
	if err := c.Start(); err != nil {
		return err
	}
	if err := harness.WaitFor(ctx, 180*time.Second, 50*time.Millisecond, func() error { return c.Healthy(ctx) }); err != nil {
		return fmt.Errorf("cluster did not become healthy: %w", err)
	}
	fmt.Printf("%-44s %8.2f s\n", "time to healthy from start (3 nodes)", time.Since(start).Seconds())

	// Idle resources.
	type sample struct{ cpu float64 }
	before := map[int]sample{}
	for _, n := range c.Nodes {
		before[n.PID()] = sample{cpuSeconds(n.PID())}
	}
	time.Sleep(idle)
	for _, n := range c.Nodes {
		pid := n.PID()
		fmt.Printf("%-44s %8.1f MB RSS, %.2f CPU s over %s\n", "tusker "+n.Name+" idle", rssMB(pid),
			cpuSeconds(pid)-before[pid].cpu, idle)
	}

	// Unplanned failover: SIGKILL of the primary's node; a writer tries every 100 ms on every
	// other node until one accepts a write.
	p, err := c.Primary(ctx)
	if err != nil {
		return err
	}
	if err := p.Exec(ctx, "CREATE TABLE IF NOT EXISTS bench (id bigserial PRIMARY KEY, at timestamptz DEFAULT now())"); err != nil {
		return err
	}
	var candidates []*harness.Node
	for _, n := range c.Nodes {
		if n != p {
			candidates = append(candidates, n)
		}
	}
	if err := p.Exec(ctx, "INSERT INTO bench DEFAULT VALUES"); err != nil {
		return err
	}
	lastOld := time.Now()
	killed := time.Now()
	p.KillNode()
	first, who, err := firstWrite(ctx, candidates, 60*time.Second)
	if err != nil {
		return fmt.Errorf("no failover: %w", err)
	}
	fmt.Printf("%-44s %8.2f s (new primary %s; gap since the last write on the old one %.2f s)\n",
		"unplanned failover (kill -9 to first write)", first.Sub(killed).Seconds(), who, first.Sub(lastOld).Seconds())

	// Rejoin: the old node comes back as a streaming replica.
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

// firstWrite tries an INSERT on every candidate every 100 ms until one succeeds.
func firstWrite(ctx context.Context, nodes []*harness.Node, timeout time.Duration) (time.Time, string, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		var mu sync.Mutex
		var at time.Time
		var who string
		var wg sync.WaitGroup
		for _, n := range nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cctx, cancel := context.WithTimeout(ctx, 90*time.Millisecond)
				defer cancel()
				conn, err := pgx.Connect(cctx, n.DSN())
				if err != nil {
					return
				}
				defer conn.Close(context.Background())
				if _, err := conn.Exec(cctx, "INSERT INTO bench DEFAULT VALUES"); err == nil {
					mu.Lock()
					if at.IsZero() {
						at, who = time.Now(), n.Name
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if !at.IsZero() {
			return at, who, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return time.Time{}, "", fmt.Errorf("no node accepted a write within %s", timeout)
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
