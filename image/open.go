package image

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Option configures [Open], [Write], [Convert], [Inspect] and [Verify];
// each uses the options that concern it and ignores the others.
type Option func(*options)

type options struct {
	keychain authn.Keychain
	progress ProgressFunc
}

// WithKeychain sets the registry credentials of docker:// references.
// Default: anonymous access.
func WithKeychain(k authn.Keychain) Option { return func(o *options) { o.keychain = k } }

// WithProgress receives progress snapshots of [Convert] and [Verify].
// Default: none.
func WithProgress(fn ProgressFunc) Option { return func(o *options) { o.progress = fn } }

func newOptions(opts []Option) *options {
	o := &options{keychain: authn.NewMultiKeychain()}
	for _, f := range opts {
		f(o)
	}
	return o
}

// annotationRefName is the OCI annotation that names an image in a layout.
const annotationRefName = "org.opencontainers.image.ref.name"

// platform is the platform chosen from multi-platform images.
var platform = v1.Platform{OS: "linux", Architecture: runtime.GOARCH}

// Open reads the image ref names (see [ParseReference]) without a daemon.
// From a multi-platform image it takes linux on this machine's
// architecture. Close the Source when done.
func Open(ctx context.Context, ref string, opts ...Option) (*Source, error) {
	r, err := ParseReference(ref)
	if err != nil {
		return nil, err
	}
	o := newOptions(opts)
	switch r.Transport {
	case TransportOCI:
		return openLayout(r)
	case TransportDockerArchive:
		return openArchive(r)
	}
	n, err := name.ParseReference(r.Name)
	if err != nil {
		return nil, err
	}
	img, err := remote.Image(n, remote.WithContext(ctx), remote.WithAuthFromKeychain(o.keychain), remote.WithPlatform(platform))
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", r, err)
	}
	return FromImage(r.String(), img)
}

// openLayout reads an image from an OCI layout directory.
func openLayout(r Reference) (*Source, error) {
	p, err := layout.FromPath(r.Path)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", r, err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", r, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", r, err)
	}
	var found []v1.Descriptor
	var names []string
	for _, d := range im.Manifests {
		n := d.Annotations[annotationRefName]
		names = append(names, n)
		if r.Name == "" || n == r.Name {
			found = append(found, d)
		}
	}
	if len(found) != 1 {
		want := "one image"
		if r.Name != "" {
			want = "an image named " + r.Name
		}
		return nil, fmt.Errorf("image %s: expected %s, found %d; images named in the layout: %s",
			r, want, len(found), strings.Join(slices.Compact(slices.Sorted(slices.Values(names))), ", "))
	}
	d := found[0]
	if d.MediaType.IsIndex() {
		sub, err := idx.ImageIndex(d.Digest)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", r, err)
		}
		if d, err = pickPlatform(sub); err != nil {
			return nil, fmt.Errorf("image %s: %w", r, err)
		}
	}
	img, err := p.Image(d.Digest)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", r, err)
	}
	s, err := FromImage(r.String(), img)
	if err != nil {
		return nil, err
	}
	s.setBlobFiles(r.Path)
	return s, nil
}

// pickPlatform returns the descriptor of this platform's image in idx.
func pickPlatform(idx v1.ImageIndex) (v1.Descriptor, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	var have []string
	for _, d := range im.Manifests {
		if d.Platform != nil && d.Platform.Satisfies(platform) {
			return d, nil
		}
		if d.Platform != nil {
			have = append(have, d.Platform.String())
		}
	}
	return v1.Descriptor{}, fmt.Errorf("no image for %s; found %s", platform.String(), strings.Join(have, ", "))
}
