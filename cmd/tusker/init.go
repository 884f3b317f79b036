package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"
)

const envPID1Child = "TUSKER_PID1_CHILD"

// runAsInit is PID 1's job in a container: it runs the daemon as its child, forwards signals to
// it, and reaps every orphan that the kernel reparents to it (postgres backends whose parent died,
// callback scripts' children). Reaping lives here and not in the daemon so that the daemon's own
// exec.Cmd.Wait calls never race with a wait(-1).
func runAsInit() int {
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
	if os.Geteuid() == 0 {
		fmt.Fprintln(os.Stderr, "tusker: refusing to run as root: PostgreSQL does not run as root; run the container as the postgres user")
		return 1
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "tusker (init): starting the daemon:", err)
		return 1
	}
	child := cmd.Process.Pid
	exitCode := -1
	for {
		sig := <-sigs
		if sig != syscall.SIGCHLD {
			_ = syscall.Kill(child, sig.(syscall.Signal))
			continue
		}
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if err != nil || pid <= 0 {
				break
			}
			if pid == child {
				exitCode = ws.ExitStatus()
				if ws.Signaled() {
					exitCode = 128 + int(ws.Signal())
				}
			}
		}
		if exitCode >= 0 {
			drainOrphans()
			return exitCode
		}
	}
}

// drainOrphans asks whatever is left in the namespace (a postgres the daemon could not stop) to
// shut down, and reaps it, before PID 1 exits and the kernel kills the rest with SIGKILL.
func drainOrphans() {
	_ = syscall.Kill(-1, syscall.SIGTERM)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if errors.Is(err, syscall.ECHILD) {
			return
		}
		if pid <= 0 {
			time.Sleep(50 * time.Millisecond)
		}
	}
}
