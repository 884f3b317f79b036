package kubernetes

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"

	"github.com/tusker-ha/tusker/dcs"
	"github.com/tusker-ha/tusker/test/harness"
)

func TestMain(m *testing.M) { harness.Main(m, harness.PrepareKube) }

func itoa(i int) string { return strconv.Itoa(i) }

// testLogger shows warnings (an API warning, a failed Service creation) and hides the rest.
func testLogger() *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("TUSKER_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

func admin(t testing.TB, api *harness.KubeAPIServer) *k8s.Clientset {
	t.Helper()
	cfg := api.RestConfig()
	cfg.WarningHandler = rest.NoWarnings{} // Endpoints are deprecated: the tests know
	cs, err := k8s.NewForConfig(cfg)
	require.NoError(t, err)
	return cs
}

func tctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func ensureNamespace(t testing.TB, api *harness.KubeAPIServer, ns string) {
	t.Helper()
	_, err := admin(t, api).CoreV1().Namespaces().Create(tctx(t),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if !apierrors.IsAlreadyExists(err) {
		require.NoError(t, err)
	}
}

// ensurePod creates member name's pod in scope (labelled cluster-name=scope) unless it exists.
func ensurePod(t testing.TB, api *harness.KubeAPIServer, ns, scope, name string) {
	t.Helper()
	_, err := admin(t, api).CoreV1().Pods(ns).Get(tctx(t), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		api.CreatePod(t, ns, name, map[string]string{"cluster-name": scope}, podIP(name))
		return
	}
	require.NoError(t, err)
}

// kenv is one API server shared by the Kubernetes-specific tests, each in a scope of its own.
type kenv struct {
	api *harness.KubeAPIServer
	cs  *k8s.Clientset
}

func (e *kenv) open(t *testing.T, o Options) *Backend {
	t.Helper()
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	ensurePod(t, e.api, o.Namespace, o.Scope, o.Name)
	if o.RestConfig == nil && o.Kubeconfig == "" {
		o.RestConfig = e.api.RestConfig()
	}
	if o.PodIP == "" {
		o.PodIP = podIP(o.Name)
	}
	if o.TTL == 0 {
		o.TTL = 3 * time.Second
	}
	if o.RetryTimeout == 0 {
		o.RetryTimeout = 2 * time.Second
	}
	o.Logger = testLogger()
	b, err := New(o)
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func (e *kenv) configMap(t *testing.T, ns, name string) *corev1.ConfigMap {
	t.Helper()
	cm, err := e.cs.CoreV1().ConfigMaps(ns).Get(tctx(t), name, metav1.GetOptions{})
	require.NoError(t, err)
	return cm
}

func (e *kenv) pod(t *testing.T, ns, name string) *corev1.Pod {
	t.Helper()
	p, err := e.cs.CoreV1().Pods(ns).Get(tctx(t), name, metav1.GetOptions{})
	require.NoError(t, err)
	return p
}

// patroniTime is how Patroni writes acquireTime and renewTime: Python's isoformat() in UTC.
var patroniTime = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?\+00:00$`)

func TestKubernetes(t *testing.T) {
	api := harness.StartKubeAPIServer(t)
	e := &kenv{api: api, cs: admin(t, api)}
	t.Run("objects, annotations and labels as Patroni names them", e.annotationsAndLabels)
	t.Run("endpoints mode points the leader Endpoints at its pod", e.endpointsMode)
	t.Run("lease mode keeps the lock in a Lease", e.leaseMode)
	t.Run("leader expires by the observer's clock", e.localClock)
	t.Run("a deleted pod is no member", e.podDeleted)
	t.Run("rbac.yaml is enough", e.rbac)
	t.Run("kubeconfig loading", e.kubeconfig)
	t.Run("slow API server", e.slow)
	t.Run("short black hole", e.shortBlackhole)
	t.Run("stalled connection", e.stalledConnection)
	t.Run("long black hole", e.longBlackhole)
	t.Run("concurrent writer on the leader object", e.concurrentWriter)
	t.Run("retriable HTTP codes", e.httpCodes)
}

func (e *kenv) annotationsAndLabels(t *testing.T) {
	ctx := tctx(t)
	opts := func(name string) Options {
		return Options{Scope: "names", Name: name, TmpRoleLabel: "tmp-role",
			BootstrapLabels: map[string]string{"bootstrapping": "yes"}, Labels: map[string]string{"app": "pg"}}
	}
	a, b := e.open(t, opts("n1")), e.open(t, opts("n2"))
	// The pods need the cluster labels to be listed (the harness created them with the scope label).
	for _, n := range []string{"n1", "n2"} {
		_, err := e.cs.CoreV1().Pods("default").Patch(ctx, n, types.MergePatchType,
			[]byte(`{"metadata":{"labels":{"app":"pg"}}}`), metav1.PatchOptions{})
		require.NoError(t, err)
	}

	ok, err := a.Initialize(ctx, "", true)
	require.NoError(t, err)
	require.True(t, ok)
	require.NoError(t, a.SetConfig(ctx, []byte(`{"ttl":30}`), 0))
	cm := e.configMap(t, "default", "names-config")
	require.Equal(t, map[string]string{"app": "pg", "cluster-name": "names"}, cm.Labels)
	require.Equal(t, "", cm.Annotations["initialize"])
	require.Equal(t, `{"ttl":30}`, cm.Annotations["config"])
	require.NoError(t, a.SetHistory(ctx, []dcs.HistoryEntry{{Timeline: 1, LSN: 100, Reason: "x"}}))
	require.Equal(t, `[[1,100,"x"]]`, e.configMap(t, "default", "names-config").Annotations["history"])

	require.NoError(t, a.TouchMember(ctx, dcs.MemberData{State: "running", Role: "replica"}))
	ok, err = a.AcquireLeader(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	l := e.configMap(t, "default", "names-leader")
	require.Equal(t, "n1", l.Annotations["leader"])
	require.Equal(t, "3", l.Annotations["ttl"])
	require.Equal(t, "0", l.Annotations["transitions"])
	require.Regexp(t, patroniTime, l.Annotations["acquireTime"])
	require.Regexp(t, patroniTime, l.Annotations["renewTime"])
	require.Equal(t, map[string]string{"app": "pg", "cluster-name": "names"}, l.Labels)
	renewed := l.Annotations["renewTime"]
	time.Sleep(10 * time.Millisecond)
	require.NoError(t, a.RenewLeader(ctx))
	l = e.configMap(t, "default", "names-leader")
	require.NotEqual(t, renewed, l.Annotations["renewTime"])

	require.NoError(t, a.SetStatus(ctx, dcs.Status{Optime: 123, Slots: map[string]int64{"n2": 120}, RetainSlots: []string{"n1", "n2"}}))
	require.NoError(t, a.SetFailsafe(ctx, map[string]string{"n1": "http://n1:8008/patroni"}))
	l = e.configMap(t, "default", "names-leader")
	require.Equal(t, "123", l.Annotations["optime"])
	require.Equal(t, `{"n2":120}`, l.Annotations["slots"])
	require.Equal(t, `["n1","n2"]`, l.Annotations["retain_slots"])
	require.Equal(t, `{"n1":"http://n1:8008/patroni"}`, l.Annotations["failsafe"])

	// Role labels: the leader's says primary (and the pre-4.0 temporary label master).
	require.NoError(t, a.TouchMember(ctx, dcs.MemberData{State: "running", Role: "primary"}))
	p := e.pod(t, "default", "n1")
	require.Equal(t, "primary", p.Labels["role"])
	require.Equal(t, "master", p.Labels["tmp-role"])
	var st dcs.MemberData
	require.NoError(t, json.Unmarshal([]byte(p.Annotations["status"]), &st))
	require.Equal(t, dcs.MemberData{State: "running", Role: "primary"}, st)

	// A cloning replica has no role yet and carries the bootstrap labels, which go afterwards.
	require.NoError(t, b.TouchMember(ctx, dcs.MemberData{State: "creating replica", Role: "uninitialized"}))
	p = e.pod(t, "default", "n2")
	require.NotContains(t, p.Labels, "role")
	require.Equal(t, "yes", p.Labels["bootstrapping"])
	require.NoError(t, b.TouchMember(ctx, dcs.MemberData{State: "running", Role: "replica"}))
	p = e.pod(t, "default", "n2")
	require.Equal(t, "replica", p.Labels["role"])
	require.Equal(t, "replica", p.Labels["tmp-role"])
	require.NotContains(t, p.Labels, "bootstrapping")
	require.NoError(t, b.TouchMember(ctx, dcs.MemberData{State: "stopped", Role: "replica"}))
	p = e.pod(t, "default", "n2")
	require.NotContains(t, p.Labels, "role", "no role label while postgres is not running")
	require.NotContains(t, p.Labels, "tmp-role")

	require.NoError(t, a.SetFailover(ctx, dcs.Failover{Leader: "n1", Member: "n2"}, 0))
	f := e.configMap(t, "default", "names-failover")
	require.Equal(t, map[string]string{"leader": "n1", "member": "n2"}, f.Annotations)
	require.NoError(t, a.SetSync(ctx, dcs.Sync{Leader: "n1", SyncStandby: []string{"n2"}, Quorum: 1}, 0))
	s := e.configMap(t, "default", "names-sync")
	require.Equal(t, map[string]string{"leader": "n1", "sync_standby": "n2", "quorum": "1"}, s.Annotations)

	c, err := b.Cluster(ctx)
	require.NoError(t, err)
	require.Equal(t, "n1", c.LeaderName())
	require.Equal(t, int64(123), c.Status.Optime)
	require.Len(t, c.Members, 2)
	require.Equal(t, []string{"n2"}, c.Sync.SyncStandby)
	require.Equal(t, "n2", c.Failover.Member)

	// Release: the leader annotation goes; the next holder counts a transition.
	require.NoError(t, a.ReleaseLeader(ctx))
	require.NotContains(t, e.configMap(t, "default", "names-leader").Annotations, "leader")
	require.NoError(t, a.TouchMember(ctx, dcs.MemberData{State: "running", Role: "replica"}))
	require.Equal(t, "replica", e.pod(t, "default", "n1").Labels["role"], "a released leader is a follower")
	ok, err = b.AcquireLeader(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	l = e.configMap(t, "default", "names-leader")
	require.Equal(t, "n2", l.Annotations["leader"])
	require.Equal(t, "1", l.Annotations["transitions"])

	require.NoError(t, a.DeleteMember(ctx))
	p = e.pod(t, "default", "n1")
	require.NotContains(t, p.Annotations, "status")
	require.NotContains(t, p.Labels, "role")

	require.NoError(t, b.DeleteCluster(ctx))
	for _, n := range []string{"names-leader", "names-config", "names-failover", "names-sync"} {
		_, err := e.cs.CoreV1().ConfigMaps("default").Get(ctx, n, metav1.GetOptions{})
		require.True(t, apierrors.IsNotFound(err), "%s after DeleteCluster: %v", n, err)
	}
	require.NotContains(t, e.pod(t, "default", "n2").Annotations, "status")
}

func (e *kenv) endpointsMode(t *testing.T) {
	ctx := tctx(t)
	_, err := New(Options{Scope: "ep", Name: "x", UseEndpoints: true, RestConfig: e.api.RestConfig()})
	require.ErrorContains(t, err, "pod_ip", "Endpoints mode without a pod IP")

	ports := []Port{{Name: "postgresql", Port: 5432, Protocol: "TCP"}, {Name: "api", Port: 8008}}
	a := e.open(t, Options{Scope: "ep", Name: "e1", UseEndpoints: true, PodIP: "192.0.2.21", Ports: ports})
	b := e.open(t, Options{Scope: "ep", Name: "e2", UseEndpoints: true, PodIP: "192.0.2.22", Ports: ports})
	require.NoError(t, a.SetConfig(ctx, []byte(`{}`), 0))
	_, err = e.cs.CoreV1().Services("default").Get(ctx, "ep-config", metav1.GetOptions{})
	require.NoError(t, err, "the headless config Service protects the config Endpoints")
	_, err = e.cs.CoreV1().Endpoints("default").Get(ctx, "ep-config", metav1.GetOptions{})
	require.NoError(t, err)

	_, err = a.Cluster(ctx) // learns its pod's uid for the targetRef
	require.NoError(t, err)
	ok, err := a.AcquireLeader(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	ep, err := e.cs.CoreV1().Endpoints("default").Get(ctx, "ep", metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, "e1", ep.Annotations["leader"])
	require.Len(t, ep.Subsets, 1)
	require.Len(t, ep.Subsets[0].Addresses, 1)
	addr := ep.Subsets[0].Addresses[0]
	require.Equal(t, "192.0.2.21", addr.IP)
	require.Equal(t, "Pod", addr.TargetRef.Kind)
	require.Equal(t, "e1", addr.TargetRef.Name)
	require.Equal(t, e.pod(t, "default", "e1").UID, addr.TargetRef.UID)
	require.ElementsMatch(t, []corev1.EndpointPort{{Name: "postgresql", Port: 5432, Protocol: "TCP"},
		{Name: "api", Port: 8008, Protocol: "TCP"}}, ep.Subsets[0].Ports)

	ok, err = b.AcquireLeader(ctx)
	require.NoError(t, err)
	require.False(t, ok)
	require.NoError(t, a.RenewLeader(ctx))
	require.NoError(t, a.ReleaseLeader(ctx))
	ep, err = e.cs.CoreV1().Endpoints("default").Get(ctx, "ep", metav1.GetOptions{})
	require.NoError(t, err)
	require.Empty(t, ep.Subsets, "a released leader's Endpoints route nowhere")
	require.NotContains(t, ep.Annotations, "leader")

	ok, err = b.AcquireLeader(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	ep, err = e.cs.CoreV1().Endpoints("default").Get(ctx, "ep", metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, "192.0.2.22", ep.Subsets[0].Addresses[0].IP, "the new leader's address, in the update that took the lock")
	require.Equal(t, "e2", ep.Annotations["leader"])
}

func (e *kenv) leaseMode(t *testing.T) {
	ctx := tctx(t)
	a := e.open(t, Options{Scope: "ls", Name: "l1", UseLeases: true})
	b := e.open(t, Options{Scope: "ls", Name: "l2", UseLeases: true, TTL: 5 * time.Second})
	ok, err := a.AcquireLeader(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	lease := func() *coordinationv1.Lease {
		l, err := e.cs.CoordinationV1().Leases("default").Get(ctx, "ls-leader", metav1.GetOptions{})
		require.NoError(t, err)
		return l
	}
	l := lease()
	require.Equal(t, "l1", *l.Spec.HolderIdentity)
	require.Equal(t, int32(3), *l.Spec.LeaseDurationSeconds)
	require.Equal(t, int32(0), *l.Spec.LeaseTransitions)
	require.NotNil(t, l.Spec.AcquireTime)
	require.WithinDuration(t, time.Now(), l.Spec.RenewTime.Time, 5*time.Second)
	require.Equal(t, "ls", l.Labels["cluster-name"])
	require.NotContains(t, l.Annotations, "leader", "the lock is in the spec only")

	require.NoError(t, a.SetStatus(ctx, dcs.Status{Optime: 77}))
	require.Equal(t, "77", lease().Annotations["optime"])
	require.NoError(t, a.RenewLeader(ctx), "a renewal after our own status write")
	_, err = e.cs.CoreV1().ConfigMaps("default").Get(ctx, "ls-leader", metav1.GetOptions{})
	require.True(t, apierrors.IsNotFound(err), "no leader ConfigMap in lease mode")

	ok, err = b.AcquireLeader(ctx)
	require.NoError(t, err)
	require.False(t, ok)
	require.NoError(t, a.ReleaseLeader(ctx))
	require.Nil(t, lease().Spec.HolderIdentity)
	ok, err = b.AcquireLeader(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	l = lease()
	require.Equal(t, "l2", *l.Spec.HolderIdentity)
	require.Equal(t, int32(5), *l.Spec.LeaseDurationSeconds)
	require.Equal(t, int32(1), *l.Spec.LeaseTransitions)
	c, err := a.Cluster(ctx)
	require.NoError(t, err)
	require.Equal(t, "l2", c.LeaderName())
	require.Equal(t, int64(77), c.Status.Optime)
}

// localClock: a writer whose clock runs an hour ahead (renewTime in the future) does not keep the
// lock past ttl, and one an hour behind does not lose it early: only when this process saw the
// object change counts.
func (e *kenv) localClock(t *testing.T) {
	for _, leases := range []bool{false, true} {
		for _, skew := range []time.Duration{time.Hour, -time.Hour} {
			name := "configmap"
			if leases {
				name = "lease"
			}
			t.Run(name+" skew "+skew.String(), func(t *testing.T) {
				ctx := tctx(t)
				scope := "clock" + strconv.Itoa(int(time.Now().UnixNano()%1_000_000))
				obs := e.open(t, Options{Scope: scope, Name: "o1", UseLeases: leases, TTL: 30 * time.Second})
				skewed := dcs.ISOTime(time.Now().Add(skew).UTC())
				meta := metav1.ObjectMeta{Name: scope + "-leader", Labels: map[string]string{"cluster-name": scope}}
				if leases {
					holder, ttl, tr := "ghost", int32(2), int32(4)
					mt := metav1.NewMicroTime(time.Now().Add(skew))
					_, err := e.cs.CoordinationV1().Leases("default").Create(ctx, &coordinationv1.Lease{ObjectMeta: meta,
						Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &ttl,
							AcquireTime: &mt, RenewTime: &mt, LeaseTransitions: &tr}}, metav1.CreateOptions{})
					require.NoError(t, err)
				} else {
					meta.Annotations = map[string]string{"leader": "ghost", "ttl": "2", "transitions": "4",
						"acquireTime": skewed, "renewTime": skewed}
					_, err := e.cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: meta}, metav1.CreateOptions{})
					require.NoError(t, err)
				}
				c, err := obs.Cluster(ctx)
				require.NoError(t, err)
				seen := time.Now()
				require.Equal(t, "ghost", c.LeaderName(), "a leader first seen now is valid for its ttl")
				ok, err := obs.AcquireLeader(ctx)
				require.NoError(t, err)
				require.False(t, ok)
				for {
					c, err = obs.Cluster(ctx)
					require.NoError(t, err)
					if c.Leader == nil {
						break
					}
					require.Less(t, time.Since(seen), 3*time.Second, "the leader outlived its ttl (2s) by the observer's clock")
					time.Sleep(50 * time.Millisecond)
				}
				require.GreaterOrEqual(t, time.Since(seen), 2*time.Second, "the leader expired before its ttl by the observer's clock")
				ok, err = obs.AcquireLeader(ctx)
				require.NoError(t, err)
				require.True(t, ok)
				c, err = obs.Cluster(ctx)
				require.NoError(t, err)
				require.Equal(t, "o1", c.LeaderName())
			})
		}
	}
}

func (e *kenv) podDeleted(t *testing.T) {
	ctx := tctx(t)
	a, b := e.open(t, Options{Scope: "gone", Name: "g1"}), e.open(t, Options{Scope: "gone", Name: "g2"})
	require.NoError(t, a.TouchMember(ctx, dcs.MemberData{State: "running", Role: "replica"}))
	require.NoError(t, b.TouchMember(ctx, dcs.MemberData{State: "running", Role: "replica"}))
	c, err := b.Cluster(ctx)
	require.NoError(t, err)
	require.Len(t, c.Members, 2)
	require.NoError(t, e.cs.CoreV1().Pods("default").Delete(ctx, "g1", metav1.DeleteOptions{}))
	c, err = b.Cluster(ctx)
	require.NoError(t, err)
	require.Nil(t, c.Member("g1"))
	require.NotNil(t, c.Member("g2"))
	// A pod without the cluster labels is nobody's member, even with a status annotation.
	e.api.CreatePod(t, "default", "stranger", map[string]string{"cluster-name": "other"}, "192.0.2.99")
	_, err = e.cs.CoreV1().Pods("default").Patch(ctx, "stranger", types.MergePatchType,
		[]byte(`{"metadata":{"annotations":{"status":"{\"state\":\"running\"}"}}}`), metav1.PatchOptions{})
	require.NoError(t, err)
	c, err = b.Cluster(ctx)
	require.NoError(t, err)
	require.Nil(t, c.Member("stranger"))
}

// rbac runs the backend as user "tusker" (no groups) with only deploy/kubernetes/rbac.yaml's Role,
// bound to that user instead of the ServiceAccount, in every mode.
func (e *kenv) rbac(t *testing.T) {
	ctx := tctx(t)
	const ns = "tusker-rbac"
	ensureNamespace(t, e.api, ns)
	user := e.api.RestConfigFor(e.api.UserToken)

	denied := e.open(t, Options{Namespace: ns, Scope: "denied", Name: "r0", RestConfig: user})
	_, err := denied.Cluster(ctx)
	require.True(t, apierrors.IsForbidden(err), "without the Role the user may do nothing: %v", err)
	require.False(t, errors.Is(err, dcs.ErrUnreachable), "a refusal is no outage")

	data, err := os.ReadFile(filepath.Join("..", "..", "deploy", "kubernetes", "rbac.yaml"))
	require.NoError(t, err)
	docs := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var kinds []string
	for {
		doc, err := docs.Read()
		if err != nil {
			break
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(doc, nil, nil)
		require.NoError(t, err, "rbac.yaml document %q", doc)
		switch o := obj.(type) {
		case *corev1.ServiceAccount:
			require.Equal(t, "tusker", o.Name)
			kinds = append(kinds, "ServiceAccount")
		case *rbacv1.Role:
			kinds = append(kinds, "Role")
			_, err = e.cs.RbacV1().Roles(ns).Create(ctx, o, metav1.CreateOptions{})
			require.NoError(t, err)
		case *rbacv1.RoleBinding:
			kinds = append(kinds, "RoleBinding")
			require.Equal(t, []rbacv1.Subject{{Kind: "ServiceAccount", Name: "tusker"}}, o.Subjects)
			o.Subjects = []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "tusker"}}
			_, err = e.cs.RbacV1().RoleBindings(ns).Create(ctx, o, metav1.CreateOptions{})
			require.NoError(t, err)
		default:
			t.Fatalf("unexpected object %T in rbac.yaml", obj)
		}
	}
	require.Equal(t, []string{"ServiceAccount", "Role", "RoleBinding"}, kinds)

	modes := map[string]func(*Options){
		"configmaps": func(*Options) {},
		"endpoints":  func(o *Options) { o.UseEndpoints = true },
		"leases":     func(o *Options) { o.UseLeases = true },
	}
	for mode, set := range modes {
		t.Run(mode, func(t *testing.T) {
			o1 := Options{Namespace: ns, Scope: "rbac-" + mode, Name: mode + "-1", RestConfig: user}
			o2 := Options{Namespace: ns, Scope: "rbac-" + mode, Name: mode + "-2", RestConfig: user}
			set(&o1)
			set(&o2)
			a, b := e.open(t, o1), e.open(t, o2)
			// RBAC takes effect through the authorizer's informers: give it a moment.
			deadline := time.Now().Add(10 * time.Second)
			for {
				_, err := a.Cluster(ctx)
				if err == nil {
					break
				}
				require.True(t, time.Now().Before(deadline), "the Role never took effect: %v", err)
				time.Sleep(100 * time.Millisecond)
			}
			ok, err := a.Initialize(ctx, "", true)
			require.NoError(t, err)
			require.True(t, ok)
			_, err = a.Initialize(ctx, "7000000000000000001", false)
			require.NoError(t, err)
			require.NoError(t, a.SetConfig(ctx, []byte(`{"ttl":30}`), 0))
			require.NoError(t, a.TouchMember(ctx, dcs.MemberData{State: "running", Role: "primary"}))
			require.NoError(t, b.TouchMember(ctx, dcs.MemberData{State: "running", Role: "replica"}))
			drainCh(b.Changes())
			ok, err = a.AcquireLeader(ctx)
			require.NoError(t, err)
			require.True(t, ok)
			select {
			case <-b.Changes():
			case <-time.After(5 * time.Second):
				t.Fatal("the watch (as the restricted user) did not signal the new leader")
			}
			require.NoError(t, a.RenewLeader(ctx))
			require.NoError(t, a.SetStatus(ctx, dcs.Status{Optime: 5}))
			require.NoError(t, a.SetFailsafe(ctx, map[string]string{"a": "x"}))
			require.NoError(t, a.SetHistory(ctx, []dcs.HistoryEntry{{Timeline: 1, LSN: 1, Reason: "r"}}))
			require.NoError(t, a.SetFailover(ctx, dcs.Failover{Member: o2.Name}, 0))
			require.NoError(t, a.DeleteFailover(ctx))
			require.NoError(t, a.SetSync(ctx, dcs.Sync{Leader: o1.Name}, 0))
			require.NoError(t, a.DeleteSync(ctx))
			c, err := b.Cluster(ctx)
			require.NoError(t, err)
			require.Equal(t, o1.Name, c.LeaderName())
			require.Len(t, c.Members, 2)
			require.NoError(t, a.ReleaseLeader(ctx))
			require.NoError(t, b.DeleteMember(ctx))
			require.NoError(t, a.CancelInitialize(ctx))
			require.NoError(t, a.DeleteCluster(ctx))
		})
	}
}

func drainCh(ch <-chan struct{}) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

// kubeconfig: the Kubeconfig option, $KUBECONFIG, and Context picking one of several contexts.
func (e *kenv) kubeconfig(t *testing.T) {
	ctx := tctx(t)
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	dir := t.TempDir()
	cfg, err := os.ReadFile(e.api.Kubeconfig)
	require.NoError(t, err)
	// A second context, current, that points nowhere: only Context makes the backend work.
	two := bytes.Replace(cfg, []byte("current-context: test"), []byte(`- name: broken
  context:
    cluster: nowhere
    user: admin
current-context: broken`), 1)
	two = bytes.Replace(two, []byte("users:"), []byte(`- name: nowhere
  cluster:
    server: https://127.0.0.1:1
users:`), 1)
	twoPath := filepath.Join(dir, "two")
	require.NoError(t, os.WriteFile(twoPath, two, 0o600))

	check := func(t *testing.T, o Options) error {
		o.Scope, o.Name, o.RetryTimeout, o.Logger = "kc", "k1", time.Second, testLogger()
		b, err := New(o)
		if err != nil {
			return err
		}
		defer b.Close()
		_, err = b.Cluster(ctx)
		return err
	}
	ensurePod(t, e.api, "default", "kc", "k1")
	t.Run("option", func(t *testing.T) {
		require.NoError(t, check(t, Options{Kubeconfig: e.api.Kubeconfig}))
	})
	t.Run("KUBECONFIG", func(t *testing.T) {
		t.Setenv("KUBECONFIG", e.api.Kubeconfig)
		require.NoError(t, check(t, Options{}))
	})
	t.Run("context", func(t *testing.T) {
		require.NoError(t, check(t, Options{Kubeconfig: twoPath, Context: "test"}))
		err := check(t, Options{Kubeconfig: twoPath})
		require.ErrorIs(t, err, dcs.ErrUnreachable, "the current context points nowhere")
		require.ErrorContains(t, err, "127.0.0.1:1")
	})
	t.Run("nothing to load", func(t *testing.T) {
		t.Setenv("KUBECONFIG", filepath.Join(dir, "missing"))
		t.Setenv("HOME", dir)
		err := check(t, Options{})
		require.ErrorContains(t, err, "KUBERNETES_SERVICE_HOST unset")
		require.ErrorContains(t, err, filepath.Join(dir, "missing"))
		err = check(t, Options{Kubeconfig: filepath.Join(dir, "nope")})
		require.ErrorContains(t, err, filepath.Join(dir, "nope"))
	})
}
