package seal

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// KindSimulation is the Kind of a [Simulated] sealer.
const KindSimulation = "simulation"

// Simulated is a [Sealer] for machines without SGX. Its AES-256 key lives in
// a plain file, normally next to the data it seals.
//
// IT PROTECTS NOTHING. Anyone who can read the sealed data can read the key
// file too. It exists only so that simulation mode runs the same code paths
// as real SGX; see [Simulated.Insecure].
//
// A Simulated is safe for concurrent use.
type Simulated struct {
	aeadSealer
}

var _ Sealer = (*Simulated)(nil)

// NewSimulated returns a simulated sealer whose key is the 32 bytes in the
// file at keyPath. If the file does not exist it is created atomically with
// mode 0600 and 32 random bytes (written to a temporary file, synced, then
// hard-linked into place, so a concurrent creator or a crash never leaves a
// partial key and an existing key is never overwritten). The directory of
// keyPath must exist. An existing file that is not exactly 32 bytes, or is not
// a regular file, is an error.
func NewSimulated(keyPath string) (*Simulated, error) {
	if keyPath == "" {
		return nil, errors.New("seal: simulated key path is empty")
	}
	root, err := os.OpenRoot(filepath.Dir(keyPath))
	if err != nil {
		return nil, fmt.Errorf("seal: opening the directory of the simulated key: %w", err)
	}
	defer root.Close()
	name := filepath.Base(keyPath)

	key, err := readKeyFile(root, name, KeySize)
	if errors.Is(err, fs.ErrNotExist) {
		key, err = createKeyFile(root, name)
	}
	if err != nil {
		return nil, fmt.Errorf("seal: simulated key %s: %w", keyPath, err)
	}
	core, err := newAEADSealer(key)
	clear(key)
	if err != nil {
		return nil, err
	}
	return &Simulated{aeadSealer: core}, nil
}

// Seal implements [Sealer].
func (s *Simulated) Seal(plaintext, additionalData []byte) ([]byte, error) {
	return s.seal(plaintext, additionalData)
}

// Unseal implements [Sealer].
func (s *Simulated) Unseal(sealed, additionalData []byte) ([]byte, error) {
	return s.unseal(sealed, additionalData)
}

// Kind returns [KindSimulation].
func (s *Simulated) Kind() string { return KindSimulation }

// Insecure always reports true: the simulated sealer's key is stored in the
// clear beside the data, so sealing with it protects nothing. Callers should
// surface this wherever they report their security state.
func (s *Simulated) Insecure() bool { return true }

// readKeyFile reads the key file name in root; see readKey.
func readKeyFile(root *os.Root, name string, size int) ([]byte, error) {
	f, err := root.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readKey(f, size)
}

// readKey reads a key that must be exactly size bytes from f, a regular file
// or a character device. It reads at most size+1 bytes.
func readKey(f *os.File, size int) ([]byte, error) {
	if fi, err := f.Stat(); err != nil {
		return nil, err
	} else if t := fi.Mode().Type(); t != 0 && t != fs.ModeDevice|fs.ModeCharDevice {
		// Gramine's pseudo-files may show as character devices; pipes,
		// sockets and directories would block or fail.
		return nil, fmt.Errorf("expected a regular file or character device, found mode %s", fi.Mode())
	}
	buf := make([]byte, size+1)
	n, err := io.ReadFull(f, buf)
	switch {
	case err == nil:
		clear(buf)
		return nil, fmt.Errorf("key is longer than the expected %d bytes", size)
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		if n != size {
			clear(buf)
			return nil, fmt.Errorf("key is %d bytes, expected %d", n, size)
		}
		return buf[:size], nil
	default:
		clear(buf)
		return nil, err
	}
}

// createKeyFile writes KeySize random bytes to name without ever replacing
// an existing file. If another process creates name first, its key is used.
func createKeyFile(root *os.Root, name string) ([]byte, error) {
	key := make([]byte, KeySize)
	rand.Read(key)

	suffix := make([]byte, 8)
	rand.Read(suffix)
	tmp := fmt.Sprintf(".%s.tmp-%x", name, suffix)
	if err := writeSynced(root, tmp, key); err != nil {
		clear(key)
		return nil, err
	}
	defer root.Remove(tmp)

	// Link fails if name exists: creation is atomic and never overwrites.
	if err := root.Link(tmp, name); errors.Is(err, fs.ErrExist) {
		clear(key)
		return readKeyFile(root, name, KeySize)
	} else if err != nil {
		clear(key)
		return nil, fmt.Errorf("linking the new key into place: %w", err)
	}
	if err := syncDir(root); err != nil {
		clear(key)
		return nil, err
	}
	return key, nil
}

// writeSynced creates name (which must not exist) with mode 0600, writes data
// and syncs it to stable storage.
func writeSynced(root *os.Root, name string, data []byte) (err error) {
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			root.Remove(name)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	return f.Sync()
}

func syncDir(root *os.Root) error {
	d, err := root.Open(".")
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing directory: %w", err)
	}
	return nil
}
