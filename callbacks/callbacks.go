// Package callbacks runs the user scripts Patroni knows as callbacks and hooks.
//
// Callbacks (postgresql.callbacks: on_start, on_stop, on_restart, on_reload, on_role_change) are
// fire-and-forget notifications invoked as `<command...> <action> <role> <scope>`. As in Patroni
// only one runs at a time: a new one kills the previous one, with its children, if it is still
// running, so a slow script never delivers a stale role after a newer one. on_reload has a slot
// of its own, so a reload never cancels the notification of a role change. Runner does this.
//
// Hooks (pre_promote, before_stop, bootstrap.post_bootstrap) are synchronous: the daemon waits for
// their result. Hook runs one, bounded by a context so a hung script cannot stall the daemon.
package callbacks

import (
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// ActionOnReload is the action that runs in its own slot; every other action shares one.
const ActionOnReload = "on_reload"

// Runner runs the asynchronous callbacks. It is safe for concurrent use.
type Runner struct {
	log *slog.Logger
	env []string // os.Environ() plus the caller's extra variables, fixed at New

	// mu serialises Fire and Close, so "kill the previous one, then start" is atomic per slot
	// and nothing starts once Close has begun.
	mu     sync.Mutex
	closed bool
	slots  map[string]*running // by slot name; the last callback started in each slot

	wg sync.WaitGroup // one per reaper goroutine; Close waits on it
}

// running is one started callback process.
type running struct {
	pid    int // also its process group id (Setpgid)
	killed atomic.Bool
	done   chan struct{} // closed once the process is reaped and its output drained
}

// New returns a Runner. logger may be nil (discard); env is extra KEY=VALUE environment for every
// callback and may be nil. Callbacks get the daemon's environment as it is when New is called,
// plus env.
func New(logger *slog.Logger, env []string) *Runner {
	return &Runner{
		log:   orDiscard(logger),
		env:   append(os.Environ(), env...),
		slots: make(map[string]*running),
	}
}

func slotOf(action string) string {
	if action == ActionOnReload {
		return ActionOnReload
	}
	return "main"
}

// Fire starts `command action role scope` asynchronously and returns at once. command "" is a
// no-op. It first kills (SIGKILL to the process group) the callback still running in the same
// slot (action "on_reload" uses its own slot, all others share one) and waits for it to be reaped,
// which takes at most pipeGrace. Errors (bad command line, exec failure) are logged, never
// returned: a callback is a notification and must not change what the daemon does next.
func (r *Runner) Fire(command, action, role, scope string) {
	if command == "" {
		return
	}
	log := r.log.With("callback", command, "action", action)
	argv, err := Split(command)
	if err != nil {
		log.Error("cannot run callback", "error", err)
		return
	}
	if len(argv) == 0 {
		log.Error("cannot run callback: empty command line")
		return
	}
	argv = append(argv, action, role, scope)

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	slot := slotOf(action)
	if prev := r.slots[slot]; prev != nil {
		r.stop(prev, log)
		delete(r.slots, slot)
	}

	out := newLineLogger(log, "callback output")
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = r.env
	cmd.Stdout, cmd.Stderr = out, out // same writer: exec gives both one pipe, keeping order
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = pipeGrace
	if err := cmd.Start(); err != nil {
		log.Error("cannot start callback", "error", err)
		return
	}
	p := &running{pid: cmd.Process.Pid, done: make(chan struct{})}
	r.slots[slot] = p
	log.Info("callback started", "pid", p.pid, "role", role, "scope", scope)

	start := time.Now()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer close(p.done)
		err := cmd.Wait()
		out.Flush()
		attrs := []any{"pid", p.pid, "duration", time.Since(start).Round(time.Millisecond)}
		switch {
		case p.killed.Load():
			log.Info("callback killed before it finished", attrs...)
		case errors.Is(err, exec.ErrWaitDelay):
			log.Warn("callback exited but left processes holding its output open; stopped reading it", attrs...)
		case err != nil:
			log.Warn("callback failed", append(attrs, "exit_code", exitCode(err), "error", err)...)
		default:
			log.Info("callback finished", append(attrs, "exit_code", 0)...)
		}
	}()
}

// stop kills p's process group if it has not been reaped yet, then waits until it is. Until the
// reaper closes done, either the leader is unreaped or some member of its group still holds the
// output pipe; either way the group id is still in use and cannot name an unrelated group.
func (r *Runner) stop(p *running, log *slog.Logger) {
	select {
	case <-p.done:
		return
	default:
	}
	p.killed.Store(true)
	if err := killGroup(p.pid); err != nil {
		log.Warn("cannot kill previous callback", "pid", p.pid, "error", err)
	}
	<-p.done
}

// Close kills whatever is still running and waits until all callback processes are reaped. Fire
// after Close is a no-op. Close may be called more than once.
func (r *Runner) Close() {
	r.mu.Lock()
	r.closed = true
	for slot, p := range r.slots {
		select {
		case <-p.done:
		default:
			p.killed.Store(true)
			if err := killGroup(p.pid); err != nil {
				r.log.Warn("cannot kill callback", "pid", p.pid, "error", err)
			}
		}
		delete(r.slots, slot)
	}
	r.mu.Unlock()
	// Both slots were killed before waiting, so Close takes one pipeGrace at most, not two.
	r.wg.Wait()
}
