package zookeeper

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/tusker-ha/tusker/dcs"
)

// errDropped is what the dialer of a dropped session answers: it must never reconnect.
var errDropped = errors.New("zookeeper connection dropped by Close")

// session is one go-zookeeper client and so one ZooKeeper session, with the timeout it asked for.
type session struct {
	conn *zk.Conn
	ttl  time.Duration
	sock *sockets

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every session state change

	authMu sync.Mutex
	authed bool

	// lastLease is when (unix ns) the HA loop last made a lease call (AcquireLeader, RenewLeader,
	// TouchMember) on this session; 0 when it never did (tuskerctl). See leaseExpired.
	lastLease atomic.Int64
	// acquired: this session took or was handed the leader znode; RenewLeader on any other
	// session is ErrNotLeader without asking the server.
	acquired atomic.Bool
}

// touch records a lease call: the HA loop is alive and wants the session.
func (s *session) touch() { s.lastLease.Store(time.Now().UnixNano()) }

// leaseEnd is when the lease of the last lease call runs out (zero time: no lease calls).
func (s *session) leaseEnd() time.Time {
	n := s.lastLease.Load()
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).Add(s.ttl)
}

// connect starts a client for a session with timeout ttl; go-zookeeper connects (and reconnects,
// with a new session once the old one expired) in the background.
func (b *Backend) connect(ttl time.Duration) (*session, error) {
	s := &session{ttl: ttl, changed: make(chan struct{}), sock: &sockets{open: map[*trackedConn]struct{}{}}}
	dial := func(network, addr string, timeout time.Duration) (net.Conn, error) {
		return s.sock.dial(b.dial, network, addr, timeout)
	}
	c, _, err := zk.Connect(b.hosts, ttl, zk.WithDialer(dial), zk.WithHostProvider(&hostList{}),
		zk.WithLogger(zkLogger{b.log}), zk.WithLogInfo(false),
		zk.WithEventCallback(func(ev zk.Event) { b.event(s, ev) }))
	if err != nil {
		return nil, fmt.Errorf("starting a zookeeper client for %s: %w", b.where, err)
	}
	s.conn = c
	return s, nil
}

// event runs on go-zookeeper's connection goroutine, so it must not block.
func (b *Backend) event(s *session, ev zk.Event) {
	if ev.Type != zk.EventSession {
		return
	}
	s.mu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	if ev.State == zk.StateHasSession {
		if g := s.grantedTimeout(); g != s.ttl {
			b.log.Warn("ZooKeeper granted a session timeout other than ttl (its minSessionTimeout/maxSessionTimeout)",
				"granted", g, "ttl", s.ttl, "server", ev.Server)
		}
	}
	switch ev.State {
	case zk.StateHasSession, zk.StateDisconnected, zk.StateExpired:
		// Connected again (a change may have been missed), or lost: the HA loop looks now.
		b.log.Debug("zookeeper session state", "state", ev.State.String(), "server", ev.Server)
		b.signal()
		b.poke()
	}
}

// waitSession waits until the client has a live session.
func (s *session) waitSession(ctx context.Context) error {
	for {
		s.mu.Lock()
		ch := s.changed
		s.mu.Unlock()
		st := s.conn.State()
		if st == zk.StateHasSession {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			if last := s.sock.lastError(); last != nil {
				return fmt.Errorf("no session (%s; last connection attempt: %v): %w", st, last, ctx.Err())
			}
			return fmt.Errorf("no session (%s): %w", st, ctx.Err())
		}
	}
}

// authenticate adds the configured credentials once per client; go-zookeeper re-sends them on
// every reconnect before any other request, so they cover the whole life of the client.
func (s *session) authenticate(auth []AuthData) error {
	s.authMu.Lock()
	defer s.authMu.Unlock()
	if s.authed {
		return nil
	}
	for _, a := range auth {
		if err := s.conn.AddAuth(a.Scheme, []byte(a.Credential)); err != nil {
			return fmt.Errorf("adding %s credentials: %w", a.Scheme, err)
		}
	}
	s.authed = true
	return nil
}

// drop ends the client without closing the session on the server: its sockets are cut first and
// it may not dial again, so the close request go-zookeeper sends on Close can never arrive.
func (s *session) drop() {
	s.sock.drop()
	// Close returns at once when the client is back to connecting (it waits up to a second for an
	// answer to its close request otherwise): give it that long to notice the cut socket.
	deadline := time.After(time.Second)
wait:
	for {
		s.mu.Lock()
		ch := s.changed
		s.mu.Unlock()
		if s.conn.State() == zk.StateConnecting {
			break
		}
		select {
		case <-ch:
		case <-deadline:
			break wait
		}
	}
	s.conn.Close()
}

// sockets tracks a client's open connections so that drop can cut them.
type sockets struct {
	mu      sync.Mutex
	open    map[*trackedConn]struct{}
	dropped bool
	lastErr error // of the last dial, nil once one succeeded: says why there is no session
	// granted is the session timeout (ms) the server granted in its last connect response: it
	// clamps the one asked for to its minSessionTimeout..maxSessionTimeout, and go-zookeeper
	// keeps the value to itself.
	granted atomic.Int64
}

// grantedTimeout is the session timeout the server granted (0 before the first session).
func (s *session) grantedTimeout() time.Duration {
	return time.Duration(s.sock.granted.Load()) * time.Millisecond
}

func (t *sockets) lastError() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lastErr
}

func (t *sockets) dial(d zk.Dialer, network, addr string, timeout time.Duration) (net.Conn, error) {
	t.mu.Lock()
	dropped := t.dropped
	t.mu.Unlock()
	if dropped {
		return nil, errDropped
	}
	c, err := d(network, addr, timeout)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lastErr = err
	if err != nil {
		return nil, err
	}
	if t.dropped {
		c.Close()
		return nil, errDropped
	}
	tc := &trackedConn{Conn: c, t: t}
	t.open[tc] = struct{}{}
	return tc, nil
}

func (t *sockets) drop() {
	t.mu.Lock()
	t.dropped = true
	open := make([]*trackedConn, 0, len(t.open))
	for c := range t.open {
		open = append(open, c)
	}
	t.mu.Unlock()
	for _, c := range open {
		c.Close()
	}
}

type trackedConn struct {
	net.Conn
	t    *sockets
	once sync.Once
	// head collects the first 12 bytes the server sends on the connection: the connect
	// response's length, protocol version and granted timeout. Reads come from one goroutine.
	head []byte
}

func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if need := 12 - len(c.head); need > 0 && n > 0 {
		c.head = append(c.head, p[:min(n, need)]...)
		if len(c.head) == 12 {
			c.t.granted.Store(int64(int32(binary.BigEndian.Uint32(c.head[8:12]))))
		}
	}
	return n, err
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.t.mu.Lock()
		delete(c.t.open, c)
		c.t.mu.Unlock()
	})
	return c.Conn.Close()
}

// hostList hands out the configured servers in turn. go-zookeeper's default provider resolves
// every name once when the client starts and fails the start when none resolves; here the dialer
// resolves at each attempt, so a name that does not resolve yet only fails that attempt.
type hostList struct {
	mu      sync.Mutex
	servers []string
	cur     int
	last    int
}

func (h *hostList) Init(servers []string) error {
	if len(servers) == 0 {
		return errors.New("no servers")
	}
	h.servers, h.cur, h.last = servers, -1, -1
	return nil
}

func (h *hostList) Len() int { return len(h.servers) }

// Next returns the next server; retryStart says a whole round failed, and go-zookeeper then fails
// the queued requests and pauses a second before the next round.
func (h *hostList) Next() (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cur = (h.cur + 1) % len(h.servers)
	retryStart := h.cur == h.last
	if h.last == -1 {
		h.last = 0
	}
	return h.servers[h.cur], retryStart
}

func (h *hostList) Connected() {
	h.mu.Lock()
	h.last = h.cur
	h.mu.Unlock()
}

// zkLogger sends go-zookeeper's messages (reconnects, failed dials) to the debug log: the
// backend's own errors already say what failed.
type zkLogger struct{ log *slog.Logger }

func (l zkLogger) Printf(format string, a ...any) {
	l.log.Debug("zookeeper client: " + fmt.Sprintf(format, a...))
}

// moveSession replaces the session with one whose timeout is ttl, for a ttl change. This member's
// ephemeral znodes move to the new session in one transaction (delete at the old znode's version,
// create on the new session), so the leader znode never disappears for a reader and nobody can take
// it in between; then the old session is closed. On failure the old session stays in use and the
// next lease call tries again.
func (b *Backend) moveSession(ctx context.Context, ttl time.Duration) (*session, error) {
	b.switchMu.Lock()
	b.mu.Lock()
	old := b.sess
	b.mu.Unlock()
	if old == nil || old.ttl == ttl {
		b.switchMu.Unlock()
		return b.current()
	}
	defer b.switchMu.Unlock()
	ns, err := b.connect(ttl)
	if err != nil {
		return nil, err
	}
	movedLeader := false
	err = b.run(ctx, "moving to a session with timeout "+ttl.String(), func() error {
		if err := b.ready(ctx, ns); err != nil {
			return err
		}
		oldSID := old.conn.SessionID()
		var err error
		for range 3 {
			movedLeader = false
			var ops []any
			for _, p := range []string{b.keys.Leader(), b.keys.Member(b.name)} {
				data, st, gerr := ns.conn.Get(p)
				if errors.Is(gerr, zk.ErrNoNode) {
					continue
				}
				if gerr != nil {
					return gerr
				}
				if oldSID == 0 || st.EphemeralOwner != oldSID {
					continue // not held by the old session: nothing to keep
				}
				ops = append(ops, &zk.DeleteRequest{Path: p, Version: st.Version},
					&zk.CreateRequest{Path: p, Data: data, Acl: b.acl, Flags: zk.FlagEphemeral})
				if p == b.keys.Leader() {
					movedLeader = true
				}
			}
			if len(ops) == 0 {
				return nil
			}
			if err = multi(ns.conn, ops...); err == nil || !conflict(err) {
				return err
			}
			movedLeader = false
		}
		return err
	})
	if err != nil {
		b.background(ns.conn.Close) // it owns nothing yet
		return nil, err
	}
	ns.lastLease.Store(old.lastLease.Load())
	ns.acquired.Store(movedLeader)
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		ns.drop()
		return nil, fmt.Errorf("zookeeper at %s: backend closed: %w", b.where, dcs.ErrUnreachable)
	}
	b.sess = ns
	b.mu.Unlock()
	b.log.Info("moved to a new ZooKeeper session for the new ttl", "ttl", ttl,
		"old", fmt.Sprintf("0x%x", old.conn.SessionID()), "new", fmt.Sprintf("0x%x", ns.conn.SessionID()),
		"leader", movedLeader)
	b.poke()
	// The old session owns none of our znodes any more: close it for real, so that the server
	// forgets it now rather than after its timeout.
	b.background(old.conn.Close)
	return ns, nil
}

// watch follows the leader, failover and config znodes until Close. Each watch fires once, so
// the one that fired is set again; all are set again on a new session (a ttl change, or the old
// session expired and go-zookeeper told every watch it stopped watching).
func (b *Backend) watch() {
	defer b.wg.Done()
	keys := [3]string{b.keys.Leader(), b.keys.Failover(), b.keys.Config()}
	var armed *session
	var chans [3]<-chan zk.Event
	lease := time.NewTimer(time.Hour)
	defer lease.Stop()
	// fired: a watch fired and Changes is signalled once it is set again, not before: a reader
	// woken earlier could read, and a change landing between its read and the new watch would
	// wake nobody.
	fired := false
	for {
		b.mu.Lock()
		s := b.sess
		b.mu.Unlock()
		if s != armed {
			armed, chans = s, [3]<-chan zk.Event{}
		}
		var changed chan struct{}
		var leaseOver <-chan time.Time
		if s != nil {
			s.mu.Lock()
			changed = s.changed
			s.mu.Unlock()
			if end := s.leaseEnd(); !end.IsZero() {
				lease.Reset(time.Until(end))
				leaseOver = lease.C
			}
		}
		if s != nil && s.conn.State() == zk.StateHasSession {
			if err := b.arm(s, keys, &chans); err != nil {
				b.log.Debug("zookeeper watch not set", "err", err)
				b.signal()
				select {
				case <-b.stop:
					return
				case <-time.After(500 * time.Millisecond):
				}
				continue
			}
		}
		if fired {
			// Without a session the watches cannot be set: the HA loop is woken all the same.
			fired = false
			b.signal()
		}
		select {
		case <-b.stop:
			return
		case <-b.wake:
		case <-changed: // nil (blocks) without a session
		case <-leaseOver:
			b.leaseExpired(s)
		case ev := <-chans[0]:
			chans[0], fired = nil, true
			b.logEvent(ev)
		case ev := <-chans[1]:
			chans[1], fired = nil, true
			b.logEvent(ev)
		case ev := <-chans[2]:
			chans[2], fired = nil, true
			b.logEvent(ev)
		}
	}
}

// arm sets the watches that are not set, bounded by retry_timeout.
func (b *Backend) arm(s *session, keys [3]string, chans *[3]<-chan zk.Event) error {
	ctx, cancel := b.call(context.Background())
	defer cancel()
	go func() {
		select {
		case <-b.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	for i, k := range keys {
		if chans[i] != nil {
			continue
		}
		var ch <-chan zk.Event
		err := b.run(ctx, "watching "+k, func() error {
			if err := s.authenticate(b.auth); err != nil {
				return err
			}
			_, _, c, err := s.conn.ExistsW(k)
			ch = c
			return err
		})
		if err != nil {
			return err
		}
		chans[i] = ch
	}
	return nil
}

// leaseExpired closes a session whose HA loop stopped making lease calls for its ttl. ZooKeeper
// would keep it (and the leader znode) alive forever, as go-zookeeper pings in the background;
// a stalled loop must lose the lock as it would with an etcd lease. Its own lease ran out by now
// (it counts from before its last call, we count from the call), so nobody is left holding it.
// The next call opens a new session.
func (b *Backend) leaseExpired(s *session) {
	b.switchMu.Lock()
	b.mu.Lock()
	end := s.leaseEnd()
	if b.sess != s || end.IsZero() || time.Now().Before(end) {
		b.mu.Unlock()
		b.switchMu.Unlock()
		return
	}
	b.sess = nil
	b.mu.Unlock()
	b.switchMu.Unlock()
	b.log.Warn("no lease call for the ttl: closing the ZooKeeper session, its ephemeral znodes go with it",
		"ttl", s.ttl, "session", fmt.Sprintf("0x%x", s.conn.SessionID()), "acquired", s.acquired.Load())
	b.signal()
	b.background(s.conn.Close)
}

func (b *Backend) logEvent(ev zk.Event) {
	if ev.Type != zk.EventNotWatching {
		b.log.Debug("zookeeper watch fired", "znode", ev.Path, "event", ev.Type.String())
	}
}
