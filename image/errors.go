package image

import (
	"errors"
	"fmt"
)

// The errors below classify the conversion failures callers may branch on;
// test with [errors.Is].
var (
	// ErrUnsafe means a layer holds an entry the converter refuses: a path
	// that escapes the root or is not clean, an entry under a non-directory,
	// a device node, a hard link to a missing file, an unknown entry type, a
	// malformed tar stream, or a /cloister directory of its own.
	ErrUnsafe = errors.New("unsafe layer content")
	// ErrLimit means an image exceeds one of its [Limits].
	ErrLimit = errors.New("limit exceeded")
	// ErrPlaintext means protecting the requested paths would leave their
	// plaintext somewhere in the image (a hard link, a symbolic link in a
	// protected directory, a copy, another path, the image configuration),
	// so the conversion stops instead.
	ErrPlaintext = errors.New("plaintext of a protected file would remain in the image")
	// ErrNotConverted means an image has no /cloister/enclave.json.
	ErrNotConverted = errors.New("not a converted image")
	// ErrMismatch means [Verify] found files that differ from the enclave
	// manifest; the error is a [*MismatchError].
	ErrMismatch = errors.New("image does not match its enclave manifest")
)

// LayerError is an error about one layer of an image: its position (1 is the
// bottom layer) and, when known, the path inside the layer.
type LayerError struct {
	// Layer is the 1-based position of the layer, from the bottom.
	Layer int
	// Path is the entry's path inside the image, or "" for the layer as a whole.
	Path string
	// Err says what is wrong; it wraps [ErrUnsafe], [ErrLimit] or an I/O error.
	Err error
}

// Error returns "layer N: PATH: message".
func (e *LayerError) Error() string {
	if e.Path == "" {
		return fmt.Sprintf("layer %d: %v", e.Layer, e.Err)
	}
	return fmt.Sprintf("layer %d: %q: %v", e.Layer, e.Path, e.Err)
}

// Unwrap returns e.Err.
func (e *LayerError) Unwrap() error { return e.Err }

// unsafef returns an error wrapping [ErrUnsafe].
func unsafef(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrUnsafe}, args...)...)
}

// limitf returns an error wrapping [ErrLimit].
func limitf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrLimit}, args...)...)
}

// inLayer attributes err to layer n (1-based): it fills in the layer of a
// [*LayerError] that has none, and wraps any other error in one.
func inLayer(n int, err error) error {
	if err == nil {
		return nil
	}
	if le, ok := errors.AsType[*LayerError](err); ok {
		if le.Layer == 0 {
			le.Layer = n
		}
		return err
	}
	return &LayerError{Layer: n, Err: err}
}
