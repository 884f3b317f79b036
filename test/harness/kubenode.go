package harness

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// The single-node Kubernetes of KubeNode lives in its own network namespace, so that the rules
// kube-proxy writes, the pods' bridge and their veths never touch the machine's own network, and
// removing the namespace removes them all. The test process reaches it through a veth pair and
// two routes: the node's addresses (API server, pods) and the Services' ClusterIPs.
const (
	kubeNetNS    = "tsk-kube"
	kubeHostIf   = "tsk-kube0"   // the root namespace's end of the veth pair
	kubeNodeIf   = "tsk-kube1"   // the node's end
	kubeLinkHost = "10.213.11.1" // on kubeHostIf
	kubeLinkNode = "10.213.11.2" // on kubeNodeIf
	kubeBridge   = "tskkube0"    // the pods' bridge, inside the node's namespace
	kubeNodeIP   = "10.213.10.1" // the bridge's address: API server, kubelet, the pods' gateway
	kubePodCIDR  = "10.213.10.0/24"
	kubeSvcCIDR  = "10.213.12.0/24"
	kubeAPIIP    = "10.213.12.1" // the "kubernetes" Service, first address of kubeSvcCIDR
	kubeNodeName = "tusker-node"
	kubeLock     = "/run/tusker-kubenode.lock"
	// PauseImage is the pods' sandbox image, built by the harness (no registry to pull from).
	PauseImage = "localhost/tusker-pause:1"
)

// KubeNodeBins are the binaries a KubeNode runs.
type KubeNodeBins struct {
	Etcd, APIServer, ControllerManager, Scheduler, Kubelet, Proxy string
	Containerd, Ctr                                               string
}

// KubeNodeBinaries finds them: etcd and kube-apiserver as the DCS tests do, the node components
// in the install-deps cache (kube-node-<version>), containerd and ctr on PATH (Debian's). While
// make test still builds the node components in the background, it waits for them.
func KubeNodeBinaries() (KubeNodeBins, error) {
	var b KubeNodeBins
	var err error
	if err := waitForKubeNodeBuild(40 * time.Minute); err != nil {
		return b, err
	}
	if b.Etcd, err = EtcdPath(); err != nil {
		return b, err
	}
	if b.APIServer, err = KubeAPIServerPath(); err != nil {
		return b, err
	}
	dir := filepath.Join(CacheDir(), "kube-node-"+KubeVersion)
	for name, p := range map[string]*string{"kube-controller-manager": &b.ControllerManager,
		"kube-scheduler": &b.Scheduler, "kubelet": &b.Kubelet, "kube-proxy": &b.Proxy} {
		*p = filepath.Join(dir, name)
		if _, err := os.Stat(*p); err != nil {
			return b, fmt.Errorf("%s not found in %s: run `make deps`", name, dir)
		}
	}
	for name, p := range map[string]*string{"containerd": &b.Containerd, "ctr": &b.Ctr} {
		if *p, err = exec.LookPath(name); err != nil {
			return b, fmt.Errorf("%s not found (Debian's containerd package): run `make deps`", name)
		}
	}
	for _, plugin := range []string{"bridge", "host-local", "loopback", "portmap"} {
		if _, err := os.Stat(filepath.Join("/usr/lib/cni", plugin)); err != nil {
			return b, fmt.Errorf("CNI plugin %s not found in /usr/lib/cni (Debian's containernetworking-plugins): run `make deps`", plugin)
		}
	}
	return b, nil
}

// waitForKubeNodeBuild waits while the background build that `make test` starts
// (scripts/install-deps.sh --test) runs, and reports its log when it ended without the binaries.
func waitForKubeNodeBuild(timeout time.Duration) error {
	dir := filepath.Join(CacheDir(), "kube-node-"+KubeVersion)
	job := dir + ".building"
	complete := func() bool {
		for _, b := range []string{"kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy"} {
			if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(timeout)
	said := false
	for !complete() {
		b, err := os.ReadFile(job)
		if err != nil {
			return nil // no build running: the caller says what is missing
		}
		var pid int
		if _, err := fmt.Sscan(string(b), &pid); err != nil || syscall.Kill(pid, 0) != nil {
			log, _ := os.ReadFile(dir + ".log")
			return fmt.Errorf("the background build of the Kubernetes node components ended without them; the end of %s.log:\n%s", dir, tail(log, 4000))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the background build of the Kubernetes node components (pid %d, log %s.log) is still running after %s", pid, dir, timeout)
		}
		if !said {
			fmt.Fprintf(os.Stderr, "harness: waiting for the background build of the Kubernetes node components (log: %s.log)\n", dir)
			said = true
		}
		time.Sleep(2 * time.Second)
	}
	return nil
}

// KubeNode is a single-node Kubernetes of real components on this machine: etcd,
// kube-apiserver, kube-controller-manager (the StatefulSet and volume binding controllers),
// kube-scheduler, containerd with runc and the CNI bridge plugin, kubelet and kube-proxy.
type KubeNode struct {
	Dir      string // everything of the node: logs, certificates, containerd's and kubelet's state
	NodeName string
	NodeIP   string
	APIURL   string
	Config   *rest.Config // the cluster admin (system:masters)
	Client   kubernetes.Interface

	bins     KubeNodeBins
	ctrSock  string
	procs    []*kubeProc
	netnsPre map[string]bool // network namespaces that existed before the node (pods add cni-*)
	lock     *os.File
}

type kubeProc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

// StartKubeNode starts a node and stops it, removing everything it made, when the test ends. It
// needs root (network namespaces, containers). images are docker-archives to import into
// containerd; PauseImage is always there.
func StartKubeNode(t testing.TB, images ...string) *KubeNode {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("a Kubernetes node needs root (CI runs as root; run `sudo make test`)")
	}
	bins, err := KubeNodeBinaries()
	if err != nil {
		t.Fatal(err)
	}
	k := &KubeNode{NodeName: kubeNodeName, NodeIP: kubeNodeIP, APIURL: "https://" + kubeNodeIP + ":6443", bins: bins}
	if k.lock, err = os.OpenFile(kubeLock, os.O_CREATE|os.O_RDWR, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(k.lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatalf("another Kubernetes node runs on this machine (%s is locked): %v", kubeLock, err)
	}
	removeStaleKubeNode()
	// Short: containerd's and kubelet's socket paths must stay under 108 bytes.
	if k.Dir, err = os.MkdirTemp("/tmp", "tsk-kube-"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.stop(t) })
	if err := k.start(context.Background(), images); err != nil {
		k.dumpLogs(t)
		t.Fatal(err)
	}
	return k
}

func (k *KubeNode) start(ctx context.Context, images []string) error {
	k.netnsPre = netnsNames()
	if err := k.network(); err != nil {
		return err
	}
	if err := k.pki(); err != nil {
		return err
	}
	if err := k.startControlPlane(ctx); err != nil {
		return err
	}
	if err := k.startContainerd(ctx); err != nil {
		return err
	}
	pause, err := k.pauseImage()
	if err != nil {
		return err
	}
	for _, img := range append([]string{pause}, images...) {
		if out, err := k.ctr("images", "import", img); err != nil {
			return fmt.Errorf("importing %s into containerd: %w: %s", img, err, out)
		}
	}
	if err := k.startKubelet(ctx); err != nil {
		return err
	}
	return k.startProxy(ctx)
}

func runCmd(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func netnsNames() map[string]bool {
	names := map[string]bool{}
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		names[e.Name()] = true
	}
	return names
}

// network makes the node's namespace, the veth pair to it, the pods' bridge and the routes.
func (k *KubeNode) network() error {
	in := func(args ...string) error { return runCmd("ip", append([]string{"-n", kubeNetNS}, args...)...) }
	steps := []func() error{
		func() error { return runCmd("ip", "netns", "add", kubeNetNS) },
		func() error {
			return runCmd("ip", "link", "add", kubeHostIf, "type", "veth", "peer", "name", kubeNodeIf)
		},
		func() error { return runCmd("ip", "link", "set", kubeNodeIf, "netns", kubeNetNS) },
		func() error { return runCmd("ip", "addr", "add", kubeLinkHost+"/24", "dev", kubeHostIf) },
		func() error { return runCmd("ip", "link", "set", kubeHostIf, "up") },
		func() error { return in("link", "set", "lo", "up") },
		func() error { return in("addr", "add", kubeLinkNode+"/24", "dev", kubeNodeIf) },
		func() error { return in("link", "set", kubeNodeIf, "up") },
		func() error { return in("link", "add", kubeBridge, "type", "bridge") },
		func() error { return in("addr", "add", kubeNodeIP+"/24", "dev", kubeBridge) },
		func() error { return in("link", "set", kubeBridge, "up") },
		func() error { return in("route", "add", "default", "via", kubeLinkHost) },
		// The test reaches the pods and the ClusterIPs through the node, which forwards.
		func() error { return runCmd("ip", "route", "add", kubePodCIDR, "via", kubeLinkNode) },
		func() error { return runCmd("ip", "route", "add", kubeSvcCIDR, "via", kubeLinkNode) },
		func() error {
			return runCmd("ip", "netns", "exec", kubeNetNS, "sysctl", "-qw", "net.ipv4.ip_forward=1")
		},
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return fmt.Errorf("the node's network: %w", err)
		}
	}
	return nil
}

// removeStaleKubeNode removes what a killed earlier run left: its processes (still in the node's
// namespace), the namespace and its veth, and mounts in its directories.
func removeStaleKubeNode() {
	if out, err := exec.Command("ip", "netns", "pids", kubeNetNS).Output(); err == nil {
		for f := range strings.FieldsSeq(string(out)) {
			var pid int
			if _, err := fmt.Sscan(f, &pid); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		time.Sleep(200 * time.Millisecond)
		_ = runCmd("ip", "netns", "del", kubeNetNS)
	}
	_ = runCmd("ip", "link", "del", kubeHostIf)
	unmountUnder("/tmp/tsk-kube-")
	old, _ := filepath.Glob("/tmp/tsk-kube-*")
	for _, d := range old {
		_ = os.RemoveAll(d)
	}
}

// unmountUnder lazily unmounts every mount point under prefix, deepest first.
func unmountUnder(prefix string) {
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return
	}
	var points []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 1 && strings.HasPrefix(fields[1], prefix) {
			points = append(points, fields[1])
		}
	}
	f.Close()
	sort.Sort(sort.Reverse(sort.StringSlice(points)))
	for _, p := range points {
		_ = syscall.Unmount(p, syscall.MNT_DETACH)
	}
}

// nodeTokens are the bearer tokens of the node's users (the API server's token file).
var nodeTokens = []struct{ user, groups, file string }{
	{"admin", "system:masters", "admin"},
	{"system:node:" + kubeNodeName, "system:nodes", "kubelet"},
	{"system:kube-controller-manager", "", "controller-manager"},
	{"system:kube-scheduler", "", "scheduler"},
	{"system:kube-proxy", "", "proxy"},
}

// pki writes a CA, the API server's certificate (for the node's address and the "kubernetes"
// Service, as the pods reach it), the service account key, the token file and a kubeconfig per
// component.
func (k *KubeNode) pki() error {
	dir := filepath.Join(k.Dir, "pki")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	caKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tusker-test-kube-ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(48 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	ca, _ := x509.ParseCertificate(caDER)
	srvKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	srvTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "kube-apiserver"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(48 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP(kubeNodeIP), net.ParseIP(kubeAPIIP), net.ParseIP("127.0.0.1")},
		DNSNames:    []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	files := map[string][]byte{
		"ca.crt":        pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		"ca.key":        pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(caKey)}),
		"apiserver.crt": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srvDER}),
		"apiserver.key": pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(srvKey)}),
		"sa.key":        pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(saKey)}),
	}
	var tokens strings.Builder
	for _, u := range nodeTokens {
		tok := randomToken()
		fmt.Fprintf(&tokens, "%s,%s,%s", tok, u.user, u.file)
		if u.groups != "" {
			fmt.Fprintf(&tokens, ",%s", u.groups)
		}
		tokens.WriteString("\n")
		files[u.file+".kubeconfig"] = fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters:
- name: node
  cluster: {server: %q, certificate-authority: %q}
users:
- name: %s
  user: {token: %s}
contexts:
- name: node
  context: {cluster: node, user: %s}
current-context: node
`, k.APIURL, filepath.Join(dir, "ca.crt"), u.file, tok, u.file)
		if u.file == "admin" {
			k.Config = &rest.Config{Host: k.APIURL, BearerToken: tok, TLSClientConfig: rest.TLSClientConfig{CAData: files["ca.crt"]},
				QPS: 50, Burst: 100}
		}
	}
	files["tokens.csv"] = []byte(tokens.String())
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return err
		}
	}
	k.Client, err = kubernetes.NewForConfig(k.Config)
	return err
}

func (k *KubeNode) pkiPath(name string) string { return filepath.Join(k.Dir, "pki", name) }

// spawn starts a component inside the node's network namespace, its output in Dir/<name>.log.
func (k *KubeNode) spawn(name, bin string, args ...string) (*kubeProc, error) {
	logPath := filepath.Join(k.Dir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("nsenter", append([]string{"--net=/run/netns/" + kubeNetNS, "--", bin}, args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &kubeProc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); logf.Close(); close(p.done) }()
	k.procs = append(k.procs, p)
	return p, nil
}

// waitUntil polls ready until it holds, failing early when p exits.
func waitUntil(ctx context.Context, p *kubeProc, timeout time.Duration, what string, ready func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := ready()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s: %w (log: %s)", what, timeout, err, p.log)
		}
		select {
		case <-p.done:
			b, _ := os.ReadFile(p.log)
			return fmt.Errorf("%s exited while starting; log:\n%s", what, tail(b, 6000))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (k *KubeNode) startControlPlane(ctx context.Context) error {
	etcdURL := "http://" + kubeNodeIP + ":2379"
	p, err := k.spawn("etcd", k.bins.Etcd, "--name=node", "--data-dir="+filepath.Join(k.Dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls=http://127.0.0.1:2380", "--initial-advertise-peer-urls=http://127.0.0.1:2380",
		"--initial-cluster=node=http://127.0.0.1:2380", "--log-level=warn")
	if err != nil {
		return err
	}
	plain := &http.Client{Timeout: time.Second}
	if err := waitUntil(ctx, p, 30*time.Second, "etcd", func() error { return httpOK(plain, etcdURL+"/health", "") }); err != nil {
		return err
	}
	p, err = k.spawn("kube-apiserver", k.bins.APIServer,
		"--etcd-servers="+etcdURL, "--bind-address="+kubeNodeIP, "--advertise-address="+kubeNodeIP, "--secure-port=6443",
		"--tls-cert-file="+k.pkiPath("apiserver.crt"), "--tls-private-key-file="+k.pkiPath("apiserver.key"),
		"--client-ca-file="+k.pkiPath("ca.crt"), "--token-auth-file="+k.pkiPath("tokens.csv"),
		"--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
		"--service-account-issuer=https://kubernetes.default.svc", "--service-account-key-file="+k.pkiPath("sa.key"),
		"--service-account-signing-key-file="+k.pkiPath("sa.key"), "--service-cluster-ip-range="+kubeSvcCIDR,
		"--allow-privileged=true", "--profiling=false")
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(k.Config.TLSClientConfig.CAData)
	secure := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	if err := waitUntil(ctx, p, 90*time.Second, "kube-apiserver", func() error {
		return httpOK(secure, k.APIURL+"/readyz", k.Config.BearerToken)
	}); err != nil {
		return err
	}
	kc := func(name string) string { return k.pkiPath(name + ".kubeconfig") }
	if _, err := k.spawn("kube-controller-manager", k.bins.ControllerManager,
		"--kubeconfig="+kc("controller-manager"), "--authentication-kubeconfig="+kc("controller-manager"),
		"--authorization-kubeconfig="+kc("controller-manager"), "--use-service-account-credentials=true",
		"--service-account-private-key-file="+k.pkiPath("sa.key"), "--root-ca-file="+k.pkiPath("ca.crt"),
		"--cluster-signing-cert-file="+k.pkiPath("ca.crt"), "--cluster-signing-key-file="+k.pkiPath("ca.key"),
		"--controllers=*,-nodeipam,-cloud-node-lifecycle", "--leader-elect=false", "--secure-port=0",
		"--profiling=false"); err != nil {
		return err
	}
	_, err = k.spawn("kube-scheduler", k.bins.Scheduler, "--kubeconfig="+kc("scheduler"),
		"--authentication-kubeconfig="+kc("scheduler"), "--authorization-kubeconfig="+kc("scheduler"),
		"--leader-elect=false", "--secure-port=0")
	return err
}

func httpOK(c *http.Client, url, token string) error {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return nil
}

// startContainerd runs containerd with the CRI plugin on its own socket, root and state, the
// pods on the harness's bridge. restrict_oom_score_adj: the kubelet asks for negative OOM scores
// (-998 for sandboxes), which a process without CAP_SYS_RESOURCE (a sandboxed CI machine) may not
// set; containerd then keeps them at or above its own.
func (k *KubeNode) startContainerd(ctx context.Context) error {
	k.ctrSock = filepath.Join(k.Dir, "containerd.sock")
	cni := filepath.Join(k.Dir, "cni")
	if err := os.MkdirAll(cni, 0o755); err != nil {
		return err
	}
	conflist := fmt.Sprintf(`{
  "cniVersion": "0.4.0",
  "name": "tusker-kube",
  "plugins": [
    {"type": "bridge", "bridge": %q, "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": %q, "rangeStart": "10.213.10.10", "gateway": %q}]],
              "routes": [{"dst": "0.0.0.0/0"}], "dataDir": %q}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}`, kubeBridge, kubePodCIDR, kubeNodeIP, filepath.Join(k.Dir, "cni-ipam"))
	if err := os.WriteFile(filepath.Join(cni, "10-tusker.conflist"), []byte(conflist), 0o644); err != nil {
		return err
	}
	conf := fmt.Sprintf(`version = 2
root = %q
state = %q
[grpc]
  address = %q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %q
`, filepath.Join(k.Dir, "containerd"), filepath.Join(k.Dir, "containerd-state"), k.ctrSock, PauseImage, cni)
	path := filepath.Join(k.Dir, "containerd.toml")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return err
	}
	p, err := k.spawn("containerd", k.bins.Containerd, "--config", path)
	if err != nil {
		return err
	}
	return waitUntil(ctx, p, 30*time.Second, "containerd", func() error {
		_, err := k.ctr("version")
		return err
	})
}

// ctr runs containerd's client in the Kubernetes namespace of the node's containerd.
func (k *KubeNode) ctr(args ...string) (string, error) {
	out, err := exec.Command(k.bins.Ctr, append([]string{"--address", k.ctrSock, "--namespace", "k8s.io"}, args...)...).CombinedOutput()
	return string(out), err
}

// TagImage gives an imported image another name in the node's containerd (a tag other than
// latest keeps the kubelet from trying to pull it).
func (k *KubeNode) TagImage(from, to string) error {
	if out, err := k.ctr("images", "tag", "--force", from, to); err != nil {
		return fmt.Errorf("ctr images tag %s %s: %w: %s", from, to, err, out)
	}
	return nil
}

func (k *KubeNode) startKubelet(ctx context.Context) error {
	cfg := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# Recent kubelets refuse cgroup v1 unless told; this machine has a v1 hierarchy.
failCgroupV1: false
failSwapOn: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://%s
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: %q}
authorization: {mode: AlwaysAllow}
address: %s
port: 10250
readOnlyPort: 0
healthzPort: 0
resolvConf: /etc/resolv.conf
evictionHard: {memory.available: "100Mi", nodefs.available: "1%%", imagefs.available: "1%%", nodefs.inodesFree: "1%%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
enforceNodeAllocatable: []
serializeImagePulls: false
`, k.ctrSock, k.pkiPath("ca.crt"), kubeNodeIP)
	path := filepath.Join(k.Dir, "kubelet.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return err
	}
	p, err := k.spawn("kubelet", k.bins.Kubelet, "--config="+path, "--kubeconfig="+k.pkiPath("kubelet.kubeconfig"),
		"--hostname-override="+kubeNodeName, "--node-ip="+kubeNodeIP, "--root-dir="+filepath.Join(k.Dir, "kubelet"),
		"--cert-dir="+filepath.Join(k.Dir, "kubelet-pki"))
	if err != nil {
		return err
	}
	return waitUntil(ctx, p, 90*time.Second, "kubelet (node Ready)", func() error {
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		n, err := k.Client.CoreV1().Nodes().Get(c, kubeNodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				return nil
			}
		}
		return errors.New("node not Ready")
	})
}

func (k *KubeNode) startProxy(ctx context.Context) error {
	cfg := fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: %q}
mode: iptables
clusterCIDR: %s
hostnameOverride: %s
bindAddress: %s
healthzBindAddress: ""
metricsBindAddress: ""
nodePortAddresses: [primary]
conntrack: {maxPerCore: 0, min: 0}
`, k.pkiPath("proxy.kubeconfig"), kubePodCIDR, kubeNodeName, kubeNodeIP)
	path := filepath.Join(k.Dir, "kube-proxy.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return err
	}
	p, err := k.spawn("kube-proxy", k.bins.Proxy, "--config="+path)
	if err != nil {
		return err
	}
	// Ready when the "kubernetes" Service's ClusterIP leads to the API server.
	return waitUntil(ctx, p, 60*time.Second, "kube-proxy (the kubernetes Service)", func() error {
		c, err := net.DialTimeout("tcp", kubeAPIIP+":443", time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	})
}

// pauseImage writes the sandbox image's archive: a static Go program that sleeps until it is
// told to stop and reaps what is reparented to it, as Kubernetes's pause does.
func (k *KubeNode) pauseImage() (string, error) {
	dir := filepath.Join(k.Dir, "pause")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	for name, content := range map[string]string{"main.go": pauseSource, "go.mod": "module pause\n\ngo 1.26\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return "", err
		}
	}
	bin := filepath.Join(dir, "pause")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the pause program: %w: %s", err, out)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		return "", err
	}
	archive := filepath.Join(dir, "pause.tar")
	return archive, WriteImageArchive(archive, PauseImage, map[string]ImageFile{"pause": {Data: b, Mode: 0o755}},
		[]string{"/pause"}, "65535:65535")
}

const pauseSource = `package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			if pid, _ := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil); pid <= 0 {
				break
			}
		}
	}
}
`

// AddHostPathVolumes creates n PersistentVolumes of size on directories of the node owned by
// uid:gid, with no storage class: what a StatefulSet's claims without a storage class bind to.
// The harness is the storage administrator here, as a cluster's provisioner would be.
func (k *KubeNode) AddHostPathVolumes(ctx context.Context, n int, size string, uid, gid int) error {
	for i := range n {
		dir := filepath.Join(k.Dir, "volumes", fmt.Sprintf("pv-%d", i))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		if err := os.Chown(dir, uid, gid); err != nil {
			return err
		}
		dirType := corev1.HostPathDirectory
		pv := &corev1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("tusker-pv-%d", i)},
			Spec: corev1.PersistentVolumeSpec{
				Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)},
				AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
				PersistentVolumeSource:        corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: dir, Type: &dirType}},
			},
		}
		if _, err := k.Client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("creating %s: %w", pv.Name, err)
		}
	}
	return nil
}

// Log returns the tail of a component's log ("kubelet", "containerd", ...).
func (k *KubeNode) Log(name string, bytes int) string {
	b, _ := os.ReadFile(filepath.Join(k.Dir, name+".log"))
	return string(tail(b, bytes))
}

func (k *KubeNode) dumpLogs(t testing.TB) {
	for _, p := range k.procs {
		b, _ := os.ReadFile(p.log)
		t.Logf("--- %s log (tail):\n%s", p.name, tail(b, 3000))
	}
}

// stop ends every component and removes what the node made: containers, mounts, the pods'
// network namespaces, the node's namespace with its veth and bridge, the kubelet's cgroups.
func (k *KubeNode) stop(t testing.TB) {
	if t.Failed() {
		k.dumpLogs(t)
	}
	stopProc := func(name string) {
		for _, p := range k.procs {
			if p.name != name || p.cmd.Process == nil {
				continue
			}
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
				<-p.done
			}
		}
	}
	stopProc("kubelet")
	stopProc("kube-proxy")
	if k.ctrSock != "" {
		if out, err := k.ctr("tasks", "ls", "-q"); err == nil {
			for id := range strings.FieldsSeq(out) {
				_, _ = k.ctr("tasks", "kill", "--signal", "SIGKILL", id)
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	stopProc("containerd")
	// The shims of this containerd outlive it; they name its socket on their command line.
	if k.ctrSock != "" {
		killMatching(k.ctrSock)
	}
	for _, name := range []string{"kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"} {
		stopProc(name)
	}
	if k.Dir != "" {
		unmountUnder(k.Dir + "/")
	}
	for name := range netnsNames() {
		if !k.netnsPre[name] && strings.HasPrefix(name, "cni-") {
			_ = runCmd("ip", "netns", "del", name)
		}
	}
	_ = runCmd("ip", "netns", "del", kubeNetNS)
	_ = runCmd("ip", "link", "del", kubeHostIf)
	removeKubeletCgroups()
	if k.Dir != "" {
		_ = os.RemoveAll(k.Dir)
	}
	if k.lock != nil {
		k.lock.Close()
	}
}

// killMatching kills the processes whose command line contains s.
func killMatching(s string) {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscan(e.Name(), &pid); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(b), s) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// removeKubeletCgroups removes the cgroups the kubelet made (kubepods and its QoS classes) in
// every v1 hierarchy, deepest first; cgroups still holding a process stay.
func removeKubeletCgroups() {
	roots, _ := filepath.Glob("/sys/fs/cgroup/*/kubepods*")
	for _, root := range roots {
		var dirs []string
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		slices.Reverse(dirs)
		for _, d := range dirs {
			_ = syscall.Rmdir(d)
		}
	}
}
