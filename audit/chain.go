package audit

import (
	"crypto"
	"time"
)

// Chain appends to a log: it numbers each entry and links it to the one before. The zero
// value starts a new log; [Resume] continues one. A Chain is not safe for concurrent use: the
// Coordinator appends within its state's write transactions, one at a time.
type Chain struct {
	seq  uint64
	last Hash
	time time.Time
}

// Resume continues the log whose newest entry is number seq, with hash last, written at t.
func Resume(seq uint64, last Hash, t time.Time) *Chain {
	return &Chain{seq: seq, last: last, time: t}
}

// Seq and Last name the newest entry (0 and zero for an empty log).
func (c *Chain) Seq() uint64 { return c.seq }
func (c *Chain) Last() Hash  { return c.last }

// Append numbers e, links it to the newest entry and encodes it; on success e is the newest
// entry. A time before the newest entry's (a clock stepped back) is raised to it, so that times
// never decrease along the log. Only Seq, Prev and Time are changed; the rest of e is checked.
func (c *Chain) Append(e *Entry) (encoded []byte, h Hash, err error) {
	e.Seq, e.Prev = c.seq+1, c.last
	e.Time = e.Time.UTC()
	if e.Time.Before(c.time) {
		e.Time = c.time
	}
	encoded, err = e.Encode()
	if err != nil {
		return nil, Hash{}, err
	}
	h = HashOf(encoded)
	c.seq, c.last, c.time = e.Seq, h, e.Time
	return encoded, h, nil
}

// Head signs the newest entry at now (raised to the newest entry's time if earlier).
func (c *Chain) Head(now time.Time, key crypto.Signer) (*Head, error) {
	now = now.UTC()
	if now.Before(c.time) {
		now = c.time
	}
	h := &Head{Seq: c.seq, Hash: c.last, Time: now}
	if err := h.Sign(key); err != nil {
		return nil, err
	}
	return h, nil
}
