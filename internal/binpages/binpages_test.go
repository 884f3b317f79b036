package binpages

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// lockedBuffer is a log sink Run's goroutine writes while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestRunReleasesOnScheduleUntilCancelled(t *testing.T) {
	var buf lockedBuffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); Run(ctx, Schedule{First: time.Millisecond, Every: time.Millisecond}, log) }()
	const line = "released the binary's read-only mappings"
	require.Eventually(t, func() bool { return strings.Count(buf.String(), line) >= 2 }, 5*time.Second, time.Millisecond,
		"the first release and a repeat")
	cancel()
	<-done
	require.NotContains(t, buf.String(), "failed")
}
