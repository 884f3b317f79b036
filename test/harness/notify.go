package harness

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// NotifyListener is the datagram socket systemd listens on for a Type=notify service (the
// NOTIFY_SOCKET it gives the service): it keeps every assignment ("READY=1", "STATUS=...") a
// process sends, in order.
type NotifyListener struct {
	Path string
	mu   sync.Mutex
	got  []string
}

// ListenNotify listens at path until the test ends. Anyone may send to it, as to systemd's.
func ListenNotify(t testing.TB, path string) *NotifyListener {
	t.Helper()
	l := &NotifyListener{Path: path}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatalf("listening for notifications at %s: %v", path, err)
	}
	if err := os.Chmod(path, 0o777); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			l.mu.Lock()
			l.got = append(l.got, strings.Split(string(buf[:n]), "\n")...)
			l.mu.Unlock()
		}
	}()
	return l
}

// Assignments lists every KEY=value received so far.
func (l *NotifyListener) Assignments() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.got...)
}

// Count is how many times assignment a was received.
func (l *NotifyListener) Count(a string) int {
	n := 0
	for _, s := range l.Assignments() {
		if s == a {
			n++
		}
	}
	return n
}

// StatusBefore is the last STATUS= received before the first a ("" when none).
func (l *NotifyListener) StatusBefore(a string) string {
	status := ""
	for _, s := range l.Assignments() {
		if s == a {
			return status
		}
		if v, ok := strings.CutPrefix(s, "STATUS="); ok {
			status = v
		}
	}
	return ""
}

// WaitFor waits until assignment a has been received.
func (l *NotifyListener) WaitFor(a string, timeout time.Duration) error {
	return WaitFor(context.Background(), timeout, 50*time.Millisecond, func() error {
		if l.Count(a) == 0 {
			return fmt.Errorf("no %s yet; received %q", a, l.Assignments())
		}
		return nil
	})
}
