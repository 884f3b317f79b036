// Package sdnotify speaks systemd's notification protocol (sd_notify(3)): datagrams such as
// READY=1 or WATCHDOG=1 sent to the socket that systemd names in NOTIFY_SOCKET, for services of
// Type=notify and units with WatchdogSec.
package sdnotify

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// The variables systemd sets for a notify service. They are read once and removed from the
// environment: PostgreSQL (built with systemd support, as Debian's is) would otherwise inherit
// NOTIFY_SOCKET and tell systemd READY=1 on its own, and callbacks have no business there either.
const (
	envSocket      = "NOTIFY_SOCKET"
	envWatchdogUS  = "WATCHDOG_USEC"
	envWatchdogPID = "WATCHDOG_PID"
)

// Notifier sends notifications to one socket.
type Notifier struct {
	addr     *net.UnixAddr
	watchdog time.Duration
}

// FromEnv takes systemd's variables out of the environment and returns a Notifier for them, or
// nil when NOTIFY_SOCKET is unset (not started by systemd as a notify service). An unusable
// WATCHDOG_USEC is an error: the unit asked for a watchdog that tusker could not keep.
func FromEnv() (*Notifier, error) {
	socket, watchdog, pid := os.Getenv(envSocket), os.Getenv(envWatchdogUS), os.Getenv(envWatchdogPID)
	for _, k := range []string{envSocket, envWatchdogUS, envWatchdogPID} {
		_ = os.Unsetenv(k)
	}
	return Parse(socket, watchdog, pid, os.Getpid())
}

// Parse builds a Notifier from the values of NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID as
// seen by process self.
func Parse(socket, watchdogUSec, watchdogPID string, self int) (*Notifier, error) {
	if socket == "" {
		return nil, nil
	}
	// "@name" is an abstract socket, which Go's net package also writes as "@name"; anything
	// else must be an absolute path (systemd never sends a relative one).
	if !strings.HasPrefix(socket, "@") && !strings.HasPrefix(socket, "/") {
		return nil, fmt.Errorf("%s %q is neither an absolute path nor an abstract socket (@name)", envSocket, socket)
	}
	n := &Notifier{addr: &net.UnixAddr{Name: socket, Net: "unixgram"}}
	if watchdogUSec == "" {
		return n, nil
	}
	// WATCHDOG_PID names the process the watchdog is meant for; another process's is not ours.
	if watchdogPID != "" {
		p, err := strconv.Atoi(watchdogPID)
		if err != nil {
			return nil, fmt.Errorf("%s %q: %w", envWatchdogPID, watchdogPID, err)
		}
		if p != self {
			return n, nil
		}
	}
	us, err := strconv.ParseInt(watchdogUSec, 10, 64)
	if err != nil || us <= 0 || us > int64(24*time.Hour/time.Microsecond) {
		return nil, fmt.Errorf("%s %q: not a number of microseconds between 1 and a day", envWatchdogUS, watchdogUSec)
	}
	n.watchdog = time.Duration(us) * time.Microsecond
	return n, nil
}

// Watchdog is the unit's WatchdogSec (0 when none): WATCHDOG=1 must arrive more often than that.
func (n *Notifier) Watchdog() time.Duration { return n.watchdog }

// Send sends one notification made of the given assignments ("READY=1", "STATUS=...").
func (n *Notifier) Send(assignments ...string) error {
	msg := strings.Join(assignments, "\n")
	conn, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("sd_notify %q to %s: %w", msg, n.addr.Name, err)
	}
	defer conn.Close()
	_ = conn.SetWriteDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte(msg)); err != nil {
		return fmt.Errorf("sd_notify %q to %s: %w", msg, n.addr.Name, err)
	}
	return nil
}
