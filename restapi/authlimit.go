package restapi

import (
	"net/netip"
	"sync"
	"time"
)

// Failed Basic authentication is limited per source address: after authFailLimit wrong
// username/password pairs within authFailWindow, that address gets 429 until the window that
// began with its first failure has passed. The REST API's password is often shared by a whole
// fleet and guessable by brute force over a LAN otherwise.
const (
	authFailLimit   = 5
	authFailWindow  = time.Minute
	authFailEntries = 4096 // addresses tracked at most; a flood of sources cannot grow the map
)

type authFailure struct {
	count int
	since time.Time // the first failure of the window
}

// authLimiter counts failed authentications per address. The zero value is ready.
type authLimiter struct {
	mu sync.Mutex
	m  map[netip.Addr]*authFailure
}

func (l *authLimiter) key(ip netip.Addr) netip.Addr {
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		// One host usually has a whole /64: count them together.
		p, _ := ip.Prefix(64)
		return p.Addr()
	}
	return ip
}

// blocked returns how long ip must still wait, 0 when it may try.
func (l *authLimiter) blocked(ip netip.Addr, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.m[l.key(ip)]
	if f == nil || f.count < authFailLimit {
		return 0
	}
	if wait := f.since.Add(authFailWindow).Sub(now); wait > 0 {
		return wait
	}
	delete(l.m, l.key(ip))
	return 0
}

// fail records a failure from ip and returns the failures in the current window, and whether
// this is the window's first (worth a log line; the others are counted, the limit's is logged).
func (l *authLimiter) fail(ip netip.Addr, now time.Time) (int, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = map[netip.Addr]*authFailure{}
	}
	k := l.key(ip)
	f := l.m[k]
	if f == nil || now.Sub(f.since) >= authFailWindow {
		if f == nil && len(l.m) >= authFailEntries {
			l.evict(now)
		}
		f = &authFailure{since: now}
		l.m[k] = f
	}
	f.count++
	return f.count, f.count == 1
}

// evict drops expired windows, and if none had expired, the oldest window, to make room.
func (l *authLimiter) evict(now time.Time) {
	var oldest netip.Addr
	var oldestSince time.Time
	for k, f := range l.m {
		if now.Sub(f.since) >= authFailWindow {
			delete(l.m, k)
			continue
		}
		if oldestSince.IsZero() || f.since.Before(oldestSince) {
			oldest, oldestSince = k, f.since
		}
	}
	if len(l.m) >= authFailEntries {
		delete(l.m, oldest)
	}
}

// succeed forgets ip's failures.
func (l *authLimiter) succeed(ip netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.m) > 0 {
		delete(l.m, l.key(ip))
	}
}
