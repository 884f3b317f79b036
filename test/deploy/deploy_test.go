// Package deploy checks the Kubernetes manifests in deploy/kubernetes against what they configure:
// a real kube-apiserver must accept every object, the StatefulSet container's environment must be
// a valid tusker configuration in each DCS mode, and the Services must select the pods as tusker
// labels them.
package deploy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	kyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/restmapper"

	"github.com/tusker-ha/tusker/config"
	"github.com/tusker-ha/tusker/dcs"
	"github.com/tusker-ha/tusker/dcs/backend"
	"github.com/tusker-ha/tusker/test/harness"
)

func TestMain(m *testing.M) { harness.Main(m, harness.PrepareKube) }

const (
	manifestDir = "../../deploy/kubernetes"
	scope       = "tusker-demo"
	container   = "tusker"
)

// doc is one YAML document of a manifest: as written (what kubectl sends) and decoded into
// client-go's types (what the checks read).
type doc struct {
	file string
	raw  *unstructured.Unstructured
	obj  runtime.Object
}

func (d doc) String() string {
	return fmt.Sprintf("%s %s/%s", d.file, d.raw.GetKind(), d.raw.GetName())
}

// decodeManifest reads every non-empty document of a manifest. Decoding is strict, so a field
// that the API does not know (a typo, a wrong indentation) fails here already.
func decodeManifest(t *testing.T, file string, data []byte) []doc {
	t.Helper()
	strict := kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme.Scheme, scheme.Scheme,
		kjson.SerializerOptions{Yaml: true, Strict: true})
	r := kyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var docs []doc
	for i := 0; ; i++ {
		b, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs
		}
		require.NoError(t, err, "%s: document %d", file, i)
		js, err := kyaml.ToJSON(b)
		require.NoError(t, err, "%s: document %d", file, i)
		if s := string(bytes.TrimSpace(js)); s == "null" || s == "" {
			continue // only comments
		}
		u := &unstructured.Unstructured{}
		require.NoError(t, u.UnmarshalJSON(js), "%s: document %d", file, i)
		obj, _, err := strict.Decode(b, nil, nil)
		require.NoError(t, err, "%s: document %d (%s %s)", file, i, u.GetKind(), u.GetName())
		docs = append(docs, doc{file: file, raw: u, obj: obj})
	}
}

func readManifest(t *testing.T, name string) []doc {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(manifestDir, name))
	require.NoError(t, err)
	return decodeManifest(t, name, data)
}

// endpointsVariant is the selector-less Service that tusker.yaml documents in comments for the
// Endpoints mode: checked as users would copy it, so that the comment cannot rot.
func endpointsVariant(t *testing.T) doc {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(manifestDir, "tusker.yaml"))
	require.NoError(t, err)
	var lines []string
	in := false
	for l := range strings.SplitSeq(string(data), "\n") {
		switch strings.TrimSpace(l) {
		case "# BEGIN endpoints-mode Service":
			in = true
			continue
		case "# END endpoints-mode Service":
			in = false
			continue
		}
		if in {
			l = strings.TrimPrefix(l, "#")
			lines = append(lines, strings.TrimPrefix(l, " "))
		}
	}
	require.NotEmpty(t, lines, "tusker.yaml: no BEGIN/END endpoints-mode Service block")
	docs := decodeManifest(t, "tusker.yaml (endpoints-mode Service)", []byte(strings.Join(lines, "\n")))
	require.Len(t, docs, 1)
	return docs[0]
}

// find returns the object of type T named name.
func find[T runtime.Object](t *testing.T, docs []doc, name string) T {
	t.Helper()
	for _, d := range docs {
		if o, ok := d.obj.(T); ok && d.raw.GetName() == name {
			return o
		}
	}
	var zero T
	t.Fatalf("no %T named %q in the manifests", zero, name)
	return zero
}

func tuskerContainer(t *testing.T, sts *appsv1.StatefulSet) corev1.Container {
	t.Helper()
	for _, c := range sts.Spec.Template.Spec.Containers {
		if c.Name == container {
			return c
		}
	}
	t.Fatalf("StatefulSet %s has no container %q", sts.Name, container)
	return corev1.Container{}
}

// pod is what the kubelet knows about one replica when it builds the container's environment.
type pod struct{ name, namespace, ip string }

// containerEnv is the environment the kubelet would give the tusker container of p: values,
// downward-API fields, the manifest's Secret values, and $(VAR) references expanded as Kubernetes
// does (only variables defined earlier in the list; $$ is a literal $). Anything else it would
// resolve (ConfigMaps, envFrom, other fields) fails the test rather than being guessed.
func containerEnv(t *testing.T, docs []doc, sts *appsv1.StatefulSet, p pod) []string {
	t.Helper()
	c := tuskerContainer(t, sts)
	require.Empty(t, c.EnvFrom, "envFrom is not emulated by this test")
	defined := map[string]string{}
	var env []string
	for _, e := range c.Env {
		v := expand(e.Value, defined)
		if f := e.ValueFrom; f != nil {
			switch {
			case f.FieldRef != nil:
				v = map[string]string{"metadata.name": p.name, "metadata.namespace": p.namespace,
					"status.podIP": p.ip}[f.FieldRef.FieldPath]
				require.NotEmpty(t, v, "%s: fieldRef %s is not emulated by this test", e.Name, f.FieldRef.FieldPath)
			case f.SecretKeyRef != nil:
				s := find[*corev1.Secret](t, docs, f.SecretKeyRef.Name)
				sv, ok := s.StringData[f.SecretKeyRef.Key]
				if !ok {
					b, ok := s.Data[f.SecretKeyRef.Key]
					require.True(t, ok, "%s: Secret %s has no key %s", e.Name, s.Name, f.SecretKeyRef.Key)
					sv = string(b)
				}
				v = sv
			default:
				t.Fatalf("%s: this valueFrom is not emulated by this test", e.Name)
			}
		}
		require.NotContains(t, v, "$(", "%s: a reference Kubernetes would leave unexpanded (defined later, or not at all?)", e.Name)
		defined[e.Name] = v
		env = append(env, e.Name+"="+v)
	}
	return env
}

// expand is Kubernetes' $(VAR) expansion of container environment values.
func expand(s string, vars map[string]string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
			continue
		case '(':
			if end := strings.IndexByte(s[i+2:], ')'); end >= 0 {
				ref := s[i : i+3+end]
				if v, ok := vars[s[i+2:i+2+end]]; ok {
					ref = v
				}
				b.WriteString(ref)
				i += 2 + end
				continue
			}
		}
		b.WriteByte('$')
	}
	return b.String()
}

// modes are the DCS modes docs/dcs-kubernetes.md describes, as README.md says to switch them.
var modes = []struct {
	name string
	env  []string
}{
	{"configmaps", nil},
	{"endpoints", []string{"PATRONI_KUBERNETES_USE_ENDPOINTS=true"}},
	{"leases", []string{"PATRONI_KUBERNETES_USE_LEASES=true"}},
}

func modeOf(k *config.Kubernetes) string {
	switch {
	case k == nil:
		return "none"
	case k.UseEndpoints:
		return "endpoints"
	case k.UseLeases:
		return "leases"
	}
	return "configmaps"
}

// documented reads the default of a kubernetes.* key from the table of docs/dcs-kubernetes.md:
// the role values the Services select are the ones that document promises.
func documented(t *testing.T, key string) string {
	t.Helper()
	data, err := os.ReadFile("../../docs/dcs-kubernetes.md")
	require.NoError(t, err)
	for l := range strings.SplitSeq(string(data), "\n") {
		cols := strings.Split(l, "|")
		if len(cols) > 4 && strings.TrimSpace(cols[1]) == "`kubernetes."+key+"`" {
			return strings.Trim(strings.TrimSpace(cols[3]), "`")
		}
	}
	t.Fatalf("docs/dcs-kubernetes.md: no row for kubernetes.%s", key)
	return ""
}

func loadAll(t *testing.T) []doc {
	t.Helper()
	docs := append(readManifest(t, "rbac.yaml"), readManifest(t, "tusker.yaml")...)
	for _, d := range docs {
		// rbac.yaml and README.md say to apply with -n: a hard-coded namespace would override it.
		require.Empty(t, d.raw.GetNamespace(), "%s names a namespace", d)
	}
	return docs
}

// TestManifestConfiguration checks, without a server, that the StatefulSet's environment is a
// valid tusker configuration in every mode, and that the names and labels the objects share agree.
func TestManifestConfiguration(t *testing.T) {
	start := time.Now()
	docs := loadAll(t)
	sts := find[*appsv1.StatefulSet](t, docs, scope)
	tmpl := sts.Spec.Template
	p := pod{name: scope + "-0", namespace: "databases", ip: "10.1.2.3"}
	env := containerEnv(t, docs, sts, p)
	secret := find[*corev1.Secret](t, docs, scope)

	cfg, err := config.LoadWithEnv("", env)
	require.NoError(t, err, "the container's environment:\n%s", strings.Join(env, "\n"))
	k := cfg.Kubernetes
	t.Logf("the manifest configures the kubernetes DCS in %s mode", modeOf(k))
	require.Equal(t, "kubernetes", cfg.DCSName())
	require.Equal(t, "configmaps", modeOf(k), "the manifest's default mode")
	require.Empty(t, cfg.Unimplemented, "every variable should reach a key tusker acts on")
	require.Equal(t, p.name, cfg.Name, "the member's name must be its pod's")
	require.Equal(t, scope, cfg.Scope)
	require.Equal(t, p.namespace, k.Namespace)
	require.Equal(t, p.ip, k.PodIP)
	require.Equal(t, map[string]string{"application": "tusker", "cluster-name": scope}, k.Labels)
	require.Equal(t, p.ip+":8008", cfg.RestAPI.ConnectAddress)
	require.Equal(t, p.ip+":5432", cfg.PostgreSQL.ConnectAddress)
	require.Equal(t, secret.StringData["superuser-password"], cfg.PostgreSQL.Authentication.Superuser.Password)
	require.Equal(t, secret.StringData["replication-password"], cfg.PostgreSQL.Authentication.Replication.Password)

	// tusker finds its members by kubernetes.labels plus <scope_label>: <scope>.
	scopeLabel := k.ScopeLabel
	if scopeLabel == "" {
		scopeLabel = documented(t, "scope_label")
	}
	member := labels.Set{scopeLabel: scope}
	for key, v := range k.Labels {
		member[key] = v
	}
	require.True(t, labels.SelectorFromSet(member).Matches(labels.Set(tmpl.Labels)),
		"pod template labels %v lack tusker's member labels %v", tmpl.Labels, member)

	// The data directory lives on the volumeClaimTemplate.
	c := tuskerContainer(t, sts)
	onVolume := false
	for _, m := range c.VolumeMounts {
		for _, v := range sts.Spec.VolumeClaimTemplates {
			if m.Name == v.Name && strings.HasPrefix(cfg.PostgreSQL.DataDir, strings.TrimSuffix(m.MountPath, "/")+"/") {
				onVolume = true
			}
		}
	}
	require.True(t, onVolume, "data_dir %s is not on a volumeClaimTemplate's mount", cfg.PostgreSQL.DataDir)

	// Probes on tusker's REST API.
	_, apiPort, err := config.SplitHostPort(cfg.RestAPI.Listen)
	require.NoError(t, err)
	for path, probe := range map[string]*corev1.Probe{"/readiness": c.ReadinessProbe, "/liveness": c.LivenessProbe} {
		require.NotNil(t, probe, path)
		require.NotNil(t, probe.HTTPGet, path)
		require.Equal(t, path, probe.HTTPGet.Path)
		require.Equal(t, fmt.Sprint(apiPort), probe.HTTPGet.Port.String(), path)
	}

	// The other modes, switched as README.md says, and the two switches together (refused).
	for _, m := range modes[1:] {
		cfg, err := config.LoadWithEnv("", append(slices.Clone(env), m.env...))
		require.NoError(t, err, m.name)
		require.Equal(t, m.name, modeOf(cfg.Kubernetes))
	}
	_, err = config.LoadWithEnv("", append(slices.Clone(env), modes[1].env[0], modes[2].env[0]))
	require.ErrorContains(t, err, "kubernetes.use_leases")

	// tuskerctl in a pod has no file: the same environment must do.
	ctl, err := config.LoadCtl("", env)
	require.NoError(t, err)
	require.Equal(t, "kubernetes", ctl.DCSName())
	require.Equal(t, scope, ctl.Scope)

	// Services: the primary and replica Services select the cluster's pods with the role values
	// docs/dcs-kubernetes.md says tusker sets.
	roleLabel := documented(t, "role_label")
	for name, role := range map[string]string{
		scope:               documented(t, "leader_label_value"),
		scope + "-replicas": documented(t, "follower_label_value"),
	} {
		svc := find[*corev1.Service](t, docs, name)
		want := labels.Set{roleLabel: role}
		for key, v := range member {
			want[key] = v
		}
		require.Equal(t, map[string]string(want), svc.Spec.Selector, "Service %s", name)
		require.Equal(t, []string{"postgresql"}, targetPorts(svc), "Service %s", name)
	}
	require.Contains(t, portNames(c), "postgresql", "the Services' targetPort")

	// The StatefulSet's governing Service is headless and is not one tusker itself creates.
	headless := find[*corev1.Service](t, docs, sts.Spec.ServiceName)
	require.Equal(t, corev1.ClusterIPNone, headless.Spec.ClusterIP)
	for _, suffix := range []string{"-leader", "-config", "-failover", "-sync"} {
		require.NotEqual(t, scope+suffix, headless.Name)
	}

	// The Endpoints-mode Service documented in the comments: no selector, and the ports of
	// kubernetes.ports (default: a port named postgresql, 5432), which the leader's Endpoints carry.
	v := endpointsVariant(t).obj.(*corev1.Service)
	require.Equal(t, scope, v.Name, "the Endpoints-mode Service is named as the scope")
	require.Empty(t, v.Spec.Selector)
	require.Equal(t, "[{name: postgresql, port: 5432}]", documented(t, "ports"))
	require.Len(t, v.Spec.Ports, 1)
	require.Equal(t, "postgresql", v.Spec.Ports[0].Name)
	require.EqualValues(t, 5432, v.Spec.Ports[0].Port)

	// The pods run as the ServiceAccount that rbac.yaml binds to its Role.
	sa := tmpl.Spec.ServiceAccountName
	require.NotEmpty(t, sa)
	find[*corev1.ServiceAccount](t, docs, sa)
	rb := find[*rbacv1.RoleBinding](t, docs, "tusker")
	require.Contains(t, rb.Subjects, rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: sa},
		"RoleBinding %s does not bind ServiceAccount %s (in its own namespace)", rb.Name, sa)
	require.Equal(t, "Role", rb.RoleRef.Kind)
	find[*rbacv1.Role](t, docs, rb.RoleRef.Name)
	t.Logf("checked in %v", time.Since(start).Round(time.Millisecond))
}

func targetPorts(svc *corev1.Service) []string {
	var out []string
	for _, p := range svc.Spec.Ports {
		out = append(out, p.TargetPort.String())
	}
	return out
}

func portNames(c corev1.Container) []string {
	var out []string
	for _, p := range c.Ports {
		out = append(out, p.Name)
	}
	return out
}

// TestManifestsOnAPIServer creates every object of rbac.yaml and tusker.yaml on a real
// kube-apiserver (strict field validation: unknown or duplicate fields are refused), once per mode,
// then runs tusker's Kubernetes backend as the ServiceAccount of rbac.yaml with the configuration
// the StatefulSet gives two of its pods: one takes the lock, the other reports a running replica,
// and the Services must route to them as the manifest intends.
func TestManifestsOnAPIServer(t *testing.T) {
	start := time.Now()
	docs := loadAll(t)
	sts := find[*appsv1.StatefulSet](t, docs, scope)
	variant := endpointsVariant(t)

	k := harness.StartKubeAPIServer(t)
	t.Logf("kube-apiserver %s ready after %v", harness.KubeVersion, time.Since(start).Round(time.Millisecond))
	admin, err := kubernetes.NewForConfig(k.RestConfig())
	require.NoError(t, err)
	dyn, err := dynamic.NewForConfig(k.RestConfig())
	require.NoError(t, err)
	groups, err := restmapper.GetAPIGroupResources(admin.Discovery())
	require.NoError(t, err)
	mapper := restmapper.NewDiscoveryRESTMapper(groups)

	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			ns := "tusker-" + m.name
			_, err := admin.CoreV1().Namespaces().Create(ctx,
				&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
			require.NoError(t, err)

			for _, d := range docs {
				if m.name == "endpoints" && d.raw.GetKind() == "Service" && d.raw.GetName() == scope {
					d = variant // as README.md says: the selector-less Service replaces it
				}
				gvk := d.raw.GroupVersionKind()
				mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
				require.NoError(t, err, "%s", d)
				require.Equal(t, meta.RESTScopeNameNamespace, mapping.Scope.Name(), "%s", d)
				_, err = dyn.Resource(mapping.Resource).Namespace(ns).Create(ctx, d.raw.DeepCopy(),
					metav1.CreateOptions{FieldValidation: metav1.FieldValidationStrict})
				require.NoError(t, err, "the API server refused %s", d)
			}

			// No kubelet or controllers run: create two of the StatefulSet's pods as its controller
			// would, and give them IPs as a kubelet would.
			pods := []pod{{scope + "-0", ns, "10.1.2.10"}, {scope + "-1", ns, "10.1.2.11"}}
			for _, p := range pods {
				createPod(ctx, t, admin, sts, p)
			}

			// tusker runs with the token of the pods' ServiceAccount: exactly rbac.yaml's rights.
			tok, err := admin.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sts.Spec.Template.Spec.ServiceAccountName,
				&authenticationv1.TokenRequest{}, metav1.CreateOptions{})
			require.NoError(t, err)
			t.Setenv("KUBECONFIG", writeKubeconfig(t, k, tok.Status.Token))
			t.Setenv("KUBERNETES_SERVICE_HOST", "") // not in a pod: use the kubeconfig

			members := make([]dcs.DCS, len(pods))
			for i, p := range pods {
				cfg, err := config.LoadWithEnv("", append(containerEnv(t, docs, sts, p), m.env...))
				require.NoError(t, err)
				require.Equal(t, m.name, modeOf(cfg.Kubernetes))
				members[i], err = backend.Open(cfg, backend.Options{})
				require.NoError(t, err)
				defer members[i].Close()
				_, err = members[i].Cluster(ctx)
				require.NoError(t, err, "%s reading the cluster as the tusker ServiceAccount", p.name)
			}
			ok, err := members[0].AcquireLeader(ctx)
			require.NoError(t, err)
			require.True(t, ok, "%s could not take the free lock", pods[0].name)
			require.NoError(t, members[0].TouchMember(ctx, dcs.MemberData{State: "running", Role: "primary",
				ConnURL: "postgres://" + pods[0].ip + ":5432/postgres", APIURL: "http://" + pods[0].ip + ":8008/patroni"}))
			require.NoError(t, members[1].TouchMember(ctx, dcs.MemberData{State: "running", Role: "replica",
				ReplicationState: "streaming",
				ConnURL:          "postgres://" + pods[1].ip + ":5432/postgres", APIURL: "http://" + pods[1].ip + ":8008/patroni"}))
			cl, err := members[1].Cluster(ctx)
			require.NoError(t, err)
			require.Equal(t, pods[0].name, cl.LeaderName())
			require.Len(t, cl.Members, 2)

			got := map[string]labels.Set{}
			for _, p := range pods {
				po, err := admin.CoreV1().Pods(ns).Get(ctx, p.name, metav1.GetOptions{})
				require.NoError(t, err)
				got[p.name] = po.Labels
			}
			t.Logf("pod labels as tusker left them: %v", got)
			selects := func(svc string, p pod) bool {
				s, err := admin.CoreV1().Services(ns).Get(ctx, svc, metav1.GetOptions{})
				require.NoError(t, err)
				return len(s.Spec.Selector) > 0 && labels.SelectorFromSet(s.Spec.Selector).Matches(got[p.name])
			}
			require.True(t, selects(scope+"-replicas", pods[1]), "the replica Service misses the replica")
			require.False(t, selects(scope+"-replicas", pods[0]), "the replica Service selects the primary")
			require.True(t, selects(sts.Spec.ServiceName, pods[0]) && selects(sts.Spec.ServiceName, pods[1]))

			switch m.name {
			case "endpoints":
				// The selector-less Service routes through the Endpoints tusker wrote with the lock;
				// Service and Endpoints ports pair up by name.
				ep, err := admin.CoreV1().Endpoints(ns).Get(ctx, scope, metav1.GetOptions{})
				require.NoError(t, err)
				require.Len(t, ep.Subsets, 1)
				require.Equal(t, pods[0].ip, ep.Subsets[0].Addresses[0].IP)
				svc, err := admin.CoreV1().Services(ns).Get(ctx, scope, metav1.GetOptions{})
				require.NoError(t, err)
				for _, sp := range svc.Spec.Ports {
					require.True(t, slices.ContainsFunc(ep.Subsets[0].Ports, func(p corev1.EndpointPort) bool {
						return p.Name == sp.Name && p.Port == sp.TargetPort.IntVal
					}), "Service port %s/%v has no Endpoints port %v", sp.Name, sp.TargetPort, ep.Subsets[0].Ports)
				}
			default:
				require.True(t, selects(scope, pods[0]), "the primary Service misses the leader")
				require.False(t, selects(scope, pods[1]), "the primary Service selects a replica")
				if m.name == "leases" {
					_, err = admin.CoordinationV1().Leases(ns).Get(ctx, scope+"-leader", metav1.GetOptions{})
				} else {
					_, err = admin.CoreV1().ConfigMaps(ns).Get(ctx, scope+"-leader", metav1.GetOptions{})
				}
				require.NoError(t, err, "the leader object of %s mode", m.name)
			}
		})
	}
	t.Logf("done in %v", time.Since(start).Round(time.Millisecond))
}

// createPod creates the pod p of the StatefulSet as its controller would: the template, and the
// volumes of the claim templates under the controller's claim names.
func createPod(ctx context.Context, t *testing.T, c kubernetes.Interface, sts *appsv1.StatefulSet, p pod) {
	t.Helper()
	po := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: p.name, Labels: maps.Clone(sts.Spec.Template.Labels)},
		Spec:       *sts.Spec.Template.Spec.DeepCopy(),
	}
	for _, v := range sts.Spec.VolumeClaimTemplates {
		po.Spec.Volumes = append(po.Spec.Volumes, corev1.Volume{Name: v.Name, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: v.Name + "-" + p.name}}})
	}
	created, err := c.CoreV1().Pods(p.namespace).Create(ctx, po, metav1.CreateOptions{FieldValidation: metav1.FieldValidationStrict})
	require.NoError(t, err, "pod %s from the StatefulSet's template", p.name)
	created.Status.PodIP = p.ip
	created.Status.PodIPs = []corev1.PodIP{{IP: p.ip}}
	_, err = c.CoreV1().Pods(p.namespace).UpdateStatus(ctx, created, metav1.UpdateOptions{})
	require.NoError(t, err)
}

func writeKubeconfig(t *testing.T, k *harness.KubeAPIServer, token string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {server: %q, certificate-authority: %q}
users:
- name: tusker
  user: {token: %q}
contexts:
- name: test
  context: {cluster: test, user: tusker}
current-context: test
`, k.URL, k.CACert, token)
	require.NoError(t, os.WriteFile(path, []byte(kc), 0o600))
	return path
}
