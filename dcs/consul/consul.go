// Package consul is tusker's Consul backend, laid out as Patroni's: one session per member
// (behavior=delete, lock_delay 1 ms, TTL ttl/2 because Consul invalidates a session only after
// twice its TTL) holds the member key and, while the member leads, the leader key; the leader is
// taken with acquire=session, CAS writes compare ModifyIndex, and a blocking query on the cluster's
// prefix wakes the HA loop when the leader, failover or config key changes. With register_service
// the member also registers itself as a service of the local agent, tagged with its role.
package consul

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/tusker-ha/tusker/dcs"
)

// Options configure a Backend. The names follow Patroni's consul section.
type Options struct {
	Address string // host:port of the agent; default 127.0.0.1:8500
	Scheme  string // http (default) or https
	Token   string // ACL token; empty falls back to CONSUL_HTTP_TOKEN(_FILE) as every Consul client does
	// CACert, Cert and Key are file paths. Cert without Key is read as one PEM file holding both.
	CACert, Cert, Key string
	Verify            *bool  // nil: verify the server's certificate; false: do not (ignored with CACert)
	DC                string // datacenter; default the agent's
	Consistency       string // "" or default, consistent, stale: the mode of the cluster reads
	// Checks are the health check IDs the session depends on (none by default, as in Patroni: the
	// session then lives by its TTL alone).
	Checks []string
	// RegisterService registers the member as service <scope> with ID <scope>/<name>.
	RegisterService           bool
	ServiceTags               []string
	ServiceCheckInterval      time.Duration // default 5s
	ServiceCheckTLSServerName string

	Namespace, Scope, Name string
	TTL                    time.Duration
	RetryTimeout           time.Duration // bounds every call
	Logger                 *slog.Logger
}

// minSessionTTL is Consul's default session_ttl_min: a shorter TTL is refused by the servers.
const minSessionTTL = 10 * time.Second

// maxSessionTTL is the longest TTL Consul accepts.
const maxSessionTTL = 24 * time.Hour

// SessionTTL is the session TTL tusker asks for to hold a lease of ttl: half of it, because
// Consul invalidates a session only after twice its TTL, and at least Consul's 10 s minimum (so a
// ttl under 20 s makes the lease last 20 s).
func SessionTTL(ttl time.Duration) time.Duration {
	s := (ttl/2 + time.Second - 1).Truncate(time.Second)
	return min(max(s, minSessionTTL), maxSessionTTL)
}

// Backend is a dcs.DCS on Consul.
type Backend struct {
	// KeyWriter writes the plain keys (config, status, history, failover, sync, failsafe)
	// through kv, this backend's compare-and-swap and delete.
	dcs.KeyWriter

	cli       *api.Client
	transport *http.Transport
	keys      dcs.Keys
	name      string
	scope     string
	addr      string
	log       *slog.Logger
	opts      Options // the service and session settings
	hasToken  bool
	readMode  string

	// sem serializes session creation and replacement (a channel, so that waiting honours ctx).
	sem chan struct{}

	mu          sync.Mutex
	ttl         time.Duration
	retry       time.Duration
	session     string        // "" until created, and after it was found invalidated
	sessionFor  time.Duration // the ttl the session was created for
	lastRenew   time.Time
	lastMember  []byte // the member value written under the current session
	lastService string // fingerprint of the registration the agent has, "" when none or unknown
	// lastServiceErr is the last failure to update the registration, so that it is logged once.
	lastServiceErr string

	changes chan struct{}
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

var _ dcs.DCS = (*Backend)(nil)

// New builds the client; it does not wait for the agent, so that a node can start while Consul is
// still coming up: the first call reports an unreachable store with its address.
func New(opts Options) (*Backend, error) {
	if opts.Address == "" {
		opts.Address = "127.0.0.1:8500"
	}
	switch opts.Scheme {
	case "":
		opts.Scheme = "http"
	case "http", "https":
	default:
		return nil, fmt.Errorf("consul: scheme %q is neither http nor https", opts.Scheme)
	}
	switch opts.Consistency {
	case "", "default", "consistent", "stale":
	default:
		return nil, fmt.Errorf("consul: consistency %q is not one of default, consistent, stale", opts.Consistency)
	}
	if opts.Name == "" || opts.Scope == "" {
		return nil, errors.New("consul: scope and member name are required")
	}
	if opts.RetryTimeout <= 0 {
		opts.RetryTimeout = 2 * time.Second
	}
	if opts.ServiceCheckInterval <= 0 {
		opts.ServiceCheckInterval = 5 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	opts.ServiceTags = slices.Sorted(slices.Values(opts.ServiceTags))

	tlsCfg := api.TLSConfig{CAFile: opts.CACert, CertFile: opts.Cert, KeyFile: opts.Key}
	if opts.Cert != "" && opts.Key == "" {
		tlsCfg.KeyFile = opts.Cert // one PEM file with the certificate and its key, as Patroni allows
	}
	// As in Patroni, a CA bundle always means verifying against it.
	tlsCfg.InsecureSkipVerify = opts.Verify != nil && !*opts.Verify && opts.CACert == ""
	// Our own transport: the api package's pooled default would be shared with every other client
	// in the process, and Close releases this one's idle connections. NewClient adds the TLS
	// settings to it, after filling what is unset from the standard CONSUL_* variables.
	// (Not a clone of http.DefaultTransport: once used, it carries a TLS configuration, and the
	// api package then silently skips ours.)
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        16,
		MaxIdleConnsPerHost: 8,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
		ForceAttemptHTTP2:   true,
	}
	cli, err := api.NewClient(&api.Config{
		Address: opts.Address, Scheme: opts.Scheme, Datacenter: opts.DC, Token: opts.Token,
		Transport: tr, TLSConfig: tlsCfg,
	})
	if err != nil {
		return nil, fmt.Errorf("consul client for %s (cacert %q, cert %q, key %q): %w",
			opts.Address, opts.CACert, opts.Cert, opts.Key, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &Backend{
		cli: cli, transport: tr, keys: dcs.NewKeys(opts.Namespace, opts.Scope),
		name: opts.Name, scope: opts.Scope, addr: opts.Scheme + "://" + opts.Address, log: opts.Logger,
		opts: opts, hasToken: opts.Token != "", readMode: opts.Consistency,
		sem: make(chan struct{}, 1), ttl: opts.TTL, retry: opts.RetryTimeout,
		changes: make(chan struct{}, 1), cancel: cancel,
	}
	b.KeyWriter = dcs.KeyWriter{Keys: b.keys, Store: kv{b}}
	if b.ttl <= 0 {
		b.ttl = 30 * time.Second
	}
	b.warnShortTTL(b.ttl)
	b.wg.Add(1)
	go b.watch(ctx)
	return b, nil
}

// Keys is the key layout this backend uses (Consul's keys are these paths without the leading /).
func (b *Backend) Keys() dcs.Keys { return b.keys }

// Close stops the watch and drops idle connections. It destroys no session: a member that stops
// without DeleteMember keeps its keys until its session expires, as after a crash.
func (b *Backend) Close() error {
	b.cancel()
	b.wg.Wait()
	b.transport.CloseIdleConnections()
	return nil
}

// Changes is signalled when the leader, failover or config key changes.
func (b *Backend) Changes() <-chan struct{} { return b.changes }

// SetTTL changes the lease duration; the next session refresh moves this member's keys to a new
// session with the new TTL.
func (b *Backend) SetTTL(ttl time.Duration) {
	b.mu.Lock()
	changed := b.ttl != ttl
	b.ttl = ttl
	b.mu.Unlock()
	if changed {
		b.warnShortTTL(ttl)
	}
}

// warnShortTTL says when Consul's 10 s minimum session TTL makes the lock outlive ttl: safe (the
// primary still fences itself by ttl) but a dead primary is replaced only after 2 × 10 s.
func (b *Backend) warnShortTTL(ttl time.Duration) {
	if held := 2 * SessionTTL(ttl); held-ttl > time.Second {
		b.log.Warn("consul: ttl is shorter than Consul sessions allow; a dead primary's lock lasts longer: set ttl to at least 20s",
			"ttl", ttl, "lock_lasts", held)
	}
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

// ckey is the Consul key of a layout path: the same path without the leading slash.
func ckey(k string) string { return strings.TrimPrefix(k, "/") }

// statusCode is the HTTP status in an api error, or 0. Some api calls return a StatusError,
// others only a message with the code in it.
func statusCode(err error) int {
	var se api.StatusError
	if errors.As(err, &se) {
		return se.Code
	}
	var code int
	msg := err.Error()
	if i := strings.Index(msg, "Unexpected response code: "); i >= 0 {
		_, _ = fmt.Sscanf(msg[i+len("Unexpected response code: "):], "%d", &code)
	}
	return code
}

// unreachable says whether err means Consul did not answer in a usable way: no connection, a
// timeout, no cluster leader or another server-side failure (5xx, 429).
func unreachable(err error) bool {
	if invalidSession(err) || strings.Contains(err.Error(), "Invalid Session TTL") {
		// Consul answers these with a 500, but they are answers: our session is gone, or the
		// servers' session_ttl_min is above what tusker asks for.
		return false
	}
	var cve *tls.CertificateVerificationError
	if errors.As(err, &cve) || clientCertRefused(err) {
		return false // a configuration error (cacert, verify, cert), not worth sending again
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return true
	}
	// Every transport failure (refused, reset, TLS handshake) arrives as a *url.Error, a net.Error.
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	if c := statusCode(err); c >= 500 || c == http.StatusTooManyRequests {
		return true
	}
	// The transaction endpoint reports a server-side failure as text only.
	msg := err.Error()
	return strings.Contains(msg, "No cluster leader") || strings.Contains(msg, "rpc error")
}

// notApplied says whether a failed request certainly changed nothing, so that even a
// compare-and-swap may be sent again: the connection was refused, or the servers had no leader.
func notApplied(err error) bool {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return true
	}
	if statusCode(err) == http.StatusTooManyRequests {
		return true
	}
	// A server that just took over has not yet registered the agent's node, which a session
	// needs: the request was refused before it was applied.
	msg := err.Error()
	return strings.Contains(msg, "No cluster leader") || strings.Contains(msg, "Missing node registration")
}

// invalidSession says whether Consul refused a lock because the session no longer exists (it was
// destroyed, or one of its checks failed, since the last renewal).
func invalidSession(err error) bool {
	return err != nil && strings.Contains(err.Error(), "invalid session")
}

// clientCertRefused says whether the agent's TLS alert reached us: it wants a client certificate
// (verify_incoming) or refused ours.
func clientCertRefused(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "tls: certificate required") || strings.Contains(msg, "tls: bad certificate") ||
		strings.Contains(msg, "tls: unknown certificate authority")
}

// lostAlert says whether a failure over TLS looks like an agent closing the connection after a
// handshake: with TLS 1.3 the agent checks the client certificate after the client sent its
// request, and the reset that follows may discard the alert that would have said so.
func lostAlert(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "connection reset by peer") || strings.Contains(msg, "broken pipe") ||
		strings.HasSuffix(msg, "EOF") || strings.Contains(msg, "http2: client conn")
}

func denied(err error) bool {
	if statusCode(err) == http.StatusForbidden {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "Permission denied") || strings.Contains(msg, "ACL not found")
}

// wrap maps client errors onto dcs sentinels and names the operation and the agent.
func (b *Backend) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	switch {
	case denied(err):
		hint := "the token lacks a permission (see docs/dcs-consul.md for the policy)"
		if !b.hasToken {
			hint = "no token is configured (consul.token)"
		}
		return fmt.Errorf("consul %s at %s: permission denied by Consul's ACLs, %s: %w", op, b.addr, hint, err)
	case clientCertRefused(err):
		return fmt.Errorf("consul %s at %s: the agent refused the TLS client certificate (consul.cert, consul.key): %w", op, b.addr, err)
	case unreachable(err):
		if b.opts.Scheme == "https" && b.opts.Cert == "" && lostAlert(err) {
			return fmt.Errorf("consul %s at %s: %w: %v (if the agent sets verify_incoming, it needs a client certificate: consul.cert and consul.key)",
				op, b.addr, dcs.ErrUnreachable, err)
		}
		return fmt.Errorf("consul %s at %s: %w: %v", op, b.addr, dcs.ErrUnreachable, err)
	}
	return fmt.Errorf("consul %s at %s: %w", op, b.addr, err)
}

// do runs one request under ctx, sending it again while it fails in a way that is worth retrying
// and the deadline allows: a refused connection or a cluster without a leader (a server restart, an
// election), and for idempotent requests any unreachable store. This is Patroni's retry within
// retry_timeout; it makes a short election invisible to the HA loop.
func (b *Backend) do(ctx context.Context, op string, idempotent bool, fn func(ctx context.Context) error) error {
	delay := 50 * time.Millisecond
	for {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		if denied(err) || ctx.Err() != nil || !(notApplied(err) || idempotent && unreachable(err)) {
			return b.wrap(op, err)
		}
		select {
		case <-ctx.Done():
			return b.wrap(op, err)
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Second)
	}
}

func (b *Backend) readOpts(ctx context.Context) *api.QueryOptions {
	q := &api.QueryOptions{}
	switch b.readMode {
	case "consistent":
		q.RequireConsistent = true
	case "stale":
		q.AllowStale = true
	}
	return q.WithContext(ctx)
}

// consistentOpts ask for a consistent read, where a wrong answer would cost the lock: the checks
// of this member's own leader key. Only a consistent read waits until a newly elected Consul leader
// has applied its whole log; in the default mode it may answer from a state without our session.
func (b *Backend) consistentOpts(ctx context.Context) *api.QueryOptions {
	return (&api.QueryOptions{RequireConsistent: true}).WithContext(ctx)
}

func writeOpts(ctx context.Context) *api.WriteOptions { return (&api.WriteOptions{}).WithContext(ctx) }

// Cluster reads every key under the scope in one request.
func (b *Backend) Cluster(ctx context.Context) (*dcs.Cluster, error) {
	ctx, cancel := b.call(ctx)
	defer cancel()
	prefix := ckey(b.keys.Prefix)
	var pairs api.KVPairs
	var meta *api.QueryMeta
	err := b.do(ctx, "reading "+prefix, true, func(ctx context.Context) (err error) {
		pairs, meta, err = b.cli.KV().List(prefix, b.readOpts(ctx))
		return err
	})
	if err != nil {
		return nil, err
	}
	if meta != nil && meta.ResultsFilteredByACLs {
		// A cluster read with keys missing would look like a cluster without a leader.
		return nil, fmt.Errorf("consul reading %s at %s: some keys are hidden by Consul's ACLs: the token needs key read on %q",
			prefix, b.addr, prefix)
	}
	return b.decode(pairs), nil
}

// decode builds a Cluster from Consul's pairs. A leader key that no session holds is not a leader:
// Consul deletes the key when the holder's session ends, so such a key was written by hand.
func (b *Backend) decode(pairs api.KVPairs) *dcs.Cluster {
	lk := ckey(b.keys.Leader())
	kvs := make([]dcs.KV, 0, len(pairs))
	for _, p := range pairs {
		if p.Key == lk && p.Session == "" {
			b.log.Debug("consul: ignoring a leader key that no session holds", "key", p.Key, "value", string(p.Value))
			continue
		}
		kvs = append(kvs, dcs.KV{Key: "/" + p.Key, Value: p.Value, Version: int64(p.ModifyIndex)})
	}
	return b.keys.Decode(kvs)
}

// kv is the backend as a dcs.KVStore, for the KeyWriter it embeds.
type kv struct{ b *Backend }

func (k kv) CAS(ctx context.Context, key string, value []byte, version int64) error {
	return k.b.cas(ctx, key, value, version)
}

func (k kv) Delete(ctx context.Context, key string) error { return k.b.delete(ctx, key) }
