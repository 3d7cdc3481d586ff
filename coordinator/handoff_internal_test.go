package coordinator

import (
	"errors"
	"net"
	"testing"
	"time"
)

// TestHandoffHold: a held view takes no more connections, even one that arrives while its
// Accept waits; the next view gets them, and the held view's Accept ends only when it closes.
func TestHandoffHold(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := newHandoff(ln)
	defer h.Close()
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
