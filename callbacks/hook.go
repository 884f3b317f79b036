package callbacks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"sync/atomic"
	"syscall"
	"time"
)

// Hook runs a synchronous hook such as pre_promote, before_stop or post_bootstrap and waits for it.
// command is split by Split, args are appended (post_bootstrap gets a connection string) and env
// is added to os.Environ(). An empty command is no hook configured and returns nil.
//
// It returns nil on exit 0 and an error naming the hook, the command and the exit status
// otherwise. When ctx ends first it kills the hook's whole process group, so a hung script and
// anything it started cannot outlive the daemon's patience, and returns an error wrapping
// ctx.Err(). Output (stdout and stderr) is logged at info level line by line, up to 64 KiB, with
// the hook's name. logger may be nil.
func Hook(ctx context.Context, logger *slog.Logger, name, command string, env []string, args ...string) error {
	if command == "" {
		return nil
	}
	log := orDiscard(logger).With("hook", name)
	argv, err := Split(command)
	if err != nil {
		return fmt.Errorf("%s hook: %w", name, err)
	}
	if len(argv) == 0 {
		return fmt.Errorf("%s hook %q: empty command line", name, command)
	}
	argv = append(argv, args...)

	out := newLineLogger(log, "hook output")
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// The default Cancel kills only the script; its children would keep running and keep the
	// output pipe open.
	var canceled atomic.Bool
	cmd.Cancel = func() error {
		err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if errors.Is(err, syscall.ESRCH) {
			// Nothing left to kill: the hook finished on its own, and its result stands.
			return os.ErrProcessDone
		}
		// Wait reads this only after Cancel has returned (exec hands it the result then).
		canceled.Store(err == nil)
		return err
	}
	cmd.WaitDelay = pipeGrace

	log.Info("running hook", "command", command)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s hook %q: %w", name, command, err)
	}
	err = cmd.Wait()
	out.Flush()
	took := time.Since(start).Round(time.Millisecond)
	switch {
	case err == nil:
		log.Info("hook finished", "exit_code", 0, "duration", took)
		return nil
	case errors.Is(err, exec.ErrWaitDelay):
		// The script itself succeeded; something it left running just kept our pipe open.
		log.Warn("hook exited but left processes holding its output open; stopped reading it", "duration", took)
		return nil
	case ctx.Err() != nil && (canceled.Load() || exitCode(err) < 0):
		// Killed because ctx ended (by Cancel, or by exec's own Kill after WaitDelay), rather than
		// having exited with a status of its own just as ctx ended.
		return fmt.Errorf("%s hook %q killed after %s: %w", name, command, took, ctx.Err())
	default:
		return fmt.Errorf("%s hook %q: %w", name, command, err)
	}
}
