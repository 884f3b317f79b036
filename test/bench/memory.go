package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tusker-ha/tusker/test/harness"
)

// memStores are the stores -memory-only measures on, in this order, by default.
var memStores = []string{"etcd3", "consul", "zookeeper", "kubernetes"}

// smaps is what /proc/PID/smaps_rollup says of a process, in kB.
type smaps struct {
	rss, pss, pssAnon, pssFile, anon float64
}

// readSmaps reads /proc/pid/smaps_rollup.
func readSmaps(pid int) (smaps, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return smaps{}, err
	}
	defer f.Close()
	return parseSmaps(bufio.NewScanner(f))
}

func parseSmaps(sc *bufio.Scanner) (smaps, error) {
	var m smaps
	fields := map[string]*float64{"Rss:": &m.rss, "Pss:": &m.pss, "Pss_Anon:": &m.pssAnon,
		"Pss_File:": &m.pssFile, "Anonymous:": &m.anon}
	seen := 0
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		if p, ok := fields[f[0]]; ok {
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return m, fmt.Errorf("smaps_rollup: %q: %w", sc.Text(), err)
			}
			*p = v
			seen++
		}
	}
	if err := sc.Err(); err != nil {
		return m, err
	}
	if m.rss == 0 || seen < 3 {
		return m, fmt.Errorf("smaps_rollup: no Rss/Pss/Anonymous lines")
	}
	return m, nil
}

// memoryLine is the smaps_rollup figures of one member, in MB (2^20 bytes, as the RSS lines): RSS, PSS (the binary's pages
// shared with the other members count a third each), anonymous, file-backed (RSS - anonymous).
func memoryLine(pid int) string {
	m, err := readSmaps(pid)
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("%5.1f MB RSS, %5.1f MB PSS, %5.1f MB anonymous, %5.1f MB file-backed (PSS %.1f anon + %.1f file)",
		m.rss/1024, m.pss/1024, m.anon/1024, (m.rss-m.anon)/1024, m.pssAnon/1024, m.pssFile/1024)
}

// binaryLine is the size of the tusker binary.
func binaryLine(path string) string {
	st, err := os.Stat(path)
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("%8.1f MB (%d bytes)", float64(st.Size())/(1<<20), st.Size())
}

// memoryFigures prints the smaps_rollup figures of every member and the binary's size: the
// lines idleFigures adds to its RSS/CPU lines.
func memoryFigures(c *harness.Cluster) {
	for _, n := range c.Nodes {
		fmt.Printf("%-44s %s\n", "tusker "+n.Name+" idle memory", memoryLine(n.PID()))
	}
	fmt.Printf("%-44s %s\n", "tusker binary size", binaryLine(c.Opts.TuskerBin))
}

// memoryOnly is -memory-only: a 3-node cluster on each store in turn, healthy, then idle for idle,
// and the idle figures of its members (RSS/CPU, smaps_rollup, binary size).
func memoryOnly(tusker string, idle time.Duration, stores []string) error {
	for _, st := range stores {
		if err := memoryOn(tusker, idle, st); err != nil {
			return fmt.Errorf("%s: %w", st, err)
		}
	}
	return nil
}

func memoryOn(tusker string, idle time.Duration, store string) (err error) {
	ctx := context.Background()
	c, cleanup, err := clusterOn(tusker, store)
	if err != nil {
		return err
	}
	defer cleanup()
	fmt.Printf("\ntusker idle memory on %s: 3 nodes, PostgreSQL 15, default timing\n", store)
	start := time.Now()
	if err := c.Start(); err != nil {
		return err
	}
	if err := harness.WaitFor(ctx, 180*time.Second, 50*time.Millisecond, func() error { return c.Healthy(ctx) }); err != nil {
		for _, n := range c.Nodes {
			fmt.Fprintf(os.Stderr, "---- %s ----\n%s\n", n.Name, n.Log())
		}
		return fmt.Errorf("cluster did not become healthy: %w", err)
	}
	fmt.Printf("%-44s %8.2f s\n", "time to healthy from start (3 nodes)", time.Since(start).Seconds())
	idleFigures(c, idle)
	return nil
}

// clusterOn prepares a 3-node cluster (not started) on store's server, started here; cleanup
// stops both and removes their files.
func clusterOn(tusker, store string) (*harness.Cluster, func(), error) {
	s, err := harness.PrepareLocal(os.TempDir(), tusker)
	if err != nil {
		return nil, nil, err
	}
	o := harness.ClusterOptions{Dir: s.Dir, Scope: "bench", Nodes: 3, TuskerBin: s.Tusker, PGBinDir: s.PGBin, Cred: s.Cred}
	stop, err := startStore(s, store, &o)
	if err != nil {
		os.RemoveAll(s.Dir)
		return nil, nil, err
	}
	c, err := harness.NewCluster(o)
	if err != nil {
		stop()
		os.RemoveAll(s.Dir)
		return nil, nil, err
	}
	return c, func() { c.Stop(60 * time.Second); stop(); os.RemoveAll(s.Dir) }, nil
}

// startStore starts the server of store in s.Dir and sets the DCS section (and what else that
// store needs) in o; stop stops the server.
func startStore(s *harness.LocalSetup, store string, o *harness.ClusterOptions) (stop func(), err error) {
	dir := filepath.Join(s.Dir, store+"-server")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	switch store {
	case "etcd3":
		e, err := s.StartEtcd()
		if err != nil {
			return nil, err
		}
		o.EtcdHost = e.HostPort
		return e.Stop, nil
	case "consul":
		bin, err := harness.ConsulPath()
		if err != nil {
			return nil, err
		}
		c, err := harness.NewConsul(dir, bin, false)
		if err != nil {
			return nil, err
		}
		if err := c.Start(); err != nil {
			return nil, err
		}
		o.DCS = func(string) string { return "consul:\n  host: " + c.Addr }
		// Consul's sessions last at least 10 s = ttl/2, as in the e2e matrix.
		o.ExtraLocal = "bootstrap:\n  dcs:\n    ttl: 20\n"
		return c.Stop, nil
	case "zookeeper":
		if err := harness.CheckZooKeeper(""); err != nil {
			return nil, err
		}
		z, err := harness.NewZooKeeper(dir, nil)
		if err != nil {
			return nil, err
		}
		if err := z.Start(); err != nil {
			return nil, err
		}
		o.DCS = func(string) string { return "zookeeper:\n  hosts: ['" + z.Addr + "']" }
		return z.Stop, nil
	case "kubernetes":
		return startKube(s, dir, o)
	}
	return nil, fmt.Errorf("unknown DCS %q (etcd3, consul, zookeeper, kubernetes)", store)
}

// startKube starts etcd and kube-apiserver, and creates the members' pods (bare Pod objects,
// as the e2e matrix does); the members find the server through a kubeconfig.
func startKube(s *harness.LocalSetup, dir string, o *harness.ClusterOptions) (func(), error) {
	bin, err := harness.KubeAPIServerPath()
	if err != nil {
		return nil, err
	}
	edir := filepath.Join(dir, "etcd")
	if err := os.MkdirAll(edir, 0o700); err != nil {
		return nil, err
	}
	e, err := harness.NewEtcd(edir, s.Etcd, nil)
	if err != nil {
		return nil, err
	}
	if err := e.Start(); err != nil {
		return nil, err
	}
	k, err := harness.NewKubeAPIServer(dir, bin, e)
	if err != nil {
		e.Stop()
		return nil, err
	}
	if err := k.Start(); err != nil {
		e.Stop()
		return nil, err
	}
	stop := func() { k.Stop(); e.Stop() }
	ip := func(node string) string { return "192.0.2.1" + node[len(node)-1:] }
	if err := tbDo(func(t testing.TB) {
		for i := 1; i <= o.Nodes; i++ {
			node := fmt.Sprintf("n%d", i)
			k.CreatePod(t, "default", node, map[string]string{"application": "tusker", "cluster-name": o.Scope}, ip(node))
		}
	}); err != nil {
		stop()
		return nil, err
	}
	// The members run as the PostgreSQL user: they must read the kubeconfig and the CA it names.
	for _, p := range []string{k.Kubeconfig, filepath.Dir(k.CACert), k.CACert} {
		s.Own(p)
	}
	o.DCS = func(node string) string {
		return "kubernetes:\n  namespace: default\n  labels: {application: tusker}\n  pod_ip: " + ip(node) + "\n"
	}
	o.NodeEnv = func(string) []string { return []string{"KUBECONFIG=" + k.Kubeconfig} }
	return stop, nil
}

// tb lets a main program call the harness's helpers that take a testing.TB: Fatal ends f with
// an error instead of a test.
type tb struct{ testing.TB }

type tbFatal struct{ err error }

func (tb) Helper()                        {}
func (tb) Fatal(args ...any)              { panic(tbFatal{fmt.Errorf("%s", fmt.Sprint(args...))}) }
func (tb) Fatalf(format string, a ...any) { panic(tbFatal{fmt.Errorf(format, a...)}) }

// tbDo runs f with a tb and returns what it failed with.
func tbDo(f func(testing.TB)) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if e, ok := r.(tbFatal); ok {
				err = e.err
				return
			}
			panic(r)
		}
	}()
	f(tb{})
	return nil
}
