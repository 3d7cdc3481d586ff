package audit

import (
	"bufio"
	"bytes"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Format names the export format in its first line.
const Format = "cloister-audit-v1"

// An export is JSON lines: a header naming the format, the first entry's number and the hash
// before it (zero when the export starts at entry 1); every entry from there on, each in its
// one encoding; and last the signed head of the newest entry.
type header struct {
	Format string `json:"format"`
	First  uint64 `json:"first"`
	Prev   Hash   `json:"prev"`
}

type trailer struct {
	Head *Head `json:"head"`
}

// Writer writes an export.
type Writer struct {
	w    *bufio.Writer
	next uint64
}

// NewWriter starts an export whose first entry is number first, preceded by an entry with
// hash prev (zero when first is 1).
func NewWriter(w io.Writer, first uint64, prev Hash) (*Writer, error) {
	if first == 0 || (first == 1) != prev.IsZero() {
		return nil, fmt.Errorf("audit: export from entry %d after hash %s: expected entry 1 after zero, or a later entry after its predecessor's hash", first, prev)
	}
	ew := &Writer{w: bufio.NewWriter(w), next: first}
	return ew, ew.line(header{Format: Format, First: first, Prev: prev})
}

// Entry writes the next encoded entry, as [Chain.Append] returned it.
func (w *Writer) Entry(encoded []byte) error {
	if len(encoded) == 0 || len(encoded) > MaxEntrySize || bytes.IndexByte(encoded, '\n') >= 0 {
		return fmt.Errorf("audit: export entry %d: expected one encoded entry", w.next)
	}
	w.next++
	w.w.Write(encoded)
	return w.w.WriteByte('\n')
}

// Close writes the head, which must name the last entry written, and flushes.
func (w *Writer) Close(h *Head) error {
	if h.Seq != w.next-1 {
		return fmt.Errorf("audit: export head names entry %d; the last entry written is %d", h.Seq, w.next-1)
	}
	if err := w.line(trailer{Head: h}); err != nil {
		return err
	}
	return w.w.Flush()
}

func (w *Writer) line(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.w.Write(b)
	return w.w.WriteByte('\n')
}

// VerifyOptions says what an export is checked against.
type VerifyOptions struct {
	// Root is the deployment's root certificate, whose key signs heads. Required.
	Root *x509.Certificate
	// Seen, when set, is a signed head the client saw before (from the Coordinator's status,
	// or an earlier export): the export must contain it and extend it.
	Seen *Head
	// MaxEntries bounds the entries read; default 100,000,000.
	MaxEntries uint64
	// OnEntry, when set, is called with each entry once it has been checked against the one
	// before it (not yet against the head, which comes last): a caller that shows entries
	// must still treat them as unverified until Verify returns nil. An error from OnEntry
	// stops Verify and is returned wrapped.
	OnEntry func(*Entry) error
}

// Report is what a verified export holds.
type Report struct {
	First, Last uint64            // the numbers of its first and last entries (Last < First: none)
	Head        Head              // its signed head
	Kinds       map[string]uint64 // entries by kind
	// SeenChecked is set when a seen head lay within the export and matched.
	SeenChecked bool
}

// ErrInvalid wraps every reason an export is refused.
var ErrInvalid = errors.New("audit: export does not verify")

// Verify reads an export and checks that it is one unbroken log: every entry in its one
// encoding, numbered without gaps, each holding the hash of the one before, times never
// decreasing, and a head signed by the root's key that names the last entry; and, when
// opts.Seen is set, that it passes through that head. The first problem is returned, naming
// the entry and its line.
func Verify(r io.Reader, opts VerifyOptions) (*Report, error) {
	if opts.Root == nil {
		return nil, errors.New("audit: verify: no root certificate")
	}
	if opts.MaxEntries == 0 {
		opts.MaxEntries = 100_000_000
	}
	if opts.Seen != nil {
		if err := opts.Seen.Verify(opts.Root); err != nil {
			return nil, fmt.Errorf("%w: the head you saw before: %w", ErrInvalid, err)
		}
	}
	fail := func(line uint64, format string, args ...any) error {
		return fmt.Errorf("%w: line %d: %s", ErrInvalid, line, fmt.Sprintf(format, args...))
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), MaxEntrySize+1024)
	var line uint64
	next := func() ([]byte, error) {
		line++
		if !sc.Scan() {
			if err := sc.Err(); err != nil {
				if errors.Is(err, bufio.ErrTooLong) {
					return nil, fail(line, "longer than %d bytes", MaxEntrySize+1024)
				}
				return nil, fmt.Errorf("%w: read line %d: %w", ErrInvalid, line, err)
			}
			return nil, nil
		}
		return sc.Bytes(), nil
	}

	b, err := next()
	if err != nil {
		return nil, err
	}
	var hd header
	if b == nil || strictDecode(b, &hd) != nil || hd.Format != Format || hd.First == 0 || (hd.First == 1) != hd.Prev.IsZero() {
		return nil, fail(line, "expected the header {\"format\":%q,\"first\":N,\"prev\":HASH}", Format)
	}
	rep := &Report{First: hd.First, Last: hd.First - 1, Kinds: map[string]uint64{}}
	prev := hd.Prev
	var last *Entry
	seenAt := func(seq uint64, h Hash) error {
		if s := opts.Seen; s != nil && s.Seq == seq {
			if s.Hash != h {
				return fail(line, "the log forks from the head you saw: entry %d has hash %s here, %s in that head", seq, h, s.Hash)
			}
			rep.SeenChecked = true
		}
		return nil
	}
	if err := seenAt(hd.First-1, prev); err != nil {
		return nil, err
	}
	for {
		b, err := next()
		if err != nil {
			return nil, err
		}
		if b == nil {
			return nil, fail(line, "the export ends without a head (truncated?)")
		}
		if bytes.HasPrefix(b, []byte(`{"head":`)) {
			var tr trailer
			if err := strictDecode(b, &tr); err != nil || tr.Head == nil {
				return nil, fail(line, "head does not decode: %v", err)
			}
			if err := finish(rep, tr.Head, prev, last, opts); err != nil {
				return nil, fail(line, "%v", err)
			}
			if more, err := next(); err != nil || more != nil {
				return nil, fail(line, "data after the head")
			}
			return rep, nil
		}
		if rep.Last-rep.First+1 >= opts.MaxEntries {
			return nil, fail(line, "more than %d entries", opts.MaxEntries)
		}
		e, err := ParseEntry(b)
		if err != nil {
			return nil, fail(line, "%v", err)
		}
		want := rep.Last + 1
		switch {
		case e.Seq != want:
			return nil, fail(line, "entry %d: expected entry %d (an entry dropped, reordered or inserted?)", e.Seq, want)
		case e.Prev != prev:
			return nil, fail(line, "entry %d: prev is %s; the entry before hashes to %s (an entry changed, dropped or inserted?)", e.Seq, e.Prev, prev)
		case last != nil && e.Time.Before(last.Time):
			return nil, fail(line, "entry %d: time %s is before entry %d's %s", e.Seq, e.Time.Format(timeFormat), last.Seq, last.Time.Format(timeFormat))
		}
		prev, last, rep.Last = HashOf(b), e, e.Seq
		rep.Kinds[e.Kind]++
		if opts.OnEntry != nil {
			if err := opts.OnEntry(e); err != nil {
				return nil, fmt.Errorf("audit: entry %d: %w", e.Seq, err)
			}
		}
		if err := seenAt(e.Seq, prev); err != nil {
			return nil, err
		}
	}
}

const timeFormat = "2006-01-02T15:04:05.999999999Z"

// finish checks the head against the last entry and the seen head.
func finish(rep *Report, h *Head, prev Hash, last *Entry, opts VerifyOptions) error {
	if h.Seq != rep.Last || h.Hash != prev {
		return fmt.Errorf("head names entry %d with hash %s; the export's last entry is %d with hash %s", h.Seq, h.Hash, rep.Last, prev)
	}
	if last != nil && h.Time.Before(last.Time) {
		return fmt.Errorf("head time %s is before its entry's %s", h.Time.Format(timeFormat), last.Time.Format(timeFormat))
	}
	if err := h.Verify(opts.Root); err != nil {
		return err
	}
	if s := opts.Seen; s != nil {
		switch {
		case s.Seq > rep.Last:
			return fmt.Errorf("the log ends at entry %d, before the head you saw (entry %d): it was truncated or rolled back", rep.Last, s.Seq)
		case s.Seq+1 < rep.First:
			return fmt.Errorf("the export starts at entry %d, after the head you saw (entry %d): export from entry %d or earlier to check it", rep.First, s.Seq, s.Seq+1)
		}
	}
	rep.Head = *h
	return nil
}

// strictDecode decodes one JSON value with no unknown fields and nothing after it.
func strictDecode(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("data after the value")
	}
	return nil
}
