package dcstest

import (
	"runtime"
	"strings"
)

// ownFrames mark a goroutine as a backend's: tusker's dcs packages and the store clients they use.
// Goroutines of the test harness (server processes, proxies) and of the runtime are not counted.
var ownFrames = []string{
	"github.com/tusker-ha/tusker/dcs/",
	"go.etcd.io/etcd/client/",
	"github.com/hashicorp/consul/api",
	"github.com/go-zookeeper/zk",
	"k8s.io/client-go/",
	"k8s.io/apimachinery/pkg/watch",
	"google.golang.org/grpc",
}

// ourGoroutines returns the stacks of live goroutines that belong to a backend, by goroutine id.
func ourGoroutines() map[string]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := map[string]string{}
	for _, g := range strings.Split(string(buf), "\n\n") {
		header, _, _ := strings.Cut(g, "\n")
		id := strings.Fields(header)
		if len(id) < 2 || strings.Contains(g, "dcstest.ourGoroutines") {
			continue
		}
		for _, f := range ownFrames {
			// The test's own goroutine runs suite code in package dcstest; only count frames of
			// the backends and clients.
			if strings.Contains(strings.ReplaceAll(g, "tusker/dcs/dcstest", ""), f) {
				out[id[1]] = g
				break
			}
		}
	}
	return out
}

// leaked lists the goroutines in after that were not in before.
func leaked(before, after map[string]string) []string {
	var out []string
	for id, g := range after {
		if _, ok := before[id]; !ok {
			out = append(out, g)
		}
	}
	return out
}
