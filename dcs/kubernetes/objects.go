package kubernetes

import (
	"context"
	"strconv"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"

	"github.com/tusker-ha/tusker/dcs"
	"github.com/tusker-ha/tusker/internal/kubeclient"
)

// Patroni's annotation names. The leader record (leader, acquireTime, renewTime, ttl, transitions)
// is modelled on client-go's leader election record; a Lease keeps it in its spec instead.
const (
	annLeader      = "leader"
	annAcquireTime = "acquireTime"
	annRenewTime   = "renewTime"
	annTTL         = "ttl"
	annTransitions = "transitions"
	annOptime      = "optime"
	annSlots       = "slots"
	annRetainSlots = "retain_slots"
	annFailsafe    = "failsafe"

	annConfig     = "config"
	annInitialize = "initialize"
	annHistory    = "history"

	annFailoverLeader = "leader"
	annFailoverMember = "member"
	annScheduledAt    = "scheduled_at"

	annSyncLeader  = "leader"
	annSyncStandby = "sync_standby"
	annQuorum      = "quorum"

	annStatus = "status" // on the member's pod
)

// object is the part of a ConfigMap, Endpoints or Lease this backend reads and writes. raw keeps
// the object as the server returned it, so that an update keeps every field tusker does not own.
type object struct {
	name string
	rv   string
	// annotations as the server has them; for a Lease the leader record from its spec appears
	// here under Patroni's annotation names, so that one code path serves all three kinds.
	annotations map[string]string
	subsets     []corev1.EndpointSubset // Endpoints only
	raw         runtime.Object
}

// clone copies o deeply enough to modify its annotations and subsets.
func (o *object) clone() *object {
	c := *o
	c.annotations = make(map[string]string, len(o.annotations))
	for k, v := range o.annotations {
		c.annotations[k] = v
	}
	c.subsets = append([]corev1.EndpointSubset(nil), o.subsets...)
	return &c
}

// version is the object's resourceVersion as a dcs version.
func (o *object) version() int64 {
	v, _ := strconv.ParseInt(o.rv, 10, 64)
	return v
}

// kind is one object type (configmaps, endpoints or leases) in the backend's namespace, reached
// through the group's REST client with client-go's own retries off: the backend retries itself,
// bounded by retry_timeout.
type kind struct {
	resource string // plural, for requests and messages
	client   rest.Interface
	ns       string
	newObj   func() runtime.Object
	newList  func() runtime.Object
	items    func(runtime.Object) []runtime.Object
	decode   func(runtime.Object) *object
	// encode builds the object to create or update from o (starting from o.raw when set).
	encode func(o *object, labels map[string]string) runtime.Object
}

func (k *kind) into(ctx context.Context, r *rest.Request) (*object, error) {
	out := k.newObj()
	if err := r.MaxRetries(0).Do(ctx).Into(out); err != nil {
		return nil, err
	}
	return k.decode(out), nil
}

func (k *kind) get(ctx context.Context, name string) (*object, error) {
	return k.into(ctx, k.client.Get().Namespace(k.ns).Resource(k.resource).Name(name))
}

func (k *kind) list(ctx context.Context, selector string) ([]*object, error) {
	out := k.newList()
	err := k.client.Get().Namespace(k.ns).Resource(k.resource).
		VersionedParams(&metav1.ListOptions{LabelSelector: selector}, kubeclient.ParameterCodec).
		MaxRetries(0).Do(ctx).Into(out)
	if err != nil {
		return nil, err
	}
	items := k.items(out)
	objs := make([]*object, 0, len(items))
	for _, it := range items {
		objs = append(objs, k.decode(it))
	}
	return objs, nil
}

func (k *kind) create(ctx context.Context, obj runtime.Object) (*object, error) {
	return k.into(ctx, k.client.Post().Namespace(k.ns).Resource(k.resource).Body(obj))
}

// update is a compare-and-swap on the resourceVersion the object carries.
func (k *kind) update(ctx context.Context, name string, obj runtime.Object) (*object, error) {
	return k.into(ctx, k.client.Put().Namespace(k.ns).Resource(k.resource).Name(name).Body(obj))
}

func (k *kind) patch(ctx context.Context, name string, body []byte) (*object, error) {
	return k.into(ctx, k.client.Patch(types.MergePatchType).Namespace(k.ns).Resource(k.resource).Name(name).Body(body))
}

func (k *kind) delete(ctx context.Context, name string) error {
	return k.client.Delete().Namespace(k.ns).Resource(k.resource).Name(name).
		Body(&metav1.DeleteOptions{}).MaxRetries(0).Do(ctx).Error()
}

func (k *kind) watch(ctx context.Context, opts *metav1.ListOptions) (watch.Interface, error) {
	opts.Watch = true
	return k.client.Get().Namespace(k.ns).Resource(k.resource).
		VersionedParams(opts, kubeclient.ParameterCodec).MaxRetries(0).Watch(ctx)
}

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// objectMeta is the metadata to write: the object's own (labels and annotations tusker does not know
// survive) with the cluster labels and o's annotations on top.
func objectMeta(base metav1.ObjectMeta, o *object, ns string, labels map[string]string, skip map[string]bool) metav1.ObjectMeta {
	m := *base.DeepCopy()
	m.Name, m.Namespace, m.ResourceVersion = o.name, ns, o.rv
	if m.Labels == nil {
		m.Labels = map[string]string{}
	}
	for k, v := range labels {
		m.Labels[k] = v
	}
	m.Annotations = map[string]string{}
	for k, v := range o.annotations {
		if !skip[k] {
			m.Annotations[k] = v
		}
	}
	return m
}

func configMapKind(c rest.Interface, ns string) *kind {
	return &kind{
		resource: "configmaps", client: c, ns: ns,
		newObj:  func() runtime.Object { return &corev1.ConfigMap{} },
		newList: func() runtime.Object { return &corev1.ConfigMapList{} },
		items: func(l runtime.Object) []runtime.Object {
			items := l.(*corev1.ConfigMapList).Items
			out := make([]runtime.Object, len(items))
			for i := range items {
				out[i] = &items[i]
			}
			return out
		},
		decode: func(r runtime.Object) *object {
			cm := r.(*corev1.ConfigMap)
			return &object{name: cm.Name, rv: cm.ResourceVersion, annotations: copyMap(cm.Annotations), raw: cm}
		},
		encode: func(o *object, labels map[string]string) runtime.Object {
			cm := &corev1.ConfigMap{}
			if o.raw != nil {
				cm = o.raw.(*corev1.ConfigMap).DeepCopy()
			}
			cm.ObjectMeta = objectMeta(cm.ObjectMeta, o, ns, labels, nil)
			return cm
		},
	}
}

// endpointsKind is Patroni's use_endpoints mode. v1 Endpoints are deprecated since Kubernetes 1.33
// (still served); the mode stays for Patroni compatibility and its one-write routing.
func endpointsKind(c rest.Interface, ns string) *kind {
	return &kind{
		resource: "endpoints", client: c, ns: ns,
		newObj:  func() runtime.Object { return &corev1.Endpoints{} },
		newList: func() runtime.Object { return &corev1.EndpointsList{} },
		items: func(l runtime.Object) []runtime.Object {
			items := l.(*corev1.EndpointsList).Items
			out := make([]runtime.Object, len(items))
			for i := range items {
				out[i] = &items[i]
			}
			return out
		},
		decode: func(r runtime.Object) *object {
			ep := r.(*corev1.Endpoints)
			return &object{name: ep.Name, rv: ep.ResourceVersion, annotations: copyMap(ep.Annotations),
				subsets: ep.Subsets, raw: ep}
		},
		encode: func(o *object, labels map[string]string) runtime.Object {
			ep := &corev1.Endpoints{}
			if o.raw != nil {
				ep = o.raw.(*corev1.Endpoints).DeepCopy()
			}
			ep.ObjectMeta = objectMeta(ep.ObjectMeta, o, ns, labels, nil)
			ep.Subsets = o.subsets
			return ep
		},
	}
}

// leaseRecord are the annotation names a Lease keeps in its spec.
var leaseRecord = map[string]bool{annLeader: true, annAcquireTime: true, annRenewTime: true, annTTL: true, annTransitions: true}

func leaseKind(c rest.Interface, ns string) *kind {
	return &kind{
		resource: "leases", client: c, ns: ns,
		newObj:  func() runtime.Object { return &coordinationv1.Lease{} },
		newList: func() runtime.Object { return &coordinationv1.LeaseList{} },
		items: func(l runtime.Object) []runtime.Object {
			items := l.(*coordinationv1.LeaseList).Items
			out := make([]runtime.Object, len(items))
			for i := range items {
				out[i] = &items[i]
			}
			return out
		},
		decode: func(r runtime.Object) *object {
			l := r.(*coordinationv1.Lease)
			a := copyMap(l.Annotations)
			for k := range leaseRecord {
				delete(a, k) // only the spec speaks for the lock
			}
			s := l.Spec
			if s.HolderIdentity != nil && *s.HolderIdentity != "" {
				a[annLeader] = *s.HolderIdentity
			}
			if s.AcquireTime != nil {
				a[annAcquireTime] = dcs.ISOTime(s.AcquireTime.UTC())
			}
			if s.RenewTime != nil {
				a[annRenewTime] = dcs.ISOTime(s.RenewTime.UTC())
			}
			if s.LeaseDurationSeconds != nil {
				a[annTTL] = strconv.Itoa(int(*s.LeaseDurationSeconds))
			}
			if s.LeaseTransitions != nil {
				a[annTransitions] = strconv.Itoa(int(*s.LeaseTransitions))
			}
			return &object{name: l.Name, rv: l.ResourceVersion, annotations: a, raw: l}
		},
		encode: func(o *object, labels map[string]string) runtime.Object {
			l := &coordinationv1.Lease{}
			if o.raw != nil {
				l = o.raw.(*coordinationv1.Lease).DeepCopy()
			}
			l.ObjectMeta = objectMeta(l.ObjectMeta, o, ns, labels, leaseRecord)
			a := o.annotations
			l.Spec.HolderIdentity = nil
			if h := a[annLeader]; h != "" {
				l.Spec.HolderIdentity = &h
			}
			l.Spec.AcquireTime = microTime(a[annAcquireTime])
			l.Spec.RenewTime = microTime(a[annRenewTime])
			l.Spec.LeaseDurationSeconds = int32Ptr(a[annTTL])
			l.Spec.LeaseTransitions = int32Ptr(a[annTransitions])
			return l
		},
	}
}

func microTime(s string) *metav1.MicroTime {
	if s == "" {
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return nil
	}
	mt := metav1.NewMicroTime(t)
	return &mt
}

func int32Ptr(s string) *int32 {
	v, err := strconv.ParseInt(s, 10, 32)
	if err != nil {
		return nil
	}
	i := int32(v)
	return &i
}
