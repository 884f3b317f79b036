package ha

import (
	"context"
	"errors"
	"sync"
)

// The loop's state belongs to the loop goroutine. Everything else talks to it through the
// mailbox: a long action reports what it changed (and that it ended) by posting a function
// the loop runs, and a management call asks for something and waits for the loop's answer. The
// loop runs what the mailbox holds at the start of every cycle and while it waits between
// cycles, in the order it was posted, so a long action's reports are all applied before the
// loop sees it end. Readers that need no answer read the published Status instead.

// mailbox is an unbounded queue of functions for the loop: posting never blocks, so a long
// action or a timer never waits for a busy loop.
type mailbox struct {
	mu    sync.Mutex
	msgs  []func()
	ready chan struct{} // signalled (coalesced) when msgs became non-empty
}

func newMailbox() *mailbox { return &mailbox{ready: make(chan struct{}, 1)} }

func (m *mailbox) post(f func()) {
	m.mu.Lock()
	m.msgs = append(m.msgs, f)
	m.mu.Unlock()
	select {
	case m.ready <- struct{}{}:
	default:
	}
}

func (m *mailbox) take() []func() {
	m.mu.Lock()
	defer m.mu.Unlock()
	msgs := m.msgs
	m.msgs = nil
	return msgs
}

// post hands f to the loop goroutine.
func (n *Node) post(f func()) { n.inbox.post(f) }

// drain runs, on the loop goroutine, everything posted so far.
func (n *Node) drain() {
	for {
		msgs := n.inbox.take()
		if len(msgs) == 0 {
			return
		}
		for _, f := range msgs {
			f()
		}
	}
}

// errNotRunning answers a request the loop cannot serve: it has not started or has ended.
var errNotRunning = errors.New("tusker's HA loop is not running")

// ask runs f on the loop goroutine and waits until it did, or ctx ended, or the loop ended.
func (n *Node) ask(ctx context.Context, f func()) error {
	done := make(chan struct{})
	n.post(func() {
		f()
		close(done)
	})
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-n.loopDone:
		select {
		case <-done:
			return nil
		default:
			return errNotRunning
		}
	}
}
