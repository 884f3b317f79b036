package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tusker-ha/tusker/test/harness"
)

// wrkResult is what one wrk run measured.
type wrkResult struct {
	rps        float64
	p50, p99   time.Duration
	non2xx     int
	socketErrs string
}

func (r wrkResult) String() string {
	s := fmt.Sprintf("%8.0f req/s, p50 %s, p99 %s", r.rps, fmtLatency(r.p50), fmtLatency(r.p99))
	if r.non2xx > 0 {
		s += fmt.Sprintf(", %d non-2xx", r.non2xx)
	}
	if r.socketErrs != "" {
		s += ", socket errors: " + r.socketErrs
	}
	return s
}

func fmtLatency(d time.Duration) string {
	if d < time.Millisecond {
		return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
	}
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

// wrkConns and wrkDuration are the load of the REST figure: 50 concurrent keep-alive clients.
const (
	wrkConns    = 50
	wrkThreads  = 2
	wrkDuration = 10 * time.Second
)

// runWrk loads url with wrk and parses its --latency report.
func runWrk(ctx context.Context, url string) (wrkResult, error) {
	out, err := exec.CommandContext(ctx, "wrk", "-t", strconv.Itoa(wrkThreads), "-c", strconv.Itoa(wrkConns),
		"-d", fmt.Sprintf("%ds", int(wrkDuration.Seconds())), "--latency", url).CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk %s: %w\n%s", url, err, out)
	}
	return parseWrk(string(out))
}

func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 2 && f[0] == "Requests/sec:":
			r.rps, _ = strconv.ParseFloat(f[1], 64)
		case len(f) == 2 && f[0] == "50%":
			r.p50 = parseWrkDuration(f[1])
		case len(f) == 2 && f[0] == "99%":
			r.p99 = parseWrkDuration(f[1])
		case len(f) >= 5 && f[0] == "Non-2xx":
			r.non2xx, _ = strconv.Atoi(f[len(f)-1])
		case len(f) > 2 && f[0] == "Socket" && f[1] == "errors:":
			r.socketErrs = strings.Join(f[2:], " ")
		}
	}
	if r.rps == 0 || r.p99 == 0 {
		return r, fmt.Errorf("cannot read wrk's report:\n%s", out)
	}
	return r, nil
}

// parseWrkDuration reads wrk's "812.00us", "1.23ms", "2.01s".
func parseWrkDuration(s string) time.Duration {
	for _, u := range []struct {
		suffix string
		unit   time.Duration
	}{{"us", time.Microsecond}, {"ms", time.Millisecond}, {"m", time.Minute}, {"s", time.Second}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return 0
			}
			return time.Duration(f * float64(u.unit))
		}
	}
	return 0
}

// restFigures measures tusker's health endpoints under wrk while the cluster runs normally.
func restFigures(ctx context.Context, primary, replica *harness.Node) error {
	for _, t := range []struct {
		label string
		url   string
	}{
		{"tusker GET /primary on the primary", primary.APIURL() + "/primary"},
		{"tusker GET /replica?lag=1MB on a replica", replica.APIURL() + "/replica?lag=1MB"},
	} {
		r, err := runWrk(ctx, t.url)
		if err != nil {
			return err
		}
		fmt.Printf("%-44s %s\n", t.label, r)
	}
	return nil
}

// patroniFigure runs one Patroni 3.0.2 node (Debian's package) on the same etcd and PostgreSQL
// and measures its /primary the same way, for comparison.
func patroniFigure(ctx context.Context, s *harness.LocalSetup, etcdHost string) error {
	patroni, err := exec.LookPath("patroni")
	if err != nil {
		return fmt.Errorf("patroni not installed (make bench installs Debian's package): %w", err)
	}
	ver, _ := exec.CommandContext(ctx, patroni, "--version").Output()
	dir := filepath.Join(s.Dir, "patroni")
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		return err
	}
	s.Own(dir)
	s.Own(filepath.Join(dir, "data"))
	apiPort, err := freeTCPPort()
	if err != nil {
		return err
	}
	pgPort, err := freeTCPPort()
	if err != nil {
		return err
	}
	cfg := fmt.Sprintf(`scope: patroni-bench
name: p1
restapi:
  listen: 127.0.0.1:%[1]d
  connect_address: 127.0.0.1:%[1]d
etcd3:
  host: %[2]s
bootstrap:
  dcs: {ttl: 30, loop_wait: 10}
  initdb: [{encoding: UTF8}]
postgresql:
  listen: 127.0.0.1:%[3]d
  connect_address: 127.0.0.1:%[3]d
  data_dir: %[4]s/data/pg
  bin_dir: %[5]s
  pgpass: %[4]s/pgpass
  authentication:
    superuser: {username: postgres, password: bench}
    replication: {username: replicator, password: bench}
`, apiPort, etcdHost, pgPort, dir, s.PGBin)
	cfgPath := filepath.Join(dir, "patroni.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return err
	}
	s.Own(cfgPath)
	logf, err := os.Create(filepath.Join(dir, "patroni.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(patroni, cfgPath)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: s.Cred}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting patroni: %w", err)
	}
	defer func() {
		// Patroni stops postgres on SIGTERM; give it the time to, then make sure.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}()
	url := fmt.Sprintf("http://127.0.0.1:%d/primary", apiPort)
	err = harness.WaitFor(ctx, 120*time.Second, 200*time.Millisecond, func() error {
		resp, err := http.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s answered %d", url, resp.StatusCode)
		}
		return nil
	})
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "patroni.log"))
		return fmt.Errorf("patroni did not become primary: %w\n%s", err, log)
	}
	r, err := runWrk(ctx, url)
	if err != nil {
		return err
	}
	fmt.Printf("%-44s %s\n", strings.TrimSpace(string(ver))+" GET /primary (same run)", r)
	return nil
}

func freeTCPPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
