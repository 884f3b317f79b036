// Package kubeclient builds the REST clients tusker uses against the Kubernetes API: the core
// group (ConfigMaps, Endpoints, Pods, and the apps requests the rollout sends raw) and
// coordination.k8s.io (Leases), on a scheme that knows just those two groups.
//
// client-go's typed clients would do the same, but they import k8s.io/client-go/kubernetes/scheme,
// whose package initialisation registers every built-in API group (about fifty) in every tusker
// process, whatever its DCS: memory and start-up work an etcd member never needs.
package kubeclient

import (
	"fmt"
	"net/url"
	"sync"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/rest"
)

// The scheme is built on first use: a member on another DCS never builds a Kubernetes client,
// and registering the two groups' types (about 0.1 MB of maps and type information) in its
// package initialisation would cost every member that memory and start-up work.
var scheme = sync.OnceValues(func() (*runtime.Scheme, serializer.CodecFactory) {
	s := runtime.NewScheme()
	// Both cannot fail for the generated types of k8s.io/api.
	if err := corev1.AddToScheme(s); err != nil {
		panic(fmt.Sprintf("kubeclient: core/v1: %v", err))
	}
	if err := coordinationv1.AddToScheme(s); err != nil {
		panic(fmt.Sprintf("kubeclient: coordination/v1: %v", err))
	}
	metav1.AddToGroupVersion(s, schema.GroupVersion{Version: "v1"})
	return s, serializer.NewCodecFactory(s)
})

// Scheme knows core/v1 and coordination.k8s.io/v1, and the meta types of requests.
func Scheme() *runtime.Scheme { s, _ := scheme(); return s }

// Codecs are Scheme's serializers.
func Codecs() serializer.CodecFactory { _, c := scheme(); return c }

// ParameterCodec encodes list and watch options into query parameters, on Scheme.
var ParameterCodec runtime.ParameterCodec = lazyParameterCodec{}

var parameterCodec = sync.OnceValue(func() runtime.ParameterCodec { return runtime.NewParameterCodec(Scheme()) })

// lazyParameterCodec is runtime.NewParameterCodec(Scheme()), built on first use.
type lazyParameterCodec struct{}

func (lazyParameterCodec) DecodeParameters(p url.Values, from schema.GroupVersion, into runtime.Object) error {
	return parameterCodec().DecodeParameters(p, from, into)
}

func (lazyParameterCodec) EncodeParameters(obj runtime.Object, to schema.GroupVersion) (url.Values, error) {
	return parameterCodec().EncodeParameters(obj, to)
}

// Core returns a REST client for the core API group (/api/v1).
func Core(cfg *rest.Config) (*rest.RESTClient, error) {
	return forGroup(cfg, corev1.SchemeGroupVersion, "/api")
}

// Coordination returns a REST client for coordination.k8s.io/v1 (/apis/coordination.k8s.io/v1).
func Coordination(cfg *rest.Config) (*rest.RESTClient, error) {
	return forGroup(cfg, coordinationv1.SchemeGroupVersion, "/apis")
}

func forGroup(cfg *rest.Config, gv schema.GroupVersion, apiPath string) (*rest.RESTClient, error) {
	c := rest.CopyConfig(cfg)
	c.GroupVersion = &gv
	c.APIPath = apiPath
	c.NegotiatedSerializer = Codecs().WithoutConversion()
	if c.UserAgent == "" {
		c.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	rc, err := rest.RESTClientFor(c)
	if err != nil {
		return nil, fmt.Errorf("kubernetes %s client for %s: %w", gv, cfg.Host, err)
	}
	return rc, nil
}
