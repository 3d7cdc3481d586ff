package peer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/cloister-dev/cloister/store"
)

// Frames: type (1 byte), payload length (4 bytes, big-endian), payload.
const (
	frameRequest byte = 1 // requester → giver: the requester's quote
	frameKey     byte = 2 // giver → requester: see keyAnswer
	frameRefused byte = 3 // giver → requester: why, in UTF-8 text
)

const (
	// MaxFrame bounds a frame's payload: a DCAP quote with its certification chain is about
	// 5 KiB.
	MaxFrame = 64 << 10
	// maxRefusal bounds a refusal's text.
	maxRefusal = 2 << 10
	// KeySize is the size of the data key.
	KeySize = 32
	// keyTail is what follows the quote in a key answer: the key, the version number and hash.
	keyTail = KeySize + 8 + 32
)

// writeFrame writes one frame.
func writeFrame(w io.Writer, typ byte, payload []byte) error {
	if len(payload) > MaxFrame {
		return fmt.Errorf("peer: a frame of %d bytes, at most %d", len(payload), MaxFrame)
	}
	b := make([]byte, 5, 5+len(payload))
	b[0] = typ
	binary.BigEndian.PutUint32(b[1:], uint32(len(payload)))
	_, err := w.Write(append(b, payload...))
	return err
}

// readFrame reads one frame of a type in want.
func readFrame(r io.Reader, want ...byte) (byte, []byte, error) {
	var h [5]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, fmt.Errorf("peer: reading a frame header: %w", err)
	}
	typ, n := h[0], binary.BigEndian.Uint32(h[1:])
	ok := false
	for _, w := range want {
		ok = ok || typ == w
	}
	if !ok {
		return 0, nil, fmt.Errorf("peer: a frame of type %d, expected one of %v", typ, want)
	}
	if n > MaxFrame {
		return 0, nil, fmt.Errorf("peer: a frame of %d bytes, expected at most %d", n, MaxFrame)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return 0, nil, fmt.Errorf("peer: reading a frame of %d bytes: %w", n, err)
	}
	return typ, p, nil
}

// keyAnswer is a giver's answer: its quote, the data key, and the newest state version it saw.
type keyAnswer struct {
	quote []byte
	key   []byte
	seen  store.Version
}

// encode is quote length (4 bytes), quote, key (32), version number (8), version hash (32).
func (a *keyAnswer) encode() []byte {
	b := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(a.quote)+keyTail), uint32(len(a.quote)))
	b = append(b, a.quote...)
	b = append(b, a.key...)
	b = binary.BigEndian.AppendUint64(b, a.seen.N)
	return append(b, a.seen.Hash[:]...)
}

// parseKeyAnswer decodes a key answer strictly: every length as announced, nothing after.
func parseKeyAnswer(p []byte) (*keyAnswer, error) {
	if len(p) < 4+keyTail {
		return nil, fmt.Errorf("peer: a key answer of %d bytes, expected at least %d", len(p), 4+keyTail)
	}
	n := binary.BigEndian.Uint32(p)
	if uint64(n) != uint64(len(p))-4-keyTail {
		return nil, fmt.Errorf("peer: a key answer of %d bytes announcing a quote of %d, expected %d bytes", len(p), n, 4+uint64(n)+keyTail)
	}
	if n == 0 {
		return nil, errors.New("peer: a key answer without a quote")
	}
	a := &keyAnswer{quote: p[4 : 4+n]}
	rest := p[4+n:]
	a.key = rest[:KeySize]
	a.seen.N = binary.BigEndian.Uint64(rest[KeySize:])
	copy(a.seen.Hash[:], rest[KeySize+8:])
	return a, nil
}

// refusal decodes a refusal's text, bounded and printable.
func refusal(p []byte) string {
	if len(p) > maxRefusal {
		p = p[:maxRefusal]
	}
	if !utf8.Valid(p) {
		return fmt.Sprintf("(a refusal of %d bytes that is not UTF-8)", len(p))
	}
	return string(p)
}
