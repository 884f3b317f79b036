package ha

import "time"

// Clock is the loop's time source: what it compares leases, deadlines and backoffs with, and the
// fence timer. The real one is the wall clock; the scenario tests drive Nodes with a manual one,
// so that a story spanning minutes of ttl and loop_wait runs in milliseconds and the same way
// every time. Durations measured for metrics and logs use the wall clock directly.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine (the real clock) or from the goroutine that advances
	// time (a manual clock) once d has passed.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending AfterFunc.
type Timer interface {
	// Stop prevents the call if it has not happened yet and reports whether it did so.
	Stop() bool
}

type wallClock struct{}

func (wallClock) Now() time.Time                            { return time.Now() }
func (wallClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

func (n *Node) now() time.Time                  { return n.clock.Now() }
func (n *Node) since(t time.Time) time.Duration { return n.clock.Now().Sub(t) }
func (n *Node) until(t time.Time) time.Duration { return t.Sub(n.clock.Now()) }
