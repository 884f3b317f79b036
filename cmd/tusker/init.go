package main

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tusker-ha/tusker/internal/proc"
)

const (
	envPID1Child = "TUSKER_PID1_CHILD"
	// envInit makes tusker act as init even when it is not PID 1 (it then registers as the child
	// subreaper, so orphans come to it as they would to PID 1): for process supervisors that do not
	// reap, and for testing.
	envInit = "TUSKER_INIT"
)

func initMode() bool {
	return os.Getenv(envPID1Child) == "" && (os.Getpid() == 1 || os.Getenv(envInit) == "1")
}

// runAsInit is PID 1's job in a container: it runs the daemon as its child, forwards signals to
// it, and reaps every orphan that the kernel reparents to it (postgres processes whose parent died,
// hook scripts' children). Reaping lives here and not in the daemon so that the daemon's own
// exec.Cmd.Wait calls never race with a wait(-1).
func runAsInit() int {
	if os.Geteuid() == 0 {
		fmt.Fprintln(os.Stderr, "tusker: refusing to run as root: PostgreSQL does not run as root; run the container as the postgres user")
		return 1
	}
	if os.Getpid() != 1 {
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			fmt.Fprintln(os.Stderr, "tusker (init): becoming a child subreaper:", err)
			return 1
		}
	}
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT,
		syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGABRT, syscall.SIGCHLD)
	self, err := os.Executable()
	if err != nil {
		self = os.Args[0]
	}
	cmd := exec.Command(self, os.Args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), envPID1Child+"=1")
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "tusker (init): starting the daemon:", err)
		return 1
	}
	child := cmd.Process.Pid
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			_ = syscall.Kill(child, sig.(syscall.Signal))
			continue
		}
		if code, exited := reap(child); exited {
			fmt.Fprintf(os.Stderr, "tusker (init): the daemon exited with %d; stopping what is left\n", code)
			drainOrphans()
			return code
		}
	}
	return 1
}

// reap collects every exited child; it reports the daemon's exit code once it is among them.
func reap(daemon int) (code int, exited bool) {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err != nil || pid <= 0 {
			return code, exited
		}
		if pid == daemon {
			exited = true
			code = ws.ExitStatus()
			if ws.Signaled() {
				code = 128 + int(ws.Signal())
			}
		}
	}
}

// drainOrphans asks the children left behind by the daemon (a postgres it could not stop) to shut
// down, and reaps them, before init exits and the kernel kills the rest of the namespace. A
// postmaster gets SIGINT (a fast shutdown: clean, without waiting for clients).
func drainOrphans() {
	deadline := time.Now().Add(30 * time.Second)
	for _, pid := range proc.Children(os.Getpid()) {
		_ = syscall.Kill(pid, syscall.SIGINT)
	}
	for time.Now().Before(deadline) {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.ECHILD {
			return
		}
		if pid <= 0 {
			time.Sleep(50 * time.Millisecond)
		}
	}
}
