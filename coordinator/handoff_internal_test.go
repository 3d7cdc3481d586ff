package coordinator

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// TestHandoffHold: a held view takes no more connections, even one that arrives while its
// Accept waits; the next view gets them, and the held view's Accept ends only when it closes.
func TestHandoffHold(t *testing.T) {
	h, ln := loopbackHandoff(t)
	for range 50 {
		old := h.view()
		oldDone := make(chan error, 1)
		go func() {
			conn, err := old.Accept()
			if conn != nil {
				conn.Close()
				err = errors.New("the held view took a connection")
			}
			oldDone <- err
		}()
		old.hold()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		next := h.view()
		got := make(chan net.Conn, 1)
		go func() {
			conn, _ := next.Accept()
			got <- conn
		}()
		select {
		case conn := <-got:
			if conn == nil {
				t.Fatal("the next view's Accept failed")
			}
			conn.Close()
		case <-time.After(5 * time.Second):
			t.Fatal("the connection never reached the next view")
		}
		select {
		case err := <-oldDone:
			t.Fatalf("the held view's Accept returned before it was closed: %v", err)
		default:
		}
		old.Close()
		if err := <-oldDone; !errors.Is(err, net.ErrClosed) {
			t.Fatalf("the held view's Accept after Close: %v, want net.ErrClosed", err)
		}
		next.Close()
		c.Close()
	}
}

// TestHandoffHoldRace holds a view while a connection is under way to it, in every order the
// scheduler gives, and a connection taken by a view held in that instant goes to the next view
// (take's held branch, tested directly at the end).
func TestHandoffHoldRace(t *testing.T) {
	h, ln := loopbackHandoff(t)
	for range 300 {
		old := h.view()
		took := make(chan net.Conn, 1)
		go func() {
			conn, _ := old.Accept()
			took <- conn
		}()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		old.hold()
		next := h.view()
		nextGot := make(chan net.Conn, 1)
		go func() {
			conn, _ := next.Accept()
			nextGot <- conn
		}()
		var conn net.Conn
		select {
		case conn = <-took: // taken before the hold: the old server may serve it
			next.Close()
			if got := <-nextGot; got != nil {
				t.Fatal("one connection reached two views")
			}
		case conn = <-nextGot:
			old.Close()
			if got := <-took; got != nil {
				t.Fatal("a held view took a connection")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the connection reached no view")
		}
		if conn == nil {
			t.Fatal("the connection was lost")
		}
		conn.Close()
		c.Close()
		old.Close()
	}

	// The instant itself: a held view given a connection passes it on.
	a, b := net.Pipe()
	defer b.Close()
	held := h.view()
	held.hold()
	done := make(chan error, 1)
	go func() {
		_, err := held.take(a)
		done <- err
	}()
	next := h.view()
	got, err := next.Accept()
	if err != nil || got != a {
		t.Fatalf("the next view got %v, %v; want the connection the held view was given", got, err)
	}
	held.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("the held view's take: %v, want net.ErrClosed once closed", err)
	}
	a.Close()
}

// TestHandoffCloseSpare: a connection waiting for the next view is closed with the handoff.
func TestHandoffCloseSpare(t *testing.T) {
	h, _ := loopbackHandoff(t)
	a, b := net.Pipe()
	h.spare <- a
	h.Close()
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := b.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the spare connection after Close: read %v, want it closed", err)
	}
}

// loopbackHandoff returns a handoff of a listener on loopback, closed when t ends.
func loopbackHandoff(t *testing.T) (*handoff, net.Listener) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := newHandoff(ln)
	t.Cleanup(func() { h.Close() })
	return h, ln
}
