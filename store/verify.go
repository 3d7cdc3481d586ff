package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"math/bits"
	"slices"
)

// The on-disk layout of a bbolt file (go.etcd.io/bbolt internal/common),
// which verifyState reads through bounds-checked slices: bbolt itself reads
// pages through unchecked pointers into its memory map and panics, or
// faults, on a damaged page.
const (
	boltMagic   = 0xED0CDAED
	boltVersion = 2

	pageHeaderSize   = 16 // id u64, flags u16, count u16, overflow u32
	elementSize      = 16 // branch: pos u32, ksize u32, pgid u64; leaf: flags u32, pos u32, ksize u32, vsize u32
	bucketHeaderSize = 16 // root pgid u64, sequence u64
	metaSize         = 64 // magic, version, page size, flags, root bucket, freelist, high-water mark, txid, checksum
	metaSummed       = 56 // the checksum covers the fields before it

	branchPageFlag   = 0x01
	leafPageFlag     = 0x02
	metaPageFlag     = 0x04
	freelistPageFlag = 0x10
	bucketLeafFlag   = 0x01

	noFreelist     = math.MaxUint64 // meta.freelist when the freelist is not stored
	freelistCountX = 0xFFFF         // page count meaning "the count is the first element"

	// minPageSize and maxPageSize bound the page sizes bbolt looks for.
	minPageSize = 1 << 10
	maxPageSize = 1 << 24
	// maxDepth bounds B+tree levels plus bucket nesting. A valid store is
	// a few levels deep; a page pointing back to an ancestor is caught by
	// the reuse check first, so this only bounds recursion.
	maxDepth = 64
)

// Page states during verification.
const (
	pageUnused = iota
	pageUsed   // reachable from the meta page: tree pages and the freelist
	pageFree   // listed in the freelist
)

// stateInfo is what verifyState found in a sound state.db.
type stateInfo struct {
	pageSize int
	hwm      uint64  // pages in use: [0, hwm)
	txid     uint64  // of the meta page in use
	metaPage int     // 0 or 1, the meta page in use
	freelist uint64  // the freelist page, or noFreelist
	pages    []uint8 // state of each page below hwm: pageUnused, pageUsed or pageFree

	metaBucket   bool   // the internal bucket exists
	check, keyID []byte // its records, nil if absent

	valuesOK int   // user values that authenticated
	valueErr error // the first value that did not, or other damage to user data
	warnings []string
}

// verifyState checks that f, state.db of size bytes, is a complete, sound
// bbolt file before bbolt maps it: both meta pages, every page reachable
// from the one in use (page types and ids, element tables, key order,
// overflow), the freelist, and that every page is either used or free,
// once. It reads the internal bucket's records, and authenticates every
// value of the user buckets with open; value damage is reported in
// valueErr, not as an error, so that the caller can first tell a wrong
// data key from a damaged file. Errors match ErrCorrupt.
func verifyState(f io.ReaderAt, size int64, open func(bucket string, key, sealed []byte) error) (*stateInfo, error) {
	return verifyStateLimit(f, size, DefaultMaxValueSize, open)
}

// verifyStateLimit is verifyState for a store whose values are at most maxValue bytes of
// plaintext: no page it writes spans more than two of its largest elements past a page (bbolt
// puts at least two elements on a page, then fills it to the page size), so a page claiming
// more is refused before its span is read, however large a (sparse) file claims it to be.
func verifyStateLimit(f io.ReaderAt, size int64, maxValue int, open func(bucket string, key, sealed []byte) error) (*stateInfo, error) {
	v := &verifier{f: f, size: size, open: open, info: &stateInfo{}, maxElem: uint64(16 + MaxKeySize + maxValue + valueOverhead)}
	if size <= maxReadWhole {
		v.data = make([]byte, size)
		if n, err := f.ReadAt(v.data, 0); n < len(v.data) {
			return nil, fmt.Errorf("store: reading %s: %d of %d bytes: %w", StateFile, n, size, err)
		}
	}
	if err := v.metas(); err != nil {
		return nil, err
	}
	if err := v.freelist(); err != nil {
		return nil, err
	}
	if err := v.page(v.meta.root, loc{kind: locMetaRoot, page: uint64(v.info.metaPage)}, nil, nil, bucketRef{kind: rootBucket}, 0); err != nil {
		return nil, err
	}
	if v.meta.freelist != noFreelist {
		var leaked []uint64
		for id := uint64(2); id < v.info.hwm; id++ {
			if v.info.pages[id] == pageUnused {
				leaked = append(leaked, id)
			}
		}
		if len(leaked) > 0 {
			return nil, stateCorrupt("is corrupt: page %d: neither in use nor in the freelist (%d such pages); expected every page below the high-water mark %d to be one or the other", leaked[0], len(leaked), v.info.hwm)
		}
	}
	return v.info, nil
}

type verifier struct {
	f       io.ReaderAt
	size    int64
	maxElem uint64 // bytes of the largest element a page of this store can hold
	data    []byte // the whole file, if at most maxReadWhole bytes
	open    func(bucket string, key, sealed []byte) error
	info    *stateInfo
	meta    boltMeta
	// elems holds a page's elements for each depth, reused.
	elems [maxDepth + 2][]element
}

// maxReadWhole bounds the files verifyState reads in one go; it reads
// larger ones page by page.
const maxReadWhole = 64 << 20

// read returns n bytes of the file at off, which the caller has checked
// are in the file.
func (v *verifier) read(off int64, n int) ([]byte, error) {
	if v.data != nil {
		return v.data[off : off+int64(n)], nil
	}
	b := make([]byte, n)
	if _, err := v.f.ReadAt(b, off); err != nil {
		return nil, fmt.Errorf("store: reading %s at offset %d: %w", StateFile, off, err)
	}
	return b, nil
}

// boltMeta is the content of a meta page.
type boltMeta struct {
	magic, version, pageSize uint32
	root, freelist, hwm      uint64
	txid, checksum, computed uint64
}

func parseMeta(b []byte) boltMeta {
	m := b[pageHeaderSize:]
	h := fnv.New64a()
	h.Write(m[:metaSummed])
	return boltMeta{
		magic:    le.Uint32(m[0:]),
		version:  le.Uint32(m[4:]),
		pageSize: le.Uint32(m[8:]),
		root:     le.Uint64(m[16:]),
		freelist: le.Uint64(m[32:]),
		hwm:      le.Uint64(m[40:]),
		txid:     le.Uint64(m[48:]),
		checksum: le.Uint64(m[56:]),
		computed: h.Sum64(),
	}
}

// le is bbolt's byte order: the machine's own (little-endian on amd64 and
// arm64).
var le = binary.NativeEndian

// validate is bbolt's Meta.Validate.
func (m boltMeta) validate() error {
	switch {
	case m.magic != boltMagic:
		return fmt.Errorf("magic 0x%08x, expected 0x%08x", m.magic, boltMagic)
	case m.version != boltVersion:
		return fmt.Errorf("version %d, expected %d", m.version, boltVersion)
	case m.checksum != m.computed:
		return fmt.Errorf("checksum 0x%016x, expected 0x%016x", m.checksum, m.computed)
	}
	return nil
}

// metas finds the page size and the meta page in use the way bbolt does
// (db.getPageSize, db.mmap, db.meta), and checks that the file holds every
// page that meta page counts.
func (v *verifier) metas() error {
	var (
		pageSize int
		why      []string
	)
	buf := make([]byte, 4096)
	if n, _ := io.NewSectionReader(v.f, 0, v.size).ReadAt(buf, 0); n == len(buf) {
		m := parseMeta(buf)
		if err := m.validate(); err == nil {
			pageSize = int(m.pageSize)
		} else {
			why = append(why, fmt.Sprintf("page 0 has %v", err))
		}
	} else {
		why = append(why, fmt.Sprintf("the file is %d bytes, too short for a meta page", v.size))
	}
	for i := 0; pageSize == 0 && i <= 14; i++ {
		pos := int64(minPageSize) << i
		if pos >= v.size-1024 {
			break
		}
		n, _ := io.NewSectionReader(v.f, 0, v.size).ReadAt(buf, pos)
		if n == len(buf) || int64(n) == v.size-pos {
			clear(buf[n:])
			if m := parseMeta(buf); m.validate() == nil {
				pageSize = int(m.pageSize)
			}
		}
	}
	if pageSize == 0 {
		if len(why) == 1 {
			why = append(why, "no valid second meta page was found")
		}
		return notBolt("expected a valid meta page at the start of the file: %s", joinWhy(why))
	}
	if pageSize < minPageSize || pageSize > maxPageSize || pageSize&(pageSize-1) != 0 {
		return notBolt("its meta page gives a page size of %d bytes, expected a power of two from %d to %d", pageSize, minPageSize, maxPageSize)
	}
	if v.size < 2*int64(pageSize) {
		return notBolt("the file is %d bytes, expected at least two %d-byte meta pages", v.size, pageSize)
	}
	v.info.pageSize = pageSize

	var m [2]boltMeta
	var errs [2]error
	for i := range m {
		b, err := v.read(int64(i*pageSize), pageHeaderSize+metaSize)
		if err != nil {
			return err
		}
		m[i] = parseMeta(b)
		errs[i] = m[i].validate()
		if errs[i] == nil && int(m[i].pageSize) != pageSize {
			errs[i] = fmt.Errorf("page size %d, expected %d like the first valid meta page", m[i].pageSize, pageSize)
		}
		id, flags := le.Uint64(b), le.Uint16(b[8:])
		if errs[i] == nil && (id != uint64(i) || flags != metaPageFlag) {
			v.info.warnings = append(v.info.warnings, fmt.Sprintf("%s meta page %d has a damaged header (id %d, flags 0x%02x; expected id %d, flags 0x%02x), but its checksummed content is intact", StateFile, i, id, flags, i, metaPageFlag))
		}
	}
	// bbolt uses the meta page with the higher transaction id if it is
	// valid, and otherwise the other one.
	use := 0
	if m[1].txid > m[0].txid {
		use = 1
	}
	if errs[use] != nil {
		use = 1 - use
	}
	if errs[use] != nil {
		return notBolt("expected a valid meta page: page 0 has %v; page 1 has %v", errs[0], errs[1])
	}
	if other := 1 - use; errs[other] != nil {
		v.info.warnings = append(v.info.warnings, fmt.Sprintf("%s meta page %d is damaged (%v); using meta page %d, transaction %d: if the damaged page held the newer transaction, that last commit is lost", StateFile, other, errs[other], use, m[use].txid))
	}
	v.meta = m[use]
	v.info.metaPage, v.info.txid, v.info.hwm, v.info.freelist = use, v.meta.txid, v.meta.hwm, v.meta.freelist

	pages := uint64(v.size) / uint64(pageSize)
	if v.meta.hwm > pages {
		if hi, lo := bits.Mul64(v.meta.hwm, uint64(pageSize)); hi == 0 {
			return stateCorrupt("is truncated: %d bytes, its header says at least %d", v.size, lo)
		}
		return stateCorrupt("is truncated: %d bytes, its header says at least %d pages of %d bytes", v.size, v.meta.hwm, pageSize)
	}
	if v.meta.root < 2 || v.meta.root >= v.meta.hwm {
		return stateCorrupt("is corrupt: meta page %d: root bucket page %d, expected a page from 2 to %d", use, v.meta.root, v.meta.hwm-1)
	}
	if v.meta.freelist != noFreelist && (v.meta.freelist < 2 || v.meta.freelist >= v.meta.hwm) {
		return stateCorrupt("is corrupt: meta page %d: freelist page %d, expected a page from 2 to %d", use, v.meta.freelist, v.meta.hwm-1)
	}
	v.info.pages = make([]uint8, v.meta.hwm)
	v.info.pages[0], v.info.pages[1] = pageUsed, pageUsed
	return nil
}

func joinWhy(why []string) string {
	s := why[0]
	for _, w := range why[1:] {
		s += "; " + w
	}
	return s
}

// claim reads page id, which ref refers to and which must have flags
// want (0: a branch or leaf page), and marks it and its overflow pages used.
func (v *verifier) claim(id uint64, ref loc, want uint16) (flags uint16, count int, span []byte, err error) {
	if id < 2 || id >= v.info.hwm {
		return 0, 0, nil, stateCorrupt("is corrupt: %s is page %d, expected a page from 2 to %d", ref, id, v.info.hwm-1)
	}
	ps := uint64(v.info.pageSize)
	first, err := v.read(int64(id*ps), int(ps))
	if err != nil {
		return 0, 0, nil, err
	}
	hid, flags, count, overflow := le.Uint64(first), le.Uint16(first[8:]), int(le.Uint16(first[10:])), uint64(le.Uint32(first[12:]))
	switch {
	case hid != id:
		return 0, 0, nil, stateCorrupt("is corrupt: page %d: its header says it is page %d (%s refers to it)", id, hid, ref)
	case want != 0 && flags != want:
		return 0, 0, nil, stateCorrupt("is corrupt: page %d: expected %s, found flags 0x%02x (%s); %s refers to it", id, pageKind(want), flags, pageKind(flags), ref)
	case want == 0 && flags != branchPageFlag && flags != leafPageFlag:
		return 0, 0, nil, stateCorrupt("is corrupt: page %d: expected a branch or leaf page, found flags 0x%02x (%s); %s refers to it", id, flags, pageKind(flags), ref)
	case overflow >= v.info.hwm-id:
		return 0, 0, nil, stateCorrupt("is corrupt: page %d: %d overflow pages run past the high-water mark %d", id, overflow, v.info.hwm)
	}
	for p := id; p <= id+overflow; p++ {
		switch v.info.pages[p] {
		case pageUsed:
			return 0, 0, nil, stateCorrupt("is corrupt: page %d: used twice, again as part of page %d (%s), which %s refers to", p, id, pageKind(flags), ref)
		case pageFree:
			return 0, 0, nil, stateCorrupt("is corrupt: page %d: in use, as part of page %d (%s) which %s refers to, but also listed in the freelist", p, id, pageKind(flags), ref)
		}
		v.info.pages[p] = pageUsed
	}
	span = first
	limit := 2*ps + 2*v.maxElem
	if flags == freelistPageFlag {
		limit = 2*ps + 8*v.info.hwm // one id per page below the high-water mark
	}
	if (overflow+1)*ps > limit {
		return 0, 0, nil, stateCorrupt("is corrupt: page %d: %d overflow pages (%d bytes); expected at most %d bytes for %s of this store", id, overflow, (overflow+1)*ps, limit, pageKind(flags))
	}
	if overflow > 0 {
		if span, err = v.read(int64(id*ps), int((overflow+1)*ps)); err != nil {
			return 0, 0, nil, err
		}
	}
	return flags, count, span, nil
}

func pageKind(flags uint16) string {
	switch flags {
	case branchPageFlag:
		return "a branch page"
	case leafPageFlag:
		return "a leaf page"
	case metaPageFlag:
		return "a meta page"
	case freelistPageFlag:
		return "a freelist page"
	}
	return "no page type"
}

// freelist marks the pages the freelist lists free. They must be sorted,
// distinct, and below the high-water mark.
func (v *verifier) freelist() error {
	id := v.meta.freelist
	if id == noFreelist {
		return nil
	}
	_, count, span, err := v.claim(id, loc{kind: locMeta, page: uint64(v.info.metaPage)}, freelistPageFlag)
	if err != nil {
		return err
	}
	n, first := uint64(count), pageHeaderSize
	room := uint64(len(span)-pageHeaderSize) / 8
	if count == freelistCountX {
		n, first, room = le.Uint64(span[pageHeaderSize:]), pageHeaderSize+8, room-1
	}
	if n > room {
		return stateCorrupt("is corrupt: page %d: the freelist counts %d free pages, but its %d bytes hold at most %d", id, n, len(span), room)
	}
	var prev uint64
	for i := range n {
		p := le.Uint64(span[first+8*int(i):])
		switch {
		case p < 2 || p >= v.info.hwm:
			return stateCorrupt("is corrupt: page %d: freelist entry %d is page %d, expected a page from 2 to %d", id, i, p, v.info.hwm-1)
		case i > 0 && p <= prev:
			return stateCorrupt("is corrupt: page %d: freelist entry %d is page %d, expected pages in ascending order after page %d", id, i, p, prev)
		case v.info.pages[p] != pageUnused:
			return stateCorrupt("is corrupt: page %d: freelist entry %d is page %d, which holds the freelist itself", id, i, p)
		}
		v.info.pages[p] = pageFree
		prev = p
	}
	return nil
}

// Kinds of bucket, by what their values must be.
const (
	rootBucket     = iota // only buckets
	internalBucket        // the check and key ID records
	userBucket            // encrypted values
	nestedBucket          // never written by this package: checked for structure only
)

// bucketRef says which bucket a page belongs to.
type bucketRef struct {
	kind int
	name string
}

// element is one entry of a branch or leaf page.
type element struct {
	flags      uint32
	key, value []byte
	child      uint64
}

// elements parses the element table of a page held in buf (from its page
// header on) and checks that keys and values are packed after the table
// in order, as bbolt writes them, within buf; exactly filling buf if
// exact (an inline page). Keys must be non-empty, ascending, and within
// [lo, hi) (nil: unbounded).
func elements(dst []element, buf []byte, count int, leaf, exact bool, lo, hi []byte) ([]element, error) {
	off := pageHeaderSize + count*elementSize
	if off > len(buf) {
		return nil, fmt.Errorf("%d elements need %d bytes, the page has %d", count, off, len(buf))
	}
	elems := slices.Grow(dst[:0], count)[:count]
	for i := range elems {
		at := pageHeaderSize + i*elementSize
		b := buf[at : at+elementSize]
		var pos, ksize, vsize uint64
		e := &elems[i]
		*e = element{}
		if leaf {
			e.flags, pos, ksize, vsize = le.Uint32(b), uint64(le.Uint32(b[4:])), uint64(le.Uint32(b[8:])), uint64(le.Uint32(b[12:]))
		} else {
			pos, ksize, e.child = uint64(le.Uint32(b)), uint64(le.Uint32(b[4:])), le.Uint64(b[8:])
		}
		switch {
		case uint64(at)+pos != uint64(off):
			return nil, fmt.Errorf("element %d: data at offset %d, expected %d (keys and values are packed in order after the element table)", i, uint64(at)+pos, off)
		case ksize == 0:
			return nil, fmt.Errorf("element %d: empty key", i)
		case uint64(off)+ksize+vsize > uint64(len(buf)):
			return nil, fmt.Errorf("element %d: a %d-byte key and %d-byte value at offset %d run past the page's %d bytes", i, ksize, vsize, off, len(buf))
		case leaf && e.flags != 0 && e.flags != bucketLeafFlag:
			return nil, fmt.Errorf("element %d: flags 0x%x, expected 0 (a value) or 0x%x (a bucket)", i, e.flags, bucketLeafFlag)
		}
		e.key = buf[off : off+int(ksize)]
		e.value = buf[off+int(ksize) : off+int(ksize+vsize)]
		off += int(ksize + vsize)
		switch {
		case i > 0 && bytes.Compare(elems[i-1].key, e.key) >= 0:
			return nil, fmt.Errorf("element %d: key %s does not follow the previous key %s; expected ascending keys", i, quoteKey(e.key), quoteKey(elems[i-1].key))
		case lo != nil && bytes.Compare(e.key, lo) < 0:
			return nil, fmt.Errorf("element %d: key %s sorts before %s, the parent page's key for this page", i, quoteKey(e.key), quoteKey(lo))
		case hi != nil && bytes.Compare(e.key, hi) >= 0:
			return nil, fmt.Errorf("element %d: key %s does not sort before %s, the parent page's key for the next page", i, quoteKey(e.key), quoteKey(hi))
		}
	}
	if exact && off != len(buf) {
		return nil, fmt.Errorf("its elements end at offset %d, expected %d", off, len(buf))
	}
	return elems, nil
}

// quoteKey quotes a key for a message, shortened: a damaged one may be
// long binary.
func quoteKey(k []byte) string {
	const max = 64
	if len(k) > max {
		return fmt.Sprintf("%q… (%d bytes)", k[:max], len(k))
	}
	return fmt.Sprintf("%q", k)
}

// page checks the tree rooted at page id, of bucket b, whose keys must be
// within [lo, hi).
func (v *verifier) page(id uint64, ref loc, lo, hi []byte, b bucketRef, depth int) error {
	if depth > maxDepth {
		return stateCorrupt("is corrupt: page %d: more than %d levels of pages and buckets; expected a shallow tree", id, maxDepth)
	}
	flags, count, span, err := v.claim(id, ref, 0)
	if err != nil {
		return err
	}
	leaf := flags == leafPageFlag
	elems, err := elements(v.elems[depth], span, count, leaf, false, lo, hi)
	if err != nil {
		return stateCorrupt("is corrupt: page %d (%s): %v", id, pageKind(flags), err)
	}
	v.elems[depth] = elems
	if !leaf {
		if len(elems) == 0 {
			return stateCorrupt("is corrupt: page %d: a branch page with no elements, expected at least one", id)
		}
		for i, e := range elems {
			next := hi
			if i+1 < len(elems) {
				next = elems[i+1].key
			}
			if err := v.page(e.child, loc{kind: locBranch, page: id, elem: i}, e.key, next, b, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	for i, e := range elems {
		if err := v.entry(loc{kind: locElement, page: id, elem: i}, e, b, depth); err != nil {
			return err
		}
	}
	return nil
}

// entry checks one leaf element of bucket b, found at where.
func (v *verifier) entry(where loc, e element, b bucketRef, depth int) error {
	if e.flags&bucketLeafFlag == 0 {
		switch b.kind {
		case rootBucket:
			return stateCorrupt("is corrupt: %s: the root bucket holds a value under key %s, expected only buckets", where, quoteKey(e.key))
		case internalBucket:
			switch string(e.key) {
			case checkKey:
				v.info.check = bytes.Clone(e.value)
			case keyIDKey:
				v.info.keyID = bytes.Clone(e.value)
			case versionKey: // read and authenticated by checkVersion
			default:
				return stateCorrupt("is corrupt: %s: the internal bucket holds an unknown record %s, expected only %q, %q and %q", where, quoteKey(e.key), checkKey, keyIDKey, versionKey)
			}
		case userBucket:
			if v.info.valueErr != nil && v.info.valuesOK > 0 {
				return nil // enough is known
			}
			if err := v.open(b.name, e.key, e.value); err != nil {
				if v.info.valueErr == nil {
					v.info.valueErr = err
				}
			} else {
				v.info.valuesOK++
			}
		}
		return nil
	}

	child := bucketRef{kind: nestedBucket, name: string(e.key)}
	switch b.kind {
	case rootBucket:
		child.kind = userBucket
		if child.name == metaBucket {
			child.kind = internalBucket
			v.info.metaBucket = true
		}
	case userBucket, internalBucket:
		if v.info.valueErr == nil {
			v.info.valueErr = &corruptError{msg: fmt.Sprintf("store: bucket %q key %s is a nested bucket, expected a value", b.name, quoteKey(e.key))}
		}
	}
	if where.kind == locInline {
		return stateCorrupt("is corrupt: %s: an inline bucket holds the bucket %s; bbolt never inlines a bucket that has buckets", where, quoteKey(e.key))
	}
	if len(e.value) < bucketHeaderSize {
		return stateCorrupt("is corrupt: %s: bucket %s has a %d-byte header, expected %d", where, quoteKey(e.key), len(e.value), bucketHeaderSize)
	}
	root := le.Uint64(e.value)
	if root != 0 {
		if len(e.value) != bucketHeaderSize {
			return stateCorrupt("is corrupt: %s: bucket %s has its own pages but a %d-byte header, expected %d", where, quoteKey(e.key), len(e.value), bucketHeaderSize)
		}
		return v.page(root, loc{kind: locBucket, page: where.page, elem: where.elem, name: e.key}, nil, nil, child, depth+1)
	}
	// An inline bucket: a leaf page follows the header, in the value.
	where = loc{kind: locInline, page: where.page, elem: where.elem, name: e.key, inline: -1}
	p := e.value[bucketHeaderSize:]
	if len(p) < pageHeaderSize {
		return stateCorrupt("is corrupt: %s: %d bytes, too short for a page header", where, len(p))
	}
	id, flags, count, overflow := le.Uint64(p), le.Uint16(p[8:]), le.Uint16(p[10:]), le.Uint32(p[12:])
	if id != 0 || flags != leafPageFlag || overflow != 0 {
		return stateCorrupt("is corrupt: %s: page header id %d, flags 0x%02x, overflow %d; expected 0, 0x%02x (a leaf page), 0", where, id, flags, overflow, leafPageFlag)
	}
	elems, err := elements(v.elems[depth+1], p, int(count), true, true, nil, nil)
	if err != nil {
		return stateCorrupt("is corrupt: %s: %v", where, err)
	}
	v.elems[depth+1] = elems
	for i, e := range elems {
		where.inline = i
		if err := v.entry(where, e, child, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// loc says where in the file something is, for messages; it is only
// formatted for an error.
type loc struct {
	kind   int
	page   uint64
	elem   int
	name   []byte // of the bucket, for locBucket and locInline
	inline int    // element of the inline bucket, or -1 for the bucket
}

// Kinds of loc.
const (
	locMetaRoot = iota // the root bucket of meta page page
	locMeta            // meta page page
	locBranch          // element elem of branch page page
	locElement         // element elem of leaf page page
	locBucket          // the bucket name, at element elem of leaf page page
	locInline          // the inline bucket name at element elem of leaf page page, or its element inline
)

func (l loc) String() string {
	switch l.kind {
	case locMetaRoot:
		return fmt.Sprintf("meta page %d's root bucket", l.page)
	case locMeta:
		return fmt.Sprintf("meta page %d", l.page)
	case locBranch:
		return fmt.Sprintf("branch page %d element %d", l.page, l.elem)
	case locBucket:
		return fmt.Sprintf("bucket %s (page %d element %d)", quoteKey(l.name), l.page, l.elem)
	case locInline:
		if l.inline >= 0 {
			return fmt.Sprintf("page %d element %d, inline bucket %s element %d", l.page, l.elem, quoteKey(l.name), l.inline)
		}
		return fmt.Sprintf("page %d element %d, inline bucket %s", l.page, l.elem, quoteKey(l.name))
	}
	return fmt.Sprintf("page %d element %d", l.page, l.elem)
}

// stateCorrupt returns an error matching ErrCorrupt about state.db.
func stateCorrupt(format string, args ...any) error {
	return &corruptError{msg: fmt.Sprintf("store: %s %s; it was left unchanged: restore it from a backup", StateFile, fmt.Sprintf(format, args...))}
}

// notBolt returns an error matching ErrCorrupt for a state.db that is not
// a bbolt file at all.
func notBolt(format string, args ...any) error {
	return &corruptError{msg: fmt.Sprintf("store: %s is not a usable bbolt database; it was left unchanged: %s", StateFile, fmt.Sprintf(format, args...))}
}

// corruptError reports damaged state: a damaged state.db or data-key.json
// found by Open, or damage a transaction met. It matches ErrCorrupt, and
// wraps the error that found the damage, if any.
type corruptError struct {
	msg   string
	cause error
}

func (e *corruptError) Error() string        { return e.msg }
func (e *corruptError) Is(target error) bool { return target == ErrCorrupt }
func (e *corruptError) Unwrap() error        { return e.cause }
