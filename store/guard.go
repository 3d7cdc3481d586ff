package store

import (
	"fmt"
	"runtime/debug"
	"strings"
	"time"

	"go.etcd.io/bbolt"
)

// bbolt reads pages through unchecked pointers into its memory map and
// asserts their invariants with panics; a damaged page can also fault, or
// raise SIGBUS once the file is shorter than the map. Open checks the whole
// file first (see verifyState), but the file can still be damaged while the
// store is open. So every transaction runs with debug.SetPanicOnFault, and
// a panic raised inside bbolt becomes an error matching ErrCorrupt for that
// transaction, which rolls back; once one happened in a write transaction
// the store refuses further writes (bbolt's in-memory freelist, and its
// writer lock, may be left behind). A panic raised by the caller's own
// function is not bbolt's and propagates unchanged.

// defaultCloseWait bounds how long Close waits for bbolt after a write
// failed on damaged data.
const defaultCloseWait = 5 * time.Second

// maxPanicText bounds the panic text quoted in an error: some bbolt
// assertions print whole freelists.
const maxPanicText = 300

// run calls fn, counting it as caller code for guard. An error from fn
// wins; otherwise damage met by fn (whose error fn may have dropped) is
// returned so that the transaction rolls back.
func (tx *Tx) run(fn func(*Tx) error) error {
	tx.depth++
	err := fn(tx)
	tx.depth--
	if err == nil {
		err = tx.failed
	}
	return err
}

// guard is deferred by every Tx method and transaction that calls into
// bbolt, with depth the number of caller functions running when it was
// deferred. It turns a panic raised inside bbolt into an error matching
// ErrCorrupt, stored in *err, and marks tx failed. A panic raised while
// more caller functions run (one of them panicked) is re-raised as is.
func (tx *Tx) guard(err *error, depth int, op, bucket, key string) {
	r := recover()
	if r == nil {
		return
	}
	if tx.depth != depth {
		panic(r)
	}
	what := op
	if bucket != "" {
		what += fmt.Sprintf(" bucket %q", bucket)
	}
	if key != "" {
		what += fmt.Sprintf(" key %q", key)
	}
	e := &corruptError{msg: fmt.Sprintf("store: %s: bbolt failed on damaged data in %s (%s); restore it from a backup", what, StateFile, panicText(r))}
	tx.db.log.Error("store: damaged data in "+StateFile, "op", op, "bucket", bucket, "panic", panicText(r), "writable", tx.writable)
	if tx.failed == nil {
		tx.failed = e
	}
	if tx.writable {
		tx.db.failed.CompareAndSwap(nil, e)
	}
	*err = e
}

func panicText(r any) string {
	s := fmt.Sprint(r)
	if len(s) > maxPanicText {
		s = s[:maxPanicText] + "…"
	}
	return s
}

// update runs fn in a bbolt write transaction. The caller holds db.writer,
// or has db to itself (Open).
func (db *DB) update(fn func(*Tx) error) (err error) {
	if e := db.failed.Load(); e != nil {
		return &corruptError{
			msg:   fmt.Sprintf("store: writes are refused since an earlier write met damaged data (%s); restore %s from a backup and restart", strings.TrimPrefix(e.msg, "store: "), StateFile),
			cause: e,
		}
	}
	if db.remote != nil {
		return db.remoteUpdate(fn)
	}
	tx := &Tx{db: db, writable: true}
	defer tx.guard(&err, 0, "write transaction", "", "")
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	var (
		next    Version
		changed bool
	)
	err = db.bolt.Update(func(btx *bbolt.Tx) error {
		tx.tx = btx
		if err := tx.run(fn); err != nil {
			return err
		}
		var err error
		next, changed, err = db.bumpVersion(btx, tx.writes)
		return err
	})
	if err == nil && changed {
		db.setVersion(next)
	}
	return err
}

// closeBolt closes bbolt. After a write failed on damaged data, bbolt may
// hold its writer lock for good (its rollback rereads the freelist page,
// and can panic doing so), so that its Close would wait forever: then
// closeBolt waits db.closeWait and closes the file itself, which releases
// bbolt's file lock but leaves its memory map and a goroutine behind.
func (db *DB) closeBolt() error {
	if db.failed.Load() == nil {
		return db.bolt.Close()
	}
	done := make(chan error, 1)
	go func() { done <- db.bolt.Close() }()
	t := time.NewTimer(db.closeWait)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		db.file.Close()
		return fmt.Errorf("store: bbolt did not close %s within %v after a write met damaged data; its file was closed without it", StateFile, db.closeWait)
	}
}

// keyMismatchError reports a key file of another store. It matches
// ErrKeyMismatch.
type keyMismatchError struct{ msg string }

func (e *keyMismatchError) Error() string        { return e.msg }
func (e *keyMismatchError) Is(target error) bool { return target == ErrKeyMismatch }
