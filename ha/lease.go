package ha

import (
	"sync"
	"sync/atomic"
	"time"
)

// lease is the leader lease as this member knows it, with the fence timer that stops postgres
// before the lease can run out for the other members. It is the one piece of a Node's state the
// loop goroutine does not own: the timer must fire even when the loop is stuck (a hung call, a
// slow action), so the lease has its own lock, and the loop, the long actions and the timer all
// go through its methods. Everything else the loop knows is the loop's alone.
type lease struct {
	clock Clock
	// renewedAt mirrors the last grant for the metrics (0: no lease).
	renewedAt *atomic.Int64
	// fence is called from the timer goroutine when the lease is about to run out unrenewed;
	// it gets what was captured at the grant, so it reads nothing the loop owns.
	fence func(fenceArgs)

	mu     sync.Mutex
	held   bool
	expiry time.Time
	gen    uint64 // bumped by every grant and loss
	timer  Timer
}

// fenceArgs is what the fence timer needs, captured when the lease was granted.
type fenceArgs struct {
	expiry   time.Time
	settings Settings
	name     string
}

// state is whether the lease is held, and until when.
func (l *lease) state() (bool, time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.held, l.expiry
}

// generation identifies the current grant; grant with it fails if the lease was granted, lost or
// released in between.
func (l *lease) generation() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.gen
}

// grant records a lease counted from start, lasting s.TTL, and arms the fence timer at its
// deadline less FenceMargin. With gen != 0 it does so only if nothing changed the lease since
// gen was read (a renewal in flight while a switchover released the key must not resurrect
// it). It reports whether it granted.
func (l *lease) grant(start time.Time, s Settings, name string, gen uint64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if gen != 0 && gen != l.gen {
		return false
	}
	l.held, l.expiry = true, start.Add(s.TTL)
	l.renewedAt.Store(start.UnixNano())
	l.gen++
	timerGen := l.gen
	if l.timer != nil {
		l.timer.Stop()
	}
	args := fenceArgs{expiry: l.expiry, settings: s, name: name}
	l.timer = l.clock.AfterFunc(l.expiry.Add(-FenceMargin(s)).Sub(l.clock.Now()), func() {
		l.mu.Lock()
		fire := l.gen == timerGen && l.held
		if fire {
			l.held = false
			l.renewedAt.Store(0)
		}
		l.mu.Unlock()
		if fire {
			l.fence(args)
		}
	})
	return true
}

// lose forgets the lease (released, lost, or fenced by the loop) and disarms the timer.
func (l *lease) lose() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.held = false
	l.renewedAt.Store(0)
	l.gen++
	if l.timer != nil {
		l.timer.Stop()
		l.timer = nil
	}
}
