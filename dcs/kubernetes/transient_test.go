package kubernetes

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"

	"github.com/tusker-ha/tusker/dcs"
	"github.com/tusker-ha/tusker/test/harness"
)

// The transient-error tests run with this retry_timeout and a ttl long enough never to lapse.
const (
	faultRetry = 3 * time.Second
	faultSlack = time.Second
)

// leaderBehind opens a backend that reaches the API server through cfg, as the leader of a fresh
// scope, with every call bounded by faultRetry.
func (e *kenv) leaderBehind(t *testing.T, scope string, cfg *rest.Config, codes []int) *Backend {
	t.Helper()
	b := e.open(t, Options{Scope: scope, Name: scope + "-1", RestConfig: cfg, TTL: 60 * time.Second,
		RetryTimeout: faultRetry, RetriableHTTPCodes: codes})
	ok, err := b.AcquireLeader(tctx(t))
	require.NoError(t, err)
	require.True(t, ok)
	return b
}

func (e *kenv) proxied(t *testing.T) (*harness.Proxy, *rest.Config) {
	p := harness.StartProxy(t, e.api.HostPort)
	cfg := e.api.RestConfig()
	cfg.Host = "https://" + p.Addr
	return p, cfg
}

// timed runs RenewLeader and says how long it took.
func timed(b *Backend) (time.Duration, error) {
	start := time.Now()
	err := b.RenewLeader(context.Background())
	return time.Since(start), err
}

// slow: every request takes about retry_timeout/3 (the proxy delays each chunk in each direction
// by retry_timeout/6); renewals keep succeeding.
func (e *kenv) slow(t *testing.T) {
	p, cfg := e.proxied(t)
	b := e.leaderBehind(t, "slow", cfg, nil)
	p.SetDelay(faultRetry / 6)
	defer p.SetDelay(0)
	for i := range 4 {
		took, err := timed(b)
		require.NoError(t, err, "renewal %d against a slow server", i)
		t.Logf("renewal %d took %s", i, took.Round(time.Millisecond))
		require.GreaterOrEqual(t, took, faultRetry/6, "the delay did not apply")
	}
}

// shortBlackhole: the server is black-holed for retry_timeout/2 around a renewal, which then
// succeeds on a fresh connection before retry_timeout is over.
func (e *kenv) shortBlackhole(t *testing.T) {
	p, cfg := e.proxied(t)
	b := e.leaderBehind(t, "hole", cfg, nil)
	p.Blackhole(true)
	heal := time.AfterFunc(faultRetry/2, func() { p.Blackhole(false) })
	defer heal.Stop()
	took, err := timed(b)
	t.Logf("renewal across a %s black hole: %s, %v", faultRetry/2, took.Round(time.Millisecond), err)
	require.False(t, errors.Is(err, dcs.ErrNotLeader), "a black hole must never read as a lost lock: %v", err)
	require.NoError(t, err)
	require.GreaterOrEqual(t, took, faultRetry/2-100*time.Millisecond, "it cannot have gone through the hole")
	require.LessOrEqual(t, took, faultRetry+faultSlack)
	c, err := b.Cluster(context.Background())
	require.NoError(t, err)
	require.Equal(t, "hole-1", c.LeaderName())
}

// stalledConnection: the connection a renewal goes out on stalls (its bytes held for longer than
// retry_timeout) while new connections work: the attempt times out at its own deadline and the
// next one, on a fresh connection, renews before retry_timeout is over.
func (e *kenv) stalledConnection(t *testing.T) {
	p, cfg := e.proxied(t)
	b := e.leaderBehind(t, "stall", cfg, nil)
	p.SetDelay(faultRetry) // longer than an attempt (2/3 of it)
	unstall := time.AfterFunc(faultRetry/3, func() { p.SetDelay(0) })
	defer unstall.Stop()
	took, err := timed(b)
	t.Logf("renewal on a stalled connection: %s, %v", took.Round(time.Millisecond), err)
	require.NoError(t, err)
	require.GreaterOrEqual(t, took, faultRetry/2, "the stalled attempt cannot have answered")
	require.Less(t, took, faultRetry)
}

// longBlackhole: black-holed for longer than retry_timeout, a renewal is unreachable no earlier
// than retry_timeout and not much later; once the server is back the lock is still ours.
func (e *kenv) longBlackhole(t *testing.T) {
	p, cfg := e.proxied(t)
	b := e.leaderBehind(t, "longhole", cfg, nil)
	p.Blackhole(true)
	took, err := timed(b)
	p.Blackhole(false)
	t.Logf("renewal into a black hole: %s, %v", took.Round(time.Millisecond), err)
	require.ErrorIs(t, err, dcs.ErrUnreachable)
	require.False(t, errors.Is(err, dcs.ErrNotLeader))
	require.ErrorContains(t, err, p.Addr, "the error names the API server")
	require.ErrorContains(t, err, "renewing")
	require.GreaterOrEqual(t, took, faultRetry, "gave up before retry_timeout")
	require.LessOrEqual(t, took, faultRetry+faultSlack)
	took, err = timed(b)
	require.NoError(t, err, "renewing after the black hole")
	require.Less(t, took, faultRetry)
}

// concurrentWriter: others bumping the leader object's resourceVersion (an unrelated annotation)
// make renewals re-read and retry, never fail.
func (e *kenv) concurrentWriter(t *testing.T) {
	ctx := tctx(t)
	b := e.leaderBehind(t, "bump", e.api.RestConfig(), nil)
	bump := func(i int) {
		_, err := e.cs.CoreV1().ConfigMaps("default").Patch(ctx, "bump-leader", types.MergePatchType,
			[]byte(`{"metadata":{"annotations":{"other":"`+strconv.Itoa(i)+`"}}}`), metav1.PatchOptions{})
		require.NoError(t, err)
	}
	bump(0)
	require.NoError(t, b.RenewLeader(ctx), "renewal on a stale resourceVersion")
	cm := e.configMap(t, "default", "bump-leader")
	require.Equal(t, "bump-1", cm.Annotations["leader"])
	require.Equal(t, "0", cm.Annotations["other"], "the other writer's annotation survives the renewal")

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
				bump(i)
			}
		}
	}()
	for i := range 20 {
		require.NoError(t, b.RenewLeader(ctx), "renewal %d while another writer keeps bumping the object", i)
	}
	close(stop)
	wg.Wait()
}

// httpCodes: answers in RetriableHTTPCodes (and any with Retry-After) are retried, others not.
func (e *kenv) httpCodes(t *testing.T) {
	target, err := url.Parse(e.api.URL)
	require.NoError(t, err)
	rp := httputil.NewSingleHostReverseProxy(target)
	tr, err := rest.TransportFor(e.api.RestConfig())
	require.NoError(t, err)
	rp.Transport = tr
	var mu sync.Mutex
	var faults []func(w http.ResponseWriter) // answers for the next renewals, in order
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		var f func(http.ResponseWriter)
		if r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "-leader") && len(faults) > 0 {
			f, faults = faults[0], faults[1:]
		}
		mu.Unlock()
		if f != nil {
			f(w)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	cfg := &rest.Config{Host: srv.URL, BearerToken: e.api.Token, TLSClientConfig: rest.TLSClientConfig{Insecure: true}}
	fail := func(code int, header ...string) func(http.ResponseWriter) {
		return func(w http.ResponseWriter) {
			if len(header) == 2 {
				w.Header().Set(header[0], header[1])
			}
			http.Error(w, "injected", code)
		}
	}
	inject := func(fs ...func(http.ResponseWriter)) {
		mu.Lock()
		faults = fs
		mu.Unlock()
	}

	b := e.leaderBehind(t, "codes", cfg, nil)
	inject(fail(503), fail(500), fail(504))
	took, err := timed(b)
	require.NoError(t, err, "500, 503 and 504 are retried by default")
	t.Logf("renewal after 503, 500, 504: %s", took.Round(time.Millisecond))

	inject(fail(http.StatusTooManyRequests, "Retry-After", "1"))
	took, err = timed(b)
	require.NoError(t, err, "an answer with Retry-After is retried")
	require.GreaterOrEqual(t, took, time.Second, "Retry-After: 1 was not waited for")

	inject(fail(http.StatusBadGateway))
	took, err = timed(b)
	require.Error(t, err, "502 is not retriable by default")
	require.False(t, errors.Is(err, dcs.ErrNotLeader) || errors.Is(err, dcs.ErrUnreachable), "%v", err)
	require.Less(t, took, faultRetry/2)

	only503 := e.leaderBehind(t, "codes503", cfg, []int{503})
	inject(fail(500))
	_, err = timed(only503)
	require.Error(t, err, "500 is not in retriable_http_codes [503]")
	require.False(t, errors.Is(err, dcs.ErrNotLeader))
	inject(fail(503), fail(503))
	require.NoError(t, only503.RenewLeader(context.Background()))

	// Retriable answers until retry_timeout: unreachable, not earlier.
	var all []func(http.ResponseWriter)
	for range 100 {
		all = append(all, fail(503))
	}
	inject(all...)
	took, err = timed(b)
	inject()
	require.ErrorIs(t, err, dcs.ErrUnreachable)
	require.GreaterOrEqual(t, took, faultRetry)
	require.LessOrEqual(t, took, faultRetry+faultSlack)
}
