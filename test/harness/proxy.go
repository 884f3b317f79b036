package harness

import (
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// Proxy is a TCP proxy on loopback in front of a server, to make the server slow or unreachable
// for one client while it keeps running for everybody else.
type Proxy struct {
	Addr   string // 127.0.0.1:port clients dial
	target string
	ln     net.Listener

	mu        sync.Mutex
	delay     time.Duration
	blackhole bool
	conns     map[net.Conn]struct{} // every open connection, both sides
	servers   map[net.Conn]struct{} // the proxy's connections to the target
	closed    bool
	wg        sync.WaitGroup
}

// StartProxy forwards a free loopback port to target (host:port) until the test ends.
func StartProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	port := FreePort(t)
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", itoa(port)))
	if err != nil {
		t.Fatalf("proxy listen: %v", err)
	}
	p := &Proxy{Addr: ln.Addr().String(), target: target, ln: ln, conns: map[net.Conn]struct{}{},
		servers: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

func itoa(i int) string {
	b := [20]byte{}
	n := len(b)
	for {
		n--
		b[n] = byte('0' + i%10)
		i /= 10
		if i == 0 {
			return string(b[n:])
		}
	}
}

// SetDelay delays every chunk forwarded in either direction by d (0 for none).
func (p *Proxy) SetDelay(d time.Duration) {
	p.mu.Lock()
	p.delay = d
	p.mu.Unlock()
}

// Blackhole, when on, cuts every open connection and accepts new ones without forwarding a byte,
// as a network partition looks to a client: connects succeed or hang, requests time out. Off
// forwards again (new connections only: the cut ones stay dead, as after a real partition).
func (p *Proxy) Blackhole(on bool) {
	p.mu.Lock()
	p.blackhole = on
	var cut []net.Conn
	if on {
		for c := range p.servers {
			cut = append(cut, c)
		}
	}
	p.mu.Unlock()
	// Only the server sides close: clients keep an open, silent connection (see serve).
	for _, c := range cut {
		_ = c.Close()
	}
}

// Close stops the proxy and closes every connection.
func (p *Proxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	_ = p.ln.Close()
	p.wg.Wait()
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		_ = c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.servers, c)
	p.mu.Unlock()
	_ = c.Close()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c) {
			continue
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

// serve forwards one client connection; in black-hole mode it holds the client silently until
// the hole closes or the proxy does.
func (p *Proxy) serve(client net.Conn) {
	defer p.wg.Done()
	defer p.untrack(client)
	if !p.silence(client) {
		return
	}
	server, err := net.DialTimeout("tcp", p.target, 2*time.Second)
	if err != nil {
		return
	}
	if !p.track(server) {
		return
	}
	p.mu.Lock()
	p.servers[server] = struct{}{}
	p.mu.Unlock()
	defer p.untrack(server)
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		defer func() { done <- struct{}{} }()
		buf := make([]byte, 32*1024)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				p.mu.Lock()
				d, hole := p.delay, p.blackhole
				p.mu.Unlock()
				if hole {
					return
				}
				if d > 0 {
					time.Sleep(d)
				}
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}
	go pipe(server, client)
	go pipe(client, server)
	<-done
	// One direction ended. Under a black hole the client is kept open and silent until the hole
	// closes; then (or otherwise at once) both sides end.
	_ = server.Close()
	_ = client.SetReadDeadline(time.Now())
	<-done
	_ = client.SetReadDeadline(time.Time{})
	p.mu.Lock()
	hole := p.blackhole
	p.mu.Unlock()
	if hole {
		p.silence(client)
	}
}

// silence reads and drops what the client sends while the black hole lasts, so that it sees a
// peer that never answers. It says whether the connection may go on.
func (p *Proxy) silence(client net.Conn) bool {
	defer func() { _ = client.SetReadDeadline(time.Time{}) }()
	var buf [4096]byte
	for {
		p.mu.Lock()
		hole, closed := p.blackhole, p.closed
		p.mu.Unlock()
		if closed {
			return false
		}
		if !hole {
			return true
		}
		_ = client.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := client.Read(buf[:]); err != nil && !isTimeout(err) {
			return false
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, io.ErrNoProgress)
}
