package restapi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tusker-ha/tusker/ha"
)

func TestServeAndShutdown(t *testing.T) {
	s, _ := newTestServer(primary())
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, l) }()

	url := "http://" + l.Addr().String()
	resp, err := http.Get(url + "/primary")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(body), `{"state":"running"`) {
		t.Fatalf("GET /primary = %d %s", resp.StatusCode, body)
	}
	if sv := resp.Header.Get("Server"); sv != "tusker" {
		t.Errorf("Server header %q, want no version", sv)
	}
	resp, err = http.Head(url + "/replica")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("HEAD /replica = %d", resp.StatusCode)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve after cancel = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	if _, err := net.DialTimeout("tcp", l.Addr().String(), time.Second); err == nil {
		t.Error("listener still open after shutdown")
	}
}

// TestRawHAProxyCheck speaks HTTP/1.0 like HAProxy's "option httpchk OPTIONS /primary".
func TestRawHAProxyCheck(t *testing.T) {
	s, _ := newTestServer(replica())
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = s.Serve(ctx, l) }()

	for path, want := range map[string]string{"/primary": "HTTP/1.0 503", "/replica": "HTTP/1.0 200"} {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "OPTIONS %s HTTP/1.0\r\n\r\n", path)
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		all, err := io.ReadAll(c) // HTTP/1.0 without keep-alive: the server closes
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(all), want) || !strings.HasSuffix(string(all), "\r\n\r\n") {
			t.Errorf("OPTIONS %s:\n%s", path, all)
		}
	}
}

func TestListenAndServe(t *testing.T) {
	s := New(Config{}, nil)
	if err := s.ListenAndServe(context.Background()); err == nil {
		t.Error("ListenAndServe without an address succeeded")
	}
	s = New(Config{Listen: "127.0.0.1:99999"}, nil)
	if err := s.ListenAndServe(context.Background()); err == nil {
		t.Error("ListenAndServe on a bad address succeeded")
	}

	// Find a free port, then serve on it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	s = New(Config{Listen: addr}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.ListenAndServe(ctx) }()
	var resp *http.Response
	for i := 0; i < 50; i++ {
		if resp, err = http.Get("http://" + addr + "/health"); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("GET /health before the first status = %d, want 503", resp.StatusCode)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("ListenAndServe after cancel = %v", err)
	}
}

func TestServerTimeouts(t *testing.T) {
	s, _ := newTestServer(primary())
	s.readHeaderTimeout = 200 * time.Millisecond
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = s.Serve(ctx, l) }()

	// A client that never finishes its request headers is dropped after readHeaderTimeout.
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprint(c, "GET /primary HTTP/1.1\r\nHost: x\r\n")
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	_, err = bufio.NewReader(c).ReadByte()
	if !errors.Is(err, io.EOF) && err != nil && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("slow client: %v", err)
	}
	if err == nil {
		// net/http may answer 408 before closing.
		if _, err := io.ReadAll(c); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("slow client held the connection for %v", d)
	}
}

// TestConcurrentPublish hammers the handler while statuses are published (run with -race).
func TestConcurrentPublish(t *testing.T) {
	s, box := newTestServer(nil)
	h := s.Handler()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		fs := []func() *ha.Status{primary, replica, lagging, stopped, noLB}
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			box.p.Store(fs[i%len(fs)]())
		}
	}()
	paths := []string{"/primary", "/replica?lag=1MB&tag_x=y", "/patroni", "/cluster", "/history", "/readiness", "/liveness"}
	var rw sync.WaitGroup
	for g := 0; g < 8; g++ {
		rw.Add(1)
		go func(g int) {
			defer rw.Done()
			for i := 0; i < 500; i++ {
				m := http.MethodGet
				if i%3 == 0 {
					m = http.MethodHead
				}
				rec := newRecorder()
				h.ServeHTTP(rec, mustRequest(m, paths[(g+i)%len(paths)]))
				if rec.code != http.StatusOK && rec.code != http.StatusServiceUnavailable {
					t.Errorf("%s %s = %d", m, paths[(g+i)%len(paths)], rec.code)
					return
				}
			}
		}(g)
	}
	rw.Wait()
	close(stop)
	wg.Wait()
}

func TestDebugLogging(t *testing.T) {
	var buf strings.Builder
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	}), &slog.HandlerOptions{Level: slog.LevelDebug}))
	box := &statusBox{}
	box.p.Store(primary())
	s := New(Config{Logger: log}, box.get)
	rec := do(t, s, http.MethodGet, "/replica?lag=1MB")
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("code %d", rec.Code)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(buf.String(), "status=503") || !strings.Contains(buf.String(), "uri=\"/replica?lag=1MB\"") {
		t.Errorf("debug log: %s", buf.String())
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
