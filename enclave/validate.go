package enclave

import (
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"
)

// maxProblems bounds how many problems a [Manifest.Validate] error lists.
const maxProblems = 100

// maxPath bounds the length of a path in bytes, as Linux's PATH_MAX does.
const maxPath = 4096

// problems collects validation failures, keeping the first maxProblems.
type problems struct {
	errs []error
	n    int
}

func (p *problems) addf(format string, args ...any) {
	p.n++
	if len(p.errs) < maxProblems {
		p.errs = append(p.errs, fmt.Errorf(format, args...))
	}
}

func (p *problems) err() error {
	if p.n == 0 {
		return nil
	}
	errs := p.errs
	if p.n > len(errs) {
		errs = append(errs, fmt.Errorf("and %d more problems", p.n-len(errs)))
	}
	return fmt.Errorf("%w manifest:\n%w", ErrInvalid, errors.Join(errs...))
}

// Validate checks every rule of the format and reports every problem found
// (the first 100 of them, then a count), each naming its field, in one error
// that wraps [ErrInvalid]; it returns nil for a valid manifest. [Sign] sorts
// Files and ProtectedFiles before it validates; [Parse] validates what it
// decoded as is.
func (m *Manifest) Validate() error {
	var p problems
	switch {
	case m.Version == 1:
		p.addf("version: expected %d, found 1 (made before protected files kept their modes and owners and survived restarts): convert the image again", FormatVersion)
	case m.Version != FormatVersion:
		p.addf("version: expected %d, found %d", FormatVersion, m.Version)
	}
	m.validateProcess(&p)
	m.validateFiles(&p)
	m.validateProtected(&p)
	m.validateVolumes(&p)
	m.validateEnclaveTmpfs(&p)
	for i, pat := range m.Exclude {
		if why := checkPattern(pat); why != "" {
			p.addf("exclude[%d] %q: %s", i, pat, why)
		}
	}
	if c := m.Coordinator; c != nil {
		c.validate(&p)
	}
	m.validateLauncher(&p)
	if m.EnclaveSize != "" {
		if why := checkEnclaveSize(m.EnclaveSize); why != "" {
			p.addf("enclave_size %q: %s", m.EnclaveSize, why)
		}
	}
	if m.Threads < 0 || m.Threads > MaxThreads {
		p.addf("threads: expected 0..%d, found %d", MaxThreads, m.Threads)
	}
	return p.err()
}

// validateProcess checks argv, env, allow_env, working_dir and user.
func (m *Manifest) validateProcess(p *problems) {
	if len(m.Argv) == 0 {
		p.addf("argv: expected at least one element, found none")
	} else if m.Argv[0] == "" {
		p.addf("argv[0]: expected a program, found an empty string")
	}
	for i, a := range m.Argv {
		if strings.IndexByte(a, 0) >= 0 {
			p.addf("argv[%d]: contains a NUL byte", i)
		}
	}
	for name, value := range m.Env {
		if why := checkEnvName(name); why != "" {
			p.addf("env %q: %s", name, why)
		}
		if strings.IndexByte(value, 0) >= 0 {
			p.addf("env %q: value contains a NUL byte", name)
		}
	}
	for i, a := range m.AllowEnv {
		prefix, _ := strings.CutSuffix(a, "*")
		switch {
		case a == "*":
		case strings.Contains(prefix, "*"):
			p.addf("allow_env[%d] %q: \"*\" may only end a prefix", i, a)
		default:
			if why := checkEnvName(prefix); why != "" {
				p.addf("allow_env[%d] %q: %s", i, a, why)
			}
		}
	}
	if m.WorkingDir != "" {
		if why := checkPath(m.WorkingDir); why != "" && m.WorkingDir != "/" {
			p.addf("working_dir %q: %s", m.WorkingDir, why)
		}
	}
	if u := m.User; u != "" {
		name, group, hasGroup := strings.Cut(u, ":")
		switch {
		case len(u) > 256 || strings.ContainsAny(u, "\x00\n"):
			p.addf("user: expected at most 256 bytes without NUL or newline")
		case name == "" || (hasGroup && (group == "" || strings.Contains(group, ":"))):
			p.addf("user %q: expected \"user\" or \"user:group\"", u)
		}
	}
}

// validateFiles checks files and protected_files, and that they are sorted,
// unique, disjoint and not excluded.
func (m *Manifest) validateFiles(p *problems) {
	for i, f := range m.Files {
		if why := checkPath(f.Path); why != "" {
			p.addf("files[%d].path %q: %s", i, f.Path, why)
		} else if i > 0 && f.Path <= m.Files[i-1].Path {
			p.addf("files[%d].path %q: expected sorted unique paths, found it after %q", i, f.Path, m.Files[i-1].Path)
		}
		if f.SHA256.IsZero() {
			p.addf("files[%d].sha256: missing", i)
		}
		if f.Size < 0 {
			p.addf("files[%d].size: expected at least 0, found %d", i, f.Size)
		}
		if m.Excluded(f.Path) {
			p.addf("files[%d].path %q: matches an exclude pattern", i, f.Path)
		}
	}
	j := 0 // index into Files, advanced in step to find paths in both lists
	for i, f := range m.ProtectedFiles {
		if why := checkPath(f.Path); why != "" {
			p.addf("protected_files[%d].path %q: %s", i, f.Path, why)
		} else if i > 0 && f.Path <= m.ProtectedFiles[i-1].Path {
			p.addf("protected_files[%d].path %q: expected sorted unique paths, found it after %q",
				i, f.Path, m.ProtectedFiles[i-1].Path)
		}
		for j < len(m.Files) && m.Files[j].Path < f.Path {
			j++
		}
		if j < len(m.Files) && m.Files[j].Path == f.Path {
			p.addf("protected_files[%d].path %q: also listed in files", i, f.Path)
		}
		if f.Key == "" || len(f.Key) > 256 || strings.ContainsFunc(f.Key, isControl) {
			p.addf("protected_files[%d].key %q: expected a secret name of 1..256 printable bytes", i, f.Key)
		}
		if f.SHA256.IsZero() {
			p.addf("protected_files[%d].sha256: missing", i)
		}
		if f.Size < 0 {
			p.addf("protected_files[%d].size: expected at least 0, found %d", i, f.Size)
		}
	}
}

// noOwner is the owner ID chown reads as "unchanged" ((uid_t)-1).
const noOwner = 1<<32 - 1

// validateProtected checks encrypted_dir, plaintext_dir, the protected
// files' modes and owners, and protected_dirs: exactly the directories
// above the protected files.
func (m *Manifest) validateProtected(p *problems) {
	if len(m.ProtectedFiles) == 0 {
		if m.EncryptedDir != "" || m.PlaintextDir != "" || len(m.ProtectedDirs) > 0 {
			p.addf("encrypted_dir, plaintext_dir, protected_dirs: expected none without protected_files")
		}
		return
	}
	dirs := map[string]string{} // needed directory → a protected file below it
	for i, f := range m.ProtectedFiles {
		if f.Mode > MaxMode {
			p.addf("protected_files[%d].mode %o: expected permission bits only, at most 7777", i, uint32(f.Mode))
		}
		if f.UID == noOwner || f.GID == noOwner {
			p.addf("protected_files[%d]: uid %d, gid %d: expected IDs below %d", i, f.UID, f.GID, uint32(noOwner))
		}
		if checkPath(f.Path) != "" {
			continue // reported by validateFiles
		}
		for d := path.Dir(f.Path); d != "/"; d = path.Dir(d) {
			if _, ok := dirs[d]; ok {
				break
			}
			dirs[d] = f.Path
		}
		for _, root := range []string{m.EncryptedDir, m.PlaintextDir} {
			if root != "" && (f.Path == root || strings.HasPrefix(f.Path, root+"/")) {
				p.addf("protected_files[%d].path %q: inside %s, where the launcher keeps protected files", i, f.Path, root)
			}
		}
	}
	for _, d := range []struct{ name, value string }{{"encrypted_dir", m.EncryptedDir}, {"plaintext_dir", m.PlaintextDir}} {
		if why := checkPath(d.value); why != "" {
			p.addf("%s %q: %s; expected an absolute directory when protected_files is set", d.name, d.value, why)
		}
	}
	if a, b := m.EncryptedDir, m.PlaintextDir; a != "" && b != "" && (a == b || strings.HasPrefix(a, b+"/") || strings.HasPrefix(b, a+"/")) {
		p.addf("encrypted_dir %q and plaintext_dir %q: expected two separate directories", a, b)
	}
	for i, f := range m.Files {
		for _, root := range []string{m.EncryptedDir, m.PlaintextDir} {
			if root != "" && strings.HasPrefix(f.Path, root+"/") {
				p.addf("files[%d].path %q: inside %s, where the launcher keeps protected files", i, f.Path, root)
			}
		}
	}
	for i, f := range m.ProtectedFiles {
		if below, ok := dirs[f.Path]; ok {
			p.addf("protected_files[%d].path %q: also the directory of protected %q", i, f.Path, below)
		}
	}
	for i, f := range m.Files {
		if below, ok := dirs[f.Path]; ok {
			p.addf("files[%d].path %q: also the directory of protected %q", i, f.Path, below)
		}
	}
	for i, d := range m.ProtectedDirs {
		if why := checkPath(d.Path); why != "" {
			p.addf("protected_dirs[%d].path %q: %s", i, d.Path, why)
		} else if i > 0 && d.Path <= m.ProtectedDirs[i-1].Path {
			p.addf("protected_dirs[%d].path %q: expected sorted unique paths, found it after %q", i, d.Path, m.ProtectedDirs[i-1].Path)
		}
		if _, ok := dirs[d.Path]; ok {
			delete(dirs, d.Path)
		} else {
			p.addf("protected_dirs[%d].path %q: holds no protected file; expected only the directories above protected files", i, d.Path)
		}
		if d.Mode > MaxMode {
			p.addf("protected_dirs[%d].mode %o: expected permission bits only, at most 7777", i, uint32(d.Mode))
		}
		if d.UID == noOwner || d.GID == noOwner {
			p.addf("protected_dirs[%d]: uid %d, gid %d: expected IDs below %d", i, d.UID, d.GID, uint32(noOwner))
		}
	}
	for _, d := range slices.Sorted(maps.Keys(dirs)) {
		p.addf("protected_dirs: %q missing; expected every directory above protected files (%s)", d, dirs[d])
	}
}

// validateVolumes checks the encrypted volumes: sorted, not nested, outside
// the launcher's directories, with no trusted or protected file below them,
// and a seed's files where SeedPath puts them.
func (m *Manifest) validateVolumes(p *problems) {
	inside := func(x, dir string) bool { return x == dir || strings.HasPrefix(x, dir+"/") }
	for i, v := range m.Volumes {
		if why := checkPath(v.Path); why != "" {
			p.addf("volumes[%d].path %q: %s", i, v.Path, why)
			continue
		}
		if i > 0 && v.Path <= m.Volumes[i-1].Path {
			p.addf("volumes[%d].path %q: expected sorted unique paths, found it after %q", i, v.Path, m.Volumes[i-1].Path)
		}
		if i > 0 && inside(v.Path, m.Volumes[i-1].Path) {
			p.addf("volumes[%d].path %q: inside volume %q; expected volumes that do not nest", i, v.Path, m.Volumes[i-1].Path)
		}
		for _, root := range []string{ReservedDir, m.EncryptedDir, m.PlaintextDir, DeliveredDir} {
			if root != "" && (inside(v.Path, root) || inside(root, v.Path)) {
				p.addf("volumes[%d].path %q: overlaps %s, which the launcher keeps", i, v.Path, root)
			}
		}
		if v.Key == "" || len(v.Key) > 256 || strings.ContainsFunc(v.Key, isControl) {
			p.addf("volumes[%d].key %q: expected a secret name of 1..256 printable bytes", i, v.Key)
		}
		if v.Mode > MaxMode {
			p.addf("volumes[%d].mode %o: expected permission bits only, at most 7777", i, uint32(v.Mode))
		}
		if v.UID == noOwner || v.GID == noOwner {
			p.addf("volumes[%d]: uid %d, gid %d: expected IDs below %d", i, v.UID, v.GID, uint32(noOwner))
		}
		for j, f := range m.Files {
			if inside(f.Path, v.Path) {
				p.addf("files[%d].path %q: inside encrypted volume %q, whose content is written at run time and not measured", j, f.Path, v.Path)
			}
		}
		for j, f := range m.ProtectedFiles {
			if inside(f.Path, v.Path) {
				p.addf("protected_files[%d].path %q: inside encrypted volume %q", j, f.Path, v.Path)
			}
		}
	}
}

func (c *Coordinator) validate(p *problems) {
	if len(c.MRENCLAVE) == 0 && c.MRSIGNER.IsZero() {
		p.addf("coordinator: expected mrenclave or mrsigner, found neither")
	}
	for i, d := range c.MRENCLAVE {
		if d.IsZero() {
			p.addf("coordinator.mrenclave[%d]: all zeros", i)
		}
	}
	if c.MRSIGNER.IsZero() && (c.ISVProdID != 0 || c.MinISVSVN != 0) {
		p.addf("coordinator: isvprodid and min_isvsvn need mrsigner")
	}
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// checkPath returns why p is not an absolute, clean path naming something
// below "/", or "" if it is one.
func checkPath(p string) string {
	switch {
	case p == "":
		return "empty"
	case len(p) > maxPath:
		return fmt.Sprintf("longer than %d bytes (%d)", maxPath, len(p))
	case strings.IndexByte(p, 0) >= 0:
		return "contains a NUL byte"
	case p[0] != '/':
		return "not absolute"
	case p == "/":
		return "names the root directory"
	case path.Clean(p) != p:
		return fmt.Sprintf("not clean (expected %q)", path.Clean(p))
	}
	return ""
}

// checkEnvName returns why name cannot name an environment variable, or "".
func checkEnvName(name string) string {
	switch {
	case name == "":
		return "empty name"
	case strings.ContainsAny(name, "=\x00"):
		return "name contains '=' or NUL"
	}
	return ""
}

// checkPattern returns why pat is not a valid exclude pattern, or "".
func checkPattern(pat string) string {
	if dir, ok := strings.CutSuffix(pat, "/"); ok {
		if why := checkPath(dir); why != "" {
			return "directory prefix " + why
		}
		return ""
	}
	if pat == "" || pat[0] != '/' || strings.IndexByte(pat, 0) >= 0 || len(pat) > maxPath {
		return "expected an absolute pattern without NUL of at most 4096 bytes"
	}
	if _, err := path.Match(pat, ""); err != nil {
		return "bad pattern: " + err.Error()
	}
	return ""
}

// checkEnclaveSize returns why s is not a power of two of bytes, at most
// 1 TiB, with an optional K, M, G or T suffix; or "" if it is one.
func checkEnclaveSize(s string) string {
	digits, shift := s, 0
	if i := strings.IndexByte("KMGT", s[len(s)-1]); i >= 0 {
		digits, shift = s[:len(s)-1], 10*(i+1)
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || n == 0 || n&(n-1) != 0 || n > 1<<(40-shift) {
		return "expected a power of two of bytes, at most 1T, with an optional K, M, G or T suffix"
	}
	return ""
}
