package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tusker-ha/tusker/test/harness"
)

// Synchronous failover: with synchronous_mode on (then quorum), a client writes into whichever
// node is the primary, one autocommit INSERT of an increasing id per transaction, and remembers
// every id whose COMMIT succeeded. The primary's node is SIGKILLed; the client follows the new
// primary. The figures are the write gap (last acknowledged commit on the old primary to the first
// on the new one) and the acknowledged ids the new primary does not have, which synchronous
// replication promises is none.

const (
	syncWriteBefore = 3 * time.Second // writes before the kill
	syncWriteAfter  = 2 * time.Second // writes on the new primary before the writer stops
	syncStmtTimeout = 2 * time.Second // per INSERT: a dead primary must not hang the writer
)

// syncOutcome is what one synchronous failover measured.
type syncOutcome struct {
	mode       string
	old, new   string
	gap        time.Duration
	killToNew  time.Duration
	acked      int
	lost       []int64
	warned     int // acknowledged with a WARNING about synchronous replication (wait cancelled)
	extraAcked int // acknowledged by a node other than the old primary before the kill (never expected)
}

// syncFigures runs the scenario for mode on and then quorum, healing the cluster after each, and
// prints one line per mode. It returns the number of acknowledged writes lost in all; when there
// are any it keeps every node's tusker.log in a directory it names.
func syncFigures(ctx context.Context, c *harness.Cluster) (int, error) {
	lost := 0
	for _, mode := range []string{"on", "quorum"} {
		o, err := syncFailover(ctx, c, mode)
		if err != nil {
			return lost, fmt.Errorf("synchronous failover (mode %s): %w", mode, err)
		}
		fmt.Printf("%-44s %8.2f s (kill -9 of %s; new primary %s first wrote %.2f s after the kill; %d writes acknowledged, %d lost)\n",
			"synchronous failover write gap (mode "+mode+")", o.gap.Seconds(), o.old, o.new, o.killToNew.Seconds(),
			o.acked, len(o.lost))
		if o.warned > 0 {
			fmt.Printf("%-44s %8d (COMMIT succeeded with a warning that the wait for synchronous replication was cancelled)\n",
				"  acknowledged with a sync warning", o.warned)
		}
		if o.extraAcked > 0 {
			fmt.Printf("%-44s %8d (writes acknowledged by a node other than %s before it was killed)\n",
				"  WRITES ON A SECOND PRIMARY", o.extraAcked, o.old)
		}
		if len(o.lost) > 0 {
			lost += len(o.lost)
			show := o.lost
			if len(show) > 20 {
				show = show[:20]
			}
			fmt.Printf("%-44s %8d acknowledged writes missing on %s, e.g. ids %v\n", "  LOST ACKNOWLEDGED WRITES", len(o.lost),
				o.new, show)
			if dir, err := keepLogs(c, mode); err == nil {
				fmt.Printf("%-44s %s\n", "  tusker logs kept in", dir)
			} else {
				fmt.Printf("%-44s %v\n", "  could not keep the tusker logs", err)
			}
		}
	}
	// The cluster is left as it was found: asynchronous.
	if err := patchConfig(ctx, c, `{"synchronous_mode": "off"}`); err != nil {
		return lost, err
	}
	return lost, nil
}

// syncFailover enables mode, waits for a synchronous standby, runs the writer through a SIGKILL of
// the primary's node, counts what the new primary lacks, and restarts the killed node.
func syncFailover(ctx context.Context, c *harness.Cluster, mode string) (syncOutcome, error) {
	o := syncOutcome{mode: mode}
	if err := harness.WaitFor(ctx, 60*time.Second, 50*time.Millisecond, func() error { return c.Healthy(ctx) }); err != nil {
		return o, fmt.Errorf("cluster not healthy: %w", err)
	}
	if err := patchConfig(ctx, c, fmt.Sprintf(`{"synchronous_mode": %q}`, mode)); err != nil {
		return o, err
	}
	if err := harness.WaitFor(ctx, 60*time.Second, 100*time.Millisecond, func() error { return syncReady(ctx, c, mode) }); err != nil {
		return o, fmt.Errorf("no synchronous standby: %w", err)
	}
	p, err := c.Primary(ctx)
	if err != nil {
		return o, err
	}
	o.old = p.Name
	if err := p.Exec(ctx, "CREATE TABLE IF NOT EXISTS bench_sync (id bigint PRIMARY KEY, at timestamptz DEFAULT now())"); err != nil {
		return o, err
	}
	if err := p.Exec(ctx, "TRUNCATE bench_sync"); err != nil {
		return o, err
	}

	w := startSyncWriter(ctx, c.Nodes)
	time.Sleep(syncWriteBefore)
	if w.ackedOn(p) == 0 {
		w.stop()
		return o, fmt.Errorf("the writer had no write acknowledged by %s in %s", p.Name, syncWriteBefore)
	}
	killed := time.Now()
	p.KillNode()
	// Write on until the new primary has acknowledged writes for syncWriteAfter.
	err = harness.WaitFor(ctx, 90*time.Second, 50*time.Millisecond, func() error {
		if a, ok := w.firstNotOn(p, killed); ok && time.Since(a.at) >= syncWriteAfter {
			return nil
		}
		return errors.New("no write acknowledged by a new primary yet")
	})
	acks, warned := w.stop()
	if err != nil {
		return o, fmt.Errorf("no failover: %w (%s)", err, w.lastErr())
	}

	var lastOld, firstNew ack
	for _, a := range acks {
		switch {
		case a.node == p:
			lastOld = a
		case a.at.Before(killed):
			o.extraAcked++
		case firstNew.node == nil:
			firstNew = a
		}
	}
	n := firstNew.node
	o.new, o.acked, o.warned = n.Name, len(acks), warned
	o.gap, o.killToNew = firstNew.at.Sub(lastOld.at), firstNew.at.Sub(killed)

	// Let the new primary be primary for a moment more, then read back what it has.
	time.Sleep(time.Second)
	have, err := syncIDs(ctx, n)
	if err != nil {
		return o, fmt.Errorf("reading bench_sync on %s: %w", n.Name, err)
	}
	for _, a := range acks {
		if !have[a.id] {
			o.lost = append(o.lost, a.id)
		}
	}

	// Heal: the killed node comes back and rejoins as a replica.
	if err := p.Start(); err != nil {
		return o, err
	}
	if err := harness.WaitFor(ctx, 120*time.Second, 100*time.Millisecond, func() error { return c.Healthy(ctx) }); err != nil {
		return o, fmt.Errorf("%s did not rejoin: %w", p.Name, err)
	}
	return o, nil
}

// patchConfig sends a PATCH /config to the first node that answers it.
func patchConfig(ctx context.Context, c *harness.Cluster, body string) error {
	var last error
	for _, n := range c.Nodes {
		if !n.Running() {
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		req, _ := http.NewRequestWithContext(rctx, http.MethodPatch, n.APIURL()+"/config", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := n.HTTPClient().Do(req)
		if err != nil {
			cancel()
			last = err
			continue
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		if resp.StatusCode == http.StatusOK {
			return nil
		}
		last = fmt.Errorf("PATCH /config %s on %s answered %d %s", body, n.Name, resp.StatusCode, msg)
	}
	if last == nil {
		last = errors.New("no running node")
	}
	return last
}

// syncReady says whether mode is in force: a replica answers GET /sync (or /quorum) with 200 and
// the leader's GET /patroni shows a wal sender in sync_state sync (or quorum).
func syncReady(ctx context.Context, c *harness.Cluster, mode string) error {
	path, state := "/sync", "sync"
	if mode == "quorum" {
		path, state = "/quorum", "quorum"
	}
	p, err := c.Primary(ctx)
	if err != nil {
		return err
	}
	standby := ""
	for _, n := range c.Nodes {
		if n != p && n.Running() && n.Check(ctx, path) == http.StatusOK {
			standby = n.Name
			break
		}
	}
	if standby == "" {
		return fmt.Errorf("no replica answers GET %s with 200", path)
	}
	st, _, err := p.Patroni(ctx)
	if err != nil {
		return err
	}
	rows, _ := st["replication"].([]any)
	for _, r := range rows {
		if m, ok := r.(map[string]any); ok && m["sync_state"] == state {
			return nil
		}
	}
	return fmt.Errorf("%s answers GET %s but the leader %s shows no %s wal sender: %v", standby, path, p.Name, state, rows)
}

// syncIDs reads every id of bench_sync on n, after checking that n is a primary.
func syncIDs(ctx context.Context, n *harness.Node) (map[int64]bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, n.DSN())
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	var recovery bool
	if err := conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&recovery); err != nil {
		return nil, err
	}
	if recovery {
		return nil, fmt.Errorf("%s is no longer the primary", n.Name)
	}
	rows, err := conn.Query(ctx, "SELECT id FROM bench_sync")
	if err != nil {
		return nil, err
	}
	have := map[int64]bool{}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		have[id] = true
	}
	return have, rows.Err()
}

// keepLogs copies every node's tusker.log out of the bench directory (which is removed at the end).
func keepLogs(c *harness.Cluster, mode string) (string, error) {
	dir, err := os.MkdirTemp("", "tusker-bench-sync-"+mode+"-")
	if err != nil {
		return "", err
	}
	for _, n := range c.Nodes {
		if err := harness.CopyFile(n.LogPath, filepath.Join(dir, n.Name+".tusker.log"), 0o644); err != nil {
			return dir, err
		}
	}
	return dir, nil
}

// ack is one acknowledged write: its COMMIT returned success.
type ack struct {
	id   int64
	at   time.Time
	node *harness.Node
}

// syncWriter is a client that follows the primary: it writes over one connection and, on any
// error, looks for the node where pg_is_in_recovery() is false and carries on there.
type syncWriter struct {
	nodes  []*harness.Node
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	acks   []ack
	warned int
	err    error // the last error, for the report when no failover happens
}

func startSyncWriter(ctx context.Context, nodes []*harness.Node) *syncWriter {
	wctx, cancel := context.WithCancel(ctx)
	w := &syncWriter{nodes: nodes, cancel: cancel, done: make(chan struct{})}
	go w.run(wctx)
	return w
}

// stop ends the writer and returns every acknowledged write, in order, and how many of them came
// with a warning about synchronous replication.
func (w *syncWriter) stop() ([]ack, int) {
	w.cancel()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.acks, w.warned
}

func (w *syncWriter) ackedOn(n *harness.Node) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	k := 0
	for _, a := range w.acks {
		if a.node == n {
			k++
		}
	}
	return k
}

// firstNotOn is the first write acknowledged after since by a node other than n.
func (w *syncWriter) firstNotOn(n *harness.Node, since time.Time) (ack, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, a := range w.acks {
		if a.node != n && !a.at.Before(since) {
			return a, true
		}
	}
	return ack{}, false
}

func (w *syncWriter) lastErr() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *syncWriter) setErr(err error) {
	w.mu.Lock()
	w.err = err
	w.mu.Unlock()
}

func (w *syncWriter) run(ctx context.Context) {
	defer close(w.done)
	var (
		conn   *pgx.Conn
		node   *harness.Node
		id     int64
		warned bool // set by the notice handler during the INSERT it belongs to
	)
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	for ctx.Err() == nil {
		if conn == nil {
			conn, node = w.connectPrimary(ctx, &warned)
			if conn == nil {
				time.Sleep(20 * time.Millisecond)
				continue
			}
		}
		id++
		warned = false
		// pgx's default on a context's end is a deadline on the socket, not a cancel request: a
		// timed-out COMMIT is an error here, never a success that skipped the synchronous wait.
		ectx, cancel := context.WithTimeout(ctx, syncStmtTimeout)
		_, err := conn.Exec(ectx, "INSERT INTO bench_sync (id) VALUES ($1)", id)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				w.setErr(fmt.Errorf("%s: %w", node.Name, err))
			}
			conn.Close(context.Background())
			conn = nil
			continue
		}
		now := time.Now()
		w.mu.Lock()
		w.acks = append(w.acks, ack{id: id, at: now, node: node})
		if warned {
			w.warned++
		}
		w.mu.Unlock()
	}
}

// connectPrimary connects to each node in turn and keeps the connection to the first one that is
// not in recovery.
func (w *syncWriter) connectPrimary(ctx context.Context, warned *bool) (*pgx.Conn, *harness.Node) {
	for _, n := range w.nodes {
		cfg, err := pgx.ParseConfig(n.DSN())
		if err != nil {
			w.setErr(err)
			continue
		}
		cfg.OnNotice = func(_ *pgconn.PgConn, nt *pgconn.Notice) {
			if strings.Contains(nt.Message, "synchronous replication") {
				*warned = true
			}
		}
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		conn, err := pgx.ConnectConfig(cctx, cfg)
		if err != nil {
			cancel()
			w.setErr(fmt.Errorf("%s: %w", n.Name, err))
			continue
		}
		var recovery bool
		err = conn.QueryRow(cctx, "SELECT pg_is_in_recovery()").Scan(&recovery)
		cancel()
		if err == nil && !recovery {
			return conn, n
		}
		if err != nil {
			w.setErr(fmt.Errorf("%s: %w", n.Name, err))
		}
		conn.Close(context.Background())
	}
	return nil, nil
}
