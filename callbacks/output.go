package callbacks

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

const (
	// outputCap bounds how much of one process's output is logged, so a chatty or runaway
	// script cannot flood the daemon's log or memory.
	outputCap = 64 << 10

	// pipeGrace is how long Wait keeps reading output after the process exited (or was killed)
	// while something outside its process group, such as a daemon it started with setsid, still
	// holds the pipe open. Without it Wait, and so Fire, Close and Hook, could block forever.
	pipeGrace = 2 * time.Second
)

// lineLogger is the stdout and stderr of one process: it logs each complete line at info level
// and, past outputCap bytes, keeps draining the output without logging it so the process never
// blocks on a full pipe or dies of SIGPIPE because of us.
type lineLogger struct {
	mu        sync.Mutex
	log       *slog.Logger
	msg       string
	buf       []byte // the current, incomplete line
	left      int    // bytes still allowed to be logged
	truncated bool
}

func newLineLogger(log *slog.Logger, msg string) *lineLogger {
	return &lineLogger{log: log, msg: msg, left: outputCap}
}

func (w *lineLogger) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	if w.left <= 0 {
		w.noteTruncated()
		return n, nil
	}
	dropped := len(p) > w.left
	if dropped {
		p = p[:w.left]
	}
	w.left -= len(p)
	for {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			break
		}
		w.buf = append(w.buf, p[:i]...)
		w.emit()
		p = p[i+1:]
	}
	w.buf = append(w.buf, p...)
	if w.left <= 0 {
		w.emit()
		if dropped {
			w.noteTruncated()
		}
	}
	return n, nil
}

// Flush logs a last line that had no trailing newline; call it once the process is reaped.
func (w *lineLogger) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.emit()
}

func (w *lineLogger) emit() {
	if len(w.buf) == 0 {
		return
	}
	w.log.Info(w.msg, "line", string(bytes.TrimSuffix(w.buf, []byte("\r"))))
	w.buf = w.buf[:0]
}

func (w *lineLogger) noteTruncated() {
	if !w.truncated {
		w.truncated = true
		w.log.Warn("output exceeds the logging limit; the rest is discarded", "limit_bytes", outputCap)
	}
}

// killGroup sends SIGKILL to the process group led by pgid: the process and every child it left
// in its group, so that a killed script cannot leave a `sleep` or `psql` behind.
func killGroup(pgid int) error {
	if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill process group %d: %w", pgid, err)
	}
	return nil
}

// exitCode returns the exit status of a Wait error, or -1 if the process did not exit normally.
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

func orDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
