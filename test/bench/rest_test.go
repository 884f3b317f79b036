package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestParseWrk(t *testing.T) {
	out := `Running 10s test @ http://127.0.0.1:8008/primary
  2 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.21ms    2.10ms  40.51ms   95.12%
    Req/Sec    21.50k     2.11k   26.01k    70.00%
  Latency Distribution
     50%  812.00us
     75%    1.10ms
     90%    1.90ms
     99%    9.42ms
  428163 requests in 10.01s, 500.12MB read
  Non-2xx or 3xx responses: 12
  Socket errors: connect 0, read 3, write 0, timeout 0
Requests/sec:  42774.20
Transfer/sec:     49.96MB
`
	r, err := parseWrk(out)
	if err != nil {
		t.Fatal(err)
	}
	if r.rps != 42774.20 || r.p50 != 812*time.Microsecond || r.p99 != 9420*time.Microsecond || r.non2xx != 12 ||
		r.socketErrs != "connect 0, read 3, write 0, timeout 0" {
		t.Fatalf("parsed %+v", r)
	}
	if _, err := parseWrk("unable to connect to 127.0.0.1:1 Connection refused"); err == nil {
		t.Fatal("a failed run parsed")
	}
}

func TestOpenLoop(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/bad" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_, _ = w.Write([]byte(`{"state":"running"}`))
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	r, err := openLoop(context.Background(), addr, "/ok", 1000, 10, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if r.sent < 950 || r.sent > 1000 || r.failed != 0 || r.p50 <= 0 || r.p99 < r.p50 || r.mx < r.p99 {
		t.Fatalf("result %+v", r)
	}
	r, err = openLoop(context.Background(), addr, "/bad", 200, 2, 500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if r.failed != r.sent || r.sent == 0 {
		t.Fatalf("non-200 answers not counted: %+v", r)
	}
	if _, err := openLoop(context.Background(), "127.0.0.1:1", "/", 100, 1, 100*time.Millisecond); err == nil {
		t.Fatal("no error for a refused connection")
	}
}
