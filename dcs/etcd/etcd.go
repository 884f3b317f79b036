// Package etcd is tusker's etcd v3 backend: one lease per member carries its member key and, while it
// leads, the leader key; the leader is taken by a transaction on create_revision, CAS writes compare
// mod_revision, and watches on the leader, failover and config keys wake the HA loop at once.
package etcd

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tusker-ha/tusker/dcs"
)

// Options configure a Backend.
type Options struct {
	Endpoints              []string // http(s)://host:port
	Username, Password     string
	CACert, Cert, Key      string
	Namespace, Scope, Name string
	TTL                    time.Duration
	RetryTimeout           time.Duration // bounds every call
	Logger                 *slog.Logger
}

// Backend is a dcs.DCS on etcd v3.
type Backend struct {
	// KeyWriter writes the plain keys (config, status, history, failover, sync, failsafe)
	// through kv, this backend's compare-and-swap and delete.
	dcs.KeyWriter

	cli   *clientv3.Client
	keys  dcs.Keys
	name  string
	eps   string
	log   *slog.Logger
	retry time.Duration

	mu            sync.Mutex
	ttl           time.Duration
	lease         clientv3.LeaseID
	leaseTTL      time.Duration
	lastKeepAlive time.Time
	lastMember    []byte

	changes chan struct{}
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

var _ dcs.DCS = (*Backend)(nil)

// New connects lazily: it does not wait for the server, so that a node can start while etcd is
// still coming up; the first call reports an unreachable store with its addresses.
func New(opts Options) (*Backend, error) {
	if len(opts.Endpoints) == 0 {
		return nil, errors.New("etcd: no endpoints configured")
	}
	if opts.RetryTimeout <= 0 {
		opts.RetryTimeout = 2 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	var tlsCfg *tls.Config
	if opts.CACert != "" || opts.Cert != "" {
		info := transport.TLSInfo{TrustedCAFile: opts.CACert, CertFile: opts.Cert, KeyFile: opts.Key}
		c, err := info.ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("etcd TLS configuration (cacert %q, cert %q): %w", opts.CACert, opts.Cert, err)
		}
		tlsCfg = c
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            opts.Endpoints,
		DialTimeout:          opts.RetryTimeout,
		DialKeepAliveTime:    opts.RetryTimeout,
		DialKeepAliveTimeout: opts.RetryTimeout,
		Username:             opts.Username,
		Password:             opts.Password,
		TLS:                  tlsCfg,
		Logger:               zap.NewNop(),
		DialOptions:          []grpc.DialOption{grpc.WithConnectParams(reconnect(opts.RetryTimeout))},
	})
	if err != nil {
		return nil, fmt.Errorf("etcd client for %s: %w", strings.Join(opts.Endpoints, ","), err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &Backend{
		cli: cli, keys: dcs.NewKeys(opts.Namespace, opts.Scope), name: opts.Name,
		eps: strings.Join(opts.Endpoints, ","), log: opts.Logger, retry: opts.RetryTimeout,
		ttl: opts.TTL, changes: make(chan struct{}, 1), cancel: cancel,
	}
	b.KeyWriter = dcs.KeyWriter{Keys: b.keys, Store: kv{b}}
	if b.ttl <= 0 {
		b.ttl = 6 * time.Second
	}
	b.wg.Add(1)
	go b.watch(ctx)
	return b, nil
}

// reconnect is how the client redials a lost server. gRPC's default backoff grows to 120 s: after
// a 40 s outage the client would next try some 20 s after the store is back, and the leader whose
// key survived would sit fenced all that time. A reconnect every quarter second at most costs a
// SYN per member while the store is down and finds it again within that of its return.
func reconnect(retry time.Duration) grpc.ConnectParams {
	return grpc.ConnectParams{
		Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 250 * time.Millisecond},
		MinConnectTimeout: retry,
	}
}

// Keys is the key layout this backend uses.
func (b *Backend) Keys() dcs.Keys { return b.keys }

// Close stops the watch and closes the client.
func (b *Backend) Close() error {
	b.cancel()
	b.wg.Wait()
	return b.cli.Close()
}

// Changes is signalled when the leader, failover or config key changes.
func (b *Backend) Changes() <-chan struct{} { return b.changes }

// SetTTL changes the lease duration; the next renewal moves this member's keys to a new lease.
func (b *Backend) SetTTL(ttl time.Duration) {
	b.mu.Lock()
	b.ttl = ttl
	b.mu.Unlock()
}

// SetRetryTimeout changes the bound on every following call (retry_timeout changed in /config).
func (b *Backend) SetRetryTimeout(d time.Duration) {
	b.mu.Lock()
	b.retry = d
	b.mu.Unlock()
}

func (b *Backend) call(ctx context.Context) (context.Context, context.CancelFunc) {
	b.mu.Lock()
	d := b.retry
	b.mu.Unlock()
	return context.WithTimeout(ctx, d)
}

// wrap maps client errors onto dcs sentinels and names the operation and the store.
func (b *Backend) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled),
		errors.Is(err, rpctypes.ErrNoLeader), errors.Is(err, rpctypes.ErrTimeout),
		errors.Is(err, rpctypes.ErrTimeoutDueToLeaderFail), errors.Is(err, rpctypes.ErrTimeoutDueToConnectionLost):
		return fmt.Errorf("etcd %s at %s: %w: %v", op, b.eps, dcs.ErrUnreachable, err)
	}
	if s, ok := status.FromError(err); ok && (s.Code() == codes.Unavailable || s.Code() == codes.DeadlineExceeded) {
		return fmt.Errorf("etcd %s at %s: %w: %v", op, b.eps, dcs.ErrUnreachable, err)
	}
	return fmt.Errorf("etcd %s at %s: %w", op, b.eps, err)
}

// Cluster reads every key under the scope in one revision.
func (b *Backend) Cluster(ctx context.Context) (*dcs.Cluster, error) {
	ctx, cancel := b.call(ctx)
	defer cancel()
	resp, err := b.cli.Get(ctx, b.keys.Prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, b.wrap("reading "+b.keys.Prefix, err)
	}
	kvs := make([]dcs.KV, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		kvs = append(kvs, dcs.KV{Key: string(kv.Key), Value: kv.Value, Version: kv.ModRevision})
	}
	return b.keys.Decode(kvs), nil
}

// Initialize races for (create) or sets the initialize key.
func (b *Backend) Initialize(ctx context.Context, value string, create bool) (bool, error) {
	ctx, cancel := b.call(ctx)
	defer cancel()
	k := b.keys.Initialize()
	if !create {
		_, err := b.cli.Put(ctx, k, value)
		return err == nil, b.wrap("writing "+k, err)
	}
	resp, err := b.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, value)).Commit()
	if err != nil {
		return false, b.wrap("creating "+k, err)
	}
	return resp.Succeeded, nil
}

// CancelInitialize deletes the initialize key.
func (b *Backend) CancelInitialize(ctx context.Context) error {
	ctx, cancel := b.call(ctx)
	defer cancel()
	_, err := b.cli.Delete(ctx, b.keys.Initialize())
	return b.wrap("deleting "+b.keys.Initialize(), err)
}

// ensureLease returns this member's lease, granting a new one when there is none, it expired, or
// the ttl changed. Callers hold no lock.
func (b *Backend) ensureLease(ctx context.Context) (clientv3.LeaseID, error) {
	b.mu.Lock()
	id, ttl, cur := b.lease, b.ttl, b.leaseTTL
	b.mu.Unlock()
	if id != 0 && ttl == cur {
		return id, nil
	}
	secs := int64((ttl + time.Second - 1) / time.Second)
	resp, err := b.cli.Grant(ctx, secs)
	if err != nil {
		return 0, b.wrap("granting a lease", err)
	}
	b.mu.Lock()
	old := b.lease
	b.lease, b.leaseTTL, b.lastKeepAlive, b.lastMember = resp.ID, ttl, time.Now(), nil
	b.mu.Unlock()
	if old != 0 {
		// Move the leader key to the new lease before the old one goes, so a ttl change never
		// drops the lock.
		lk := b.keys.Leader()
		_, _ = b.cli.Txn(ctx).If(clientv3.Compare(clientv3.Value(lk), "=", b.name),
			clientv3.Compare(clientv3.LeaseValue(lk), "=", old)).
			Then(clientv3.OpPut(lk, b.name, clientv3.WithLease(resp.ID))).Commit()
		_, _ = b.cli.Revoke(ctx, old)
	}
	return resp.ID, nil
}

// keepAlive refreshes the lease; a lease the server no longer knows is forgotten.
func (b *Backend) keepAlive(ctx context.Context, id clientv3.LeaseID) error {
	_, err := b.cli.KeepAliveOnce(ctx, id)
	if err != nil {
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			b.mu.Lock()
			if b.lease == id {
				b.lease, b.lastMember = 0, nil
			}
			b.mu.Unlock()
		}
		return b.wrap("refreshing the lease", err)
	}
	b.mu.Lock()
	b.lastKeepAlive = time.Now()
	b.mu.Unlock()
	return nil
}

// liveLease returns a lease that the server knows: refreshed when its last keepalive is old, and
// replaced when the server forgot it (it expired while we were away).
func (b *Backend) liveLease(ctx context.Context) (clientv3.LeaseID, error) {
	id, err := b.ensureLease(ctx)
	if err != nil {
		return 0, err
	}
	b.mu.Lock()
	stale := time.Since(b.lastKeepAlive) > b.leaseTTL/4
	b.mu.Unlock()
	if !stale {
		return id, nil
	}
	if err := b.keepAlive(ctx, id); err != nil {
		if !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return 0, err
		}
		return b.ensureLease(ctx)
	}
	return id, nil
}

// AcquireLeader takes the leader key with this member's lease if nobody holds it. A leader key
// that still carries this member's name (its previous incarnation's lease) is taken back.
func (b *Backend) AcquireLeader(ctx context.Context) (bool, error) {
	ctx, cancel := b.call(ctx)
	defer cancel()
	id, err := b.liveLease(ctx)
	if err != nil {
		return false, err
	}
	lk := b.keys.Leader()
	resp, err := b.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(lk), "=", 0)).
		Then(clientv3.OpPut(lk, b.name, clientv3.WithLease(id))).Commit()
	if err != nil {
		return false, b.wrap("acquiring "+lk, err)
	}
	if resp.Succeeded {
		return true, nil
	}
	resp, err = b.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.Value(lk), "=", b.name)).
		Then(clientv3.OpPut(lk, b.name, clientv3.WithLease(id))).Commit()
	if err != nil {
		return false, b.wrap("acquiring "+lk, err)
	}
	return resp.Succeeded, nil
}

// RenewLeader refreshes the lease, then checks in one transaction that the leader key still holds
// this member's name on this member's lease.
func (b *Backend) RenewLeader(ctx context.Context) error {
	ctx, cancel := b.call(ctx)
	defer cancel()
	b.mu.Lock()
	id := b.lease
	b.mu.Unlock()
	if id == 0 {
		return fmt.Errorf("renewing %s: no lease: %w", b.keys.Leader(), dcs.ErrNotLeader)
	}
	if err := b.keepAlive(ctx, id); err != nil {
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return fmt.Errorf("%w: %v", dcs.ErrNotLeader, err)
		}
		return err
	}
	lk := b.keys.Leader()
	resp, err := b.cli.Txn(ctx).If(clientv3.Compare(clientv3.Value(lk), "=", b.name),
		clientv3.Compare(clientv3.LeaseValue(lk), "=", id)).Commit()
	if err != nil {
		return b.wrap("checking "+lk, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("renewing %s: %w", lk, dcs.ErrNotLeader)
	}
	// A ttl change takes effect here, moving the leader key to a new lease.
	b.mu.Lock()
	changed := b.ttl != b.leaseTTL
	b.mu.Unlock()
	if changed {
		if _, err := b.ensureLease(ctx); err != nil {
			return err
		}
	}
	return nil
}

// ReleaseLeader deletes the leader key if this member holds it.
func (b *Backend) ReleaseLeader(ctx context.Context) error {
	ctx, cancel := b.call(ctx)
	defer cancel()
	lk := b.keys.Leader()
	_, err := b.cli.Txn(ctx).If(clientv3.Compare(clientv3.Value(lk), "=", b.name)).
		Then(clientv3.OpDelete(lk)).Commit()
	return b.wrap("releasing "+lk, err)
}

// TouchMember keeps the lease alive and writes the member key when its value changed.
func (b *Backend) TouchMember(ctx context.Context, data dcs.MemberData) error {
	ctx, cancel := b.call(ctx)
	defer cancel()
	val, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("encoding member %s: %w", b.name, err)
	}
	id, err := b.liveLease(ctx)
	if err != nil {
		return err
	}
	b.mu.Lock()
	same := string(b.lastMember) == string(val)
	b.mu.Unlock()
	if same {
		return nil
	}
	mk := b.keys.Member(b.name)
	if _, err := b.cli.Put(ctx, mk, string(val), clientv3.WithLease(id)); err != nil {
		return b.wrap("writing "+mk, err)
	}
	b.mu.Lock()
	if b.lease == id {
		b.lastMember = val
	}
	b.mu.Unlock()
	return nil
}

// DeleteMember removes the member key and revokes the lease (and with it a leader key it carries).
func (b *Backend) DeleteMember(ctx context.Context) error {
	ctx, cancel := b.call(ctx)
	defer cancel()
	mk := b.keys.Member(b.name)
	if _, err := b.cli.Delete(ctx, mk); err != nil {
		return b.wrap("deleting "+mk, err)
	}
	b.mu.Lock()
	id := b.lease
	b.lease, b.lastMember = 0, nil
	b.mu.Unlock()
	if id != 0 {
		if _, err := b.cli.Revoke(ctx, id); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return b.wrap("revoking the lease", err)
		}
	}
	return nil
}

// DeleteCluster removes every key under the cluster's prefix in one request.
func (b *Backend) DeleteCluster(ctx context.Context) error {
	ctx, cancel := b.call(ctx)
	defer cancel()
	if _, err := b.cli.Delete(ctx, b.keys.Prefix, clientv3.WithPrefix()); err != nil {
		return b.wrap("deleting "+b.keys.Prefix+"*", err)
	}
	return nil
}

func (b *Backend) cas(ctx context.Context, key string, value []byte, version int64) error {
	ctx, cancel := b.call(ctx)
	defer cancel()
	if version < 0 {
		_, err := b.cli.Put(ctx, key, string(value))
		return b.wrap("writing "+key, err)
	}
	cmp := clientv3.Compare(clientv3.ModRevision(key), "=", version)
	if version == 0 {
		cmp = clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
	}
	resp, err := b.cli.Txn(ctx).If(cmp).Then(clientv3.OpPut(key, string(value))).Commit()
	if err != nil {
		return b.wrap("writing "+key, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("writing %s at version %d: %w", key, version, dcs.ErrConflict)
	}
	return nil
}

// watch follows the leader, failover and config keys until Close, re-establishing the watch after
// errors; every event (and every re-establishment, which may have missed events) signals Changes.
func (b *Backend) watch(ctx context.Context) {
	defer b.wg.Done()
	keys := []string{b.keys.Leader(), b.keys.Failover(), b.keys.Config()}
	for ctx.Err() == nil {
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		merged := make(chan struct{}, 1)
		var wg sync.WaitGroup
		for _, k := range keys {
			wch := b.cli.Watch(wctx, k)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer cancel() // one broken watch restarts all three
				for resp := range wch {
					if resp.Err() != nil {
						return
					}
					select {
					case merged <- struct{}{}:
					default:
					}
				}
			}()
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
	loop:
		for {
			select {
			case <-merged:
				b.signal()
			case <-done:
				break loop
			}
		}
		cancel()
		if ctx.Err() != nil {
			return
		}
		b.signal()
		select {
		case <-ctx.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (b *Backend) signal() {
	select {
	case b.changes <- struct{}{}:
	default:
	}
}

// kv is the backend as a dcs.KVStore, for the KeyWriter it embeds.
type kv struct{ b *Backend }

func (k kv) CAS(ctx context.Context, key string, value []byte, version int64) error {
	return k.b.cas(ctx, key, value, version)
}

func (k kv) Delete(ctx context.Context, key string) error { return k.b.del(ctx, key) }

func (b *Backend) del(ctx context.Context, key string) error {
	ctx, cancel := b.call(ctx)
	defer cancel()
	_, err := b.cli.Delete(ctx, key)
	return b.wrap("deleting "+key, err)
}
