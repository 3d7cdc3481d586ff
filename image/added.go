package image

import (
	"archive/tar"
	"bytes"
	"cmp"
	"crypto/sha256"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/cloister-dev/cloister/enclave"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// BuildLauncherHint says how to build the launcher binary: static, and stripped (a third
// smaller, which every image carries and every start pages in).
const BuildLauncherHint = "CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o cloister-launch ./cmd/cloister-launch"

// launcherInfo is the launcher binary as it was hashed.
type launcherInfo struct {
	path string
	sum  enclave.Digest
	size int64
	// unstripped is the size of its symbol table and debug information, which the program
	// never reads; 0 for a stripped binary.
	unstripped int64
	// record is the launcher's record in the enclave manifest; nil for another binary.
	record *enclave.Launcher
}

// checkLauncher hashes the launcher binary, checks that it is a statically linked ELF
// executable, which runs in any image, and that knows the launcher record, and describes it
// for the enclave manifest (see [DescribeLauncher]).
func checkLauncher(p string) (*launcherInfo, error) {
	f, ef, _, err := openStatic(p, "launcher", BuildLauncherHint)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rec, err := describeLauncher(p, f, ef)
	if err != nil {
		return nil, fmt.Errorf("launcher %w", err)
	}
	return &launcherInfo{path: p, sum: rec.SHA256, size: rec.Size, unstripped: strippableBytes(ef), record: rec}, nil
}

// strippableBytes is the size of the sections of ef that stripping removes (go build
// -ldflags='-s -w'): the symbol table with its strings, and the DWARF debug information.
func strippableBytes(ef *elf.File) int64 {
	var n int64
	for _, s := range ef.Sections {
		if s.Type == elf.SHT_SYMTAB || s.Name == ".strtab" || strings.HasPrefix(s.Name, ".debug_") || strings.HasPrefix(s.Name, ".zdebug_") {
			n += int64(s.FileSize)
		}
	}
	return n
}

// buildIDWarning is the converter's warning about a launcher recorded without a Go build ID,
// or "" for one with it.
func buildIDWarning(li *launcherInfo) string {
	if li.record.GoBuildID != "" {
		return ""
	}
	return fmt.Sprintf("the launcher %s has no Go build ID that is the Go toolchain's hash of its content (it was changed after linking, or built with -ldflags=-buildid): in simulation it hashes its whole binary at every start instead of checking its build ID; build it with %s",
		li.path, BuildLauncherHint)
}

// unstrippedWarning is the converter's warning about a launcher that is not stripped, or ""
// for a stripped one.
func unstrippedWarning(li *launcherInfo) string {
	if li.unstripped <= 0 {
		return ""
	}
	return fmt.Sprintf("the launcher %s is not stripped: %.1f of its %.1f MB are symbols and debug information, which every image carries and no start reads; build it with %s",
		li.path, float64(li.unstripped)/1e6, float64(li.size)/1e6, BuildLauncherHint)
}

// staticBinary hashes the binary p (what names it in errors) and checks that it is a statically
// linked ELF executable for x86-64 or AArch64 (see [openStatic]). It returns the binary's OCI
// architecture name; hint says how to build one.
func staticBinary(p, what, hint string) (*launcherInfo, string, error) {
	f, ef, arch, err := openStatic(p, what, hint)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	sum, size, err := enclave.HashReader(io.NewSectionReader(f, 0, 1<<62))
	if err != nil {
		return nil, "", fmt.Errorf("%s %s: %w", what, p, err)
	}
	return &launcherInfo{path: p, sum: sum, size: size, unstripped: strippableBytes(ef)}, arch, nil
}

// openStatic opens the binary p (what names it in errors) and checks that it is a statically
// linked ELF executable for x86-64 or AArch64, which runs in an image without libraries; hint
// says how to build one. It returns the open file, its ELF headers and its OCI architecture
// name; the caller closes the file.
func openStatic(p, what, hint string) (_ *os.File, _ *elf.File, arch string, err error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, nil, "", fmt.Errorf("%s: %w (build it with %s)", what, err, hint)
	}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	ef, err := elf.NewFile(f)
	if err != nil {
		return nil, nil, "", fmt.Errorf("%s %s: expected an ELF executable: %w", what, p, err)
	}
	if ef.Type != elf.ET_EXEC && ef.Type != elf.ET_DYN {
		return nil, nil, "", fmt.Errorf("%s %s: ELF type %s; expected an executable", what, p, ef.Type)
	}
	for _, prog := range ef.Progs {
		if prog.Type == elf.PT_INTERP {
			return nil, nil, "", fmt.Errorf("%s %s is dynamically linked; expected a static binary (build it with %s)", what, p, hint)
		}
	}
	arch, ok := map[elf.Machine]string{elf.EM_X86_64: "amd64", elf.EM_AARCH64: "arm64"}[ef.Machine]
	if !ok {
		return nil, nil, "", fmt.Errorf("%s %s: machine %s; expected x86-64 or AArch64", what, p, ef.Machine)
	}
	return f, ef, arch, nil
}

// addedFile is one file of the added layer.
type addedFile struct {
	hdr  tar.Header
	data []byte          // small files
	file string          // or the file to copy,
	sum  *enclave.Digest // which must have this digest, if set
}

// addedLayer writes the layer the converter adds on top: /cloister with
// the launcher, the signed enclave manifest and the Gramine manifest; each
// protected file's encrypted copy below /cloister/protected (read-only,
// root's); the seeds of the encrypted volumes below /cloister/seed; and
// the entries outside /cloister (see [outsideEntries]). The launcher
// writes nothing here, so a restarted container finds the same files.
// Files copied from disk are hashed again on the way and must match what
// was measured. Entries without a time get mtime; the converter's own
// files always do.
func addedLayer(dir string, mt types.MediaType, mtime time.Time, li *launcherInfo, signed []byte, gramine string, enc []*encrypted, seed, outside []addedFile) (*fileLayer, error) {
	files := []addedFile{
		{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "cloister/", Mode: 0o755}},
		{hdr: tar.Header{Name: "cloister/enclave.json", Mode: 0o444, Size: int64(len(signed))}, data: signed},
		{hdr: tar.Header{Name: "cloister/gramine.manifest", Mode: 0o444, Size: fileSize(gramine)}, file: gramine},
		{hdr: tar.Header{Name: "cloister/launch", Mode: 0o755, Size: li.size}, file: li.path, sum: &li.sum},
	}
	slices.SortFunc(enc, func(a, b *encrypted) int { return cmp.Compare(a.file.Path, b.file.Path) })
	storeDirs := map[string]bool{}
	var stored []addedFile
	for _, e := range enc {
		name := strings.TrimPrefix(enclave.EncryptedDirDefault+e.file.Path, "/")
		for d := path.Dir(name); d != "cloister" && !storeDirs[d]; d = path.Dir(d) {
			storeDirs[d] = true
			stored = append(stored, addedFile{hdr: tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755}})
		}
		stored = append(stored, addedFile{hdr: tar.Header{
			Name: name, Mode: 0o444, Size: fileSize(e.tmp), PAXRecords: keptPAXRecords(e.hdr.PAXRecords),
		}, file: e.tmp, sum: &e.file.SHA256})
	}
	// Parents before children: the directories of /cloister/protected, in path order.
	slices.SortStableFunc(stored, func(a, b addedFile) int { return cmp.Compare(a.hdr.Name, b.hdr.Name) })
	files = append(files, stored...)
	own := len(files) // the converter's own entries, which always get mtime
	files = append(files, seed...)
	files = append(files, outside...)
	lw, err := newLayerWriter(dir, gzipLevel)
	if err != nil {
		return nil, err
	}
	for i, f := range files {
		if f.hdr.Typeflag == 0 {
			f.hdr.Typeflag = tar.TypeReg
		}
		if f.hdr.ModTime.IsZero() || i < own {
			f.hdr.ModTime = mtime
		}
		if err := writeAdded(lw.tw, &f); err != nil {
			lw.abort()
			return nil, fmt.Errorf("adding %s: %w", f.hdr.Name, err)
		}
	}
	return lw.finish(layerMediaType(gzipMagic, mt))
}

// outsideEntries returns the added layer's entries outside /cloister: at
// each protected path a symbolic link, with the original owner and time,
// to its plaintext under the launcher's memory-backed directory; each
// encrypted volume's directory with the image's attributes and, for a
// seeded one, an opaque whiteout that hides the lower layers' content (so
// a runtime's copy into a new named volume copies nothing); and every
// directory above them, with the mode, owner and time the image gives it
// (0755 and root when no layer has an entry for it). Overlay file systems
// take a directory's attributes from the upper layer that has it, so a
// directory left out would become root's 0755. Parents come before
// children.
func outsideEntries(v *view, enc []*encrypted, vols []enclave.Volume) []addedFile {
	var out []addedFile
	dirs := map[string]bool{}
	parents := func(p string) {
		for d := path.Dir(p); d != "/" && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
			out = append(out, addedFile{hdr: v.dirHeader(d)})
		}
	}
	for _, e := range enc {
		parents(e.file.Path)
		out = append(out, addedFile{hdr: tar.Header{
			Typeflag: tar.TypeSymlink, Name: tarName(e.file.Path), Linkname: protectedDir + e.file.Path,
			Mode: 0o777, Uid: e.hdr.Uid, Gid: e.hdr.Gid, Uname: e.hdr.Uname, Gname: e.hdr.Gname, ModTime: e.hdr.ModTime,
		}})
	}
	for _, vol := range vols {
		parents(vol.Path)
		dirs[vol.Path] = true
		out = append(out, addedFile{hdr: v.dirHeader(vol.Path)})
		if vol.Seed {
			out = append(out, addedFile{hdr: tar.Header{Typeflag: tar.TypeReg, Name: tarName(vol.Path) + "/" + whiteoutOpaque}})
		}
	}
	key := func(f addedFile) string { return strings.TrimSuffix(f.hdr.Name, "/") }
	slices.SortStableFunc(out, func(a, b addedFile) int { return cmp.Compare(key(a), key(b)) })
	return out
}

// keptPAXRecords returns the PAX records of a protected file's entry that
// its encrypted entry keeps: extended attributes (file capabilities,
// SELinux labels, ACLs) and other records, but none that the tar header
// fields carry (path, size, owner, times), none that describe the
// plaintext (GNU sparse maps and sizes, star's realsize) and not the IMA
// and EVM attributes, which hold a hash or signature of the plaintext.
func keptPAXRecords(recs map[string]string) map[string]string {
	var out map[string]string
	for k, v := range recs {
		switch {
		case k == "path", k == "linkpath", k == "size", k == "uid", k == "gid", k == "uname", k == "gname",
			k == "mtime", k == "atime", k == "ctime",
			strings.HasPrefix(k, "GNU.sparse."), k == "SCHILY.realsize", k == "SCHILY.filetype",
			k == "SCHILY.xattr.security.ima", k == "SCHILY.xattr.security.evm",
			k == "LIBARCHIVE.xattr.security.ima", k == "LIBARCHIVE.xattr.security.evm":
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[k] = v
	}
	return out
}

func writeAdded(tw *tar.Writer, f *addedFile) error {
	if err := tw.WriteHeader(&f.hdr); err != nil {
		return err
	}
	switch {
	case f.data != nil:
		_, err := tw.Write(f.data)
		return err
	case f.file == "":
		return nil
	}
	in, err := os.Open(f.file)
	if err != nil {
		return err
	}
	defer in.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tw, h), in)
	switch {
	case err != nil:
		return err
	case n != f.hdr.Size || f.sum != nil && !bytes.Equal(h.Sum(nil), f.sum[:]):
		return errors.New("the file changed after it was measured")
	}
	return nil
}

// fileSize returns the size of a file the converter wrote, or -1.
func fileSize(p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		return -1
	}
	return fi.Size()
}
