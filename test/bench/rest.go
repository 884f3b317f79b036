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
	"sort"
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
		fmt.Printf("%-44s %s\n", t.label+" (wrk)", r)
	}
	// The figure: 10,000 requests/s from 50 keep-alive clients, latency as a load
	// balancer sees it.
	addr := strings.TrimPrefix(replica.APIURL(), "http://")
	o, err := openLoop(ctx, addr, "/replica?lag=1MB", openLoopRate, wrkConns, wrkDuration)
	if err != nil {
		return err
	}
	fmt.Printf("%-44s %s\n", fmt.Sprintf("tusker /replica at a fixed %d req/s", openLoopRate), o)
	return nil
}

// openLoopRate is the fixed rate of the open-loop REST figure.
const openLoopRate = 10000

// patroniFigure runs one Patroni 3.0.2 node (Debian's package) on the same etcd and PostgreSQL
// and measures its /primary the same way, for comparison.
func patroniFigure(ctx context.Context, s *harness.LocalSetup, etcdHost string) error {
	patroni, err := exec.LookPath("patroni")
	if err != nil {
		return fmt.Errorf("patroni not installed (make bench installs Debian's package): %w", err)
	}
	ver, _ := exec.CommandContext(ctx, patroni, "--version").Output()
	dir := filepath.Join(s.Dir, "patroni")
	cfgPath, apiPort, err := writePatroniConfig(s, dir, etcdHost)
	if err != nil {
		return err
	}
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
	defer stopPatroni(cmd)
	url := fmt.Sprintf("http://127.0.0.1:%d/primary", apiPort)
	if err := waitPatroniPrimary(ctx, url); err != nil {
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

// writePatroniConfig is the preparation of patroniFigure, kept apart so that it reads as start,
// measure, stop: it creates Patroni's directory dir (handed to the PostgreSQL user when we are
// root), picks its REST and PostgreSQL ports and writes patroni.yml there. It returns the
// configuration's path and the REST port.
func writePatroniConfig(s *harness.LocalSetup, dir, etcdHost string) (string, int, error) {
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		return "", 0, err
	}
	s.Own(dir)
	s.Own(filepath.Join(dir, "data"))
	apiPort, err := harness.PickFreePort()
	if err != nil {
		return "", 0, err
	}
	pgPort, err := harness.PickFreePort()
	if err != nil {
		return "", 0, err
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
		return "", 0, err
	}
	s.Own(cfgPath)
	return cfgPath, apiPort, nil
}

// stopPatroni is patroniFigure's deferred stop: Patroni stops postgres on SIGTERM; give it the
// time to, then make sure.
func stopPatroni(cmd *exec.Cmd) {
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// waitPatroniPrimary waits until Patroni's GET /primary at url answers 200, that is until it has
// bootstrapped and taken the leader key, before wrk measures it.
func waitPatroniPrimary(ctx context.Context, url string) error {
	return harness.WaitFor(ctx, 120*time.Second, 200*time.Millisecond, func() error {
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
}

// openLoopResult is what a fixed-rate run measured.
type openLoopResult struct {
	sent, failed       int
	achieved           float64 // completed requests per second
	p50, p99, p999, mx time.Duration
}

func (r openLoopResult) String() string {
	s := fmt.Sprintf("%8.0f req/s, p50 %s, p99 %s, p99.9 %s, max %s", r.achieved, fmtLatency(r.p50),
		fmtLatency(r.p99), fmtLatency(r.p999), fmtLatency(r.mx))
	if r.failed > 0 {
		s += fmt.Sprintf(", %d failed", r.failed)
	}
	return s
}

// openLoop sends GET path to addr at a fixed total rate over conns keep-alive connections for d,
// and measures each request's latency from the time it was due, not from when it was sent, so
// that a stall delays every request queued behind it (no coordinated omission). wrk measures the
// throughput ceiling with closed-loop clients; this measures the latency a load balancer sees at
// a given rate. It speaks the smallest HTTP/1.1 itself so that the client costs little CPU.
func openLoop(ctx context.Context, addr, path string, rate, conns int, d time.Duration) (openLoopResult, error) {
	interval := time.Duration(float64(time.Second) * float64(conns) / float64(rate))
	req := []byte("GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nUser-Agent: tusker-bench\r\n\r\n")
	type connResult struct {
		lat    []time.Duration
		failed int
		err    error
	}
	results := make(chan connResult, conns)
	start := time.Now().Add(50 * time.Millisecond)
	for i := 0; i < conns; i++ {
		// Spread the connections' schedules evenly over one interval.
		offset := time.Duration(int64(interval) * int64(i) / int64(conns))
		go func() {
			var res connResult
			defer func() { results <- res }()
			conn, err := (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, "tcp", addr)
			if err != nil {
				res.err = err
				return
			}
			defer conn.Close()
			br := bufio.NewReaderSize(conn, 16<<10)
			for due := start.Add(offset); due.Before(start.Add(d)); due = due.Add(interval) {
				if w := time.Until(due); w > 0 {
					time.Sleep(w)
				}
				if _, err := conn.Write(req); err != nil {
					res.err = err
					return
				}
				code, err := readResponse(br)
				if err != nil {
					res.err = err
					return
				}
				if code != http.StatusOK {
					res.failed++
				}
				res.lat = append(res.lat, time.Since(due))
			}
		}()
	}
	var all []time.Duration
	var out openLoopResult
	for i := 0; i < conns; i++ {
		r := <-results
		if r.err != nil {
			return out, fmt.Errorf("open-loop load on %s%s: %w", addr, path, r.err)
		}
		all = append(all, r.lat...)
		out.failed += r.failed
	}
	if len(all) == 0 {
		return out, fmt.Errorf("open-loop load on %s%s: no request completed", addr, path)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	q := func(p float64) time.Duration { return all[min(len(all)-1, int(p*float64(len(all))))] }
	out.sent = len(all)
	out.achieved = float64(len(all)) / d.Seconds()
	out.p50, out.p99, out.p999, out.mx = q(0.50), q(0.99), q(0.999), all[len(all)-1]
	return out, nil
}

// readResponse reads one HTTP/1.1 response with a Content-Length body and returns its status.
func readResponse(br *bufio.Reader) (int, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(line))
	if len(f) < 2 {
		return 0, fmt.Errorf("bad status line %q", line)
	}
	code, err := strconv.Atoi(f[1])
	if err != nil {
		return 0, fmt.Errorf("bad status line %q", line)
	}
	length := 0
	for {
		h, err := br.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		if len(h) <= 2 {
			break
		}
		if k, v, ok := strings.Cut(string(h), ":"); ok && strings.EqualFold(k, "Content-Length") {
			length, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	if _, err := br.Discard(length); err != nil {
		return 0, err
	}
	return code, nil
}
