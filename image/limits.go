package image

import "fmt"

// Limits bounds what the converter accepts from an image. Every layer is
// read defensively: an image that exceeds a limit is refused with an error
// that names the limit, never truncated. The zero value of a field means its
// default.
type Limits struct {
	// MaxLayers bounds the number of layers of an image. Default 256
	// (overlay file systems stack at most 128 layers).
	MaxLayers int
	// MaxEntries bounds the number of tar entries of all layers together;
	// the converter keeps about 200 bytes per entry in memory. Default
	// 500,000, which also keeps the enclave manifest below its 64 MiB bound.
	MaxEntries int
	// MaxFileSize bounds the size of one file, in bytes. Default 64 GiB.
	MaxFileSize int64
	// MaxLayerSize bounds the uncompressed size of one layer, in bytes.
	// Default 256 GiB.
	MaxLayerSize int64
}

// Default limits; see [Limits].
const (
	DefaultMaxLayers    = 256
	DefaultMaxEntries   = 500_000
	DefaultMaxFileSize  = 64 << 30
	DefaultMaxLayerSize = 256 << 30
)

// maxPath bounds a path inside an image, in bytes: PATH_MAX, as the enclave
// manifest requires.
const maxPath = 4096

// withDefaults returns l with every zero field set to its default.
func (l Limits) withDefaults() Limits {
	if l.MaxLayers == 0 {
		l.MaxLayers = DefaultMaxLayers
	}
	if l.MaxEntries == 0 {
		l.MaxEntries = DefaultMaxEntries
	}
	if l.MaxFileSize == 0 {
		l.MaxFileSize = DefaultMaxFileSize
	}
	if l.MaxLayerSize == 0 {
		l.MaxLayerSize = DefaultMaxLayerSize
	}
	return l
}

// validate reports a negative limit.
func (l Limits) validate() error {
	if l.MaxLayers < 0 || l.MaxEntries < 0 || l.MaxFileSize < 0 || l.MaxLayerSize < 0 {
		return fmt.Errorf("limits: expected values of at least 0 (0 means the default), found %+v", l)
	}
	return nil
}
