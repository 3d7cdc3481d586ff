package enclave

import "strings"

// InEnclaveTmpfs reports whether dir, an absolute clean path, is at or below one of
// [Manifest.EnclaveTmpfs]: memory inside the enclave under Gramine, where the host sees nothing.
func (m *Manifest) InEnclaveTmpfs(dir string) bool {
	for _, t := range m.EnclaveTmpfs {
		if dir == t || strings.HasPrefix(dir, t+"/") {
			return true
		}
	}
	return false
}

// validateEnclaveTmpfs checks the in-enclave tmpfs mounts: absolute clean paths below "/",
// sorted and unique, not nested, and holding no trusted or protected file (a mount hides what
// the image has there) nor an encrypted volume.
func (m *Manifest) validateEnclaveTmpfs(p *problems) {
	inside := func(x, dir string) bool { return x == dir || strings.HasPrefix(x, dir+"/") }
	// Nesting is checked against every mount listed, by walking each path's ancestors: in sorted
	// order a parent need not come just before its child ("/a", "/a-b", "/a/x").
	listed := make(map[string]int, len(m.EnclaveTmpfs))
	for i, t := range m.EnclaveTmpfs {
		if _, dup := listed[t]; !dup {
			listed[t] = i
		}
	}
	for i, t := range m.EnclaveTmpfs {
		if why := checkPath(t); why != "" {
			p.addf("enclave_tmpfs[%d] %q: %s", i, t, why)
			continue
		}
		if i > 0 && t <= m.EnclaveTmpfs[i-1] {
			p.addf("enclave_tmpfs[%d] %q: expected sorted unique paths, found it after %q", i, t, m.EnclaveTmpfs[i-1])
		}
		for dir := t; ; {
			cut := strings.LastIndexByte(dir, '/')
			if cut <= 0 {
				break
			}
			dir = dir[:cut]
			if _, ok := listed[dir]; ok {
				p.addf("enclave_tmpfs[%d] %q: inside %q; expected mounts that do not nest", i, t, dir)
				break
			}
		}
		for j, f := range m.Files {
			if inside(f.Path, t) {
				p.addf("files[%d].path %q: inside in-enclave tmpfs %q, which hides it", j, f.Path, t)
			}
		}
		for j, f := range m.ProtectedFiles {
			if inside(f.Path, t) || inside(m.EncryptedPath(f.Path), t) {
				p.addf("protected_files[%d].path %q: it or its encrypted copy is inside in-enclave tmpfs %q, which hides it", j, f.Path, t)
			}
		}
		for j, v := range m.Volumes {
			if inside(v.Path, t) || inside(t, v.Path) {
				p.addf("volumes[%d].path %q: overlaps in-enclave tmpfs %q", j, v.Path, t)
			}
		}
	}
}
