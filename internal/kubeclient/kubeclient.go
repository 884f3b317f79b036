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

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/rest"
)

var (
	// Scheme knows core/v1 and coordination.k8s.io/v1, and the meta types of requests.
	Scheme = runtime.NewScheme()
	// Codecs are Scheme's serializers.
	Codecs = serializer.NewCodecFactory(Scheme)
	// ParameterCodec encodes list and watch options into query parameters.
	ParameterCodec = runtime.NewParameterCodec(Scheme)
)

func init() {
	// Both cannot fail for the generated types of k8s.io/api.
	if err := corev1.AddToScheme(Scheme); err != nil {
		panic(fmt.Sprintf("kubeclient: core/v1: %v", err))
	}
	if err := coordinationv1.AddToScheme(Scheme); err != nil {
		panic(fmt.Sprintf("kubeclient: coordination/v1: %v", err))
	}
	metav1.AddToGroupVersion(Scheme, schema.GroupVersion{Version: "v1"})
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
	c.NegotiatedSerializer = Codecs.WithoutConversion()
	if c.UserAgent == "" {
		c.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	rc, err := rest.RESTClientFor(c)
	if err != nil {
		return nil, fmt.Errorf("kubernetes %s client for %s: %w", gv, cfg.Host, err)
	}
	return rc, nil
}
