package harness

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
)

// KubeVersion is the kube-apiserver version the tests use (built by scripts/install-deps.sh).
const KubeVersion = "v1.36.3"

// KubeAPIServerPath finds the kube-apiserver binary: TUSKER_KUBE_APISERVER_BIN, the install-deps
// cache, then PATH.
func KubeAPIServerPath() (string, error) {
	cached := filepath.Join(CacheDir(), "kube-apiserver-"+KubeVersion, "kube-apiserver")
	for _, c := range []string{os.Getenv("TUSKER_KUBE_APISERVER_BIN"), cached} {
		if c == "" {
			continue
		}
		if st, err := os.Stat(c); err == nil && !st.IsDir() {
			return c, nil
		}
	}
	if p, err := exec.LookPath("kube-apiserver"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("kube-apiserver binary not found (looked at $TUSKER_KUBE_APISERVER_BIN, %s and PATH): run `make deps`", cached)
}

// PrepareKube copies kube-apiserver and etcd into binDir; use it in Main's prepare.
func PrepareKube(binDir string) error {
	if err := PrepareEtcd(binDir); err != nil {
		return err
	}
	p, err := KubeAPIServerPath()
	if err != nil {
		return err
	}
	return CopyFile(p, filepath.Join(binDir, "kube-apiserver"), 0o755)
}

// KubeAPIServer is a real kube-apiserver on loopback over its own etcd: no kubelet, scheduler or
// controllers, so objects stay exactly as clients write them.
type KubeAPIServer struct {
	URL        string // https://127.0.0.1:port
	HostPort   string // 127.0.0.1:port
	Token      string // bearer token of user "admin" in group system:masters
	UserToken  string // bearer token of user "tusker", in no group: RBAC decides what it may do
	Kubeconfig string // a kubeconfig file for the admin, trusting the server's generated CA
	CACert     string // the server's self-signed certificate bundle
	Etcd       *Etcd

	bin, logFile string
	args         []string
	cmd          *exec.Cmd
	done         chan struct{}
}

// StartKubeAPIServer starts etcd and kube-apiserver on free ports in fresh directories and stops
// them when the test ends.
func StartKubeAPIServer(t testing.TB) *KubeAPIServer {
	t.Helper()
	bin := filepath.Join(os.Getenv(envBinDir), "kube-apiserver")
	if _, err := os.Stat(bin); os.Getenv(envBinDir) == "" || err != nil {
		p, err := KubeAPIServerPath()
		if err != nil {
			t.Fatal(err)
		}
		bin = p
	}
	etcd := StartEtcd(t)
	dir := t.TempDir()
	k, err := NewKubeAPIServer(dir, bin, etcd)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Stop)
	return k
}

func randomToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// NewKubeAPIServer prepares a server in dir on a free port over etcd (not started).
func NewKubeAPIServer(dir, bin string, etcd *Etcd) (*KubeAPIServer, error) {
	port, err := PickFreePort()
	if err != nil {
		return nil, err
	}
	k := &KubeAPIServer{
		HostPort: "127.0.0.1:" + strconv.Itoa(port),
		Token:    randomToken(), UserToken: randomToken(),
		Etcd: etcd, bin: bin,
		logFile:    filepath.Join(dir, "kube-apiserver.log"),
		Kubeconfig: filepath.Join(dir, "kubeconfig"),
		CACert:     filepath.Join(dir, "certs", "apiserver.crt"),
	}
	k.URL = "https://" + k.HostPort
	tokens := fmt.Sprintf("%s,admin,admin-uid,system:masters\n%s,tusker,tusker-uid\n", k.Token, k.UserToken)
	if err := os.WriteFile(filepath.Join(dir, "tokens.csv"), []byte(tokens), 0o600); err != nil {
		return nil, fmt.Errorf("writing the token file: %w", err)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generating the service account key: %w", err)
	}
	saKey := filepath.Join(dir, "sa.key")
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	if err := os.WriteFile(saKey, keyPEM, 0o600); err != nil {
		return nil, fmt.Errorf("writing the service account key: %w", err)
	}
	kubeconfig := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: admin
  user:
    token: %s
contexts:
- name: test
  context:
    cluster: test
    user: admin
current-context: test
`, k.URL, k.CACert, k.Token)
	if err := os.WriteFile(k.Kubeconfig, []byte(kubeconfig), 0o600); err != nil {
		return nil, fmt.Errorf("writing the kubeconfig: %w", err)
	}
	k.args = []string{
		"--etcd-servers=" + etcd.Endpoint, "--etcd-prefix=/registry-" + strconv.Itoa(port),
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port=" + strconv.Itoa(port),
		"--cert-dir=" + filepath.Join(dir, "certs"),
		"--token-auth-file=" + filepath.Join(dir, "tokens.csv"), "--authorization-mode=RBAC",
		"--service-account-issuer=" + k.URL, "--service-account-key-file=" + saKey,
		"--service-account-signing-key-file=" + saKey, "--service-cluster-ip-range=10.0.0.0/24",
		"--disable-admission-plugins=ServiceAccount", "--allow-privileged=true", "--profiling=false",
	}
	return k, nil
}

// Start (re)starts the server and waits until /readyz answers 200 and the default namespace exists.
func (k *KubeAPIServer) Start() error {
	logf, err := os.OpenFile(k.logFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("opening the kube-apiserver log: %w", err)
	}
	cmd := exec.Command(k.bin, k.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting kube-apiserver: %w", err)
	}
	k.cmd = cmd
	done := make(chan struct{})
	k.done = done
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // the readiness probe only
	defer client.CloseIdleConnections()
	probe := func(path string) bool {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, k.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+k.Token)
		resp, err := client.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		if probe("/readyz") && probe("/api/v1/namespaces/default") {
			return nil
		}
		select {
		case <-done:
			log, _ := os.ReadFile(k.logFile)
			return fmt.Errorf("kube-apiserver exited during start; log:\n%s", tail(log, 8000))
		case <-time.After(100 * time.Millisecond):
		}
	}
	log, _ := os.ReadFile(k.logFile)
	return fmt.Errorf("kube-apiserver at %s not ready within 90s; log:\n%s", k.URL, tail(log, 8000))
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// Stop kills the server; etcd keeps its data, so Start brings the same objects back.
func (k *KubeAPIServer) Stop() {
	if k.cmd != nil && k.cmd.Process != nil {
		_ = k.cmd.Process.Signal(syscall.SIGKILL)
		select {
		case <-k.done:
		case <-time.After(10 * time.Second):
		}
		k.cmd = nil
	}
}

// RestConfig is a client configuration for the admin, trusting the server's CA.
func (k *KubeAPIServer) RestConfig() *rest.Config { return k.RestConfigFor(k.Token) }

// RestConfigFor is a client configuration for the user of token (Token or UserToken).
func (k *KubeAPIServer) RestConfigFor(token string) *rest.Config {
	return &rest.Config{Host: k.URL, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{CAFile: k.CACert}}
}

// CreatePod creates a bare Pod (nothing runs it: there is no kubelet) and gives it ip as its
// status.podIP, as a kubelet would.
func (k *KubeAPIServer) CreatePod(t testing.TB, namespace, name string, labels map[string]string, ip string) *corev1.Pod {
	t.Helper()
	c, err := corev1client.NewForConfig(k.RestConfig())
	if err != nil {
		t.Fatalf("kubernetes client: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: labels},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "postgres", Image: "postgres"}}},
	}
	created, err := c.Pods(namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating pod %s/%s: %v", namespace, name, err)
	}
	if ip == "" {
		return created
	}
	created.Status.PodIP = ip
	created.Status.PodIPs = []corev1.PodIP{{IP: ip}}
	updated, err := c.Pods(namespace).UpdateStatus(ctx, created, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("setting the IP of pod %s/%s: %v", namespace, name, err)
	}
	return updated
}
