package consul

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tusker-ha/tusker/dcs"
	"github.com/tusker-ha/tusker/dcs/dcstest"
	"github.com/tusker-ha/tusker/test/harness"
)

func TestMain(m *testing.M) { harness.Main(m, harness.PrepareConsul) }

// testTTL is the shortest ttl Consul supports well: sessions last at least 10 s (= ttl/2).
const testTTL = 20 * time.Second

func open(t *testing.T, c *harness.Consul, scope, name string, mod func(*Options)) *Backend {
	t.Helper()
	o := Options{Address: c.Addr, Token: c.Token, Namespace: "/service", Scope: scope, Name: name,
		TTL: testTTL, RetryTimeout: 2 * time.Second}
	if mod != nil {
		mod(&o)
	}
	b, err := New(o)
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func raw(t *testing.T, c *harness.Consul) *api.Client {
	t.Helper()
	cli, err := api.NewClient(&api.Config{Address: c.Addr, Token: c.Token})
	require.NoError(t, err)
	return cli
}

func TestConformance(t *testing.T) {
	t.Parallel() // mostly waiting for leases to run out, on an agent of its own
	c := harness.StartConsul(t)
	t.Logf("consul server elected itself in %s", c.ElectedIn.Round(time.Millisecond))
	dcstest.Run(t, dcstest.Target{
		New: func(t testing.TB, scope, name string, ttl, retryTimeout time.Duration) dcs.DCS {
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).
				With("member", scope+"/"+name)
			b, err := New(Options{Address: c.Addr, Scope: scope, Name: name, TTL: ttl, RetryTimeout: retryTimeout,
				Logger: log})
			require.NoError(t, err)
			return b
		},
		TTL: testTTL,
		Restart: func(t testing.TB) {
			c.Stop()
			require.NoError(t, c.Start())
			t.Logf("consul server re-elected itself in %s", c.ElectedIn.Round(time.Millisecond))
		},
		Outage: func(t testing.TB) func() {
			c.Stop()
			return func() { require.NoError(t, c.Start()) }
		},
	})
}

func TestSessionTTL(t *testing.T) {
	for ttl, want := range map[time.Duration]time.Duration{
		6 * time.Second:  10 * time.Second, // clamped to Consul's minimum
		20 * time.Second: 10 * time.Second,
		21 * time.Second: 11 * time.Second, // rounded up: the lease may outlive ttl, never fall short
		30 * time.Second: 15 * time.Second,
		72 * time.Hour:   24 * time.Hour, // Consul's maximum
	} {
		require.Equal(t, want, SessionTTL(ttl), "ttl %s", ttl)
	}
}

func TestShortTTLWarning(t *testing.T) {
	for ttl, warn := range map[time.Duration]bool{6 * time.Second: true, 20 * time.Second: false, 21 * time.Second: false} {
		var buf bytes.Buffer
		b, err := New(Options{Scope: "c", Name: "a", TTL: ttl, Logger: slog.New(slog.NewTextHandler(&buf, nil))})
		require.NoError(t, err)
		require.Equal(t, warn, strings.Contains(buf.String(), "ttl is shorter than Consul sessions allow"), "ttl %s: %s", ttl, buf.String())
		buf.Reset()
		b.SetTTL(5 * time.Second)
		require.Contains(t, buf.String(), "lock_lasts=20s", "a ttl change to 5s warns too")
		require.NoError(t, b.Close())
	}
}

func TestServiceName(t *testing.T) {
	require.Equal(t, "batman-db-1-x", ServiceName("Batman.DB_1 x"))
	require.Equal(t, "au0047b", ServiceName("a/b"))
	require.Len(t, ServiceName(strings.Repeat("a", 300)), 230)
}

func TestOptionsValidated(t *testing.T) {
	for _, o := range []Options{
		{Scope: "c", Name: "a", Scheme: "ftp"},
		{Scope: "c", Name: "a", Consistency: "eventual"},
		{Scope: "c"},
		{Scope: "c", Name: "a", Scheme: "https", CACert: "/nonexistent/ca.pem"},
	} {
		_, err := New(o)
		require.Error(t, err, "%+v", o)
	}
	for _, mode := range []string{"", "default", "consistent", "stale"} {
		b, err := New(Options{Scope: "c", Name: "a", Consistency: mode})
		require.NoError(t, err, mode)
		require.NoError(t, b.Close())
	}
}

func TestConsulBackend(t *testing.T) {
	c := harness.StartConsul(t)
	t.Logf("consul server elected itself in %s", c.ElectedIn.Round(time.Millisecond))
	ctx := context.Background()
	cli := raw(t, c)

	t.Run("session: ttl/2, behavior delete, 1 ms lock delay, no checks", func(t *testing.T) {
		a := open(t, c, "s1", "a", nil)
		require.NoError(t, a.TouchMember(ctx, dcs.MemberData{State: "running"}))
		se, _, err := cli.Session().Info(a.sessionID(), nil)
		require.NoError(t, err)
		require.NotNil(t, se)
		require.Equal(t, "s1-a", se.Name)
		require.Equal(t, "10s", se.TTL)
		require.Equal(t, api.SessionBehaviorDelete, se.Behavior)
		require.Equal(t, time.Millisecond, se.LockDelay)
		require.Empty(t, se.NodeChecks)
		require.Empty(t, se.Checks)
		pair, _, err := cli.KV().Get("service/s1/members/a", nil)
		require.NoError(t, err)
		require.Equal(t, a.sessionID(), pair.Session, "the member key is held by the session")

		b := open(t, c, "s1", "b", func(o *Options) { o.TTL = 40 * time.Second; o.Checks = []string{"serfHealth"} })
		require.NoError(t, b.TouchMember(ctx, dcs.MemberData{State: "running"}))
		se, _, err = cli.Session().Info(b.sessionID(), nil)
		require.NoError(t, err)
		require.Equal(t, "20s", se.TTL)
		require.Equal(t, []string{"serfHealth"}, se.NodeChecks, "configured checks are attached")
	})

	t.Run("ttl change moves leader and member keys to a new session", func(t *testing.T) {
		a := open(t, c, "s2", "a", nil)
		require.NoError(t, a.TouchMember(ctx, dcs.MemberData{State: "running", Role: "primary"}))
		ok, err := a.AcquireLeader(ctx)
		require.NoError(t, err)
		require.True(t, ok)
		old := a.sessionID()
		a.SetTTL(30 * time.Second)
		require.NoError(t, a.RenewLeader(ctx))
		id := a.sessionID()
		require.NotEqual(t, old, id)
		se, _, err := cli.Session().Info(id, nil)
		require.NoError(t, err)
		require.Equal(t, "15s", se.TTL)
		se, _, err = cli.Session().Info(old, nil)
		require.NoError(t, err)
		require.Nil(t, se, "the old session is destroyed")
		for _, k := range []string{"service/s2/leader", "service/s2/members/a"} {
			pair, _, err := cli.KV().Get(k, nil)
			require.NoError(t, err)
			require.NotNil(t, pair, k)
			require.Equal(t, id, pair.Session, "%s moved to the new session", k)
		}
		require.NoError(t, a.RenewLeader(ctx))
	})

	t.Run("a restarted member takes back its own leader key", func(t *testing.T) {
		a1 := open(t, c, "s3", "a", nil)
		require.NoError(t, a1.TouchMember(ctx, dcs.MemberData{State: "running", Role: "primary"}))
		ok, err := a1.AcquireLeader(ctx)
		require.NoError(t, err)
		require.True(t, ok)
		require.NoError(t, a1.Close()) // the process dies; its session lives on until it expires

		b := open(t, c, "s3", "b", nil)
		ok, err = b.AcquireLeader(ctx)
		require.NoError(t, err)
		require.False(t, ok, "another member must not take the key")

		a2 := open(t, c, "s3", "a", nil)
		require.NoError(t, a2.TouchMember(ctx, dcs.MemberData{State: "running", Role: "primary"}))
		ok, err = a2.AcquireLeader(ctx)
		require.NoError(t, err)
		require.True(t, ok, "the same member takes back its key")
		require.NoError(t, a2.RenewLeader(ctx))
		cl, err := b.Cluster(ctx)
		require.NoError(t, err)
		require.Equal(t, "a", cl.LeaderName())
		require.NotNil(t, cl.Member("a"))
	})

	t.Run("consistency modes read the same cluster", func(t *testing.T) {
		w := open(t, c, "s4", "w", nil)
		require.NoError(t, w.SetConfig(ctx, []byte(`{"ttl":30}`), -1))
		require.NoError(t, w.TouchMember(ctx, dcs.MemberData{State: "running"}))
		for _, mode := range []string{"default", "consistent", "stale"} {
			r := open(t, c, "s4", "r-"+mode, func(o *Options) { o.Consistency = mode })
			cl, err := r.Cluster(ctx)
			require.NoError(t, err, mode)
			require.JSONEq(t, `{"ttl":30}`, string(cl.Config.Value), mode)
			require.NotNil(t, cl.Member("w"), mode)
		}
	})

	t.Run("garbage is skipped, a leader key without session is no leader", func(t *testing.T) {
		a := open(t, c, "s5", "a", nil)
		for k, v := range map[string]string{
			"service/s5/members/junk": "{not json", "service/s5/history": `{"x":1}`,
			"service/s5/failover": "{}", "service/s5/members/x/y": "{}", "service/s5/status": "[",
		} {
			_, err := cli.KV().Put(&api.KVPair{Key: k, Value: []byte(v)}, nil)
			require.NoError(t, err)
		}
		cl, err := a.Cluster(ctx)
		require.NoError(t, err)
		require.Empty(t, cl.Members)
		require.Nil(t, cl.Failover)
		require.ElementsMatch(t, []string{"/service/s5/members/junk", "/service/s5/history", "/service/s5/failover",
			"/service/s5/members/x/y", "/service/s5/status"}, cl.Invalid)

		_, err = cli.KV().Put(&api.KVPair{Key: "service/s5/leader", Value: []byte("x")}, nil)
		require.NoError(t, err)
		cl, err = a.Cluster(ctx)
		require.NoError(t, err)
		require.Nil(t, cl.Leader, "a leader key that no session holds is not a leader")
		ok, err := a.AcquireLeader(ctx)
		require.NoError(t, err)
		require.True(t, ok, "and it can be acquired")
		cl, err = a.Cluster(ctx)
		require.NoError(t, err)
		require.Equal(t, "a", cl.LeaderName())
	})

	t.Run("DeleteMember destroys the session and with it the leader key", func(t *testing.T) {
		a := open(t, c, "s6", "a", nil)
		require.NoError(t, a.TouchMember(ctx, dcs.MemberData{State: "running"}))
		ok, err := a.AcquireLeader(ctx)
		require.NoError(t, err)
		require.True(t, ok)
		id := a.sessionID()
		require.NoError(t, a.DeleteMember(ctx))
		se, _, err := cli.Session().Info(id, nil)
		require.NoError(t, err)
		require.Nil(t, se)
		cl, err := a.Cluster(ctx)
		require.NoError(t, err)
		require.Nil(t, cl.Leader)
		require.Nil(t, cl.Member("a"))
	})

	t.Run("Close stops the watch at once", func(t *testing.T) {
		a := open(t, c, "s7", "a", nil)
		time.Sleep(200 * time.Millisecond) // the watch is inside a blocking query now
		start := time.Now()
		require.NoError(t, a.Close())
		require.Less(t, time.Since(start), time.Second)
	})

	t.Run("unreachable agent: ErrUnreachable within retry_timeout, naming the address", func(t *testing.T) {
		a := open(t, c, "s8", "a", nil)
		require.NoError(t, a.TouchMember(ctx, dcs.MemberData{State: "running"}))
		c.Stop()
		defer func() { require.NoError(t, c.Start()) }()
		start := time.Now()
		_, err := a.Cluster(ctx)
		require.ErrorIs(t, err, dcs.ErrUnreachable)
		require.Contains(t, err.Error(), c.Addr)
		require.Less(t, time.Since(start), 3*time.Second)
		err = a.SetConfig(ctx, []byte(`{}`), 5)
		require.ErrorIs(t, err, dcs.ErrUnreachable)
		require.False(t, errors.Is(err, dcs.ErrConflict))
	})
}

// TestLeaseExpiry: a crashed holder's keys vanish between ttl and ttl plus a little after its last
// renewal, while a holder that renews keeps its key.
func TestLeaseExpiry(t *testing.T) {
	t.Parallel()
	c := harness.StartConsul(t)
	ctx := context.Background()
	crash := open(t, c, "e1", "crash", nil)
	keep := open(t, c, "e2", "keep", nil)
	obs1 := open(t, c, "e1", "obs", nil)
	obs2 := open(t, c, "e2", "obs", nil)
	for _, b := range []*Backend{crash, keep} {
		require.NoError(t, b.TouchMember(ctx, dcs.MemberData{State: "running", Role: "primary"}))
	}
	sent := time.Now()
	ok, err := crash.AcquireLeader(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = keep.AcquireLeader(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	require.NoError(t, crash.Close())

	var gone time.Duration
	nextRenew := time.Now()
	for deadline := time.Now().Add(testTTL + 5*time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(nextRenew) {
			require.NoError(t, keep.RenewLeader(ctx))
			nextRenew = time.Now().Add(testTTL / 4)
		}
		cl, err := obs2.Cluster(ctx)
		require.NoError(t, err)
		require.Equal(t, "keep", cl.LeaderName(), "a renewed key never lapses")
		if gone == 0 {
			cl, err = obs1.Cluster(ctx)
			require.NoError(t, err)
			if cl.Leader == nil {
				gone = time.Since(sent)
				require.Nil(t, cl.Member("crash"), "the member key goes with the session")
			}
		}
	}
	t.Logf("crashed leader's key gone after %s (ttl %s)", gone.Round(time.Millisecond), testTTL)
	require.NotZero(t, gone, "the crashed leader's key did not expire")
	require.GreaterOrEqual(t, gone, testTTL, "the key vanished before the holder's lease ran out")
	require.LessOrEqual(t, gone, testTTL+1500*time.Millisecond)
}

// TestRenewRightAfterElection: a Consul server that was restarted answers "session not found" for
// live sessions until it has replayed its log; the leader must not take that for a lost lock.
func TestRenewRightAfterElection(t *testing.T) {
	c := harness.StartConsul(t)
	ctx := context.Background()
	cli := raw(t, c)
	// A long raft log, which the restarted server applies in batches after its election.
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				_, err := cli.KV().Put(&api.KVPair{Key: fmt.Sprintf("bulk/%d/%d", w, i), Value: []byte("x")}, nil)
				assert.NoError(t, err)
			}
		}()
	}
	wg.Wait()
	a := open(t, c, "el", "a", nil)
	require.NoError(t, a.TouchMember(ctx, dcs.MemberData{State: "running", Role: "primary"}))
	ok, err := a.AcquireLeader(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	id := a.sessionID()
	c.Stop()
	require.NoError(t, c.StartElected())
	require.NoError(t, a.RenewLeader(ctx), "a live session read as expired right after the election")
	require.Equal(t, id, a.sessionID())
	cl, err := a.Cluster(ctx)
	require.NoError(t, err)
	require.Equal(t, "a", cl.LeaderName())
}

func TestServiceRegistration(t *testing.T) {
	c := harness.StartConsul(t)
	ctx := context.Background()
	cli := raw(t, c)
	var healthy atomic.Bool
	healthy.Store(true)
	var paths sync.Map
	rest := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths.Store(r.URL.Path, true)
		if healthy.Load() {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer rest.Close()

	a := open(t, c, "Pg.Cluster", "a", func(o *Options) {
		o.RegisterService, o.ServiceTags, o.ServiceCheckInterval = true, []string{"zone-b", "env-test"}, time.Second
	})
	data := dcs.MemberData{State: "running", Role: "primary", APIURL: rest.URL + "/patroni",
		ConnURL: "postgres://127.0.0.2:5433/postgres"}
	require.NoError(t, a.TouchMember(ctx, data))

	svc := func() *api.AgentService {
		s, _, err := cli.Agent().Service("Pg.Cluster/a", nil)
		if err != nil && strings.Contains(err.Error(), "404") {
			return nil
		}
		require.NoError(t, err)
		return s
	}
	status := func() string {
		checks, _, err := cli.Health().Checks("pg-cluster", nil)
		require.NoError(t, err)
		require.Len(t, checks, 1)
		return checks[0].Status
	}
	waitStatus := func(want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for status() != want {
			require.True(t, time.Now().Before(deadline), "the check did not turn %s", want)
			time.Sleep(100 * time.Millisecond)
		}
	}

	s := svc()
	require.NotNil(t, s)
	require.Equal(t, "pg-cluster", s.Service)
	require.Equal(t, []string{"env-test", "zone-b", "primary", "master"}, s.Tags)
	require.Equal(t, "127.0.0.2", s.Address)
	require.Equal(t, 5433, s.Port)
	waitStatus(api.HealthPassing)
	_, ok := paths.Load("/primary")
	require.True(t, ok, "the check asks the member's /primary")
	healthy.Store(false)
	waitStatus(api.HealthCritical)
	healthy.Store(true)

	data.Role = "replica"
	require.NoError(t, a.TouchMember(ctx, data))
	require.Equal(t, []string{"env-test", "zone-b", "replica"}, svc().Tags)
	checks, err := cli.Agent().ChecksWithFilter(`ServiceID == "Pg.Cluster/a"`)
	require.NoError(t, err)
	require.Len(t, checks, 1, "the old check is replaced, not added to")
	waitStatus(api.HealthPassing)
	_, ok = paths.Load("/replica")
	require.True(t, ok, "the check asks the member's /replica")

	data.Role = "standby_leader"
	require.NoError(t, a.TouchMember(ctx, data))
	require.Equal(t, []string{"env-test", "zone-b", "standby-leader"}, svc().Tags)

	data.State = "stopped"
	require.NoError(t, a.TouchMember(ctx, data))
	require.Nil(t, svc(), "a stopped member is deregistered")

	data.State = "running"
	require.NoError(t, a.TouchMember(ctx, data))
	require.NotNil(t, svc())
	require.NoError(t, a.DeleteMember(ctx))
	require.Nil(t, svc(), "DeleteMember deregisters")
}

func TestACLToken(t *testing.T) {
	c := harness.StartConsulACL(t)
	ctx := context.Background()
	cli := raw(t, c)
	_, err := cli.KV().Put(&api.KVPair{Key: "service/acl/config", Value: []byte(`{"ttl":30}`)}, nil)
	require.NoError(t, err)

	anon := open(t, c, "acl", "a", func(o *Options) { o.Token = "" })
	err = anon.TouchMember(ctx, dcs.MemberData{State: "running"})
	require.Error(t, err)
	require.Contains(t, err.Error(), "permission denied")
	require.Contains(t, err.Error(), "no token is configured")
	require.False(t, errors.Is(err, dcs.ErrUnreachable), "a refused token is not an unreachable store: %v", err)

	bad := open(t, c, "acl", "a", func(o *Options) { o.Token = "00000000-0000-4000-8000-000000000000" })
	err = bad.TouchMember(ctx, dcs.MemberData{State: "running"})
	require.ErrorContains(t, err, "permission denied")

	token := func(rules string) string {
		pol, _, err := cli.ACL().PolicyCreate(&api.ACLPolicy{Name: fmt.Sprintf("p%d", time.Now().UnixNano()), Rules: rules}, nil)
		require.NoError(t, err)
		tok, _, err := cli.ACL().TokenCreate(&api.ACLToken{Policies: []*api.ACLTokenPolicyLink{{ID: pol.ID}}}, nil)
		require.NoError(t, err)
		return tok.SecretID
	}
	// A token that may not read the keys: the cluster read must fail, not look like an empty
	// cluster. (Consul only says so to a request that carries a token.)
	blind := open(t, c, "acl", "a", func(o *Options) { o.Token = token(`session_prefix "" { policy = "write" }`) })
	_, err = blind.Cluster(ctx)
	require.ErrorContains(t, err, "hidden by Consul's ACLs")

	// A token with the policy docs/dcs-consul.md documents.
	a := open(t, c, "acl", "a", func(o *Options) {
		o.Token = token(`
key_prefix "service/" { policy = "write" }
session_prefix "" { policy = "write" }
service_prefix "" { policy = "write" }
`)
		o.RegisterService = true
	})
	require.NoError(t, a.TouchMember(ctx, dcs.MemberData{State: "running", Role: "primary",
		APIURL: "http://127.0.0.1:1/patroni", ConnURL: "postgres://127.0.0.1:5432/postgres"}))
	s, _, err := cli.Agent().Service("acl/a", nil)
	require.NoError(t, err, "the token may register the service")
	require.Equal(t, []string{"primary", "master"}, s.Tags)
	ok, err := a.AcquireLeader(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	require.NoError(t, a.RenewLeader(ctx))
	require.NoError(t, a.SetConfig(ctx, []byte(`{"ttl":40}`), -1))
	cl, err := a.Cluster(ctx)
	require.NoError(t, err)
	require.Equal(t, "a", cl.LeaderName())
	require.JSONEq(t, `{"ttl":40}`, string(cl.Config.Value))
	require.NoError(t, a.ReleaseLeader(ctx))
	require.NoError(t, a.DeleteMember(ctx))
}

// TestTLS checks the client side of TLS against a stand-in for the agent's HTTPS API: the CA
// bundle, verify: false, and a client certificate given as one PEM file with its key.
func TestTLS(t *testing.T) {
	var clientCerts atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		clientCerts.Store(int32(len(r.TLS.PeerCertificates)))
		w.Header().Set("X-Consul-Index", "7")
		_, _ = w.Write([]byte(`[{"Key":"service/tls/config","Value":"e30=","ModifyIndex":7}]`))
	}))
	srv.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	srv.StartTLS()
	defer srv.Close()
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	require.NoError(t, os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600))

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tusker"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	// Another CA: the client certificate, self-signed.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "server.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	combined := filepath.Join(dir, "client.pem")
	require.NoError(t, os.WriteFile(combined, append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})...), 0o600))

	addr := strings.TrimPrefix(srv.URL, "https://")
	read := func(o Options) error {
		o.Address, o.Scheme, o.Scope, o.Name = addr, "https", "tls", "a"
		b, err := New(o)
		require.NoError(t, err)
		defer b.Close()
		c, err := b.Cluster(context.Background())
		if err == nil {
			require.JSONEq(t, `{}`, string(c.Config.Value))
		}
		return err
	}
	err = read(Options{})
	require.ErrorContains(t, err, "certificate", "an unknown CA must be refused")
	no := false
	require.NoError(t, read(Options{Verify: &no}), "verify: false")
	_, err = New(Options{Address: addr, Scheme: "https", Scope: "tls", Name: "a", CACert: filepath.Join(dir, "missing.pem")})
	require.ErrorContains(t, err, "missing.pem", "an unreadable cacert is refused at once")
	start := time.Now()
	require.ErrorContains(t, read(Options{Verify: &no, CACert: filepath.Join(dir, "server.pem")}), "certificate",
		"a cacert always means verifying against it")
	require.Less(t, time.Since(start), time.Second, "a certificate error is not sent again until retry_timeout")
	require.NoError(t, read(Options{CACert: ca}))
	require.Zero(t, clientCerts.Load())
	require.NoError(t, read(Options{CACert: ca, Cert: combined}), "cert and key in one file")
	require.Equal(t, int32(1), clientCerts.Load(), "the client certificate was presented")
}

// tlsCA issues certificates for TestTLSAgent (the e2e tests have their own, in a package that
// cannot be imported).
type tlsCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTLSCA(t *testing.T, dir, name string) (*tlsCA, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	file := filepath.Join(dir, name+".pem")
	require.NoError(t, os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	return &tlsCA{cert: cert, key: key}, file
}

// issue writes <name>.pem and <name>-key.pem, a certificate for 127.0.0.1 with the given uses.
func (ca *tlsCA) issue(t *testing.T, dir, name string, serial int64, usage ...x509.ExtKeyUsage) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: usage}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	require.NoError(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600))
	return certFile, keyFile
}

// TestTLSAgent runs the backend against a real agent serving its API over HTTPS with
// verify_incoming, so that it requires a client certificate signed by its CA.
func TestTLSAgent(t *testing.T) {
	dir := t.TempDir()
	ca, caFile := newTLSCA(t, dir, "ca")
	_, otherCA := newTLSCA(t, dir, "other-ca")
	srvCert, srvKey := ca.issue(t, dir, "server", 2, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
	cliCert, cliKey := ca.issue(t, dir, "client", 3, x509.ExtKeyUsageClientAuth)

	c := harness.StartConsulTLS(t, caFile, srvCert, srvKey)
	t.Logf("consul server with HTTPS at %s elected itself in %s", c.HTTPSAddr, c.ElectedIn.Round(time.Millisecond))
	ctx := context.Background()
	const retry = 2 * time.Second
	openTLS := func(name string, mod func(*Options)) *Backend {
		t.Helper()
		o := Options{Address: c.HTTPSAddr, Scheme: "https", Namespace: "/service", Scope: "tls", Name: name,
			TTL: testTTL, RetryTimeout: retry}
		mod(&o)
		b, err := New(o)
		require.NoError(t, err)
		t.Cleanup(func() { _ = b.Close() })
		return b
	}

	t.Run("cacert, cert and key", func(t *testing.T) {
		start := time.Now()
		b := openTLS("a", func(o *Options) { o.CACert, o.Cert, o.Key = caFile, cliCert, cliKey })
		require.NoError(t, b.TouchMember(ctx, dcs.MemberData{State: "running", Role: "primary"}))
		ok, err := b.AcquireLeader(ctx)
		require.NoError(t, err)
		require.True(t, ok)
		cl, err := b.Cluster(ctx)
		require.NoError(t, err)
		require.NotNil(t, cl.Leader)
		require.Equal(t, "a", cl.Leader.Name)
		require.NotNil(t, cl.Member("a"))
		require.Equal(t, "primary", cl.Member("a").Data.Role)
		// The writes made over HTTPS are those the plain HTTP API sees.
		pair, _, err := raw(t, c).KV().Get("service/tls/leader", nil)
		require.NoError(t, err)
		require.NotNil(t, pair)
		require.Equal(t, "a", string(pair.Value))
		require.Equal(t, b.sessionID(), pair.Session)
		t.Logf("touch, acquire and read over mutual TLS: %s", time.Since(start).Round(time.Millisecond))
	})

	t.Run("no client certificate is refused by the agent", func(t *testing.T) {
		// With TLS 1.3 the client's handshake is over before the agent checks its certificate: the
		// agent's certificate_required alert comes after the request was sent, and when the agent
		// closes the connection with that request unread the kernel resets it, which may discard
		// the alert (seen: "connection reset by peer" or "broken pipe" alone). The call fails as
		// unreachable: reads are sent again until retry_timeout.
		refused := func(t *testing.T, err error) {
			t.Helper()
			require.Error(t, err)
			require.ErrorContains(t, err, "https://"+c.HTTPSAddr, "the error names the agent")
			// Either the alert arrived and the error says so, or it was lost and the error
			// still points at the missing client certificate.
			require.True(t, strings.Contains(err.Error(), "the agent refused the TLS client certificate") ||
				strings.Contains(err.Error(), "it needs a client certificate: consul.cert and consul.key"),
				"the error names the missing client certificate: %v", err)
		}
		b := openTLS("b", func(o *Options) { o.CACert = caFile })
		start := time.Now()
		_, err := b.Cluster(ctx)
		took := time.Since(start)
		t.Logf("read after %s: %v", took.Round(time.Millisecond), err)
		refused(t, err)
		require.Less(t, took, retry+time.Second, "bounded by retry_timeout, not a hang")
		start = time.Now()
		err = b.TouchMember(ctx, dcs.MemberData{State: "running"})
		took = time.Since(start)
		t.Logf("touch after %s: %v", took.Round(time.Millisecond), err)
		refused(t, err)
		require.Less(t, took, retry+time.Second, "bounded by retry_timeout, not a hang")
	})

	t.Run("a CA that did not sign the agent's certificate", func(t *testing.T) {
		b := openTLS("c", func(o *Options) { o.CACert, o.Cert, o.Key = otherCA, cliCert, cliKey })
		start := time.Now()
		_, err := b.Cluster(ctx)
		took := time.Since(start)
		t.Logf("after %s: %v", took.Round(time.Millisecond), err)
		require.ErrorContains(t, err, "x509: certificate signed by unknown authority")
		require.NotErrorIs(t, err, dcs.ErrUnreachable, "a configuration error, not an outage")
		require.Less(t, took, time.Second, "a certificate error is reported at once, not retried")
	})

	t.Run("verify false without cacert", func(t *testing.T) {
		no := false
		// The agent still wants a client certificate; only the check of its own is skipped.
		b := openTLS("d", func(o *Options) { o.Verify, o.Cert, o.Key = &no, cliCert, cliKey })
		require.NoError(t, b.TouchMember(ctx, dcs.MemberData{State: "running"}))
		cl, err := b.Cluster(ctx)
		require.NoError(t, err)
		require.NotNil(t, cl.Member("d"))
		require.Equal(t, "a", cl.Leader.Name)
	})
}
