package harness

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// AckWriter inserts unique ids, one transaction at a time, into whatever Dial returns (the
// primary, found however the suite finds it), and records every id whose COMMIT returned
// success: the writes the cluster promised to keep. A statement that fails or times out is not
// counted (it may or may not have committed). Its table is "acked".
type AckWriter struct {
	dial    func(ctx context.Context) (*pgx.Conn, string, error)
	timeout time.Duration

	mu     sync.Mutex
	acked  map[int64]string // id -> node that acknowledged it
	times  []ackAt
	errors int
	stop   chan struct{}
	done   chan struct{}
}

type ackAt struct {
	at   time.Time
	node string
}

// AckTable is created by StartAckWriter (and by the caller on the first primary, if it wants the
// table before the writer runs).
const AckTable = "CREATE TABLE IF NOT EXISTS acked (id bigint PRIMARY KEY)"

// StartAckWriter creates the table through one connection of dial and starts writing; Stop (or
// the end of the test) ends it. dial returns a connection to the current primary and a name for
// it; it is called again after every failed statement.
func StartAckWriter(ctx context.Context, dial func(ctx context.Context) (*pgx.Conn, string, error)) (*AckWriter, error) {
	conn, _, err := dial(ctx)
	if err != nil {
		return nil, fmt.Errorf("ack writer: reaching the primary: %w", err)
	}
	_, err = conn.Exec(ctx, AckTable)
	_ = conn.Close(context.Background())
	if err != nil {
		return nil, fmt.Errorf("ack writer: creating the table: %w", err)
	}
	w := &AckWriter{dial: dial, timeout: 3 * time.Second, acked: map[int64]string{},
		stop: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	return w, nil
}

func (w *AckWriter) run() {
	defer close(w.done)
	var conn *pgx.Conn
	var node string
	defer func() {
		if conn != nil {
			_ = conn.Close(context.Background())
		}
	}()
	id := int64(0)
	for {
		select {
		case <-w.stop:
			return
		default:
		}
		if conn == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			var err error
			conn, node, err = w.dial(ctx)
			cancel()
			if err != nil {
				conn = nil
				time.Sleep(50 * time.Millisecond)
				continue
			}
		}
		id++
		ctx, cancel := context.WithTimeout(context.Background(), w.timeout)
		_, err := conn.Exec(ctx, "INSERT INTO acked VALUES ($1)", id)
		cancel()
		if err != nil {
			w.mu.Lock()
			w.errors++
			w.mu.Unlock()
			_ = conn.Close(context.Background())
			conn = nil
			continue
		}
		now := time.Now()
		w.mu.Lock()
		w.acked[id] = node
		w.times = append(w.times, ackAt{now, node})
		w.mu.Unlock()
	}
}

// Stop ends the writer (idempotent).
func (w *AckWriter) Stop() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

// Count is how many writes node acknowledged ("" for any).
func (w *AckWriter) Count(node string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, a := range w.times {
		if node == "" || a.node == node {
			n++
		}
	}
	return n
}

// WaitCount waits until node ("" for any) acknowledged n more writes than it had when called.
func (w *AckWriter) WaitCount(ctx context.Context, node string, n int, timeout time.Duration) error {
	base := w.Count(node)
	return WaitFor(ctx, timeout, 50*time.Millisecond, func() error {
		if got := w.Count(node) - base; got < n {
			return fmt.Errorf("%d of %d writes acknowledged by %q", got, n, node)
		}
		return nil
	})
}

// MaxGapAfter is the longest time without an acknowledgement after t0 (until the last one).
func (w *AckWriter) MaxGapAfter(t0 time.Time) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	prev, gap := t0, time.Duration(0)
	for _, a := range w.times {
		if a.at.Before(t0) {
			continue
		}
		gap = max(gap, a.at.Sub(prev))
		prev = a.at
	}
	return gap
}

// Nodes lists the names of the nodes that acknowledged writes, in the order they first did.
func (w *AckWriter) Nodes() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var names []string
	for _, a := range w.times {
		if !slices.Contains(names, a.node) {
			names = append(names, a.node)
		}
	}
	return names
}

// MissingOn lists, in order, the acknowledged ids that the database behind conn lacks.
func (w *AckWriter) MissingOn(ctx context.Context, conn *pgx.Conn) ([]int64, error) {
	rows, err := conn.Query(ctx, "SELECT id FROM acked")
	if err != nil {
		return nil, fmt.Errorf("reading the acknowledged ids: %w", err)
	}
	have := map[int64]bool{}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		have[id] = true
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var missing []int64
	for id := range w.acked {
		if !have[id] {
			missing = append(missing, id)
		}
	}
	slices.Sort(missing)
	return missing, nil
}
