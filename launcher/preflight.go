package launcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/cloister-dev/cloister/client/attested"
	"github.com/cloister-dev/cloister/enclave"
	"github.com/cloister-dev/cloister/internal/atomicfile"
)

// preflightError is a launch refused before it activated: it would have failed afterwards,
// and an activation (which counts against the workload's max_activations) was not spent on it.
type preflightError struct{ err error }

func (e *preflightError) Error() string {
	return "checked before activation (none was spent): " + e.err.Error()
}

func (e *preflightError) Unwrap() error { return e.err }

// armPreflight makes the first activation check, on the verified connection it activates on
// and just before it does, every place the launch will write (see preflight). Once the check
// passed it is not repeated: not on a retry of the same start, nor on renewals.
func (l *launch) armPreflight() {
	l.att.before = func(ctx context.Context, s *attested.MeshSession) error {
		if err := l.preflight(ctx, s); err != nil {
			return err
		}
		l.att.before = nil
		return nil
	}
}

// preflight reads the deployment manifest from the verified Coordinator on s (it is public, as
// on the client API) for the paths it delivers to this workload, and checks, as the launch's
// user, every place the launch will have to write after activation: the delivered files (a file
// in its directory if that is memory-backed, else a symbolic link there to its copy in
// memory-backed storage) and the encrypted volumes it creates or seeds. A refusal names the
// path, the uid and the fix, and is a *preflightError, which activate does not retry.
//
// It is a check for the operator's sake, not a security boundary: what the launch writes is
// checked again as it writes it. So a Coordinator that does not serve the manifest on the
// workload API (an older one), or a manifest without this workload (the activation refuses it
// with the reason), skips it. A Coordinator without a manifest yet is a temporary error, retried
// as the activation would be.
func (l *launch) preflight(ctx context.Context, s *attested.MeshSession) error {
	raw, err := s.Manifest(ctx)
	if err != nil {
		if e, ok := errors.AsType[*attested.APIError](err); ok && (e.StatusCode == 404 || e.StatusCode == 405 /* not found, method not allowed: no net/http in the launcher */) {
			l.log.Warn("the Coordinator does not serve its manifest on the workload API (an older version); where the launch writes is checked only after activation")
			return nil
		}
		return err
	}
	paths, found, err := deliveredPaths(raw, l.cfg.Workload)
	if err != nil {
		l.log.Warn("cannot read the delivered files' paths from the Coordinator's manifest; where the launch writes is checked only after activation", "reason", err.Error())
		return nil
	}
	if !found {
		return nil
	}
	w := writeCheck{m: l.m, store: l.store, uid: os.Geteuid(), gramine: !l.att.simulated}
	if err := w.check(paths); err != nil {
		return &preflightError{err}
	}
	return nil
}

// maxDeliveredPaths bounds the paths preflight checks (a manifest of at most a few MiB).
const maxDeliveredPaths = 10000

// deliveredPaths returns the paths the deployment manifest raw delivers to workload (its
// "files" keys), sorted, and whether the manifest has that workload. It reads nothing else: the
// Coordinator validated the manifest when it was set.
func deliveredPaths(raw []byte, workload string) (paths []string, found bool, err error) {
	var doc struct {
		Workloads map[string]*struct {
			Files map[string]json.RawMessage `json:"files"`
		} `json:"workloads"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, false, fmt.Errorf("manifest: %w", err)
	}
	w := doc.Workloads[workload]
	if w == nil {
		return nil, false, nil
	}
	if len(w.Files) > maxDeliveredPaths {
		return nil, true, fmt.Errorf("workload %q delivers %d files; expected at most %d", workload, len(w.Files), maxDeliveredPaths)
	}
	return slices.Sorted(maps.Keys(w.Files)), true, nil
}

// writeCheck checks, before activation, the places a launch of m will write.
type writeCheck struct {
	m     *enclave.Manifest
	store *deliveredStore
	// uid is the launcher's effective uid, the one that writes.
	uid int
	// gramine is set inside Gramine, whose host file system has no symbolic links.
	gramine bool
}

// check reports every problem with the delivered paths and the encrypted volumes at once.
func (w writeCheck) check(paths []string) error {
	var errs []error
	files := make(map[string][]byte, len(paths))
	for _, p := range paths {
		if err := checkDeliveredPath(p); err != nil {
			errs = append(errs, err)
			continue
		}
		files[p] = nil
	}
	if err := checkDelivered(w.m, files); err != nil {
		errs = append(errs, err)
	} else {
		storeChecked := false
		for _, p := range slices.Sorted(maps.Keys(files)) {
			needStore, err := w.deliveredFile(p)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if needStore && !storeChecked {
				storeChecked = true
				if why := w.unwritable(w.store.root); why != "" {
					errs = append(errs, fmt.Errorf("delivered files' copies: the launcher keeps them in %s, which %s: run the container as the uid that created it, or give the container a /dev/shm of its own (podman's and Kubernetes' default; an emptyDir with medium: Memory at /dev/shm)",
						w.store.root.Name(), strings.TrimPrefix(why, "is ")))
				}
			}
		}
	}
	for _, v := range w.m.Volumes {
		if err := w.volume(v); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// deliveredFile checks that the launch can put the delivered file p in place, and says whether
// it needs a copy in the delivered files' directory (p's own directory is not memory-backed).
func (w writeCheck) deliveredFile(p string) (needStore bool, err error) {
	dir, name := filepath.Split(p)
	dir = filepath.Clean(dir)
	existing, err := openExisting(dir)
	if err != nil {
		return false, fmt.Errorf("delivered file %s: %w", p, err)
	}
	defer existing.Close()
	memory := w.store.memory(existing) == nil
	target := filepath.Join(w.store.root.Name(), p)
	switch {
	case w.gramine && !memory:
		return false, fmt.Errorf("delivered file %s: inside Gramine a delivered file must be in an in-enclave tmpfs, and %s is in none of the enclave manifest's (%s): Gramine's host file system has no symbolic links to link %s to a copy in enclave memory, and a file written in %s would be on the host's disk; "+
			"convert the image with --tmpfs %s (where the image has no measured file) and sign its Gramine manifest again", p, dir, strings.Join(w.m.EnclaveTmpfs, ", "), p, dir, dir)
	case memory:
		// The file itself goes there (a tmpfs: --tmpfs, an emptyDir with medium Memory).
	case existing.Name() == dir:
		// A symbolic link at p to its copy.
		done, err := checkLinkTarget(existing, name, p, target)
		if err != nil {
			return false, err
		}
		if done { // an earlier start's link: nothing to write here
			return true, nil
		}
	}
	why := w.unwritable(existing)
	if why == "" {
		return !memory, nil
	}
	what := fmt.Sprintf("the launcher must make a symbolic link at it to its copy in memory-backed storage (%s)", target)
	switch {
	case memory:
		what = "the launcher writes it there (memory-backed storage)"
	case existing.Name() != dir:
		what = fmt.Sprintf("the launcher must create %s and make a symbolic link at it to its copy in memory-backed storage (%s)", dir, target)
	}
	return false, fmt.Errorf("delivered file %s: %s, and %s %s: %s", p, what, existing.Name(), why, w.fix(dir, memory))
}

// volume checks that the launch can create or seed the encrypted volume v where it must.
func (w writeCheck) volume(v enclave.Volume) error {
	existing, err := openExisting(v.Path)
	if err != nil {
		return fmt.Errorf("encrypted volume %s: %w", v.Path, err)
	}
	defer existing.Close()
	what := "the launcher must create it"
	if existing.Name() == v.Path {
		names, err := readNames(existing)
		if err != nil {
			return fmt.Errorf("encrypted volume %s: uid %d cannot list it (%w): run the container as root (the launcher switches to the image's user itself) or as the volume's owner", v.Path, w.uid, err)
		}
		if !v.Seed || (len(names) > 0 && !slices.Contains(names, seedMarker)) {
			return nil // the application's data, or empty and not seeded: the launcher writes nothing
		}
		what = "the launcher must seed it from the image"
	}
	why := w.unwritable(existing)
	if why == "" {
		return nil
	}
	fix := fmt.Sprintf("run the container as root (the launcher switches to the image's user itself) or mount a volume at %s that uid %d can write (podman run -v NAME:%s:U)", v.Path, w.uid, v.Path)
	if strings.HasPrefix(why, "is on a read-only") {
		fix = fmt.Sprintf("mount a volume at %s (podman run -v NAME:%s; Kubernetes: a persistentVolumeClaim mounted there)", v.Path, v.Path)
	}
	return fmt.Errorf("encrypted volume %s: %s, and %s %s: %s", v.Path, what, existing.Name(), why, fix)
}

// fix says how to give the launch a writable place for a delivered file whose directory is dir.
func (w writeCheck) fix(dir string, memory bool) string {
	if memory {
		return fmt.Sprintf("mount the tmpfs at %s writable by uid %d (podman run --tmpfs %s:U; docker run --tmpfs %s:uid=%d; Kubernetes: an emptyDir with medium: Memory and fsGroup), or run the container as root (the launcher switches to the image's user itself)",
			dir, w.uid, dir, dir, w.uid)
	}
	tmpfs := fmt.Sprintf("mount a tmpfs at %s (podman run --tmpfs %s; Kubernetes: an emptyDir with medium: Memory mounted at %s)", dir, dir, dir)
	if w.uid != 0 {
		tmpfs = fmt.Sprintf("mount a tmpfs at %s that uid %d can write (podman run --tmpfs %s:U; docker run --tmpfs %s:uid=%d; Kubernetes: an emptyDir with medium: Memory mounted at %s, with fsGroup)",
			dir, w.uid, dir, dir, w.uid, dir)
		return tmpfs + ", run the container as root (the launcher switches to the image's user itself: drop --user, or runAsUser: 0), or deliver the file below /dev/shm"
	}
	return tmpfs + " or deliver the file below /dev/shm"
}

// unwritable returns why the launcher cannot create entries in dir ("is on a read-only file
// system", "is not writable by uid N …"), or "" if it can or cannot tell.
func (w writeCheck) unwritable(dir *os.Root) string {
	d, err := dir.Open(".")
	if err != nil {
		return fmt.Sprintf("cannot be opened (%v)", err)
	}
	defer d.Close()
	var st syscall.Statfs_t
	readOnly := fmt.Sprintf("is on a read-only file system (the launcher runs as uid %d; podman run --read-only, Kubernetes readOnlyRootFilesystem, or a read-only mount; a delivered file is never written to disk)", w.uid)
	if err := syscall.Fstatfs(int(d.Fd()), &st); err == nil && st.Flags&stReadOnly != 0 {
		return readOnly
	}
	switch err := syscall.Faccessat(int(d.Fd()), ".", wOK|xOK, atEACCESS); {
	case err == nil, errors.Is(err, syscall.ENOSYS):
		return ""
	case errors.Is(err, syscall.EROFS):
		return readOnly
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		if w.uid != 0 {
			return fmt.Sprintf("is not writable by uid %d (the container runs as a non-root user)", w.uid)
		}
		return fmt.Sprintf("is not writable by uid %d (%v)", w.uid, err)
	default:
		return fmt.Sprintf("cannot be checked for writing by uid %d (%v)", w.uid, err)
	}
}

// Constants of statfs(2) and faccessat(2).
const (
	stReadOnly = 0x1   // ST_RDONLY
	wOK        = 0x2   // W_OK
	xOK        = 0x1   // X_OK
	atEACCESS  = 0x200 // AT_EACCESS: check as the effective uid, as the writes will be
)

// openExisting opens dir or, if it is missing, its deepest existing ancestor: what the launch
// writes into to put something at dir. No symbolic link is followed; one on the path is refused,
// as the launch would refuse it.
func openExisting(dir string) (*os.Root, error) {
	for d := dir; ; d = filepath.Dir(d) {
		r, err := atomicfile.OpenDir(d, 0)
		if err == nil {
			return r, nil
		}
		if !errors.Is(err, fs.ErrNotExist) || d == "/" {
			return nil, err
		}
	}
}

// checkDeliveredPath refuses a delivered path that is not absolute and clean, or that is in the
// launcher's reserved directory.
func checkDeliveredPath(p string) error {
	if !filepath.IsAbs(p) || filepath.Clean(p) != p || p == "/" || strings.ContainsRune(p, 0) {
		return fmt.Errorf("delivered file path %q: expected an absolute clean path", p)
	}
	if p == enclave.ReservedDir || strings.HasPrefix(p, enclave.ReservedDir+"/") {
		return fmt.Errorf("delivered file %s: %s is reserved for the launcher and the enclave manifest", p, enclave.ReservedDir)
	}
	return nil
}

// checkLinkTarget checks what is at name in d, where the delivered file p's symbolic link to
// target goes: nothing or a regular file (replaced), or that same link from an earlier start
// (done: already right); anything else is refused as planted.
func checkLinkTarget(d *os.Root, name, p, target string) (done bool, err error) {
	switch fi, err := d.Lstat(name); {
	case errors.Is(err, fs.ErrNotExist), err == nil && fi.Mode().IsRegular():
		return false, nil
	case err != nil:
		return false, fmt.Errorf("delivered file %s: %w", p, err)
	case fi.Mode()&fs.ModeSymlink != 0:
		if got, err := d.Readlink(name); err != nil || got != target {
			return false, fmt.Errorf("delivered file %s: expected nothing, a regular file or a symbolic link to %s; found a symbolic link to %q (planted?); refusing to replace it", p, target, got)
		}
		return true, nil
	default:
		return false, fmt.Errorf("delivered file %s: expected nothing, a regular file or a symbolic link to %s; found a %s (planted?); refusing to replace it", p, target, atomicfile.Kind(fi.Mode()))
	}
}
