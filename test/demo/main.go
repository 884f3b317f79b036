// Command demo is `make demo`: a live 3-node tusker cluster on this machine, with its own etcd,
// until Ctrl-C.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/tusker-ha/tusker/test/harness"
)

func main() {
	tusker := flag.String("tusker", "bin/tusker", "tusker binary")
	base := flag.String("dir", os.TempDir(), "where to create the demo's directory")
	flag.Parse()
	if err := run(*tusker, *base); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(tusker, base string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := harness.PrepareLocal(base, tusker)
	if err != nil {
		return err
	}
	e, err := s.StartEtcd()
	if err != nil {
		return err
	}
	defer e.Stop()
	c, err := harness.NewCluster(harness.ClusterOptions{Dir: s.Dir, Scope: "demo", Nodes: 3, TuskerBin: s.Tusker,
		PGBinDir: s.PGBin, EtcdHost: e.HostPort, Cred: s.Cred})
	if err != nil {
		return err
	}
	defer func() {
		fmt.Println("\nstopping the cluster...")
		c.Stop(60 * time.Second)
		fmt.Println("stopped; files are in", s.Dir)
	}()
	start := time.Now()
	if err := c.Start(); err != nil {
		return err
	}
	fmt.Printf("starting 3 nodes (etcd at %s, files in %s)...\n", e.Endpoint, s.Dir)
	if err := harness.WaitFor(ctx, 120*time.Second, 200*time.Millisecond, func() error { return c.Healthy(ctx) }); err != nil {
		for _, n := range c.Nodes {
			fmt.Fprintf(os.Stderr, "---- %s ----\n%s\n", n.Name, n.Log())
		}
		return err
	}
	fmt.Printf("cluster healthy in %s\n\n", time.Since(start).Round(100*time.Millisecond))
	printEndpoints(c)
	p, _ := c.Primary(ctx)
	var other *harness.Node
	for _, n := range c.Nodes {
		if n != p {
			other = n
			break
		}
	}
	printTry(p, other)
	watch(ctx, c)
	return nil
}

// printEndpoints lists each node's REST and SQL addresses and its log, so that the user can
// reach the cluster while watch runs.
func printEndpoints(c *harness.Cluster) {
	fmt.Println("Endpoints:")
	for _, n := range c.Nodes {
		fmt.Printf("  %s  REST %s   SQL: psql 'host=127.0.0.1 port=%d user=postgres password=%s'   log: %s\n",
			n.Name, n.APIURL(), n.PGPort, harness.SuperuserPassword, n.LogPath)
	}
}

// printTry prints the commands worth trying, filled in with the primary p and a replica other.
func printTry(p, other *harness.Node) {
	fmt.Printf(`
Try:
  curl -s %[1]s/patroni | python3 -m json.tool      # the member's status
  curl -s -o /dev/null -w '%%{http_code}\n' %[1]s/primary   # 200 on the primary, 503 elsewhere
  curl -s %[1]s/cluster | python3 -m json.tool      # all members
  curl -s %[1]s/metrics | grep -E '^(patroni_primary|tusker_leader_lease)'   # Prometheus metrics
  bin/tuskerctl -c %[2]s list -e                    # the members, as patronictl shows them
  bin/tuskerctl -c %[2]s switchover --candidate %[6]s --force   # planned switchover
  bin/tuskerctl -c %[2]s pause --wait               # maintenance mode (resume ends it)
  curl -s -XPOST %[1]s/switchover -d '{"leader":"%[5]s","candidate":"%[6]s"}'   # the same through the API
  kill -9 %[3]d $(head -1 %[4]s)   # kill the primary's tusker and postgres: watch the failover below
Ctrl-C stops everything.

`, p.APIURL(), p.ConfigPath, p.PID(), filepath.Join(p.DataDir, "postmaster.pid"), p.Name, other.Name)
}

// watch prints every node's role, state and timeline once a second whenever they change, until
// ctx ends (Ctrl-C): the live view of what the cluster does.
func watch(ctx context.Context, c *harness.Cluster) {
	last := ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
		var parts []string
		for _, n := range c.Nodes {
			st, _, err := n.Patroni(ctx)
			switch {
			case err != nil:
				parts = append(parts, n.Name+"=down")
			default:
				parts = append(parts, fmt.Sprintf("%s=%v/%v/tl%v", n.Name, st["role"], st["state"], st["timeline"]))
			}
		}
		line := strings.Join(parts, "  ")
		if line != last {
			fmt.Printf("%s  %s\n", time.Now().Format("15:04:05"), line)
			last = line
		}
	}
}
