package kubernetes

import (
	"context"
	"hash/fnv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tusker-ha/tusker/dcs"
	"github.com/tusker-ha/tusker/dcs/dcstest"
	"github.com/tusker-ha/tusker/test/harness"
)

// podIP gives every member name its own documentation address (Endpoints reject loopback).
func podIP(name string) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(name))
	return "192.0.2." + itoa(int(h.Sum32()%250)+1)
}

func kubeTarget(api *harness.KubeAPIServer, mode func(*Options)) dcstest.Target {
	return dcstest.Target{
		New: func(t testing.TB, scope, name string, ttl, retry time.Duration) dcs.DCS {
			// Members of different scopes share names ("a", "b"), and a pod name is unique per
			// namespace: every scope gets a namespace of its own.
			ensureNamespace(t, api, scope)
			ensurePod(t, api, scope, scope, name)
			o := Options{Namespace: scope, Scope: scope, Name: name, RestConfig: api.RestConfig(), PodIP: podIP(name),
				TTL: ttl, RetryTimeout: retry, Logger: testLogger()}
			mode(&o)
			b, err := New(o)
			require.NoError(t, err)
			return b
		},
		TTL: 3 * time.Second,
		Crashed: func(t testing.TB, scope, name string) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err := admin(t, api).CoreV1().Pods(scope).Delete(ctx, name, metav1.DeleteOptions{})
			if !apierrors.IsNotFound(err) {
				require.NoError(t, err)
			}
		},
		Restart: func(t testing.TB) {
			api.Stop()
			require.NoError(t, api.Start())
		},
		Outage: func(t testing.TB) func() {
			api.Stop()
			return func() { require.NoError(t, api.Start()) }
		},
	}
}

// TestConformance runs the shared DCS suite in each of the three modes.
func TestConformance(t *testing.T) {
	api := harness.StartKubeAPIServer(t)
	t.Run("configmaps", func(t *testing.T) { dcstest.Run(t, kubeTarget(api, func(*Options) {})) })
	t.Run("endpoints", func(t *testing.T) {
		dcstest.Run(t, kubeTarget(api, func(o *Options) { o.UseEndpoints = true }))
	})
	t.Run("leases", func(t *testing.T) { dcstest.Run(t, kubeTarget(api, func(o *Options) { o.UseLeases = true })) })
}
