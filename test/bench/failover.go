package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tusker-ha/tusker/test/harness"
)

var (
	failoverOnly = flag.Bool("failover-only", false,
		"measure only the unplanned failover write gap (kill -9 of the primary), -failover-runs times on each DCS of -dcs in turn")
	failoverRuns = flag.Int("failover-runs", 3, "with -failover-only: failovers per DCS")
)

// failoverOnly is -failover-only: on each store a 3-node cluster at default timing, and runs
// kill -9 failovers of whichever node is primary, each followed by the old primary's rejoin.
// The write gap is from the last write the old primary acknowledged (a writer commits every
// 20 ms until the kill) to the first the new one did.
func failoverPerDCS(tusker string, stores []string, runs int) error {
	for _, st := range stores {
		if err := failoverOn(tusker, st, runs); err != nil {
			return fmt.Errorf("%s: %w", st, err)
		}
	}
	return nil
}

func failoverOn(tusker, store string, runs int) error {
	ctx := context.Background()
	c, cleanup, err := clusterOn(tusker, store)
	if err != nil {
		return err
	}
	defer cleanup()
	ttl := 6
	if store == "consul" {
		ttl = 20 // Consul's session floor: see startStore
	}
	fmt.Printf("\nunplanned failover on %s: 3 nodes, ttl %d, loop_wait 1\n", store, ttl)
	if err := c.Start(); err != nil {
		return err
	}
	var gaps []float64
	for i := 1; i <= runs; i++ {
		if err := harness.WaitFor(ctx, 180*time.Second, 50*time.Millisecond, func() error { return c.Healthy(ctx) }); err != nil {
			return fmt.Errorf("not healthy before failover %d: %w", i, err)
		}
		p, err := c.Primary(ctx)
		if err != nil {
			return err
		}
		if err := p.Exec(ctx, "CREATE TABLE IF NOT EXISTS bench (id bigserial PRIMARY KEY, at timestamptz DEFAULT now())"); err != nil {
			return err
		}
		last, err := writeUntilKilled(ctx, p)
		if err != nil {
			return err
		}
		var candidates []*harness.Node
		for _, n := range c.Nodes {
			if n != p {
				candidates = append(candidates, n)
			}
		}
		first, who, err := firstWrite(ctx, candidates, 120*time.Second)
		if err != nil {
			return fmt.Errorf("failover %d: %w", i, err)
		}
		gap := first.Sub(last).Seconds()
		if os.Getenv("BENCH_FAILOVER_LOGS") != "" {
			fmt.Printf("last write on %s at %s, first on %s at %s\n", p.Name, last.Format("15:04:05.000"), who, first.Format("15:04:05.000"))
			for _, n := range candidates {
				if n.Name == who {
					l := n.Log()
					fmt.Println(l[max(0, len(l)-6000):])
				}
			}
		}
		gaps = append(gaps, gap)
		fmt.Printf("%-44s %8.2f s (%s -> %s; ttl + %.2f s)\n", fmt.Sprintf("%s failover write gap #%d", store, i), gap, p.Name, who, gap-float64(ttl))
		if err := p.Start(); err != nil {
			return err
		}
	}
	sort.Float64s(gaps)
	fmt.Printf("%-44s %8.2f s (max %.2f s)\n", store+" failover write gap (median)", gaps[len(gaps)/2], gaps[len(gaps)-1])
	return nil
}

// writeUntilKilled commits into p every 20 ms for a second, kills p's node (tusker and
// PostgreSQL, SIGKILL) and returns when p last acknowledged a write.
func writeUntilKilled(ctx context.Context, p *harness.Node) (time.Time, error) {
	conn, err := pgx.Connect(ctx, p.DSN())
	if err != nil {
		return time.Time{}, err
	}
	defer conn.Close(context.Background())
	var mu sync.Mutex
	var last time.Time
	stopW := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stopW:
				return
			case <-time.After(20 * time.Millisecond):
			}
			cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			_, err := conn.Exec(cctx, "INSERT INTO bench DEFAULT VALUES")
			cancel()
			if err != nil {
				return
			}
			mu.Lock()
			last = time.Now()
			mu.Unlock()
		}
	}()
	time.Sleep(time.Second)
	p.KillNode()
	close(stopW)
	<-done
	mu.Lock()
	defer mu.Unlock()
	if last.IsZero() {
		return last, fmt.Errorf("no write acknowledged by %s before the kill", p.Name)
	}
	return last, nil
}
