package postgres

import (
	"github.com/tusker-ha/tusker/internal/proc"

	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// StopMode is the PostgreSQL shutdown mode.
type StopMode int

// Shutdown modes: SIGTERM, SIGINT, SIGQUIT to the postmaster.
const (
	StopSmart StopMode = iota
	StopFast
	StopImmediate
)

func (m StopMode) String() string {
	switch m {
	case StopSmart:
		return "smart"
	case StopFast:
		return "fast"
	case StopImmediate:
		return "immediate"
	}
	return "StopMode(" + strconv.Itoa(int(m)) + ")"
}

func (m StopMode) signal() syscall.Signal {
	switch m {
	case StopSmart:
		return syscall.SIGTERM
	case StopImmediate:
		return syscall.SIGQUIT
	}
	return syscall.SIGINT
}

// fSetPipeSize is Linux's F_SETPIPE_SZ fcntl.
const fSetPipeSize = 1031

// child is a postmaster this Postgres started.
type child struct {
	pid      int
	done     chan struct{} // closed once Wait returned
	err      error         // Wait's result, written before done is closed
	outDone  chan struct{} // closed when the output forwarder saw EOF
	tail     *tailBuffer
	fenceGen uint64
}

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// tailBuffer keeps the last lines written through it.
type tailBuffer struct {
	mu    sync.Mutex
	lines []string
	max   int
}

func (t *tailBuffer) add(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = append(t.lines, line)
	if len(t.lines) > t.max {
		t.lines = append(t.lines[:0], t.lines[len(t.lines)-t.max:]...)
	}
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "\n")
}

// forward copies the postmaster's output to w line by line, keeping a tail. It returns at EOF,
// that is when the postmaster and every process that inherited the pipe have exited.
func forward(r io.ReadCloser, w io.Writer, tail *tailBuffer, done chan<- struct{}) {
	defer close(done)
	defer r.Close()
	br := bufio.NewReaderSize(r, 64*1024)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			tail.add(strings.TrimRight(line, "\n"))
			_, _ = io.WriteString(w, line)
		}
		if err != nil {
			return
		}
	}
}

// pidFile is postmaster.pid.
type pidFile struct {
	PID       int // negative for a single-user backend
	DataDir   string
	Port      int
	SocketDir string
	Listen    string
	Status    string // starting, stopping, ready, standby
}

func readPidFile(dataDir string) (pidFile, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return pidFile{}, err
	}
	lines := strings.Split(string(b), "\n")
	var pf pidFile
	if len(lines) > 0 {
		pf.PID, err = strconv.Atoi(strings.TrimSpace(lines[0]))
		if err != nil {
			return pidFile{}, fmt.Errorf("postmaster.pid in %s: bad pid line %q", dataDir, lines[0])
		}
	}
	get := func(i int) string {
		if i < len(lines) {
			return strings.TrimSpace(lines[i])
		}
		return ""
	}
	pf.DataDir = get(1)
	pf.Port, _ = strconv.Atoi(get(3))
	pf.SocketDir = get(4)
	pf.Listen = get(5)
	pf.Status = get(7)
	return pf, nil
}

// isPostgresFor reports whether pid is a live postgres process working on dataDir.
func isPostgresFor(pid int, dataDir string) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(stat)
	open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || close < open || close+2 >= len(s) {
		return false
	}
	comm, state := s[open+1:close], s[close+2]
	if state == 'Z' || state == 'X' {
		return false
	}
	if comm != "postgres" && comm != "postmaster" {
		return false
	}
	want := dataDir
	if r, err := filepath.EvalSymlinks(dataDir); err == nil {
		want = r
	}
	if cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid)); err == nil {
		return cwd == want || cwd == dataDir
	}
	// Not allowed to look (another user): fall back to the command line, else trust the name.
	if cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && len(cmdline) > 0 {
		args := strings.Split(string(cmdline), "\x00")
		for _, a := range args {
			if a == dataDir || a == want {
				return true
			}
		}
		return !strings.Contains(string(cmdline), "-D")
	}
	return true
}

// adoptedPID returns the pid in postmaster.pid if it is a live postgres for our data dir.
func (p *Postgres) adoptedPID() int {
	cfg, _ := p.config()
	pf, err := readPidFile(cfg.DataDir)
	if err != nil {
		return 0
	}
	pid := pf.PID
	if pid < 0 {
		pid = -pid
	}
	if isPostgresFor(pid, cfg.DataDir) {
		return pid
	}
	return 0
}

// postmaster returns the running postmaster's pid and, when we started it, its done channel.
func (p *Postgres) postmaster() (int, *child) {
	p.mu.Lock()
	c := p.child
	p.mu.Unlock()
	if c != nil && !c.exited() {
		return c.pid, c
	}
	return p.adoptedPID(), nil
}

// Running reports whether a postmaster is alive on the data directory: the one we started, or
// one found through postmaster.pid (adopted after a tusker restart).
func (p *Postgres) Running() bool {
	pid, _ := p.postmaster()
	return pid > 0
}

// PostmasterPID returns the running postmaster's pid, or 0.
func (p *Postgres) PostmasterPID() int {
	pid, _ := p.postmaster()
	return pid
}

// Fence stops the postmaster's writes now and returns without waiting. With grace 0 it sends
// SIGQUIT (immediate shutdown). With a grace it first sends SIGINT (fast shutdown: every backend
// is terminated at once, so no more commits, while the WAL senders go on streaming what was
// already flushed, so the replicas end up with every acknowledged commit and the fenced server
// does not diverge from the one promoted next), then SIGQUIT once grace has passed if it is still
// running (a slow shutdown checkpoint, a backend stuck in I/O). It also makes a Start that is
// launching the postmaster at this moment give up. Safe to call from any goroutine at any time.
func (p *Postgres) Fence(grace time.Duration) {
	p.mu.Lock()
	p.fenceGen++
	c := p.child
	logger := p.cfg.Logger
	p.mu.Unlock()
	pid := 0
	if c != nil && !c.exited() {
		pid = c.pid
	} else {
		pid = p.adoptedPID()
	}
	if pid <= 0 {
		return
	}
	if grace <= 0 {
		logger.Warn("fencing postgres: immediate shutdown", "pid", pid)
		signalFence(logger, pid, syscall.SIGQUIT)
		return
	}
	logger.Warn("fencing postgres: fast shutdown, immediate if not done in time", "pid", pid, "grace", grace)
	signalFence(logger, pid, syscall.SIGINT)
	time.AfterFunc(grace, func() {
		alive := false
		if c != nil && c.pid == pid {
			alive = !c.exited()
		} else {
			alive = p.adoptedPID() == pid
		}
		if alive {
			logger.Warn("fencing postgres: fast shutdown not done in time; immediate shutdown", "pid", pid)
			signalFence(logger, pid, syscall.SIGQUIT)
		}
	})
}

func signalFence(logger *slog.Logger, pid int, sig syscall.Signal) {
	if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		logger.Error("fencing postgres failed", "pid", pid, "signal", sig.String(), "err", err)
	}
}

// serverArgs are the postmaster's (and single-user backend's) arguments for the data directory.
func serverArgs(cfg Config) []string {
	args := []string{"-D", cfg.DataDir}
	if cfg.ConfigDir != cfg.DataDir {
		args = append(args, "-c", "config_file="+filepath.Join(cfg.ConfigDir, "postgresql.conf"))
	}
	return args
}

// removeStalePidFile removes postmaster.pid when its pid is alive but is not a postgres (a reused
// pid after a reboot would otherwise make postgres refuse to start). A dead pid is left to
// postgres itself, which also checks the old shared memory segment.
func (p *Postgres) removeStalePidFile(cfg Config) {
	pf, err := readPidFile(cfg.DataDir)
	if err != nil {
		return
	}
	pid := pf.PID
	if pid < 0 {
		pid = -pid
	}
	if pid <= 0 || syscall.Kill(pid, 0) != nil || isPostgresFor(pid, cfg.DataDir) {
		return
	}
	cfg.Logger.Warn("removing postmaster.pid whose pid belongs to another process", "pid", pid)
	_ = os.Remove(filepath.Join(cfg.DataDir, "postmaster.pid"))
}

// Start writes the configuration for opts and starts the postmaster (`postgres -D DataDir`) as a
// child process in its own process group, with its output forwarded to Config.Output. It returns
// once postgres accepts connections. If the postmaster exits meanwhile the error carries the last
// lines of its output. On ctx cancellation or after PgCtlTimeout it returns an error and leaves
// the postmaster running (Running/Stop/Fence handle it). A postmaster already running on the data
// directory makes Start fail with ErrAlreadyRunning without touching anything.
func (p *Postgres) Start(ctx context.Context, opts StartOptions) error {
	if err := opts.validate(); err != nil {
		return fmt.Errorf("starting postgres: %w", err)
	}
	p.mu.Lock()
	if p.starting {
		p.mu.Unlock()
		return fmt.Errorf("starting postgres: %w", ErrBusy)
	}
	p.starting = true
	gen := p.fenceGen
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.starting = false
		p.mu.Unlock()
	}()

	cfg, _ := p.config()
	if pid := p.PostmasterPID(); pid > 0 {
		return fmt.Errorf("starting postgres in %s: %w (pid %d)", cfg.DataDir, ErrAlreadyRunning, pid)
	}
	if st := p.DataDirState(); st != DataDirValid {
		return fmt.Errorf("starting postgres in %s: data directory is %v", cfg.DataDir, st)
	}
	p.removeStalePidFile(cfg)
	if err := p.WriteConfig(opts); err != nil {
		return fmt.Errorf("starting postgres: %w", err)
	}

	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("starting postgres: output pipe: %w", err)
	}
	// A larger pipe lets postgres keep logging for a while even if tusker stops reading.
	_, _, _ = syscall.Syscall(syscall.SYS_FCNTL, w.Fd(), fSetPipeSize, 1<<20)
	cmd := exec.Command(p.bin(cfg, "postgres"), serverArgs(cfg)...)
	cmd.Stdout, cmd.Stderr = w, w
	cmd.Dir = cfg.DataDir
	cmd.Env = processEnv()
	// Own process group so a terminal's signals do not reach it; no Pdeathsig: postgres outlives tusker.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	c := &child{done: make(chan struct{}), outDone: make(chan struct{}), tail: &tailBuffer{max: 30}, fenceGen: gen}

	p.mu.Lock()
	if p.fenceGen != gen {
		p.mu.Unlock()
		r.Close()
		w.Close()
		return fmt.Errorf("starting postgres in %s: %w", cfg.DataDir, ErrFenced)
	}
	if err := cmd.Start(); err != nil {
		p.mu.Unlock()
		r.Close()
		w.Close()
		return fmt.Errorf("starting postgres in %s: %w", cfg.DataDir, err)
	}
	c.pid = cmd.Process.Pid
	p.child = c
	p.mu.Unlock()
	w.Close()

	cfg.Logger.Info("started postmaster", "pid", c.pid, "role", opts.Role.String(), "data_dir", cfg.DataDir)
	go forward(r, cfg.Output, c.tail, c.outDone)
	go func() {
		err := cmd.Wait()
		c.err = err
		close(c.done)
		cfg.Logger.Info("postmaster exited", "pid", c.pid, "status", exitStatus(err))
	}()
	return p.waitStarted(ctx, cfg, c)
}

func exitStatus(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

func (p *Postgres) waitStarted(ctx context.Context, cfg Config, c *child) error {
	deadline := time.NewTimer(cfg.PgCtlTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-c.done:
			select {
			case <-c.outDone:
			case <-time.After(time.Second):
			}
			p.mu.Lock()
			fenced := p.fenceGen != c.fenceGen
			p.mu.Unlock()
			if fenced {
				return fmt.Errorf("starting postgres in %s: %w", cfg.DataDir, ErrFenced)
			}
			return fmt.Errorf("postgres in %s exited during start (%s); last output:\n%s", cfg.DataDir, exitStatus(c.err), c.tail.String())
		case <-ctx.Done():
			return fmt.Errorf("waiting for postgres in %s (pid %d, left running) to accept connections: %w", cfg.DataDir, c.pid, ctx.Err())
		case <-deadline.C:
			return fmt.Errorf("postgres in %s (pid %d, left running) after %v: %w", cfg.DataDir, c.pid, cfg.PgCtlTimeout, ErrStartTimeout)
		case <-tick.C:
			if p.ping(ctx, cfg, c.pid) {
				cfg.Logger.Info("postgres accepts connections", "pid", c.pid)
				return nil
			}
		}
	}
}

// ping reports whether the postmaster pid accepts connections (a server error other than "the
// database system is starting up" counts as accepting, like pg_isready).
func (p *Postgres) ping(ctx context.Context, cfg Config, pid int) bool {
	pf, err := readPidFile(cfg.DataDir)
	if err != nil || pf.PID != pid {
		return false
	}
	if pf.Status != "" && pf.Status != "ready" && pf.Status != "standby" {
		return false
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := p.connect(cctx, "postgres")
	if err == nil {
		_ = conn.Close(cctx)
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code != "57P03" // cannot_connect_now
	}
	return false
}

// Stop shuts postgres down in mode and waits until the postmaster has exited (an adopted one is
// polled). It returns nil at once if postgres is not running. When ctx ends or PgCtlTimeout
// passes first, it escalates: immediate shutdown (SIGQUIT), then after 10s SIGKILL to the
// postmaster and its children; it returns nil if that stopped it (check ControlData to learn
// whether the shutdown was clean).
func (p *Postgres) Stop(ctx context.Context, mode StopMode) error {
	cfg, _ := p.config()
	pid, c := p.postmaster()
	if pid <= 0 {
		return nil
	}
	var done <-chan struct{}
	if c != nil {
		done = c.done
	}
	logger := cfg.Logger.With("pid", pid)
	logger.Info("stopping postgres", "mode", mode.String())
	// Our own kept session would hold up a smart shutdown forever.
	p.releaseConn(ctx)
	if err := syscall.Kill(pid, mode.signal()); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return nil
		}
		return fmt.Errorf("stopping postgres (pid %d): %w", pid, err)
	}
	timer := time.NewTimer(cfg.PgCtlTimeout)
	defer timer.Stop()
	if p.waitExit(cfg, pid, done, ctx.Done(), timer.C) {
		logger.Info("postgres stopped", "mode", mode.String())
		return nil
	}
	why := "timeout"
	if ctx.Err() != nil {
		why = ctx.Err().Error()
	}
	if mode != StopImmediate {
		logger.Warn("postgres did not stop in time; escalating to immediate shutdown", "mode", mode.String(), "reason", why)
		_ = syscall.Kill(pid, syscall.SIGQUIT)
		if p.waitExit(cfg, pid, done, nil, time.After(10*time.Second)) {
			return nil
		}
	}
	kids := proc.Children(pid)
	logger.Error("postgres did not stop; killing the postmaster and its children", "children", len(kids), "reason", why)
	_ = syscall.Kill(pid, syscall.SIGKILL)
	for _, k := range kids {
		_ = syscall.Kill(k, syscall.SIGKILL)
	}
	if p.waitExit(cfg, pid, done, nil, time.After(5*time.Second)) {
		return nil
	}
	return fmt.Errorf("stopping postgres (pid %d) in %s: still running after SIGKILL", pid, cfg.DataDir)
}

// waitExit waits until the postmaster is gone (true) or one of the stop channels fires (false).
func (p *Postgres) waitExit(cfg Config, pid int, done <-chan struct{}, stop1 <-chan struct{}, stop2 <-chan time.Time) bool {
	if done != nil {
		select {
		case <-done:
			return true
		case <-stop1:
			return false
		case <-stop2:
			return false
		}
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if !isPostgresFor(pid, cfg.DataDir) {
			return true
		}
		select {
		case <-tick.C:
		case <-stop1:
			return !isPostgresFor(pid, cfg.DataDir)
		case <-stop2:
			return !isPostgresFor(pid, cfg.DataDir)
		}
	}
}
