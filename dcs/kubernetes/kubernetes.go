// Package kubernetes is tusker's Kubernetes API backend, compatible with Patroni's: the cluster's
// keys are annotations on ConfigMaps (or Endpoints) named after the scope, every member's state is
// the "status" annotation of its own pod, and the leader lock is modelled on client-go's leader
// election. Kubernetes has no TTL primitive, so a leader is valid for ttl after this process last
// saw the leader object change (by its own monotonic clock: the writer's clock never matters), and
// every write to the lock is a compare-and-swap on the object's resourceVersion.
package kubernetes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/flowcontrol"

	"github.com/tusker-ha/tusker/dcs"
)

// Port is one port of the leader's Endpoints (use_endpoints), as Patroni's kubernetes.ports.
type Port struct {
	Name     string
	Port     int32
	Protocol string // TCP (default), UDP or SCTP
}

// Options configure a Backend; the names follow Patroni's kubernetes section.
type Options struct {
	Namespace string // Kubernetes namespace; default "default"
	Scope     string
	Name      string // member name = this member's pod name
	// Labels are put on every object tusker creates and select the cluster's pods and objects,
	// together with ScopeLabel=Scope.
	Labels                  map[string]string
	ScopeLabel              string // default "cluster-name"
	RoleLabel               string // default "role"
	LeaderLabelValue        string // default "primary"
	FollowerLabelValue      string // default "replica"
	StandbyLeaderLabelValue string // default "primary"
	// TmpRoleLabel (optional) carries the role in Patroni's pre-4.0 values (master, replica,
	// standby_leader), so that Services can move from the old role values to the new ones.
	TmpRoleLabel string
	// BootstrapLabels are set on the pod while it bootstraps or clones a replica, removed after.
	BootstrapLabels map[string]string
	// UseEndpoints keeps the keys in Endpoints, the leader's with subsets pointing at PodIP.
	UseEndpoints bool
	// UseLeases (tusker's extension) keeps the leader lock in a coordination.k8s.io/v1 Lease.
	UseLeases bool
	PodIP     string // required with UseEndpoints
	Ports     []Port // default [{postgresql 5432 TCP}]
	// CACert overrides the service account's CA file in a pod.
	CACert string
	// Kubeconfig (else $KUBECONFIG, else ~/.kube/config) and Context are used outside a pod.
	Kubeconfig, Context string
	// RetriableHTTPCodes are retried besides any answer carrying Retry-After; default 500, 503, 504.
	RetriableHTTPCodes []int
	// RestConfig, when set, is used as is (tests, embedding).
	RestConfig *rest.Config

	TTL          time.Duration
	RetryTimeout time.Duration // bounds every call
	Logger       *slog.Logger
}

// bootstrapStates are the states in which BootstrapLabels are set (Patroni's list).
var bootstrapStates = []string{"initializing new cluster", "running custom bootstrap script",
	"starting after custom bootstrap", "creating replica"}

// Backend is a dcs.DCS on the Kubernetes API.
type Backend struct {
	opts       Options
	host       string
	log        *slog.Logger
	keys       dcs.Keys
	labels     map[string]string // Labels + ScopeLabel
	selector   string
	objs       *kind // config, failover and sync objects (and the leader's unless leases)
	leaderKind *kind
	pods       rest.Interface
	names      struct{ leader, config, failover, sync string }
	codes      []int

	mu         sync.Mutex
	ttl        time.Duration
	retry      time.Duration
	leaderObj  *object   // the newest leader object read or written
	seenRV     string    // its resourceVersion when it last changed, as this process saw it...
	seenAt     time.Time // ...and when (monotonic)
	leaderName string    // the valid holder as last seen, "" when none
	pod        *corev1.Pod
	configSvc  bool // Endpoints mode: the <scope>-config Service exists or cannot be created

	changes chan struct{}
	kick    chan struct{} // restarts the watch after a failed call: its stream may be dead too
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

var _ dcs.DCS = (*Backend)(nil)

// New builds the client; it does not contact the API server, so that a member can start while the
// server is down: the first call reports it unreachable.
func New(opts Options) (*Backend, error) {
	if opts.Scope == "" || opts.Name == "" {
		return nil, errors.New("kubernetes: scope and name are required")
	}
	if opts.UseEndpoints && opts.UseLeases {
		return nil, errors.New("kubernetes: use_endpoints and use_leases exclude each other")
	}
	if opts.UseEndpoints && net.ParseIP(opts.PodIP) == nil {
		return nil, fmt.Errorf("kubernetes: use_endpoints needs pod_ip, the IP the leader's Endpoints point at (got %q)", opts.PodIP)
	}
	setDefaults(&opts)
	cfg, err := restConfig(opts)
	if err != nil {
		return nil, err
	}
	cfg = rest.CopyConfig(cfg)
	// HTTP/1.1: a request that times out takes its connection with it, so a black-holed
	// connection never holds the following attempts (HTTP/2 multiplexes them all on one).
	cfg.NextProtos = []string{"http/1.1"}
	// Our own retries are bounded by retry_timeout; a client-side rate limiter would only add
	// waits the bound does not know about.
	cfg.RateLimiter = flowcontrol.NewFakeAlwaysRateLimiter()
	cfg.Timeout = 0 // every request carries its own deadline
	cfg.WarningHandler = &warnings{log: opts.Logger}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "tusker/" + opts.Name
	}
	core, err := corev1client.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client for %s: %w", cfg.Host, err)
	}
	coord, err := coordinationv1client.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes coordination client for %s: %w", cfg.Host, err)
	}
	b := &Backend{
		opts: opts, host: cfg.Host, log: opts.Logger,
		keys:    dcs.NewKeys(opts.Namespace, opts.Scope),
		pods:    core.RESTClient(),
		codes:   opts.RetriableHTTPCodes,
		ttl:     opts.TTL,
		retry:   opts.RetryTimeout,
		changes: make(chan struct{}, 1),
		kick:    make(chan struct{}, 1),
	}
	b.labels = copyMap(opts.Labels)
	b.labels[opts.ScopeLabel] = opts.Scope
	sel := make([]string, 0, len(b.labels))
	for k, v := range b.labels {
		sel = append(sel, k+"="+v)
	}
	sort.Strings(sel)
	b.selector = strings.Join(sel, ",")
	b.names.config = opts.Scope + "-config"
	b.names.failover = opts.Scope + "-failover"
	b.names.sync = opts.Scope + "-sync"
	b.names.leader = opts.Scope + "-leader"
	switch {
	case opts.UseEndpoints:
		b.objs = endpointsKind(core.RESTClient(), opts.Namespace)
		b.leaderKind = b.objs
		b.names.leader = opts.Scope
	case opts.UseLeases:
		b.objs = configMapKind(core.RESTClient(), opts.Namespace)
		b.leaderKind = leaseKind(coord.RESTClient(), opts.Namespace)
	default:
		b.objs = configMapKind(core.RESTClient(), opts.Namespace)
		b.leaderKind = b.objs
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	b.wg.Add(1)
	go b.watch(ctx)
	return b, nil
}

func setDefaults(o *Options) {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&o.Namespace, "default")
	def(&o.ScopeLabel, "cluster-name")
	def(&o.RoleLabel, "role")
	def(&o.LeaderLabelValue, "primary")
	def(&o.FollowerLabelValue, "replica")
	def(&o.StandbyLeaderLabelValue, "primary")
	if len(o.Ports) == 0 {
		o.Ports = []Port{{Name: "postgresql", Port: 5432, Protocol: "TCP"}}
	}
	if o.RetriableHTTPCodes == nil {
		o.RetriableHTTPCodes = []int{500, 503, 504}
	}
	if o.TTL <= 0 {
		o.TTL = 30 * time.Second
	}
	if o.RetryTimeout <= 0 {
		o.RetryTimeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// restConfig finds the API server: the given configuration, the pod's service account when
// running in a pod, else a kubeconfig file.
func restConfig(o Options) (*rest.Config, error) {
	if o.RestConfig != nil {
		return o.RestConfig, nil
	}
	if os.Getenv("KUBERNETES_SERVICE_HOST") != "" {
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("kubernetes in-cluster configuration (KUBERNETES_SERVICE_HOST is set): %w", err)
		}
		if o.CACert != "" {
			cfg.TLSClientConfig.CAFile, cfg.TLSClientConfig.CAData = o.CACert, nil
		}
		return cfg, nil
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	tried := "$KUBECONFIG (" + os.Getenv(clientcmd.RecommendedConfigPathEnvVar) + ")"
	if os.Getenv(clientcmd.RecommendedConfigPathEnvVar) == "" {
		tried = clientcmd.RecommendedHomeFile
		if home, err := os.UserHomeDir(); err == nil {
			tried = filepath.Join(home, clientcmd.RecommendedHomeDir, clientcmd.RecommendedFileName)
		}
	}
	if o.Kubeconfig != "" {
		rules.ExplicitPath = o.Kubeconfig
		tried = o.Kubeconfig
	}
	if o.Context != "" {
		tried += " context " + o.Context
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules,
		&clientcmd.ConfigOverrides{CurrentContext: o.Context}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubernetes configuration: not in a pod (KUBERNETES_SERVICE_HOST unset), and kubeconfig %s: %w", tried, err)
	}
	return cfg, nil
}

// warnings logs each distinct API warning once (Endpoints are deprecated since 1.33, and every
// request against them says so).
type warnings struct {
	log  *slog.Logger
	seen sync.Map
}

func (w *warnings) HandleWarningHeader(code int, agent, text string) {
	if _, dup := w.seen.LoadOrStore(text, true); !dup {
		w.log.Warn("kubernetes API warning", "warning", text)
	}
}

// Keys is the key layout the cluster snapshot is decoded with.
func (b *Backend) Keys() dcs.Keys { return b.keys }

// Close stops the watch.
func (b *Backend) Close() error {
	b.cancel()
	b.wg.Wait()
	return nil
}

// Changes is signalled when the leader, failover or config object changes.
func (b *Backend) Changes() <-chan struct{} { return b.changes }

// SetTTL changes the ttl written with the next acquisition or renewal.
func (b *Backend) SetTTL(ttl time.Duration) {
	b.mu.Lock()
	b.ttl = ttl
	b.mu.Unlock()
}

// SetRetryTimeout changes the bound on every following call.
func (b *Backend) SetRetryTimeout(d time.Duration) {
	b.mu.Lock()
	b.retry = d
	b.mu.Unlock()
}

func (b *Backend) retryTimeout() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.retry
}

func (b *Backend) ttlSeconds() string {
	b.mu.Lock()
	ttl := b.ttl
	b.mu.Unlock()
	return strconv.Itoa(max(1, int(math.Ceil(ttl.Seconds()))))
}

// call bounds one DCS call, with all its requests and retries, by retry_timeout.
func (b *Backend) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, b.retryTimeout())
}

// try runs one request until it succeeds, fails for good (an API answer that is not transient:
// the caller decides about 404 and 409), or ctx ends; then it is dcs.ErrUnreachable. Each attempt
// has its own timeout, shorter than the call's, so that a request lost in a black hole leaves
// time for another on a fresh connection, and long enough for a slow server to answer.
func (b *Backend) try(ctx context.Context, op string, fn func(context.Context) error) error {
	attempt := max(b.retryTimeout()*2/3, 100*time.Millisecond)
	backoff := 100 * time.Millisecond
	var last error
	for {
		if ctx.Err() != nil {
			if last == nil {
				last = ctx.Err()
			}
			return fmt.Errorf("kubernetes API %s: %s: %w: %v", b.host, op, dcs.ErrUnreachable, last)
		}
		actx, cancel := context.WithTimeout(ctx, attempt)
		err := fn(actx)
		cancel()
		if err == nil {
			return nil
		}
		wait, transient := b.transient(err)
		if !transient {
			return fmt.Errorf("kubernetes API %s: %s: %w", b.host, op, err)
		}
		last = err
		select {
		case b.kick <- struct{}{}:
		default:
		}
		wait = max(wait, backoff)
		backoff = min(2*backoff, time.Second)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
}

// transient says whether err is worth another attempt, and how long the server asked to wait.
func (b *Backend) transient(err error) (time.Duration, bool) {
	var st apierrors.APIStatus
	if !errors.As(err, &st) {
		return 0, true // no answer: connection refused or reset, timeout, TLS handshake
	}
	if secs, ok := apierrors.SuggestsClientDelay(err); ok {
		return time.Duration(secs) * time.Second, true
	}
	return 0, slices.Contains(b.codes, int(st.Status().Code))
}

// Cluster lists the scope's objects and pods.
func (b *Backend) Cluster(ctx context.Context) (*dcs.Cluster, error) {
	ctx, cancel := b.call(ctx)
	defer cancel()
	var objs []*object
	err := b.try(ctx, "listing "+b.objs.resource+" "+b.selector, func(ctx context.Context) error {
		var err error
		objs, err = b.objs.list(ctx, b.selector)
		return err
	})
	if err != nil {
		return nil, err
	}
	byName := map[string]*object{}
	for _, o := range objs {
		byName[o.name] = o
	}
	leader := byName[b.names.leader]
	if b.leaderKind != b.objs {
		if leader, err = b.getLeader(ctx, "reading"); err != nil {
			return nil, err
		}
	}
	var pods corev1.PodList
	err = b.try(ctx, "listing pods "+b.selector, func(ctx context.Context) error {
		return b.pods.Get().Namespace(b.opts.Namespace).Resource("pods").
			VersionedParams(&metav1.ListOptions{LabelSelector: b.selector}, scheme.ParameterCodec).
			MaxRetries(0).Do(ctx).Into(&pods)
	})
	if err != nil {
		return nil, err
	}

	var kvs []dcs.KV
	if o := byName[b.names.config]; o != nil {
		a := o.annotations
		if v, ok := a[annConfig]; ok {
			kvs = append(kvs, dcs.KV{Key: b.keys.Config(), Value: []byte(v), Version: o.version()})
		}
		if v, ok := a[annInitialize]; ok {
			kvs = append(kvs, dcs.KV{Key: b.keys.Initialize(), Value: []byte(v), Version: o.version()})
		}
		if v, ok := a[annHistory]; ok && v != "" {
			kvs = append(kvs, dcs.KV{Key: b.keys.History(), Value: []byte(v), Version: o.version()})
		}
	}
	holder, valid := b.observeLeader(leader)
	if leader != nil {
		a := leader.annotations
		if valid {
			kvs = append(kvs, dcs.KV{Key: b.keys.Leader(), Value: []byte(holder), Version: leader.version()})
		}
		if v := statusValue(a); v != nil {
			kvs = append(kvs, dcs.KV{Key: b.keys.Status(), Value: v, Version: leader.version()})
		}
		if v := a[annFailsafe]; v != "" {
			kvs = append(kvs, dcs.KV{Key: b.keys.Failsafe(), Value: []byte(v), Version: leader.version()})
		}
	}
	if o := byName[b.names.failover]; o != nil {
		if v := failoverValue(o.annotations); v != nil {
			kvs = append(kvs, dcs.KV{Key: b.keys.Failover(), Value: v, Version: o.version()})
		}
	}
	if o := byName[b.names.sync]; o != nil {
		if v := syncValue(o.annotations); v != nil {
			kvs = append(kvs, dcs.KV{Key: b.keys.Sync(), Value: v, Version: o.version()})
		}
	}
	var mine *corev1.Pod
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.Name == b.opts.Name {
			mine = p
		}
		if v := p.Annotations[annStatus]; v != "" {
			rv, _ := strconv.ParseInt(p.ResourceVersion, 10, 64)
			kvs = append(kvs, dcs.KV{Key: b.keys.Member(p.Name), Value: []byte(v), Version: rv})
		}
	}
	b.mu.Lock()
	b.pod = mine
	b.mu.Unlock()
	return b.keys.Decode(kvs), nil
}

// statusValue is the status key Patroni spreads over the optime, slots and retain_slots
// annotations, put together for dcs.Keys.Decode; a piece that does not parse makes the value
// invalid, so that the key is reported rather than read half.
func statusValue(a map[string]string) []byte {
	optime, slots, retain := a[annOptime], a[annSlots], a[annRetainSlots]
	if optime == "" && slots == "" && retain == "" {
		return nil
	}
	if optime == "" {
		optime = "0"
	}
	bad := func(what, v string) []byte { return []byte("invalid " + what + " annotation: " + v) }
	if _, err := strconv.ParseInt(optime, 10, 64); err != nil {
		return bad(annOptime, optime)
	}
	parts := []string{`"optime":` + optime}
	for _, p := range []struct{ name, v string }{{annSlots, slots}, {annRetainSlots, retain}} {
		if p.v == "" || p.v == "null" {
			continue
		}
		if !json.Valid([]byte(p.v)) {
			return bad(p.name, p.v)
		}
		parts = append(parts, strconv.Quote(p.name)+":"+p.v)
	}
	return []byte("{" + strings.Join(parts, ",") + "}")
}

// failoverValue is the failover key from the leader, member and scheduled_at annotations, or nil
// when none is set (Patroni clears the request by writing nulls).
func failoverValue(a map[string]string) []byte {
	m := map[string]string{}
	for _, k := range []string{annFailoverLeader, annFailoverMember, annScheduledAt} {
		if v := a[k]; v != "" {
			m[k] = v
		}
	}
	if len(m) == 0 {
		return nil
	}
	v, _ := json.Marshal(m)
	return v
}

// syncValue is the sync key from the leader, sync_standby and quorum annotations, or nil when
// neither leader nor sync_standby is set (Patroni's delete_sync_state writes nulls).
func syncValue(a map[string]string) []byte {
	leader, standby := a[annSyncLeader], a[annSyncStandby]
	if leader == "" && standby == "" {
		return nil
	}
	m := map[string]any{"leader": nil, "sync_standby": nil}
	if leader != "" {
		m["leader"] = leader
	}
	if standby != "" {
		m["sync_standby"] = standby
	}
	if q, ok := a[annQuorum]; ok && q != "" {
		if n, err := strconv.Atoi(q); err == nil {
			m["quorum"] = n
		} else {
			m["quorum"] = q // a string: Decode reports the key invalid
		}
	}
	v, _ := json.Marshal(m)
	return v
}

// observeLeader records the leader object as this process sees it now and returns its holder
// and whether the lock is valid: held, and seen to change less than ttl ago by this process's
// clock (renewTime is the writer's clock and only informational).
func (b *Backend) observeLeader(o *object) (string, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if o == nil {
		b.leaderObj, b.seenRV, b.leaderName = nil, "", ""
		return "", false
	}
	if b.leaderObj != nil && b.leaderObj.name == o.name && o.version() < b.leaderObj.version() {
		o = b.leaderObj // a read that started before our own last write
	}
	b.leaderObj = o
	if o.rv != b.seenRV {
		b.seenRV, b.seenAt = o.rv, time.Now()
	}
	holder := o.annotations[annLeader]
	ttl := b.ttl
	if s, err := strconv.Atoi(o.annotations[annTTL]); err == nil && s > 0 {
		ttl = time.Duration(s) * time.Second
	}
	valid := holder != "" && time.Since(b.seenAt) <= ttl
	b.leaderName = ""
	if valid {
		b.leaderName = holder
	}
	return holder, valid
}

func (b *Backend) leaderDesc() string {
	return b.leaderKind.resource + " " + b.opts.Namespace + "/" + b.names.leader
}

// getLeader reads the leader object; nil when it does not exist.
func (b *Backend) getLeader(ctx context.Context, op string) (*object, error) {
	var o *object
	err := b.try(ctx, op+" "+b.leaderDesc(), func(ctx context.Context) error {
		var err error
		o, err = b.leaderKind.get(ctx, b.names.leader)
		return err
	})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return o, err
}

func nowISO() string { return dcs.ISOTime(time.Now().UTC()) }

// subsets point the leader's Endpoints at this member's pod.
func (b *Backend) subsets() []corev1.EndpointSubset {
	ports := make([]corev1.EndpointPort, 0, len(b.opts.Ports))
	for _, p := range b.opts.Ports {
		proto := corev1.Protocol(p.Protocol)
		if proto == "" {
			proto = corev1.ProtocolTCP
		}
		ports = append(ports, corev1.EndpointPort{Name: p.Name, Port: p.Port, Protocol: proto})
	}
	ref := &corev1.ObjectReference{Kind: "Pod", Namespace: b.opts.Namespace, Name: b.opts.Name}
	b.mu.Lock()
	if b.pod != nil {
		ref.UID = b.pod.UID
	}
	b.mu.Unlock()
	return []corev1.EndpointSubset{{
		Addresses: []corev1.EndpointAddress{{IP: b.opts.PodIP, TargetRef: ref}},
		Ports:     ports,
	}}
}

// AcquireLeader takes the lock when it is free (no holder, or its holder not seen renewing for
// ttl) or already this member's, by an update on the resourceVersion it was judged at.
func (b *Backend) AcquireLeader(ctx context.Context) (bool, error) {
	ctx, cancel := b.call(ctx)
	defer cancel()
	cur, err := b.getLeader(ctx, "acquiring")
	if err != nil {
		return false, err
	}
	holder, valid := b.observeLeader(cur)
	if valid && holder != b.opts.Name {
		return false, nil
	}
	now := nowISO()
	next := &object{name: b.names.leader, annotations: map[string]string{}}
	transitions := 0
	acquired := now
	if cur != nil {
		next = cur.clone()
		transitions, _ = strconv.Atoi(cur.annotations[annTransitions])
		if holder != b.opts.Name {
			transitions++
		} else if t := cur.annotations[annAcquireTime]; t != "" {
			acquired = t
		}
	}
	a := next.annotations
	a[annLeader], a[annAcquireTime], a[annRenewTime] = b.opts.Name, acquired, now
	a[annTTL], a[annTransitions] = b.ttlSeconds(), strconv.Itoa(transitions)
	if b.opts.UseEndpoints {
		next.subsets = b.subsets()
	}
	body := b.leaderKind.encode(next, b.labels)
	var res *object
	op := "acquiring " + b.leaderDesc()
	if cur == nil {
		err = b.try(ctx, op, func(ctx context.Context) error {
			var err error
			res, err = b.leaderKind.create(ctx, body)
			return err
		})
		if apierrors.IsAlreadyExists(err) {
			return false, nil
		}
	} else {
		err = b.try(ctx, op, func(ctx context.Context) error {
			var err error
			res, err = b.leaderKind.update(ctx, b.names.leader, body)
			return err
		})
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			// Somebody else wrote first, unless the conflict is with our own write whose answer
			// was lost (an attempt that timed out after the server applied it).
			again, gerr := b.getLeader(ctx, "acquiring")
			if gerr != nil || again == nil {
				return false, gerr
			}
			b.observeLeader(again)
			won := again.annotations[annLeader] == b.opts.Name && again.annotations[annRenewTime] == now
			return won, nil
		}
	}
	if err != nil {
		return false, err
	}
	b.observeLeader(res)
	return true, nil
}

// RenewLeader updates renewTime on the resourceVersion last seen. A conflict is re-read: while the
// lock is still this member's the update is retried on the new version (another writer touched
// the object: SetStatus racing, a user's annotation); only another holder is ErrNotLeader.
func (b *Backend) RenewLeader(ctx context.Context) error {
	ctx, cancel := b.call(ctx)
	defer cancel()
	op := "renewing " + b.leaderDesc()
	b.mu.Lock()
	cur := b.leaderObj
	b.mu.Unlock()
	if cur == nil {
		var err error
		if cur, err = b.getLeader(ctx, "renewing"); err != nil {
			return err
		}
		if cur == nil {
			return fmt.Errorf("%s: it does not exist: %w", op, dcs.ErrNotLeader)
		}
		b.observeLeader(cur)
	}
	for {
		if h := cur.annotations[annLeader]; h != b.opts.Name {
			return fmt.Errorf("%s: held by %q: %w", op, h, dcs.ErrNotLeader)
		}
		next := cur.clone()
		next.annotations[annRenewTime] = nowISO()
		next.annotations[annTTL] = b.ttlSeconds()
		if b.opts.UseEndpoints {
			next.subsets = b.subsets()
		}
		body := b.leaderKind.encode(next, b.labels)
		var res *object
		err := b.try(ctx, op, func(ctx context.Context) error {
			var err error
			res, err = b.leaderKind.update(ctx, b.names.leader, body)
			return err
		})
		switch {
		case err == nil:
			b.observeLeader(res)
			return nil
		case apierrors.IsNotFound(err):
			b.observeLeader(nil)
			return fmt.Errorf("%s: it was deleted: %w", op, dcs.ErrNotLeader)
		case !apierrors.IsConflict(err):
			return err
		}
		b.log.Debug("leader object changed under the renewal; re-reading", "object", b.leaderDesc())
		if cur, err = b.getLeader(ctx, "renewing"); err != nil {
			return err
		}
		b.observeLeader(cur)
		if cur == nil {
			return fmt.Errorf("%s: it was deleted: %w", op, dcs.ErrNotLeader)
		}
	}
}

// ReleaseLeader removes the holder (and the Endpoints' addresses) if this member holds the lock.
func (b *Backend) ReleaseLeader(ctx context.Context) error {
	ctx, cancel := b.call(ctx)
	defer cancel()
	op := "releasing " + b.leaderDesc()
	cur, err := b.getLeader(ctx, "releasing")
	if err != nil {
		return err
	}
	for cur != nil && cur.annotations[annLeader] == b.opts.Name {
		next := cur.clone()
		delete(next.annotations, annLeader)
		next.subsets = nil
		body := b.leaderKind.encode(next, b.labels)
		var res *object
		err := b.try(ctx, op, func(ctx context.Context) error {
			var err error
			res, err = b.leaderKind.update(ctx, b.names.leader, body)
			return err
		})
		switch {
		case err == nil:
			b.observeLeader(res)
			return nil
		case apierrors.IsNotFound(err):
			b.observeLeader(nil)
			return nil
		case !apierrors.IsConflict(err):
			return err
		}
		if cur, err = b.getLeader(ctx, "releasing"); err != nil {
			return err
		}
	}
	b.observeLeader(cur)
	return nil
}

// patchBody is a merge patch of labels and annotations (nil removes one), conditional on rv when
// it is set.
func patchBody(labels map[string]*string, ann map[string]*string, rv string) []byte {
	m := map[string]any{}
	if len(labels) > 0 {
		m["labels"] = labels
	}
	if len(ann) > 0 {
		m["annotations"] = ann
	}
	if rv != "" {
		m["resourceVersion"] = rv
	}
	body, _ := json.Marshal(map[string]any{"metadata": m})
	return body
}

func strp(s string) *string { return &s }

func (b *Backend) labelPatch() map[string]*string {
	m := make(map[string]*string, len(b.labels))
	for k, v := range b.labels {
		m[k] = strp(v)
	}
	return m
}

// setAnnotations merge-patches annotations onto object name (conditional on rv when set), and
// creates the object when it does not exist, rv is empty and create is true.
func (b *Backend) setAnnotations(ctx context.Context, k *kind, name string, ann map[string]*string, rv string, create bool) (*object, error) {
	op := "annotating " + k.resource + " " + b.opts.Namespace + "/" + name
	body := patchBody(b.labelPatch(), ann, rv)
	for {
		var res *object
		err := b.try(ctx, op, func(ctx context.Context) error {
			var err error
			res, err = k.patch(ctx, name, body)
			return err
		})
		if !apierrors.IsNotFound(err) || rv != "" || !create {
			return res, err
		}
		o := &object{name: name, annotations: map[string]string{}}
		for a, v := range ann {
			if v != nil {
				o.annotations[a] = *v
			}
		}
		obj := k.encode(o, b.labels)
		err = b.try(ctx, "creating "+k.resource+" "+b.opts.Namespace+"/"+name, func(ctx context.Context) error {
			var err error
			res, err = k.create(ctx, obj)
			return err
		})
		if !apierrors.IsAlreadyExists(err) {
			return res, err
		}
		// Created meanwhile by somebody else: patch it after all.
	}
}

// cas writes annotations with dcs version semantics: version < 0 unconditionally, > 0 on that
// resourceVersion, 0 only while present(object) is false (the object absent, or there without
// the key), checked and written on one resourceVersion.
func (b *Backend) cas(ctx context.Context, k *kind, name string, ann map[string]*string, version int64, present func(*object) bool) error {
	desc := k.resource + " " + b.opts.Namespace + "/" + name
	if b.opts.UseEndpoints && k == b.objs && name == b.names.config {
		b.ensureConfigService(ctx)
	}
	switch {
	case version < 0:
		_, err := b.setAnnotations(ctx, k, name, ann, "", true)
		return err
	case version > 0:
		_, err := b.setAnnotations(ctx, k, name, ann, strconv.FormatInt(version, 10), false)
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			return fmt.Errorf("writing %s at version %d: %w", desc, version, dcs.ErrConflict)
		}
		return err
	}
	for {
		var cur *object
		err := b.try(ctx, "reading "+desc, func(ctx context.Context) error {
			var err error
			cur, err = k.get(ctx, name)
			return err
		})
		if apierrors.IsNotFound(err) {
			_, err = b.setAnnotations(ctx, k, name, ann, "", true)
			return err
		}
		if err != nil {
			return err
		}
		if present(cur) {
			return fmt.Errorf("creating the key in %s: it exists: %w", desc, dcs.ErrConflict)
		}
		_, err = b.setAnnotations(ctx, k, name, ann, cur.rv, false)
		if !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
			return err
		}
		// The object changed meanwhile (maybe another key on it): look again.
	}
}

// ensureConfigService creates the headless Service <scope>-config in Endpoints mode, as Patroni
// does: the endpoints controller deletes Endpoints without a Service when it starts.
func (b *Backend) ensureConfigService(ctx context.Context) {
	b.mu.Lock()
	done := b.configSvc
	b.mu.Unlock()
	if done {
		return
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: b.names.config, Namespace: b.opts.Namespace, Labels: b.labels},
		Spec:       corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone},
	}
	err := b.try(ctx, "creating service "+b.opts.Namespace+"/"+b.names.config, func(ctx context.Context) error {
		return b.pods.Post().Namespace(b.opts.Namespace).Resource("services").Body(svc).MaxRetries(0).Do(ctx).Error()
	})
	if err == nil || apierrors.IsAlreadyExists(err) || apierrors.IsForbidden(err) {
		if apierrors.IsForbidden(err) {
			b.log.Warn("cannot create the config service; the endpoints controller may delete the config Endpoints when it restarts",
				"service", b.names.config, "err", err)
		}
		b.mu.Lock()
		b.configSvc = true
		b.mu.Unlock()
		return
	}
	b.log.Warn("creating the config service failed; will retry", "service", b.names.config, "err", err)
}

func hasAnnotation(key string) func(*object) bool {
	return func(o *object) bool {
		_, ok := o.annotations[key]
		return ok
	}
}

// Initialize races for the initialize annotation (create) or sets it.
func (b *Backend) Initialize(ctx context.Context, value string, create bool) (bool, error) {
	ctx, cancel := b.call(ctx)
	defer cancel()
	version := int64(-1)
	if create {
		version = 0
	}
	err := b.cas(ctx, b.objs, b.names.config, map[string]*string{annInitialize: &value}, version, hasAnnotation(annInitialize))
	if errors.Is(err, dcs.ErrConflict) {
		return false, nil
	}
	return err == nil, err
}

// CancelInitialize removes the initialize annotation.
func (b *Backend) CancelInitialize(ctx context.Context) error {
	ctx, cancel := b.call(ctx)
	defer cancel()
	_, err := b.setAnnotations(ctx, b.objs, b.names.config, map[string]*string{annInitialize: nil}, "", false)
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// SetConfig writes the config annotation (see dcs.DCS for version).
func (b *Backend) SetConfig(ctx context.Context, value []byte, version int64) error {
	ctx, cancel := b.call(ctx)
	defer cancel()
	v := string(value)
	return b.cas(ctx, b.objs, b.names.config, map[string]*string{annConfig: &v}, version, hasAnnotation(annConfig))
}

// SetHistory writes the history annotation.
func (b *Backend) SetHistory(ctx context.Context, h []dcs.HistoryEntry) error {
	if h == nil {
		h = []dcs.HistoryEntry{}
	}
	v, err := json.Marshal(h)
	if err != nil {
		return fmt.Errorf("encoding history: %w", err)
	}
	ctx, cancel := b.call(ctx)
	defer cancel()
	return b.cas(ctx, b.objs, b.names.config, map[string]*string{annHistory: strp(string(v))}, -1, nil)
}

// SetStatus writes the optime, slots and retain_slots annotations of the leader object.
func (b *Backend) SetStatus(ctx context.Context, st dcs.Status) error {
	ann := map[string]*string{annOptime: strp(strconv.FormatInt(st.Optime, 10)), annSlots: nil, annRetainSlots: nil}
	if len(st.Slots) > 0 {
		v, err := json.Marshal(st.Slots)
		if err != nil {
			return fmt.Errorf("encoding slots: %w", err)
		}
		ann[annSlots] = strp(string(v))
	}
	if len(st.RetainSlots) > 0 {
		v, err := json.Marshal(st.RetainSlots)
		if err != nil {
			return fmt.Errorf("encoding retain_slots: %w", err)
		}
		ann[annRetainSlots] = strp(string(v))
	}
	return b.annotateLeader(ctx, ann, true)
}

// SetFailsafe writes the failsafe annotation of the leader object; nil removes it.
func (b *Backend) SetFailsafe(ctx context.Context, members map[string]string) error {
	if members == nil {
		return b.annotateLeader(ctx, map[string]*string{annFailsafe: nil}, false)
	}
	v, err := json.Marshal(members)
	if err != nil {
		return fmt.Errorf("encoding failsafe: %w", err)
	}
	return b.annotateLeader(ctx, map[string]*string{annFailsafe: strp(string(v))}, true)
}

func (b *Backend) annotateLeader(ctx context.Context, ann map[string]*string, create bool) error {
	ctx, cancel := b.call(ctx)
	defer cancel()
	res, err := b.setAnnotations(ctx, b.leaderKind, b.names.leader, ann, "", create)
	if apierrors.IsNotFound(err) && !create {
		return nil
	}
	if err != nil {
		return err
	}
	// Our own write: the next renewal goes on its resourceVersion instead of conflicting.
	b.observeLeader(res)
	return nil
}

// SetFailover writes the failover object's leader, member and scheduled_at annotations.
func (b *Backend) SetFailover(ctx context.Context, f dcs.Failover, version int64) error {
	ctx, cancel := b.call(ctx)
	defer cancel()
	opt := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	ann := map[string]*string{annFailoverLeader: opt(f.Leader), annFailoverMember: opt(f.Member), annScheduledAt: nil}
	if f.ScheduledAt != nil {
		ann[annScheduledAt] = strp(dcs.ISOTime(*f.ScheduledAt))
	}
	present := func(o *object) bool { return failoverValue(o.annotations) != nil }
	return b.cas(ctx, b.objs, b.names.failover, ann, version, present)
}

// DeleteFailover deletes the failover object.
func (b *Backend) DeleteFailover(ctx context.Context) error {
	ctx, cancel := b.call(ctx)
	defer cancel()
	return b.deleteObject(ctx, b.objs, b.names.failover)
}

// SetSync writes the sync object's leader, sync_standby and quorum annotations.
func (b *Backend) SetSync(ctx context.Context, s dcs.Sync, version int64) error {
	ctx, cancel := b.call(ctx)
	defer cancel()
	ann := map[string]*string{annSyncLeader: strp(s.Leader), annSyncStandby: nil, annQuorum: strp(strconv.Itoa(s.Quorum))}
	if len(s.SyncStandby) > 0 {
		ann[annSyncStandby] = strp(strings.Join(s.SyncStandby, ","))
	}
	present := func(o *object) bool { return syncValue(o.annotations) != nil }
	return b.cas(ctx, b.objs, b.names.sync, ann, version, present)
}

// DeleteSync deletes the sync object.
func (b *Backend) DeleteSync(ctx context.Context) error {
	ctx, cancel := b.call(ctx)
	defer cancel()
	return b.deleteObject(ctx, b.objs, b.names.sync)
}

func (b *Backend) deleteObject(ctx context.Context, k *kind, name string) error {
	err := b.try(ctx, "deleting "+k.resource+" "+b.opts.Namespace+"/"+name, func(ctx context.Context) error {
		return k.delete(ctx, name)
	})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// DeleteCluster deletes the scope's objects and the status annotations of its pods.
func (b *Backend) DeleteCluster(ctx context.Context) error {
	ctx, cancel := b.call(ctx)
	defer cancel()
	if err := b.deleteObject(ctx, b.leaderKind, b.names.leader); err != nil {
		return err
	}
	for _, n := range []string{b.names.config, b.names.failover, b.names.sync} {
		if err := b.deleteObject(ctx, b.objs, n); err != nil {
			return err
		}
	}
	b.observeLeader(nil)
	var pods corev1.PodList
	err := b.try(ctx, "listing pods "+b.selector, func(ctx context.Context) error {
		return b.pods.Get().Namespace(b.opts.Namespace).Resource("pods").
			VersionedParams(&metav1.ListOptions{LabelSelector: b.selector}, scheme.ParameterCodec).
			MaxRetries(0).Do(ctx).Into(&pods)
	})
	if err != nil {
		return err
	}
	for _, p := range pods.Items {
		if _, ok := p.Annotations[annStatus]; !ok {
			continue
		}
		if _, err := b.patchPod(ctx, p.Name, b.memberCleared()); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	b.mu.Lock()
	b.pod = nil
	b.mu.Unlock()
	return nil
}
