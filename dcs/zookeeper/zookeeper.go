// Package zookeeper is tusker's ZooKeeper backend, on the same znodes as Patroni: one session per
// member whose timeout is the ttl carries the member's ephemeral members/<name> znode and, while it
// leads, the ephemeral leader znode; ownership is the znode's ephemeralOwner. CAS writes compare
// the znode version, and watches on the leader, failover and config znodes wake the HA loop.
package zookeeper

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/tusker-ha/tusker/dcs"
)

// AuthData is one credential added to every connection (Patroni's auth_data: scheme -> credential),
// e.g. {"digest", "user:password"}.
type AuthData struct {
	Scheme, Credential string
}

// Options configure a Backend.
type Options struct {
	Hosts []string // host:port
	// TLS (ignored unless UseSSL): CACert verifies the server (system roots when empty), Cert/Key
	// (optionally encrypted with KeyPassword) authenticate us; Verify=false skips server checks.
	UseSSL                         bool
	CACert, Cert, Key, KeyPassword string
	Verify                         *bool
	SetACLs                        map[string][]string // principal -> permissions, see ParseACLs
	AuthData                       []AuthData
	Namespace, Scope, Name         string
	TTL                            time.Duration // the session timeout
	RetryTimeout                   time.Duration // bounds every call
	Logger                         *slog.Logger
}

// Backend is a dcs.DCS on ZooKeeper.
type Backend struct {
	// KeyWriter writes the plain keys (config, status, history, failover, sync, failsafe)
	// through kv, this backend's compare-and-swap and delete.
	dcs.KeyWriter

	hosts []string
	where string // the hosts, for error messages
	keys  dcs.Keys
	scope string
	name  string
	log   *slog.Logger
	acl   []zk.ACL
	auth  []AuthData
	dial  zk.Dialer

	// switchMu serializes replacing the session (opening one, a ttl change, DeleteMember, the lease
	// watchdog).
	switchMu sync.Mutex

	mu     sync.Mutex
	sess   *session // nil after DeleteMember, the lease watchdog and Close: the next call opens one
	ttl    time.Duration
	retry  time.Duration
	closed bool

	changes chan struct{}
	wake    chan struct{} // the session was replaced or changed state: the watcher looks again
	stop    chan struct{}
	wg      sync.WaitGroup // the watcher, call goroutines and background session closes
}

var _ dcs.DCS = (*Backend)(nil)

// New prepares a backend; it connects in the background and does not wait for the server, so that
// a node can start while ZooKeeper is still coming up. The first call waits for the session up to
// retry_timeout and then reports the store unreachable with its addresses.
func New(opts Options) (*Backend, error) {
	if len(opts.Hosts) == 0 {
		return nil, errors.New("zookeeper: no hosts configured")
	}
	for _, h := range opts.Hosts {
		if _, _, err := net.SplitHostPort(h); err != nil {
			return nil, fmt.Errorf("zookeeper host %q: want host:port: %w", h, err)
		}
	}
	if strings.Contains(opts.Name, "/") {
		return nil, fmt.Errorf("zookeeper: member name %q may not contain '/'", opts.Name)
	}
	if opts.RetryTimeout <= 0 {
		opts.RetryTimeout = 10 * time.Second
	}
	if opts.TTL <= 0 {
		opts.TTL = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	acl := zk.WorldACL(zk.PermAll)
	if len(opts.SetACLs) > 0 {
		a, err := ParseACLs(opts.SetACLs)
		if err != nil {
			return nil, err
		}
		acl = a
	}
	for _, a := range opts.AuthData {
		if a.Scheme == "" {
			return nil, errors.New("zookeeper auth_data: empty scheme")
		}
	}
	b := &Backend{
		hosts: append([]string(nil), opts.Hosts...), where: strings.Join(opts.Hosts, ","),
		keys: dcs.NewKeys(opts.Namespace, opts.Scope), scope: opts.Scope, name: opts.Name,
		log: opts.Logger.With("dcs", "zookeeper"), acl: acl, auth: opts.AuthData,
		ttl: opts.TTL, retry: opts.RetryTimeout,
		changes: make(chan struct{}, 1), wake: make(chan struct{}, 1), stop: make(chan struct{}),
		dial: net.DialTimeout,
	}
	b.KeyWriter = dcs.KeyWriter{Keys: b.keys, Store: kv{b}}
	if opts.UseSSL {
		cfg, err := tlsConfig(opts)
		if err != nil {
			return nil, err
		}
		b.dial = tlsDialer(cfg)
	}
	s, err := b.connect(b.ttl)
	if err != nil {
		return nil, err
	}
	b.sess = s
	b.wg.Add(1)
	go b.watch()
	return b, nil
}

// Keys is the znode layout this backend uses (the znode paths are the keys).
func (b *Backend) Keys() dcs.Keys { return b.keys }

// Changes is signalled when the leader, failover or config znode changes, and when the connection
// drops or comes back (a change may have been missed meanwhile).
func (b *Backend) Changes() <-chan struct{} { return b.changes }

// SetTTL changes the session timeout. ZooKeeper fixes it when a session starts, so the next
// AcquireLeader, RenewLeader or TouchMember opens a session with the new timeout and moves this
// member's ephemeral znodes to it in one transaction (see moveSession).
func (b *Backend) SetTTL(ttl time.Duration) {
	if ttl <= 0 {
		return
	}
	b.mu.Lock()
	b.ttl = ttl
	b.mu.Unlock()
}

// SetRetryTimeout changes the bound on every following call (retry_timeout changed in /config).
func (b *Backend) SetRetryTimeout(d time.Duration) {
	if d <= 0 {
		return
	}
	b.mu.Lock()
	b.retry = d
	b.mu.Unlock()
}

// Close stops the watcher and drops the connection without closing the session: like a crashed
// process, it revokes nothing, so the ephemeral znodes stay until the session times out (ttl) and
// a restarted tusker can take its leader znode back by name. DeleteMember is the clean shutdown.
func (b *Backend) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	s := b.sess
	b.sess = nil
	b.mu.Unlock()
	close(b.stop)
	if s != nil {
		s.drop()
	}
	b.wg.Wait()
	return nil
}

// call bounds ctx by retry_timeout.
func (b *Backend) call(ctx context.Context) (context.Context, context.CancelFunc) {
	b.mu.Lock()
	d := b.retry
	b.mu.Unlock()
	return context.WithTimeout(ctx, d)
}

// run runs fn on a goroutine and returns its error, or ErrUnreachable once ctx is done.
// go-zookeeper's requests take no context and wait while the client reconnects; each one ends at
// the latest when its connection is closed (Close, or the old session after a ttl change), and fn
// checks ctx between requests, so the goroutine never outlives Close, which waits for it.
func (b *Backend) run(ctx context.Context, op string, fn func() error) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return fmt.Errorf("zookeeper %s: backend closed: %w", op, dcs.ErrUnreachable)
	}
	b.wg.Add(1)
	b.mu.Unlock()
	done := make(chan error, 1)
	go func() {
		defer b.wg.Done()
		done <- fn()
	}()
	select {
	case err := <-done:
		return b.wrap(op, err)
	case <-ctx.Done():
		return b.wrap(op, ctx.Err())
	}
}

// wrap maps client errors onto dcs sentinels and names the operation and the servers.
func (b *Backend) wrap(op string, err error) error {
	if err == nil || errors.Is(err, dcs.ErrConflict) || errors.Is(err, dcs.ErrNotLeader) ||
		errors.Is(err, dcs.ErrUnreachable) {
		return err
	}
	if unreachable(err) {
		return fmt.Errorf("zookeeper %s at %s: %w: %v", op, b.where, dcs.ErrUnreachable, err)
	}
	return fmt.Errorf("zookeeper %s at %s: %w", op, b.where, err)
}

// unreachable says whether err means the request did not reach a live session: the operation did
// not happen (or its outcome is unknown) and may be retried.
func unreachable(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		errors.Is(err, zk.ErrNoServer) || errors.Is(err, zk.ErrConnectionClosed) ||
		errors.Is(err, zk.ErrSessionExpired) || errors.Is(err, zk.ErrClosing) ||
		errors.Is(err, zk.ErrSessionMoved) || errors.Is(err, errDropped) ||
		errors.Is(err, io.EOF) || errors.As(err, &ne)
}

func conflict(err error) bool {
	return errors.Is(err, zk.ErrBadVersion) || errors.Is(err, zk.ErrNoNode) || errors.Is(err, zk.ErrNodeExists) ||
		errors.Is(err, zk.ErrNotEmpty)
}

// current returns the session, opening one when there is none.
func (b *Backend) current() (*session, error) {
	b.mu.Lock()
	s, closed := b.sess, b.closed
	b.mu.Unlock()
	if s != nil {
		return s, nil
	}
	if closed {
		return nil, fmt.Errorf("zookeeper at %s: backend closed: %w", b.where, dcs.ErrUnreachable)
	}
	b.switchMu.Lock()
	defer b.switchMu.Unlock()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, fmt.Errorf("zookeeper at %s: backend closed: %w", b.where, dcs.ErrUnreachable)
	}
	if b.sess == nil {
		s, err := b.connect(b.ttl)
		if err != nil {
			return nil, err
		}
		b.sess = s
		b.poke()
	}
	return b.sess, nil
}

// leaseSession is current for the lease calls (AcquireLeader, RenewLeader, TouchMember): it
// records the call for the lease watchdog, and when the ttl changed it first moves our ephemeral
// znodes to a session with the new timeout.
func (b *Backend) leaseSession(ctx context.Context) (*session, error) {
	s, err := b.current()
	if err != nil {
		return nil, err
	}
	s.touch()
	b.mu.Lock()
	ttl := b.ttl
	b.mu.Unlock()
	if s.ttl == ttl {
		return s, nil
	}
	s, err = b.moveSession(ctx, ttl)
	if err != nil {
		return nil, err
	}
	s.touch()
	return s, nil
}

// background runs fn on a goroutine Close waits for (at once when the backend is closed).
func (b *Backend) background(fn func()) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		fn()
		return
	}
	b.wg.Add(1)
	b.mu.Unlock()
	go func() {
		defer b.wg.Done()
		fn()
	}()
}

// leaseSafe refuses to lead on a session the server granted a shorter timeout than ttl: it would
// end (and the leader znode with it) while this member still counts on its lease, and another
// member could be promoted next to a primary that does not know it lost the lock yet.
func (b *Backend) leaseSafe(s *session) error {
	b.mu.Lock()
	ttl := b.ttl
	b.mu.Unlock()
	if g := s.grantedTimeout(); g > 0 && g < ttl {
		return fmt.Errorf("ZooKeeper at %s granted a session timeout of %s, less than ttl %s (the server's "+
			"minSessionTimeout/maxSessionTimeout, by default 2 and 20 times its tickTime): the lock could "+
			"expire while this member still counts on it; lower ttl or raise maxSessionTimeout", b.where, g, ttl)
	}
	return nil
}

// ready waits (bounded by ctx) until s has a session and our credentials are added to it.
func (b *Backend) ready(ctx context.Context, s *session) error {
	if err := s.waitSession(ctx); err != nil {
		return err
	}
	return s.authenticate(b.auth)
}

// create creates a znode, creating its missing parents (persistent, with our ACL) first.
func (b *Backend) create(ctx context.Context, c *zk.Conn, p string, data []byte, flags int32) error {
	_, err := c.Create(p, data, flags, b.acl)
	if !errors.Is(err, zk.ErrNoNode) {
		return err
	}
	if err := b.ensurePath(ctx, c, path.Dir(p)); err != nil {
		return err
	}
	_, err = c.Create(p, data, flags, b.acl)
	return err
}

func (b *Backend) ensurePath(ctx context.Context, c *zk.Conn, dir string) error {
	cur := ""
	for _, part := range strings.Split(strings.Trim(dir, "/"), "/") {
		if part == "" {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		cur += "/" + part
		if _, err := c.Create(cur, nil, 0, b.acl); err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return fmt.Errorf("creating parent %s: %w", cur, err)
		}
	}
	return nil
}

// names of the znodes Cluster reads under the scope; others (Citus groups, optime/) are not ours.
var clusterKeys = map[string]bool{"initialize": true, "config": true, "leader": true, "status": true,
	"failover": true, "history": true, "sync": true, "failsafe": true, "members": true}

// Cluster reads every znode of the cluster. ZooKeeper has no multi-key read in this client, but one
// session sees its reads in order, so the snapshot is as consistent as Patroni's.
func (b *Backend) Cluster(ctx context.Context) (*dcs.Cluster, error) {
	ctx, cancel := b.call(ctx)
	defer cancel()
	s, err := b.current()
	if err != nil {
		return nil, err
	}
	var kvs []dcs.KV
	dir := strings.TrimSuffix(b.keys.Prefix, "/")
	err = b.run(ctx, "reading "+b.keys.Prefix, func() error {
		if err := b.ready(ctx, s); err != nil {
			return err
		}
		children, _, err := s.conn.Children(dir)
		if errors.Is(err, zk.ErrNoNode) {
			return nil
		}
		if err != nil {
			return err
		}
		var paths []string
		for _, ch := range children {
			if !clusterKeys[ch] {
				continue
			}
			if ch != "members" {
				paths = append(paths, dir+"/"+ch)
				continue
			}
			ms, _, err := s.conn.Children(dir + "/members")
			if err != nil && !errors.Is(err, zk.ErrNoNode) {
				return err
			}
			for _, m := range ms {
				paths = append(paths, dir+"/members/"+m)
			}
		}
		for _, p := range paths {
			if err := ctx.Err(); err != nil {
				return err
			}
			data, st, err := s.conn.Get(p)
			if errors.Is(err, zk.ErrNoNode) {
				continue // deleted since the listing
			}
			if err != nil {
				return fmt.Errorf("reading %s: %w", p, err)
			}
			kvs = append(kvs, dcs.KV{Key: p, Value: data, Version: version(st)})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return b.keys.Decode(kvs), nil
}

// version is the dcs version of a znode: its data version plus one, so that 0 keeps meaning
// "absent" (a new znode has version 0).
func version(st *zk.Stat) int64 { return int64(st.Version) + 1 }

// Initialize races for (create) or sets the initialize znode.
func (b *Backend) Initialize(ctx context.Context, value string, create bool) (bool, error) {
	if !create {
		err := b.cas(ctx, b.keys.Initialize(), []byte(value), -1)
		return err == nil, err
	}
	err := b.cas(ctx, b.keys.Initialize(), []byte(value), 0)
	if errors.Is(err, dcs.ErrConflict) {
		return false, nil
	}
	return err == nil, err
}

// CancelInitialize deletes the initialize znode.
func (b *Backend) CancelInitialize(ctx context.Context) error {
	return b.del(ctx, b.keys.Initialize())
}

// AcquireLeader creates the ephemeral leader znode if nobody holds it. A leader znode that still
// carries this member's name under an older session of ours (a restarted tusker, a ttl change that
// failed half-way) is taken over in one transaction, so nobody else can slip in between.
func (b *Backend) AcquireLeader(ctx context.Context) (bool, error) {
	ctx, cancel := b.call(ctx)
	defer cancel()
	s, err := b.leaseSession(ctx)
	if err != nil {
		return false, err
	}
	lk := b.keys.Leader()
	var won bool // read only once run returned nil: fn has ended then
	err = b.run(ctx, "acquiring "+lk, func() error {
		if err := b.ready(ctx, s); err != nil {
			return err
		}
		if err := b.leaseSafe(s); err != nil {
			return err
		}
		for range 3 {
			err := b.create(ctx, s.conn, lk, []byte(b.name), zk.FlagEphemeral)
			if err == nil {
				won = true
				return nil
			}
			if !errors.Is(err, zk.ErrNodeExists) {
				return err
			}
			data, st, err := s.conn.Get(lk)
			if errors.Is(err, zk.ErrNoNode) {
				continue // released meanwhile: race again
			}
			if err != nil {
				return err
			}
			if string(data) != b.name {
				return nil // somebody else's
			}
			if st.EphemeralOwner == s.conn.SessionID() {
				won = true
				return nil
			}
			b.log.Info("taking back the leader znode of an earlier session", "znode", lk,
				"owner", fmt.Sprintf("0x%x", st.EphemeralOwner))
			err = multi(s.conn,
				&zk.DeleteRequest{Path: lk, Version: st.Version},
				&zk.CreateRequest{Path: lk, Data: []byte(b.name), Acl: b.acl, Flags: zk.FlagEphemeral})
			if err == nil {
				won = true
				return nil
			}
			if !conflict(err) {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	if won {
		s.acquired.Store(true)
	}
	return won, nil
}

// RenewLeader confirms, in one round trip that also proves the session alive now, that the leader
// znode holds this member's name and belongs to our current session. While the client has no live
// session it fails at once with ErrUnreachable: the server may be expiring us. A session that
// never held the leader znode (a new one after a restart, DeleteMember or a stall) cannot own
// it: ErrNotLeader without asking, as etcd's backend does without a lease.
func (b *Backend) RenewLeader(ctx context.Context) error {
	ctx, cancel := b.call(ctx)
	defer cancel()
	lk := b.keys.Leader()
	b.mu.Lock()
	s := b.sess
	b.mu.Unlock()
	if s == nil || !s.acquired.Load() {
		return fmt.Errorf("renewing %s: this session never held it: %w", lk, dcs.ErrNotLeader)
	}
	s, err := b.leaseSession(ctx)
	if err != nil {
		return err
	}
	if st := s.conn.State(); st != zk.StateHasSession {
		return fmt.Errorf("zookeeper renewing %s at %s: no live session (%s): %w", lk, b.where, st, dcs.ErrUnreachable)
	}
	if err := b.leaseSafe(s); err != nil {
		return fmt.Errorf("renewing %s: %w", lk, err)
	}
	sid := s.conn.SessionID()
	return b.run(ctx, "renewing "+lk, func() error {
		if err := s.authenticate(b.auth); err != nil {
			return err
		}
		data, st, err := s.conn.Get(lk)
		if errors.Is(err, zk.ErrNoNode) {
			return fmt.Errorf("renewing %s: the znode is gone: %w", lk, dcs.ErrNotLeader)
		}
		if err != nil {
			return err
		}
		if string(data) != b.name {
			return fmt.Errorf("renewing %s: held by %q: %w", lk, data, dcs.ErrNotLeader)
		}
		if st.EphemeralOwner != sid || s.conn.SessionID() != sid {
			return fmt.Errorf("renewing %s: owned by session 0x%x, ours is 0x%x: %w",
				lk, st.EphemeralOwner, s.conn.SessionID(), dcs.ErrNotLeader)
		}
		return nil
	})
}

// ReleaseLeader deletes the leader znode if it holds this member's name.
func (b *Backend) ReleaseLeader(ctx context.Context) error {
	ctx, cancel := b.call(ctx)
	defer cancel()
	s, err := b.current()
	if err != nil {
		return err
	}
	lk := b.keys.Leader()
	return b.run(ctx, "releasing "+lk, func() error {
		if err := b.ready(ctx, s); err != nil {
			return err
		}
		data, st, err := s.conn.Get(lk)
		if errors.Is(err, zk.ErrNoNode) {
			return nil
		}
		if err != nil {
			return err
		}
		if string(data) != b.name {
			return nil
		}
		if err := s.conn.Delete(lk, st.Version); err != nil && !conflict(err) {
			return err
		}
		return nil
	})
}

// TouchMember makes the ephemeral member znode hold data under our current session: nothing when
// it already does (ZooKeeper keeps the session alive by itself), a versioned write when only the
// data changed, and an atomic delete-and-create when the znode belongs to another session (an
// earlier run of ours; ours expired and the client reconnected with a new one).
func (b *Backend) TouchMember(ctx context.Context, data dcs.MemberData) error {
	val, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("encoding member %s: %w", b.name, err)
	}
	ctx, cancel := b.call(ctx)
	defer cancel()
	s, err := b.leaseSession(ctx)
	if err != nil {
		return err
	}
	mk := b.keys.Member(b.name)
	return b.run(ctx, "writing "+mk, func() error {
		if err := b.ready(ctx, s); err != nil {
			return err
		}
		var err error
		for range 3 {
			if err = ctx.Err(); err != nil {
				return err
			}
			var cur []byte
			var st *zk.Stat
			cur, st, err = s.conn.Get(mk)
			switch {
			case errors.Is(err, zk.ErrNoNode):
				err = b.create(ctx, s.conn, mk, val, zk.FlagEphemeral)
			case err != nil:
				return err
			case st.EphemeralOwner == s.conn.SessionID():
				if string(cur) == string(val) {
					return nil
				}
				_, err = s.conn.Set(mk, val, st.Version)
			default:
				err = multi(s.conn, &zk.DeleteRequest{Path: mk, Version: st.Version},
					&zk.CreateRequest{Path: mk, Data: val, Acl: b.acl, Flags: zk.FlagEphemeral})
			}
			if err == nil || !conflict(err) {
				return err
			}
		}
		return err
	})
}

// DeleteMember removes the member znode and then closes the session, which is ZooKeeper's way of
// revoking the lease: a leader znode still held goes with it, at once rather than after ttl. The
// backend stays usable; the next call opens a new session.
func (b *Backend) DeleteMember(ctx context.Context) error {
	if err := b.del(ctx, b.keys.Member(b.name)); err != nil {
		return err
	}
	b.switchMu.Lock()
	b.mu.Lock()
	s := b.sess
	b.sess = nil
	b.mu.Unlock()
	b.switchMu.Unlock()
	if s == nil {
		return nil
	}
	ctx, cancel := b.call(ctx)
	defer cancel()
	return b.run(ctx, "closing the session", func() error {
		s.conn.Close()
		return nil
	})
}

// DeleteCluster removes the scope's znodes, children first.
func (b *Backend) DeleteCluster(ctx context.Context) error {
	if b.scope == "" {
		// The prefix would be the namespace itself: every cluster's znodes.
		return fmt.Errorf("zookeeper: refusing to delete %s: no scope", b.keys.Prefix)
	}
	ctx, cancel := b.call(ctx)
	defer cancel()
	s, err := b.current()
	if err != nil {
		return err
	}
	dir := strings.TrimSuffix(b.keys.Prefix, "/")
	return b.run(ctx, "deleting "+b.keys.Prefix+"*", func() error {
		if err := b.ready(ctx, s); err != nil {
			return err
		}
		var err error
		// A member may create its znode while we delete: try again a few times.
		for range 5 {
			if err = deleteTree(ctx, s.conn, dir); err == nil || !errors.Is(err, zk.ErrNotEmpty) {
				return err
			}
		}
		return err
	})
}

func deleteTree(ctx context.Context, c *zk.Conn, p string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	children, _, err := c.Children(p)
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("listing %s: %w", p, err)
	}
	for _, ch := range children {
		if err := deleteTree(ctx, c, p+"/"+ch); err != nil {
			return err
		}
	}
	if err := c.Delete(p, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
		return fmt.Errorf("deleting %s: %w", p, err)
	}
	return nil
}

// del deletes a znode; an absent one is fine.
func (b *Backend) del(ctx context.Context, p string) error {
	ctx, cancel := b.call(ctx)
	defer cancel()
	s, err := b.current()
	if err != nil {
		return err
	}
	return b.run(ctx, "deleting "+p, func() error {
		if err := b.ready(ctx, s); err != nil {
			return err
		}
		if err := s.conn.Delete(p, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
			return err
		}
		return nil
	})
}

// cas writes a persistent znode: create-if-absent for version 0, a write at the znode version
// (dcs version - 1) for a positive one, unconditionally for -1. A lost race is ErrConflict.
func (b *Backend) cas(ctx context.Context, key string, value []byte, ver int64) error {
	ctx, cancel := b.call(ctx)
	defer cancel()
	s, err := b.current()
	if err != nil {
		return err
	}
	return b.run(ctx, "writing "+key, func() error {
		if err := b.ready(ctx, s); err != nil {
			return err
		}
		switch {
		case ver == 0:
			err := b.create(ctx, s.conn, key, value, 0)
			if errors.Is(err, zk.ErrNodeExists) {
				return fmt.Errorf("creating %s: it exists: %w", key, dcs.ErrConflict)
			}
			return err
		case ver > 0:
			if ver-1 > math.MaxInt32 {
				return fmt.Errorf("writing %s at version %d: %w", key, ver, dcs.ErrConflict)
			}
			_, err := s.conn.Set(key, value, int32(ver-1))
			if errors.Is(err, zk.ErrBadVersion) || errors.Is(err, zk.ErrNoNode) {
				return fmt.Errorf("writing %s at version %d: %w", key, ver, dcs.ErrConflict)
			}
			return err
		}
		for range 3 {
			_, err := s.conn.Set(key, value, -1)
			if !errors.Is(err, zk.ErrNoNode) {
				return err
			}
			err = b.create(ctx, s.conn, key, value, 0)
			if !errors.Is(err, zk.ErrNodeExists) {
				return err
			}
		}
		return fmt.Errorf("writing %s: created and deleted concurrently: %w", key, dcs.ErrConflict)
	})
}

// multi runs ops in one transaction and returns the first failure: go-zookeeper reports a failed
// transaction either as the call's error or in the per-op results.
func multi(c *zk.Conn, ops ...any) error {
	res, err := c.Multi(ops...)
	if err != nil {
		return err
	}
	for _, r := range res {
		if r.Error != nil {
			return r.Error
		}
	}
	return nil
}

func (b *Backend) signal() {
	select {
	case b.changes <- struct{}{}:
	default:
	}
}

// poke tells the watcher to look at the session again.
func (b *Backend) poke() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// kv is the backend as a dcs.KVStore, for the KeyWriter it embeds.
type kv struct{ b *Backend }

func (k kv) CAS(ctx context.Context, key string, value []byte, version int64) error {
	return k.b.cas(ctx, key, value, version)
}

func (k kv) Delete(ctx context.Context, key string) error { return k.b.del(ctx, key) }
