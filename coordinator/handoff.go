package coordinator

import (
	"errors"
	"net"
	"sync"
)

// handoff lets one listener be served by one server after another: views take the
// connections it accepts, one view at a time, and closing a view leaves the listener open.
//
// A view can be held before it is closed: it takes no more connections, and one it took in
// the same instant goes to the next view. Recovery mode holds its views before it answers the
// share that completes the recovery, so a client that connects after that answer reaches the
// recovered server, never the recovery one on its way out.
type handoff struct {
	ln    net.Listener
	conns chan net.Conn
	// spare holds a connection a held view took as it was held, for the next view.
	spare chan net.Conn
	done  chan struct{}
	once  sync.Once
	err   error // Accept's error, once conns is closed
}

func newHandoff(ln net.Listener) *handoff {
	h := &handoff{ln: ln, conns: make(chan net.Conn), spare: make(chan net.Conn, 1), done: make(chan struct{})}
	go h.pump()
	return h
}

// pump accepts connections until the listener closes and hands each to a view.
func (h *handoff) pump() {
	for {
		conn, err := h.ln.Accept()
		if err != nil {
			h.err = err
			close(h.conns)
			return
		}
		select {
		case h.conns <- conn:
		case <-h.done:
			conn.Close()
			return
		}
	}
}

// Close closes the listener.
func (h *handoff) Close() error {
	var err error
	h.once.Do(func() {
		close(h.done)
		err = h.ln.Close()
		select { // a connection no view will take
		case conn := <-h.spare:
			conn.Close()
		default:
		}
	})
	return err
}

func (h *handoff) view() *view {
	return &view{h: h, held: make(chan struct{}), closed: make(chan struct{})}
}

type view struct {
	h              *handoff
	held, closed   chan struct{}
	holdOnce, once sync.Once
}

func (v *view) Accept() (net.Conn, error) {
	select {
	case <-v.held:
		return v.waitClosed()
	case conn := <-v.h.spare: // before conns, which may be closed already
		return v.take(conn)
	default:
	}
	select {
	case conn := <-v.h.spare:
		return v.take(conn)
	case conn, ok := <-v.h.conns:
		if !ok {
			return nil, errors.Join(net.ErrClosed, v.h.err)
		}
		return v.take(conn)
	case <-v.held:
		return v.waitClosed()
	case <-v.closed:
		return nil, net.ErrClosed
	case <-v.h.done:
		return nil, net.ErrClosed
	}
}

// take returns conn, unless the view was held meanwhile: then conn is the next view's.
func (v *view) take(conn net.Conn) (net.Conn, error) {
	select {
	case <-v.held:
		select {
		case v.h.spare <- conn:
		default: // cannot happen: one view at a time takes, one connection at a time
			conn.Close()
		}
		return v.waitClosed()
	default:
		return conn, nil
	}
}

// waitClosed blocks a held view's Accept until the view or the listener closes: the server
// on it is shutting down, and an error before that would count as its failure.
func (v *view) waitClosed() (net.Conn, error) {
	select {
	case <-v.closed:
	case <-v.h.done:
	}
	return nil, net.ErrClosed
}

// hold makes the view take no more connections.
func (v *view) hold() { v.holdOnce.Do(func() { close(v.held) }) }

func (v *view) Close() error {
	v.once.Do(func() { close(v.closed) })
	return nil
}

func (v *view) Addr() net.Addr { return v.h.ln.Addr() }
