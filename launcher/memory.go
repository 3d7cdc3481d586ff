package launcher

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"

	"github.com/cloister-dev/cloister/enclave"
)

// deliveredHeadroom is the memory-backed storage set aside for the delivered files.
const deliveredHeadroom = enclave.DeliveredBytes

// openMemory opens the memory-backed storage of this launch before it activates: the delivered
// files' directory and, with protected files, their plaintext directory, each emptied of what an
// earlier start left; then it checks that they have room for the protected files' plaintext
// (m.PlaintextBytes) and the delivered files (deliveredHeadroom), so that a launch that would
// run out of memory fails before it spends an activation. plain is nil without protected files.
//
// Inside Gramine (gramine set) memory-backed storage is what the signed enclave manifest records
// as in-enclave tmpfs (see gramineMemory), and the room is not checked: Gramine's statfs answers
// made-up numbers, and the bound is the enclave's size.
func openMemory(cfg Config, m *enclave.Manifest, gramine bool, log *slog.Logger) (store *deliveredStore, plain *os.Root, err error) {
	dir := cfg.deliveredDir
	if dir == "" {
		dir = DeliveredDir
	}
	var memoryBacked func(*os.Root) error
	if gramine {
		if err := gramineLimits(m); err != nil {
			return nil, nil, err
		}
		memoryBacked = gramineMemory(m)
	}
	if store, err = openDeliveredIn(dir, memoryBacked, log); err != nil {
		return nil, nil, err
	}
	store.noLinks = gramine
	if gramine {
		return store, nil, nil // gramineLimits refused protected files
	}
	if len(m.ProtectedFiles) > 0 {
		if plain, err = openPlaintextDir(m.PlaintextDir); err != nil {
			store.close()
			return nil, nil, fmt.Errorf("protected files: %w", notWritable(err, m.PlaintextDir))
		}
	}
	var needs []memoryNeed
	if plain != nil {
		needs = append(needs, memoryNeed{plain, m.PlaintextBytes()})
	}
	needs = append(needs, memoryNeed{store.root, deliveredHeadroom})
	if err := checkMemory(needs, len(m.ProtectedFiles) > 0); err != nil {
		if plain != nil {
			plain.Close()
		}
		store.close()
		return nil, nil, err
	}
	return store, plain, nil
}

// memoryNeed is how many bytes a directory of memory-backed storage must have free.
type memoryNeed struct {
	dir   *os.Root
	bytes int64
}

// checkMemory refuses to go on when the file system of a directory has less free space than
// the directories on it need together, with the numbers and the fix.
func checkMemory(needs []memoryNeed, protected bool) error {
	type fsNeed struct {
		dir         string
		need        int64
		free, total int64
	}
	var byDev []*fsNeed
	devs := map[uint64]*fsNeed{}
	for _, n := range needs {
		d, err := n.dir.Open(".")
		if err != nil {
			return err
		}
		var st syscall.Stat_t
		var fs syscall.Statfs_t
		err = syscall.Fstat(int(d.Fd()), &st)
		if err == nil {
			err = syscall.Fstatfs(int(d.Fd()), &fs)
		}
		d.Close()
		if err != nil {
			return fmt.Errorf("statfs %s: %w", n.dir.Name(), err)
		}
		f, ok := devs[st.Dev]
		if !ok {
			f = &fsNeed{dir: mountPoint(n.dir.Name(), st.Dev), free: int64(fs.Bavail) * fs.Bsize, total: int64(fs.Blocks) * fs.Bsize}
			devs[st.Dev] = f
			byDev = append(byDev, f)
		}
		f.need += n.bytes
	}
	what := "delivered files need"
	if protected {
		what = "protected files need"
	}
	for _, f := range byDev {
		if f.free >= f.need {
			continue
		}
		size := enclave.ShmSizeMiB(f.total - f.free + f.need) // what the converter suggests too
		fix := fmt.Sprintf("podman/docker run --shm-size=%dm; Kubernetes: an emptyDir with medium Memory mounted at /dev/shm", size)
		if f.dir != "/dev/shm" {
			fix = fmt.Sprintf("podman/docker run --tmpfs %s:size=%dm; Kubernetes: an emptyDir with medium Memory mounted at %s", f.dir, size, f.dir)
		}
		return fmt.Errorf("%s %s of memory-backed storage in %s; it has %s free (%s in all): give the container more (%s)",
			what, mib(f.need), f.dir, mib(f.free), mib(f.total), fix)
	}
	return nil
}

// mib formats n bytes in MiB with one decimal.
func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// mountPoint returns the top directory of dir on the file system dev: the mount point, which is
// what a user resizes.
func mountPoint(dir string, dev uint64) string {
	for dir != "/" {
		parent := filepath.Dir(dir)
		var st syscall.Stat_t
		if err := syscall.Lstat(parent, &st); err != nil || st.Dev != dev {
			return dir
		}
		dir = parent
	}
	return dir
}
