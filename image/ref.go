package image

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// Transports, named as skopeo names them.
const (
	// TransportOCI is an OCI image layout directory: oci:DIR[:TAG].
	TransportOCI = "oci"
	// TransportDockerArchive is a `docker save` tar file:
	// docker-archive:FILE[:REF].
	TransportDockerArchive = "docker-archive"
	// TransportDocker is a registry: docker://REGISTRY/REPO:TAG.
	TransportDocker = "docker"
)

// Reference names an image in one of the transports.
type Reference struct {
	// Transport is TransportOCI, TransportDockerArchive or TransportDocker.
	Transport string
	// Path is the directory or file (oci, docker-archive).
	Path string
	// Name is the tag (oci), the image reference inside the archive
	// (docker-archive) or the registry reference (docker); "" when none
	// was given.
	Name string
}

// ParseReference parses "oci:DIR[:TAG]", "docker-archive:FILE[:REF]" or
// "docker://REGISTRY/REPO:TAG". Paths may not contain ':'.
func ParseReference(s string) (Reference, error) {
	transport, rest, ok := strings.Cut(s, ":")
	if !ok {
		return Reference{}, fmt.Errorf("image reference %q: expected oci:DIR[:TAG], docker-archive:FILE[:REF] or docker://REGISTRY/REPO:TAG", s)
	}
	switch transport {
	case TransportOCI, TransportDockerArchive:
		p, n, _ := strings.Cut(rest, ":")
		if p == "" {
			return Reference{}, fmt.Errorf("image reference %q: expected a path after %q", s, transport+":")
		}
		if n != "" && transport == TransportDockerArchive {
			if _, err := name.ParseReference(n); err != nil {
				return Reference{}, fmt.Errorf("image reference %q: %w", s, err)
			}
		}
		return Reference{Transport: transport, Path: p, Name: n}, nil
	case TransportDocker:
		n, ok := strings.CutPrefix(rest, "//")
		if !ok || n == "" {
			return Reference{}, fmt.Errorf("image reference %q: expected docker://REGISTRY/REPO:TAG", s)
		}
		if _, err := name.ParseReference(n); err != nil {
			return Reference{}, fmt.Errorf("image reference %q: %w", s, err)
		}
		return Reference{Transport: transport, Name: n}, nil
	}
	return Reference{}, fmt.Errorf("image reference %q: unknown transport %q; expected oci, docker-archive or docker", s, transport)
}

// String returns r in the syntax ParseReference reads.
func (r Reference) String() string {
	switch r.Transport {
	case TransportDocker:
		return "docker://" + r.Name
	}
	if r.Name == "" {
		return r.Transport + ":" + r.Path
	}
	return r.Transport + ":" + r.Path + ":" + r.Name
}

// baseName is the last element of the repository or path, without tag.
func (r Reference) baseName() string {
	n := r.Name
	if r.Transport == TransportOCI || n == "" {
		n = strings.TrimSuffix(filepath.Base(r.Path), filepath.Ext(r.Path))
	}
	if ref, err := name.ParseReference(n); err == nil && r.Transport != TransportOCI {
		n = ref.Context().RepositoryStr()
	}
	return n[strings.LastIndex(n, "/")+1:]
}
