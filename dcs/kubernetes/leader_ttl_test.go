package kubernetes

import (
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A ttl annotation past the bound (anyone with write access to the object can set one) must not
// overflow into a lease that looks expired: the configured ttl applies instead.
func TestLeaderTTLAnnotationBounded(t *testing.T) {
	for _, ann := range []string{"30", strconv.Itoa(maxTTLAnnotation + 1), "9223372036854775807", "-5", "x"} {
		b := &Backend{ttl: 30 * time.Second}
		holder, valid := b.observeLeader(&object{name: "leader", rv: "7", annotations: map[string]string{annLeader: "n1", annTTL: ann}})
		require.Equal(t, "n1", holder, ann)
		require.True(t, valid, "ttl annotation %q: a live leader looks expired", ann)
	}
}
