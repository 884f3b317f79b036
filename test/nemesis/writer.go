package main

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tusker-ha/tusker/test/harness"
)

// An op is one attempt of a writer: ask the node's REST API GET /primary and, on 200, insert one
// unique value. OK means the insert was acknowledged (COMMIT returned); a failed attempt (not 200,
// an error, a timeout) has OK false, and its value, if any, may or may not have been committed.
type op struct {
	Value      int64 // 0 when /primary did not answer 200
	Start, End time.Time
	OK         bool
	Window     int // index of the fault whose window the attempt started in (-1: before the first)
}

// writer is a client on one node's host, as an application next to each database would be: it
// follows that node's /primary answer, writing only while it is 200, and records every attempt.
// Dialing from inside the node's namespace, it still reaches its node when the node is cut off
// from everything else: exactly the client that would see a cut-off primary accept writes.
type writer struct {
	node   *harness.Node
	host   *Host
	seq    *atomic.Int64
	window *atomic.Int64
	http   *http.Client

	mu      sync.Mutex
	ops     []op
	lastAck atomic.Int64 // Start (unix ns) of the last acknowledged attempt
}

func newWriter(n *harness.Node, h *Host, seq, window *atomic.Int64) *writer {
	tr := &http.Transport{DialContext: h.DialContext, MaxIdleConnsPerHost: 1}
	return &writer{node: n, host: h, seq: seq, window: window,
		http: &http.Client{Transport: tr, Timeout: time.Second}}
}

const createTable = `CREATE TABLE IF NOT EXISTS nemesis (v bigint PRIMARY KEY, node text NOT NULL)`

// run writes until ctx ends.
func (w *writer) run(ctx context.Context) {
	defer w.http.CloseIdleConnections()
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	for ctx.Err() == nil {
		o := op{Start: time.Now(), Window: int(w.window.Load())}
		pause := 100 * time.Millisecond
		if w.primary(ctx) {
			o.Value = w.seq.Add(1)
			var err error
			if conn == nil {
				conn, err = w.connect(ctx)
			}
			if err == nil {
				// Longer than a failover: a commit waiting for a synchronous standby that died is
				// released by the next sync key, so a short timeout would only add uncertainty.
				qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				_, err = conn.Exec(qctx, `INSERT INTO nemesis (v, node) VALUES ($1, $2)`, o.Value, w.node.Name)
				cancel()
				if err != nil {
					conn.Close(context.Background())
					conn = nil
				}
			}
			o.OK = err == nil
			pause = 20 * time.Millisecond
		}
		o.End = time.Now()
		if ctx.Err() != nil && !o.OK {
			return // the attempt was cut short by the end of the run, not by the cluster
		}
		w.mu.Lock()
		w.ops = append(w.ops, o)
		w.mu.Unlock()
		if o.OK {
			w.lastAck.Store(o.Start.UnixNano())
		}
		select {
		case <-ctx.Done():
		case <-time.After(pause):
		}
	}
}

func (w *writer) primary(ctx context.Context) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.node.APIURL()+"/primary", nil)
	if err != nil {
		return false
	}
	resp, err := w.http.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func (w *writer) connect(ctx context.Context) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(w.node.DSN())
	if err != nil {
		return nil, err
	}
	cfg.DialFunc = w.host.DialContext
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := pgx.ConnectConfig(cctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", w.node.Name, err)
	}
	return c, nil
}

// ackedSince reports whether an attempt that started after t was acknowledged.
func (w *writer) ackedSince(t time.Time) bool { return w.lastAck.Load() > t.UnixNano() }

// history is a copy of the ops so far.
func (w *writer) history() []op {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]op(nil), w.ops...)
}
