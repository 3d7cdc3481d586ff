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
	// at its peak the converter holds about 700 bytes per entry in memory,
	// plus up to five times its path and link target (see MaxNameBytes).
	// Default 500,000, which also keeps the enclave manifest below its
	// 64 MiB bound.
	MaxEntries int
	// MaxNameBytes bounds the paths and link targets of all entries of all
	// layers together, in bytes; the converter keeps them in memory.
	// Default 128 MiB.
	MaxNameBytes int64
	// MaxFileSize bounds the size of one file, in bytes. Default 64 GiB.
	MaxFileSize int64
	// MaxLayerSize bounds one layer, in bytes: both its uncompressed tar
	// stream and the sum of its files' sizes, sparse files counted at
	// their full size (that is what is hashed and written). Default
	// 256 GiB.
	MaxLayerSize int64
	// MaxImageSize bounds the sum of the sizes of all files of all
	// layers, in bytes, sparse files counted at their full size. Default
	// 512 GiB.
	MaxImageSize int64
}

// Default limits; see [Limits].
const (
	DefaultMaxLayers    = 256
	DefaultMaxEntries   = 500_000
	DefaultMaxNameBytes = 128 << 20
	DefaultMaxFileSize  = 64 << 30
	DefaultMaxLayerSize = 256 << 30
	DefaultMaxImageSize = 512 << 30
)

// maxPath bounds a path inside an image, in bytes: PATH_MAX, as the enclave
// manifest requires.
const maxPath = 4096

// maxName bounds one element of a path, in bytes: NAME_MAX. No runtime can
// create a longer one.
const maxName = 255

// withDefaults returns l with every zero field set to its default.
func (l Limits) withDefaults() Limits {
	if l.MaxLayers == 0 {
		l.MaxLayers = DefaultMaxLayers
	}
	if l.MaxEntries == 0 {
		l.MaxEntries = DefaultMaxEntries
	}
	if l.MaxNameBytes == 0 {
		l.MaxNameBytes = DefaultMaxNameBytes
	}
	if l.MaxFileSize == 0 {
		l.MaxFileSize = DefaultMaxFileSize
	}
	if l.MaxLayerSize == 0 {
		l.MaxLayerSize = DefaultMaxLayerSize
	}
	if l.MaxImageSize == 0 {
		l.MaxImageSize = DefaultMaxImageSize
	}
	return l
}

// validate reports a negative limit.
func (l Limits) validate() error {
	if l.MaxLayers < 0 || l.MaxEntries < 0 || l.MaxNameBytes < 0 || l.MaxFileSize < 0 || l.MaxLayerSize < 0 || l.MaxImageSize < 0 {
		return fmt.Errorf("limits: expected values of at least 0 (0 means the default), found %+v", l)
	}
	return nil
}

// budget counts what all layers of one image use together, against the
// image-wide [Limits]. Layers read in parallel share one budget.
type budget struct {
	entries counter // tar entries
	names   counter // bytes of paths and link targets kept in memory
	bytes   counter // file sizes, sparse files at their full size
}
