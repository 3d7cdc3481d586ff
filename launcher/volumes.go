package launcher

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"syscall"
	"time"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/enclave"
	"github.com/cloister-dev/cloister/internal/atomicfile"
)

// seedMarker is the file in an encrypted volume whose seeding started and has not finished; a
// start that finds it empties the volume and seeds it again.
const seedMarker = ".cloister-seeding"

// checkVolumeKeys refuses an activation that lacks the key of an encrypted volume. Under
// Gramine, provisionGramineKeys hands the keys over, and Gramine refuses to mount a volume
// without one.
func checkVolumeKeys(m *enclave.Manifest, resp *api.ActivationResponse) error {
	var errs []error
	for _, v := range m.Volumes {
		if _, ok := resp.FileKeys[v.Key]; !ok {
			errs = append(errs, fmt.Errorf("encrypted volume %s: the Coordinator delivered no key %q; list it in the workload's file_keys", v.Path, v.Key))
		}
	}
	return errors.Join(errs...)
}

// prepareVolumes makes every encrypted volume ready for the application, after activation (under
// Gramine, a volume's key must be provisioned before it is touched) and before the application
// starts: the directory exists, and it is seeded from the image (see seedVolume) or, when empty
// and not seeded, has its recorded owner and mode (a runtime creates an empty named volume
// root-owned). A volume that holds data, and no seeding marker, is the data of earlier runs and
// is used as it is.
//
// In simulation nothing encrypts a volume: its data reaches the host in plaintext, which is
// logged loudly for each volume.
func prepareVolumes(m *enclave.Manifest, simulated bool, log *slog.Logger) error {
	owners := os.Geteuid() == 0
	for _, v := range m.Volumes {
		if simulated {
			log.Warn(fmt.Sprintf("SIMULATION: encrypted volume %s is NOT encrypted: its data is written to the host in plaintext (on SGX hardware Gramine encrypts it)", v.Path),
				"volume", v.Path)
		}
		if err := prepareVolume(v, enclave.SeedPath(v.Path), owners, log); err != nil {
			return fmt.Errorf("encrypted volume %s: %w", v.Path, err)
		}
	}
	return nil
}

// prepareVolume prepares the volume v, seeding it from the directory seed.
func prepareVolume(v enclave.Volume, seed string, owners bool, log *slog.Logger) error {
	vol, err := atomicfile.OpenDir(v.Path, 0o755)
	if err != nil {
		return notWritable(err, v.Path)
	}
	defer vol.Close()
	names, err := readNames(vol)
	if err != nil {
		return err
	}
	interrupted := v.Seed && slices.Contains(names, seedMarker)
	switch {
	case len(names) > 0 && !interrupted:
		log.Info("encrypted volume holds data of earlier runs; using it as it is", "volume", v.Path)
		return nil
	case !v.Seed:
		if owners {
			if err := setAttrs(vol, ".", v.Mode, v.UID, v.GID, true); err != nil {
				return err
			}
			syncDir(vol)
		}
		return nil
	}
	if interrupted {
		log.Warn("an earlier seeding of the encrypted volume did not finish; emptying it and seeding it again", "volume", v.Path)
		if err := clearDir(vol); err != nil {
			return fmt.Errorf("empty the interrupted seeding: %w", err)
		}
	}
	start := time.Now()
	st, err := seedVolume(vol, v, seed, owners)
	if err != nil {
		return err
	}
	log.Info(fmt.Sprintf("seeded encrypted volume %s from the image (%d files, %d bytes)", v.Path, st.files, st.bytes),
		"volume", v.Path, "dirs", st.dirs, "links", st.links, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// seedStats counts what a seeding copied.
type seedStats struct {
	files, dirs, links int
	bytes              int64
}

// seedVolume copies the image content of the seeded volume v (at seed, enclave.SeedPath(v.Path):
// trusted files that the start-up check verified in simulation and Gramine checks on read) into
// the empty volume vol: regular files, directories and symbolic links, with their modes and,
// when owners, their owners; anything else is refused, and no link is followed. The marker
// comes first and goes last, everything durable before it goes, so that a seeding cut short is
// done again by the next start rather than taken for the application's data.
func seedVolume(vol *os.Root, v enclave.Volume, seed string, owners bool) (seedStats, error) {
	var st seedStats
	m, err := vol.OpenFile(seedMarker, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		err = m.Sync()
		m.Close()
	}
	if err != nil {
		return st, fmt.Errorf("mark the seeding: %w", err)
	}
	if err := fsyncDir(vol); err != nil {
		return st, err
	}
	src, err := atomicfile.OpenDir(seed, 0)
	if err != nil {
		return st, fmt.Errorf("the image's seed content: %w", err)
	}
	defer src.Close()
	if err := copyTree(src, vol, owners, &st); err != nil {
		return st, err
	}
	if owners {
		if err := vol.Lchown(".", int(v.UID), int(v.GID)); err != nil {
			return st, err
		}
	}
	if err := vol.Chmod(".", fileMode(v.Mode)); err != nil && owners {
		return st, err
	}
	if err := fsyncDir(vol); err != nil {
		return st, err
	}
	if err := vol.Remove(seedMarker); err != nil {
		return st, fmt.Errorf("end the seeding: %w", err)
	}
	return st, fsyncDir(vol)
}

// copyTree copies the content of src into dst (see seedVolume).
func copyTree(src, dst *os.Root, owners bool, st *seedStats) error {
	d, err := src.Open(".")
	if err != nil {
		return err
	}
	infos, err := d.Readdir(-1) // lstat: links are not followed
	d.Close()
	if err != nil {
		return err
	}
	for _, fi := range infos {
		name := fi.Name()
		if name == seedMarker {
			return fmt.Errorf("%s/%s: the seed content holds the seeding marker's name", src.Name(), name)
		}
		sys, _ := fi.Sys().(*syscall.Stat_t)
		if sys == nil {
			return fmt.Errorf("%s/%s: no owner", src.Name(), name)
		}
		uid, gid := int(sys.Uid), int(sys.Gid)
		mode := fi.Mode() & (os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky)
		switch {
		case fi.IsDir():
			if err := copyDir(src, dst, name, owners, st); err != nil {
				return err
			}
			if owners {
				if err := dst.Lchown(name, uid, gid); err != nil {
					return err
				}
			}
			if err := dst.Chmod(name, mode); err != nil {
				return err
			}
			st.dirs++
		case fi.Mode()&os.ModeSymlink != 0:
			target, err := src.Readlink(name)
			if err != nil {
				return err
			}
			if err := dst.Symlink(target, name); err != nil {
				return err
			}
			if owners {
				if err := dst.Lchown(name, uid, gid); err != nil {
					return err
				}
			}
			st.links++
		case fi.Mode().IsRegular():
			n, err := copyFile(src, dst, name, fi, mode, uid, gid, owners)
			if err != nil {
				return err
			}
			st.files++
			st.bytes += n
		default:
			return fmt.Errorf("%s/%s: expected regular files, directories and symbolic links in the seed content; found a %s", src.Name(), name, atomicfile.Kind(fi.Mode()))
		}
	}
	return fsyncDir(dst)
}

// copyDir creates the directory name in dst, 0700 until it is filled, and copies src's into it.
func copyDir(src, dst *os.Root, name string, owners bool, st *seedStats) error {
	if err := dst.Mkdir(name, 0o700); err != nil {
		return err
	}
	s, err := atomicfile.OpenDirIn(src, name, 0)
	if err != nil {
		return err
	}
	defer s.Close()
	d, err := atomicfile.OpenDirIn(dst, name, 0)
	if err != nil {
		return err
	}
	defer d.Close()
	return copyTree(s, d, owners, st)
}

// copyFile copies the regular file name, which Lstat found as fi, from src to a new file in
// dst, and returns its size.
func copyFile(src, dst *os.Root, name string, fi os.FileInfo, mode os.FileMode, uid, gid int, owners bool) (int64, error) {
	in, err := src.OpenFile(name, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	if got, err := in.Stat(); err != nil || !os.SameFile(fi, got) {
		return 0, fmt.Errorf("%s/%s was replaced while it was being copied; refusing it", src.Name(), name)
	}
	out, err := dst.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, err
	}
	defer out.Close()
	n, err := io.Copy(out, in)
	if err == nil && owners {
		err = out.Chown(uid, gid)
	}
	if err == nil {
		err = out.Chmod(mode) // after the chown, which clears setuid
	}
	if err == nil {
		err = out.Sync()
	}
	if err != nil {
		return 0, fmt.Errorf("copy %s/%s: %w", src.Name(), name, err)
	}
	return n, out.Close()
}

// readNames lists the names in dir.
func readNames(dir *os.Root) ([]string, error) {
	d, err := dir.Open(".")
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.Readdirnames(-1)
}

// fsyncDir makes the changes of entries in dir durable.
func fsyncDir(dir *os.Root) error {
	d, err := dir.Open(".")
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir.Name(), err)
	}
	return nil
}
