// Package kube runs deploy/kubernetes on a real single-node Kubernetes (kube-apiserver,
// kube-controller-manager, kube-scheduler, kubelet, kube-proxy, containerd with runc), with the
// image `make image` builds: the manifests are applied unchanged but for the image's name, and the
// StatefulSet must become ready, route clients to the primary, survive the loss of the primary's
// pod and roll out a change with the primary last, without losing an acknowledged write.
package kube

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	kyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"

	"github.com/tusker-ha/tusker/test/harness"
)

const (
	namespace = "databases"
	scope     = "tusker-demo" // the manifests' cluster
	// testImage is the image's name in the node's containerd: not "latest", which the kubelet
	// would try to pull.
	testImage = "localhost/tusker:e2e"
	// superuser password of the manifests' Secret.
	password = "change-me"
)

var img harness.Image

func TestMain(m *testing.M) {
	harness.ImageMain(m, "test/kube", "a Kubernetes node", func(i harness.Image) { img = i })
}

// apply creates every object of a manifest of deploy/kubernetes in the namespace, as kubectl
// apply would on a fresh cluster; edit may change an object first.
func apply(t *testing.T, node *harness.KubeNode, file string, edit func(*unstructured.Unstructured)) {
	t.Helper()
	ctx := context.Background()
	root, err := harness.RepoRoot()
	require.NoError(t, err)
	data, err := os.ReadFile(filepath.Join(root, "deploy", "kubernetes", file))
	require.NoError(t, err)
	groups, err := restmapper.GetAPIGroupResources(node.Client.Discovery())
	require.NoError(t, err)
	mapper := restmapper.NewDiscoveryRESTMapper(groups)
	dyn, err := dynamic.NewForConfig(node.Config)
	require.NoError(t, err)
	r := kyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return
		}
		require.NoError(t, err)
		js, err := kyaml.ToJSON(doc)
		require.NoError(t, err)
		if s := string(bytes.TrimSpace(js)); s == "null" || s == "" {
			continue
		}
		u := &unstructured.Unstructured{}
		require.NoError(t, u.UnmarshalJSON(js))
		if edit != nil {
			edit(u)
		}
		gvk := u.GroupVersionKind()
		mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		require.NoError(t, err)
		_, err = dyn.Resource(mapping.Resource).Namespace(namespace).Create(ctx, u, metav1.CreateOptions{FieldValidation: "Strict"})
		require.NoError(t, err, "%s %s/%s", file, u.GetKind(), u.GetName())
	}
}

// setImage points the StatefulSet at the image imported into the node: the manifests' only change.
func setImage(u *unstructured.Unstructured) {
	if u.GetKind() != "StatefulSet" {
		return
	}
	containers, _, _ := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "containers")
	for _, c := range containers {
		c.(map[string]any)["image"] = testImage
	}
	_ = unstructured.SetNestedSlice(u.Object, containers, "spec", "template", "spec", "containers")
}

type cluster struct {
	t    *testing.T
	node *harness.KubeNode
}

func (c *cluster) pods() ([]corev1.Pod, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l, err := c.node.Client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: "cluster-name=" + scope})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(l.Items, func(a, b corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	return l.Items, nil
}

func ready(p corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// settled: all three pods exist, are ready and not terminating, one labelled role=primary and
// two role=replica.
func (c *cluster) settled() (primary corev1.Pod, err error) {
	pods, err := c.pods()
	if err != nil {
		return primary, err
	}
	if len(pods) != 3 {
		return primary, fmt.Errorf("%d pods", len(pods))
	}
	var roles []string
	for _, p := range pods {
		if p.DeletionTimestamp != nil || !ready(p) {
			return primary, fmt.Errorf("pod %s not ready (%s)", p.Name, p.Status.Phase)
		}
		roles = append(roles, p.Labels["role"])
		if p.Labels["role"] == "primary" {
			primary = p
		}
	}
	slices.Sort(roles)
	if !slices.Equal(roles, []string{"primary", "replica", "replica"}) {
		return primary, fmt.Errorf("role labels %v", roles)
	}
	return primary, nil
}

func (c *cluster) waitSettled(timeout time.Duration) corev1.Pod {
	c.t.Helper()
	var p corev1.Pod
	require.NoError(c.t, harness.WaitFor(context.Background(), timeout, 500*time.Millisecond, func() error {
		var err error
		p, err = c.settled()
		return err
	}))
	return p
}

func (c *cluster) serviceIP(name string) string {
	c.t.Helper()
	svc, err := c.node.Client.CoreV1().Services(namespace).Get(context.Background(), name, metav1.GetOptions{})
	require.NoError(c.t, err)
	require.NotEmpty(c.t, svc.Spec.ClusterIP)
	return svc.Spec.ClusterIP
}

// connect opens a connection through a Service's ClusterIP (kube-proxy's rules route it) and
// says which server answered and whether it is in recovery.
func connect(ctx context.Context, ip string) (*pgx.Conn, string, bool, error) {
	conn, err := pgx.Connect(ctx, fmt.Sprintf("postgres://postgres:%s@%s:5432/postgres?sslmode=disable&connect_timeout=2", password, ip))
	if err != nil {
		return nil, "", false, err
	}
	var addr string
	var recovery bool
	if err := conn.QueryRow(ctx, "SELECT host(inet_server_addr()), pg_is_in_recovery()").Scan(&addr, &recovery); err != nil {
		conn.Close(ctx)
		return nil, "", false, err
	}
	return conn, addr, recovery, nil
}

// TestStatefulSet is deploy/kubernetes's life on a real node, one story with a writer throughout.
func TestStatefulSet(t *testing.T) {
	ctx := context.Background()
	node := harness.StartKubeNode(t, img.Archive)
	require.NoError(t, node.TagImage(img.Name, testImage))
	require.NoError(t, node.AddHostPathVolumes(ctx, 3, "5Gi", 999, 999))
	_, err := node.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{})
	require.NoError(t, err)
	c := &cluster{t: t, node: node}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		pods, _ := c.pods()
		for _, p := range pods {
			logs, _ := node.Client.CoreV1().Pods(namespace).GetLogs(p.Name, &corev1.PodLogOptions{TailLines: ptr(int64(60))}).Do(ctx).Raw()
			t.Logf("--- pod %s (%s, role %q, ready %v):\n%s", p.Name, p.Status.PodIP, p.Labels["role"], ready(p), logs)
		}
	})

	start := time.Now()
	apply(t, node, "rbac.yaml", nil)
	apply(t, node, "tusker.yaml", setImage)
	primary := c.waitSettled(4 * time.Minute)
	t.Logf("3 pods ready after %s; primary %s (%s)", time.Since(start).Round(time.Second), primary.Name, primary.Status.PodIP)

	primaryIP, replicasIP := c.serviceIP(scope), c.serviceIP(scope+"-replicas")
	t.Run("services route by role", func(t *testing.T) {
		conn, addr, recovery, err := connect(ctx, primaryIP)
		require.NoError(t, err)
		conn.Close(ctx)
		require.Equal(t, primary.Status.PodIP, addr, "the primary Service reaches the primary pod")
		require.False(t, recovery)
		conn, addr, recovery, err = connect(ctx, replicasIP)
		require.NoError(t, err)
		conn.Close(ctx)
		require.NotEqual(t, primary.Status.PodIP, addr)
		require.True(t, recovery, "the replicas Service reaches a replica")
	})

	w, err := harness.StartAckWriter(ctx, func(ctx context.Context) (*pgx.Conn, string, error) {
		conn, addr, recovery, err := connect(ctx, primaryIP)
		if err == nil && recovery {
			conn.Close(ctx)
			return nil, "", fmt.Errorf("the primary Service reached %s, a replica", addr)
		}
		return conn, addr, err
	})
	require.NoError(t, err)
	t.Cleanup(w.Stop)
	require.NoError(t, w.WaitCount(ctx, "", 50, 30*time.Second))

	t.Run("primary pod deleted", func(t *testing.T) {
		old := primary
		deleted := time.Now()
		require.NoError(t, node.Client.CoreV1().Pods(namespace).Delete(ctx, old.Name, metav1.DeleteOptions{}))
		var took time.Duration
		require.NoError(t, harness.WaitFor(ctx, 60*time.Second, 100*time.Millisecond, func() error {
			pods, err := c.pods()
			if err != nil {
				return err
			}
			for _, p := range pods {
				if p.Name != old.Name && p.Labels["role"] == "primary" {
					conn, _, recovery, err := connect(ctx, primaryIP)
					if err != nil {
						return err
					}
					conn.Close(ctx)
					if recovery {
						return errors.New("the primary Service still reaches a replica")
					}
					took = time.Since(deleted)
					return nil
				}
			}
			return errors.New("no new primary yet")
		}))
		t.Logf("new primary serving through the Service %s after the pod was deleted", took.Round(100*time.Millisecond))
		// ttl 6 s plus a few: a deleted pod's tusker gets SIGTERM and hands the lock over at once.
		require.Less(t, took, 12*time.Second)
		np := c.waitSettled(3 * time.Minute)
		require.NotEqual(t, old.Name, np.Name)
		pods, err := c.pods()
		require.NoError(t, err)
		for _, p := range pods {
			if p.Name == old.Name {
				require.NotEqual(t, old.UID, p.UID, "the StatefulSet recreated the pod")
				require.Equal(t, "replica", p.Labels["role"], "the recreated pod rejoined as a replica")
			}
		}
		primary = np
	})

	t.Run("rolling update", func(t *testing.T) {
		// The primary at the highest ordinal, which the StatefulSet controller's RollingUpdate
		// would replace first (and then a new primary again): only a rollout that takes the
		// primary last passes from here.
		if last := scope + "-2"; primary.Name != last {
			switchover(t, primary, last)
			primary = c.waitSettled(2 * time.Minute)
			require.Equal(t, last, primary.Name)
		}
		rollingUpdate(t, c, primary)
	})

	w.Stop()
	t.Run("no acknowledged write lost", func(t *testing.T) {
		conn, _, _, err := connect(ctx, primaryIP)
		require.NoError(t, err)
		defer conn.Close(ctx)
		missing, err := w.MissingOn(ctx, conn)
		require.NoError(t, err)
		require.Empty(t, missing)
		t.Logf("%d writes acknowledged by %v", w.Count(""), w.Nodes())
	})
}

// rollingUpdate changes an environment variable of the StatefulSet and follows the rollout: every
// pod is replaced, the primary's last, and the primary role moves at most once.
func rollingUpdate(t *testing.T, c *cluster, primary corev1.Pod) {
	ctx := context.Background()
	sets := c.node.Client.AppsV1().StatefulSets(namespace)
	before, err := c.pods()
	require.NoError(t, err)
	uids := map[string]string{}
	for _, p := range before {
		uids[p.Name] = string(p.UID)
	}
	promotions := historyLen(t, c)
	sts, err := sets.Get(ctx, scope, metav1.GetOptions{})
	require.NoError(t, err)
	ct := &sts.Spec.Template.Spec.Containers[0]
	ct.Env = append(ct.Env, corev1.EnvVar{Name: "TUSKER_ROLLOUT_TEST", Value: "1"})
	_, err = sets.Update(ctx, sts, metav1.UpdateOptions{})
	require.NoError(t, err)

	// Follow the rollout: the order pods are replaced in, and every primary seen.
	var replaced, primaries []string
	require.NoError(t, harness.WaitFor(ctx, 6*time.Minute, 250*time.Millisecond, func() error {
		pods, err := c.pods()
		if err != nil {
			return err
		}
		for _, p := range pods {
			if string(p.UID) != uids[p.Name] && !slices.Contains(replaced, p.Name) {
				replaced = append(replaced, p.Name)
			}
			if p.Labels["role"] == "primary" && p.DeletionTimestamp == nil &&
				(len(primaries) == 0 || primaries[len(primaries)-1] != p.Name) {
				primaries = append(primaries, p.Name)
			}
		}
		s, err := sets.Get(ctx, scope, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(replaced) < 3 || s.Status.UpdatedReplicas != 3 || s.Status.UpdateRevision == "" {
			return fmt.Errorf("rollout: replaced %v, %d of 3 updated", replaced, s.Status.UpdatedReplicas)
		}
		if _, err := c.settled(); err != nil {
			return err
		}
		for _, p := range pods {
			if p.Labels[appsv1.StatefulSetRevisionLabel] != s.Status.UpdateRevision {
				return fmt.Errorf("pod %s is at revision %s, not %s", p.Name, p.Labels[appsv1.StatefulSetRevisionLabel], s.Status.UpdateRevision)
			}
		}
		return nil
	}))
	t.Logf("rollout: pods replaced in the order %v; primaries %v", replaced, primaries)
	require.Equal(t, primary.Name, replaced[len(replaced)-1], "the primary's pod is replaced last")
	require.LessOrEqual(t, len(primaries), 2, "at most one switchover: %v", primaries)
	require.LessOrEqual(t, historyLen(t, c)-promotions, 1, "at most one new timeline (the cluster's history)")
}

// historyLen is the number of entries of the cluster's history (one per promotion), which
// tusker keeps, as Patroni does, in an annotation of the <scope>-config ConfigMap.
func historyLen(t *testing.T, c *cluster) int {
	t.Helper()
	cm, err := c.node.Client.CoreV1().ConfigMaps(namespace).Get(context.Background(), scope+"-config", metav1.GetOptions{})
	require.NoError(t, err)
	var h []json.RawMessage
	if v := cm.Annotations["history"]; v != "" {
		require.NoError(t, json.Unmarshal([]byte(v), &h))
	}
	return len(h)
}

// switchover asks the primary's REST API to hand over to candidate, as an operator would with
// `kubectl exec` into a member's pod: from the node itself the request is refused, since by
// default only the cluster's members may change it.
func switchover(t *testing.T, primary corev1.Pod, candidate string) {
	t.Helper()
	body := fmt.Sprintf(`{"leader": %q, "candidate": %q}`, primary.Name, candidate)
	url := "http://" + primary.Status.PodIP + ":8008/switchover"
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	require.NoError(t, err)
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusForbidden, resp.StatusCode, "switchover from outside the cluster: %s", msg)

	c, err := harness.PodClient(primary.Status.PodIP)
	require.NoError(t, err)
	resp, err = c.Post(url, "application/json", strings.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	msg, _ = io.ReadAll(resp.Body)
	require.Equal(t, http.StatusOK, resp.StatusCode, "switchover to %s: %s", candidate, msg)
}

func ptr[T any](v T) *T { return &v }
