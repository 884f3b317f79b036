package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tusker-ha/tusker/test/harness"
)

// testCA issues certificates for a test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tusker e2e CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a PEM certificate and key for 127.0.0.1, good for serving and as a client.
func (ca *testCA) issue(t *testing.T, serial int64, cn string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	require.NoError(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// clientFor returns an HTTPS client trusting ca, presenting the given certificate (none if nil).
func clientFor(t *testing.T, ca *testCA, certPEM, keyPEM []byte) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.pem)
	tc := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if certPEM != nil {
		c, err := tls.X509KeyPair(certPEM, keyPEM)
		require.NoError(t, err)
		tc.Certificates = []tls.Certificate{c}
	}
	return &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
}

func writePEM(t *testing.T, path string, b []byte) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, b, 0o600))
}

// request sends one request with client and returns the status, the body and the Server header.
func request(t *testing.T, client *http.Client, method, url string, auth ...string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	require.NoError(t, err)
	if len(auth) == 2 {
		req.SetBasicAuth(auth[0], auth[1])
	}
	resp, err := client.Do(req)
	require.NoError(t, err, "%s %s", method, url)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b)), resp.Header.Get("Server")
}

// scrapeMetrics reads a node's /metrics and parses the Prometheus text.
func scrapeMetrics(t *testing.T, n *harness.Node) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := n.HTTPClient().Get(n.APIURL() + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return fams
}

// sample returns the value of the sample of family name whose labels include want.
func sample(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// healthCodes are the status codes of every health and monitoring path on a primary and on a
// streaming replica of a healthy cluster without synchronous replication or failsafe mode.
var healthCodes = []struct {
	path             string
	primary, replica int
}{
	{"/", 200, 503}, {"/primary", 200, 503}, {"/master", 200, 503}, {"/read-write", 200, 503},
	{"/leader", 200, 503}, {"/standby-leader", 503, 503}, {"/standby_leader", 503, 503},
	{"/replica", 503, 200}, {"/replica?lag=1MB", 503, 200}, {"/replica?replication_state=streaming", 503, 200},
	{"/replica?tag_zone=b", 503, 503}, {"/read-only", 200, 200}, {"/health", 200, 200},
	{"/liveness", 200, 200}, {"/readiness", 200, 200}, {"/readiness?mode=write&lag=16MB", 200, 200},
	{"/async", 503, 200}, {"/asynchronous?lag=1MB", 503, 200}, {"/sync", 503, 503}, {"/synchronous", 503, 503},
	{"/quorum", 503, 503}, {"/read-only-sync", 200, 503}, {"/read-only-quorum", 200, 503},
	{"/patroni", 200, 200}, {"/cluster", 200, 200}, {"/history", 200, 200}, {"/config", 200, 200},
	{"/failsafe", 502, 502}, {"/metrics", 200, 200}, {"/no-such-endpoint", 404, 404},
}

// checkEveryEndpoint checks healthCodes with GET, HEAD and OPTIONS (bodies only on GET).
func checkEveryEndpoint(t *testing.T, c *harness.Cluster, primary *harness.Node) {
	t.Helper()
	for _, n := range c.Nodes {
		for _, tt := range healthCodes {
			want := tt.replica
			if n == primary {
				want = tt.primary
			}
			for _, method := range []string{"GET", "HEAD", "OPTIONS"} {
				w := want
				if method == "OPTIONS" && (tt.path == "/config" || tt.path == "/failsafe") {
					w = 200 // management paths answer OPTIONS with their Allow list
				}
				code, body, server := request(t, n.HTTPClient(), method, n.APIURL()+tt.path)
				assert.Equal(t, w, code, "%s %s on %s", method, tt.path, n.Name)
				assert.Equal(t, "tusker", server, "no version in the Server header by default")
				if method != "GET" {
					assert.Empty(t, body, "%s %s on %s", method, tt.path, n.Name)
				} else if w == 200 && tt.path != "/liveness" && !strings.HasPrefix(tt.path, "/readiness") && tt.path != "/metrics" {
					assert.True(t, strings.HasPrefix(body, "{") || strings.HasPrefix(body, "["), "%s on %s: %q", tt.path, n.Name, body)
				}
			}
		}
	}
}

// TestRESTEndpointsOverTLS runs a cluster whose REST APIs serve HTTPS, require client
// certificates (verify_client: required) and Basic auth on changes, and checks every endpoint's
// status codes on the primary and the replicas, the metrics, a switchover (the members' own
// requests to each other need the client certificate too), an allowlist, and certificate
// rotation without a restart.
func TestRESTEndpointsOverTLS(t *testing.T) {
	ca := newTestCA(t)
	opCert, opKey := ca.issue(t, 100, "operator")
	client := clientFor(t, ca, opCert, opKey)
	etcd := harness.StartEtcd(t)
	c, err := harness.NewCluster(harness.ClusterOptions{
		Dir: t.TempDir(), Scope: "rest", Nodes: 3, TuskerBin: harness.Bin(t, "tusker"),
		PGBinDir: harness.PGBinDir(t), EtcdHost: etcd.HostPort, APIClient: client,
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range c.Nodes {
				t.Logf("==== log of %s ====\n%s", n.Name, tail(n.Log(), 400))
			}
		}
		c.Stop(30 * time.Second)
	})
	caFile := filepath.Join(c.Opts.Dir, "ca.pem")
	writePEM(t, caFile, ca.pem)
	for i, n := range c.Nodes {
		cert, key := ca.issue(t, int64(10+i), n.Name)
		writePEM(t, filepath.Join(n.Dir, "api.crt"), cert)
		writePEM(t, filepath.Join(n.Dir, "api.key"), key)
		// The restapi section through PATRONI_* variables, as in a container.
		n.Env = append(n.Env,
			"PATRONI_RESTAPI_CERTFILE="+filepath.Join(n.Dir, "api.crt"),
			"PATRONI_RESTAPI_KEYFILE="+filepath.Join(n.Dir, "api.key"),
			"PATRONI_RESTAPI_CAFILE="+caFile,
			"PATRONI_RESTAPI_VERIFY_CLIENT=required",
			"PATRONI_RESTAPI_USERNAME=admin",
			"PATRONI_RESTAPI_PASSWORD=s3cret",
		)
	}
	// n3 only takes changes from a network the test is not on.
	c.Nodes[2].Env = append(c.Nodes[2].Env, "PATRONI_RESTAPI_ALLOWLIST=[192.0.2.0/24]")
	require.NoError(t, c.Start())
	ctx := context.Background()
	require.NoError(t, harness.WaitFor(ctx, 90*time.Second, 200*time.Millisecond, func() error { return c.Healthy(ctx) }))
	p, err := c.Primary(ctx)
	require.NoError(t, err)
	// The members publish https:// API URLs.
	cl, _, err := p.Patroni(ctx)
	require.NoError(t, err)
	require.NotNil(t, cl)
	code, body, _ := request(t, client, "GET", p.APIURL()+"/cluster")
	require.Equal(t, 200, code)
	require.Contains(t, body, `"api_url":"https://127.0.0.1:`)

	t.Run("every endpoint on the primary and the replicas", func(t *testing.T) {
		// Fresh clones replay what the primary wrote meanwhile before they are within 1MB.
		waitFor(t, 30*time.Second, "replicas caught up", func() error {
			for _, r := range others(c, p) {
				if code := r.Check(ctx, "/replica?lag=1MB"); code != 200 {
					return fmt.Errorf("%s: /replica?lag=1MB = %d", r.Name, code)
				}
			}
			return nil
		})
		checkEveryEndpoint(t, c, p)
	})

	t.Run("client certificate, allowlist and authentication", func(t *testing.T) {
		// No client certificate: the TLS handshake itself fails.
		_, err := clientFor(t, ca, nil, nil).Get(p.APIURL() + "/patroni")
		require.Error(t, err)
		// A certificate from another CA: refused too.
		other := newTestCA(t)
		oc, ok := other.issue(t, 5, "intruder")
		_, err = clientFor(t, ca, oc, ok).Get(p.APIURL() + "/patroni")
		require.Error(t, err)
		// Plain HTTP to an HTTPS port is not served.
		resp, err := http.Get(strings.Replace(p.APIURL(), "https", "http", 1) + "/patroni")
		if err == nil {
			resp.Body.Close()
			require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		}

		open := c.Nodes[0] // n3 has the allowlist
		code, msg, _ := request(t, client, "POST", open.APIURL()+"/reload")
		require.Equal(t, 401, code, msg)
		code, msg, _ = request(t, client, "POST", open.APIURL()+"/reload", "admin", "wrong")
		require.Equal(t, 401, code, msg)
		code, msg, _ = request(t, client, "POST", open.APIURL()+"/reload", "admin", "s3cret")
		require.Equal(t, 202, code, msg)
		require.Equal(t, "reload scheduled", msg)

		n3 := c.Nodes[2]
		code, msg, _ = request(t, client, "POST", n3.APIURL()+"/reload", "admin", "s3cret")
		require.Equal(t, 403, code, msg)
		require.Equal(t, "Access is denied", msg)
		code, _, _ = request(t, client, "GET", n3.APIURL()+"/patroni")
		require.Equal(t, 200, code, "reads are not subject to the allowlist")
	})

	t.Run("metrics", func(t *testing.T) {
		fams := scrapeMetrics(t, p)
		self := map[string]string{"scope": "rest", "name": p.Name}
		for name, want := range map[string]float64{
			"patroni_primary": 1, "patroni_replica": 0, "patroni_postgres_running": 1,
			"patroni_postgres_state": 5, "patroni_cluster_unlocked": 0, "patroni_is_paused": 0,
			"patroni_postgres_server_version": 0, // checked below: only that it is 15.x
		} {
			v, ok := sample(fams, name, self)
			require.True(t, ok, name)
			if name == "patroni_postgres_server_version" {
				require.InDelta(t, 150000, v, 9999, name)
				continue
			}
			require.Equal(t, want, v, name)
		}
		xlog, _ := sample(fams, "patroni_xlog_location", self)
		require.Positive(t, xlog)
		loops, ok := sample(fams, "tusker_ha_loop_duration_seconds", self)
		require.True(t, ok)
		require.Positive(t, loops)
		reads, ok := sample(fams, "tusker_dcs_request_duration_seconds", map[string]string{"op": "get_cluster"})
		require.True(t, ok)
		require.Positive(t, reads)
		age, ok := sample(fams, "tusker_leader_lease_age_seconds", self)
		require.True(t, ok, "the leader reports the age of its lease")
		require.Less(t, age, 6.0, "renewed within ttl")
		_, ok = sample(fams, "process_resident_memory_bytes", nil)
		require.True(t, ok)

		r := others(c, p)[0]
		fams = scrapeMetrics(t, r)
		self = map[string]string{"scope": "rest", "name": r.Name}
		v, _ := sample(fams, "patroni_replica", self)
		require.Equal(t, 1.0, v)
		v, _ = sample(fams, "patroni_postgres_streaming", self)
		require.Equal(t, 1.0, v)
		replayed, _ := sample(fams, "patroni_xlog_replayed_location", self)
		require.Positive(t, replayed)
		_, ok = sample(fams, "tusker_leader_lease_age_seconds", nil)
		require.False(t, ok, "a replica holds no lease")
	})

	t.Run("switchover between members that require client certificates", func(t *testing.T) {
		cand := others(c, p)[0]
		// Any member takes the request; n3 refuses it with its allowlist.
		via := p
		if via == c.Nodes[2] {
			via = cand
		}
		req, err := http.NewRequest("POST", via.APIURL()+"/switchover",
			strings.NewReader(fmt.Sprintf(`{"leader":%q,"candidate":%q}`, p.Name, cand.Name)))
		require.NoError(t, err)
		req.SetBasicAuth("admin", "s3cret")
		resp, err := client.Do(req)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, 200, resp.StatusCode, string(b))
		waitPrimary(t, c, cand, 30*time.Second)
		waitFor(t, 30*time.Second, "the new primary counts its role change", func() error {
			v, ok := sample(scrapeMetrics(t, cand), "tusker_role_changes_total", map[string]string{"role": "primary"})
			if !ok || v != 1 {
				return fmt.Errorf("tusker_role_changes_total{role=primary} = %v (present %v)", v, ok)
			}
			return nil
		})
		// Promotion drops the recovery settings from the configuration: that is no restart to wait
		// for. The new timeline and pending_restart come from the same query, so once /patroni
		// shows the one it shows the other as of after the promotion.
		waitFor(t, 15*time.Second, "the new primary's status from after the promotion", func() error {
			st, _, err := cand.Patroni(ctx)
			if err != nil {
				return err
			}
			if tl, _ := st["timeline"].(float64); tl < 2 || st["role"] != "primary" {
				return fmt.Errorf("timeline %v role %v", st["timeline"], st["role"])
			}
			require.Nil(t, st["pending_restart"], "pending_restart after a promotion: %v", st["pending_restart_reason"])
			return nil
		})
		p = cand
	})

	t.Run("certificate rotation without a restart", func(t *testing.T) {
		n := c.Nodes[0]
		cert, key := ca.issue(t, 4242, n.Name)
		// Replace the files the way cert-manager does: write new files, rename over the old.
		writePEM(t, filepath.Join(n.Dir, "api.crt.new"), cert)
		writePEM(t, filepath.Join(n.Dir, "api.key.new"), key)
		require.NoError(t, os.Rename(filepath.Join(n.Dir, "api.key.new"), filepath.Join(n.Dir, "api.key")))
		require.NoError(t, os.Rename(filepath.Join(n.Dir, "api.crt.new"), filepath.Join(n.Dir, "api.crt")))
		pid := n.PID()
		waitFor(t, 15*time.Second, "the new certificate is served", func() error {
			fresh := clientFor(t, ca, opCert, opKey) // a new connection, a new handshake
			resp, err := fresh.Get(n.APIURL() + "/health")
			if err != nil {
				return err
			}
			resp.Body.Close()
			if s := resp.TLS.PeerCertificates[0].SerialNumber.Int64(); s != 4242 {
				return fmt.Errorf("serving serial %d", s)
			}
			return nil
		})
		require.Equal(t, pid, n.PID(), "tusker was not restarted")
	})
}
