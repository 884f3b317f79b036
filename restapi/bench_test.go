package restapi

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// recorder is a reusable ResponseWriter that keeps nothing, so that benchmarks measure the handler.
type recorder struct {
	h    http.Header
	code int
	n    int
}

func newRecorder() *recorder { return &recorder{h: make(http.Header, 4)} }

func (w *recorder) Header() http.Header { return w.h }
func (w *recorder) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}

func (w *recorder) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	w.n += len(p)
	return len(p), nil
}

func (w *recorder) reset() {
	clear(w.h)
	w.code, w.n = 0, 0
}

func mustRequest(method, target string) *http.Request {
	return httptest.NewRequest(method, target, nil)
}

func benchHandler(b *testing.B, method, target string, want int) {
	st := primary()
	if target != "/primary" {
		st = replica()
		st.Tags = map[string]any{"zone": "a"}
	}
	s, _ := newTestServer(st)
	h := s.Handler()
	req := mustRequest(method, target)
	w := newRecorder()
	h.ServeHTTP(w, req) // build the cached body outside the timed loop
	if w.code != want {
		b.Fatalf("%s %s = %d, want %d", method, target, w.code, want)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		w.reset()
		h.ServeHTTP(w, req)
	}
}

// BenchmarkGetPrimary is the handler cost of HAProxy's "GET /primary" on the leader.
func BenchmarkGetPrimary(b *testing.B) { benchHandler(b, http.MethodGet, "/primary", http.StatusOK) }

// BenchmarkHeadReplica is the handler cost of "HEAD /replica", bare and with filters.
func BenchmarkHeadReplica(b *testing.B) {
	b.Run("plain", func(b *testing.B) { benchHandler(b, http.MethodHead, "/replica", http.StatusOK) })
	b.Run("lag+tag", func(b *testing.B) {
		benchHandler(b, http.MethodHead, "/replica?lag=16MB&replication_state=streaming&tag_zone=a", http.StatusOK)
	})
}

// BenchmarkServer measures whole requests over loopback TCP with 50 keep-alive connections and
// reports requests per second and the p99 latency. The client is a minimal HTTP/1.1 client (one
// request in flight per connection, like a health checker) so that most of the CPU goes to the
// server; both still share the machine's cores.
func BenchmarkServer(b *testing.B) {
	for _, c := range []struct{ name, method, path string }{
		{"GET_primary", http.MethodGet, "/primary"},
		{"HEAD_replica", http.MethodHead, "/replica"},
	} {
		b.Run(c.name, func(b *testing.B) { benchServer(b, c.method, c.path) })
	}
}

func benchServer(b *testing.B, method, path string) {
	const clients = 50
	s, _ := newTestServer(primary())
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = s.Serve(ctx, l) }()
	request := []byte(method + " " + path + " HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench\r\n\r\n")

	var mu sync.Mutex
	var lat []time.Duration
	b.SetParallelism((clients + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		r := bufio.NewReaderSize(c, 4096)
		local := make([]time.Duration, 0, 1024)
		for pb.Next() {
			t := time.Now()
			if _, err := c.Write(request); err != nil {
				b.Error(err)
				return
			}
			if err := readResponse(r, method == http.MethodHead); err != nil {
				b.Error(err)
				return
			}
			local = append(local, time.Since(t))
		}
		mu.Lock()
		lat = append(lat, local...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	if len(lat) > 0 {
		slices.Sort(lat)
		b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "req/s")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	}
}

// readResponse reads one response: the status line and headers, then Content-Length bytes.
func readResponse(r *bufio.Reader, head bool) error {
	n := 0
	for first := true; ; first = false {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return err
		}
		if first && !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) {
			return fmt.Errorf("bad status line %q", line)
		}
		if len(line) <= 2 {
			break
		}
		if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
			n, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
		}
	}
	if head {
		return nil
	}
	_, err := r.Discard(n)
	return err
}
