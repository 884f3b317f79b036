// Package kubernetes is tusker's Kubernetes API backend, compatible with Patroni's: the cluster's
// keys are annotations on ConfigMaps (or Endpoints) named after the scope, every member's state is
// the "status" annotation of its own pod, and the leader lock is modelled on client-go's leader
// election. Kubernetes has no TTL primitive, so a leader is valid for ttl after this process last
// saw the leader object change (by its own monotonic clock: the writer's clock never matters), and
// every write to the lock is a compare-and-swap on the object's resourceVersion.
package kubernetes

import (
	"context"
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
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/flowcontrol"

	"github.com/tusker-ha/tusker/dcs"
	"github.com/tusker-ha/tusker/internal/kubeclient"
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
	restCfg    *rest.Config
	log        *slog.Logger
	keys       dcs.Keys
	labels     map[string]string // Labels + ScopeLabel
	selector   string
	objs       *kind // config, failover and sync objects (and the leader's unless leases)
	leaderKind *kind
	pods       rest.Interface
	names      struct{ leader, config, failover, sync string }
	codes      []int

	mu        sync.Mutex
	ttl       time.Duration
	retry     time.Duration
	leaderObj *object   // the newest leader object read or written
	seenRV    string    // its resourceVersion when it last changed, as this process saw it...
	seenAt    time.Time // ...and when (monotonic)
	// expiry signals Changes when the leader seen last would lapse unless renewed: nothing on
	// the server marks that moment, and the loop would otherwise see it up to a loop_wait late.
	expiry     *time.Timer
	leaderName string // the valid holder as last seen, "" when none
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
	core, err := kubeclient.Core(cfg)
	if err != nil {
		return nil, err
	}
	coord, err := kubeclient.Coordination(cfg)
	if err != nil {
		return nil, err
	}
	b := &Backend{
		opts: opts, host: cfg.Host, log: opts.Logger, restCfg: cfg,
		keys:    dcs.NewKeys(opts.Namespace, opts.Scope),
		pods:    core,
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
		b.objs = endpointsKind(core, opts.Namespace)
		b.leaderKind = b.objs
		b.names.leader = opts.Scope
	case opts.UseLeases:
		b.objs = configMapKind(core, opts.Namespace)
		b.leaderKind = leaseKind(coord, opts.Namespace)
	default:
		b.objs = configMapKind(core, opts.Namespace)
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

// warnings logs each distinct API warning once per process (Endpoints are deprecated since 1.33,
// and every request against them says so).
type warnings struct{ log *slog.Logger }

var warned sync.Map

func (w *warnings) HandleWarningHeader(code int, agent, text string) {
	if _, dup := warned.LoadOrStore(text, true); !dup {
		w.log.Warn("kubernetes API warning", "warning", text)
	}
}

// Keys is the key layout the cluster snapshot is decoded with.
func (b *Backend) Keys() dcs.Keys { return b.keys }

// RestConfig is the client configuration the backend uses (the pod's service account in a pod),
// for other clients of the same API server, such as rolling updates (package rollout).
func (b *Backend) RestConfig() *rest.Config { return rest.CopyConfig(b.restCfg) }

// Namespace is the namespace of the cluster's objects and pods.
func (b *Backend) Namespace() string { return b.opts.Namespace }

// Close stops the watch.
func (b *Backend) Close() error {
	b.cancel()
	b.mu.Lock()
	if b.expiry != nil {
		b.expiry.Stop()
	}
	b.mu.Unlock()
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
		b.log.Debug("kubernetes API request failed; retrying", "op", op, "in", max(wait, backoff), "err", err)
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
