package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/tusker-ha/tusker/test/harness"
)

var outageFor = flag.Duration("outage", 30*time.Second, "how long etcd stays stopped in the DCS-outage figures (more than ttl)")

// outageFigures stops etcd for d (longer than ttl, so the primary fences itself) and starts it
// again, runs times: it prints when the primary stopped taking writes, the time from etcd's
// return to the first acknowledged write and the node that took it, and the time to a healthy
// cluster (every member running, the replicas streaming).
func outageFigures(ctx context.Context, c *harness.Cluster, e *harness.Etcd, d time.Duration, runs int) error {
	for i := 1; i <= runs; i++ {
		if err := harness.WaitFor(ctx, 120*time.Second, 50*time.Millisecond, func() error { return c.Healthy(ctx) }); err != nil {
			return fmt.Errorf("cluster not healthy before DCS outage %d: %w", i, err)
		}
		p, err := c.Primary(ctx)
		if err != nil {
			return err
		}
		if err := p.Exec(ctx, "INSERT INTO bench DEFAULT VALUES"); err != nil {
			return err
		}
		stopped := time.Now()
		e.Stop()
		// The primary must stop taking writes on its own (its lease runs out unrenewed).
		fenced := time.Time{}
		for time.Since(stopped) < d {
			cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			err := p.Exec(cctx, "INSERT INTO bench DEFAULT VALUES")
			cancel()
			if err != nil && fenced.IsZero() {
				fenced = time.Now()
			}
			time.Sleep(100 * time.Millisecond)
		}
		if fenced.IsZero() {
			return fmt.Errorf("DCS outage %d: the primary %s still took writes %s after etcd stopped", i, p.Name, d)
		}
		if err := e.Start(); err != nil {
			return fmt.Errorf("restarting etcd: %w", err)
		}
		back := time.Now()
		first, who, err := firstWrite(ctx, c.Nodes, 60*time.Second)
		if err != nil {
			return fmt.Errorf("DCS outage %d: no write accepted after etcd's return: %w", i, err)
		}
		if err := harness.WaitFor(ctx, 120*time.Second, 20*time.Millisecond, func() error { return c.Healthy(ctx) }); err != nil {
			return fmt.Errorf("DCS outage %d: not healthy after etcd's return: %w", i, err)
		}
		healthy := time.Now()
		same := "same primary"
		if who != p.Name {
			same = "another primary; was " + p.Name
		}
		fmt.Printf("%-44s %8.2f s (writes stopped %.2f s into the outage)\n",
			fmt.Sprintf("DCS outage #%d: etcd stopped for %s", i, d.Round(time.Second)), d.Seconds(), fenced.Sub(stopped).Seconds())
		fmt.Printf("%-44s %8.2f s (%s: %s)\n", fmt.Sprintf("DCS outage #%d: return to first write", i),
			first.Sub(back).Seconds(), who, same)
		fmt.Printf("%-44s %8.2f s\n", fmt.Sprintf("DCS outage #%d: return to healthy", i), healthy.Sub(back).Seconds())
	}
	return nil
}
