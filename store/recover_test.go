package store

import (
	"bytes"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRecover: a store whose key file no longer unseals (another CPU) opens with ErrUnseal and
// is left unchanged; a wrong key is refused without writing; the right key reopens it under the
// new sealer, with its values and recovery record, and a plain Open works from then on.
func TestRecover(t *testing.T) {
	dir := t.TempDir()
	oldSealer := newSealer(t)
	db, err := Open(dir, oldSealer, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(t.Context(), func(tx *Tx) error { return tx.Put("b", "k", []byte("value")) }); err != nil {
		t.Fatal(err)
	}
	record := []byte(`{"generation":"g1"}`)
	if err := db.SetRecovery(record); err != nil {
		t.Fatal(err)
	}
	var key []byte
	db.WithDataKey(func(k []byte) error { key = bytes.Clone(k); return nil })
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	newSealer := newSealer(t)
	_, err = Open(dir, newSealer, Options{})
	if !errors.Is(err, ErrUnseal) || errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open with another sealer: %v, want ErrUnseal", err)
	}
	if got, err := ReadRecovery(dir); err != nil || !bytes.Equal(got, record) {
		t.Fatalf("ReadRecovery = %s, %v; want %s", got, err, record)
	}
	keyFile := func() []byte {
		b, err := os.ReadFile(filepath.Join(dir, KeyFile))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	before := keyFile()

	wrong := make([]byte, 32)
	rand.Read(wrong)
	if _, err := Recover(dir, newSealer, wrong, Options{}); !errors.Is(err, ErrKeyMismatch) || !strings.Contains(err.Error(), "does not open") {
		t.Fatalf("Recover with a wrong key: %v, want ErrKeyMismatch", err)
	}
	if !bytes.Equal(keyFile(), before) {
		t.Fatal("Recover with a wrong key changed the key file")
	}

	db, err = Recover(dir, newSealer, key, Options{})
	if err != nil {
		t.Fatalf("Recover: %v", err)
	}
	if !bytes.Equal(keyFile(), before) {
		t.Fatal("Recover changed the key file before Reseal")
	}
	if err := db.Reseal(); err != nil {
		t.Fatal(err)
	}
	var got []byte
	if err := db.View(t.Context(), func(tx *Tx) error { got, err = tx.Get("b", "k"); return err }); err != nil || string(got) != "value" {
		t.Fatalf("value after recovery = %q, %v", got, err)
	}
	if rec, err := db.Recovery(); err != nil || !bytes.Equal(rec, record) {
		t.Fatalf("recovery record after recovery = %s, %v", rec, err)
	}
	db.Close()
	db, err = Open(dir, newSealer, Options{})
	if err != nil {
		t.Fatalf("Open after recovery: %v", err)
	}
	db.Close()
	if _, err := Open(dir, oldSealer, Options{}); !errors.Is(err, ErrUnseal) {
		t.Fatalf("Open with the old sealer after recovery: %v, want ErrUnseal", err)
	}
}

func TestSetRecoveryBounds(t *testing.T) {
	db, _, _ := openTestDB(t, Options{})
	if err := db.SetRecovery([]byte("{")); err == nil {
		t.Error("SetRecovery accepted invalid JSON")
	}
	if err := db.SetRecovery(bytes.Repeat([]byte(" "), MaxRecoveryRecord+1)); err == nil {
		t.Error("SetRecovery accepted an oversized record")
	}
	if err := db.SetRecovery(nil); err != nil {
		t.Fatal(err)
	}
	if rec, err := db.Recovery(); err != nil || rec != nil {
		t.Errorf("Recovery after removing = %s, %v", rec, err)
	}
}
