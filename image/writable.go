package image

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/cloister-dev/cloister/enclave"
)

// dataDirs are directories applications commonly write at run time:
// databases, queues, caches, logs and scratch space.
var dataDirs = []string{
	"/data", "/run", "/tmp", "/var/cache", "/var/lib/cassandra", "/var/lib/couchdb", "/var/lib/elasticsearch",
	"/var/lib/etcd", "/var/lib/influxdb", "/var/lib/mariadb", "/var/lib/mongodb", "/var/lib/mysql", "/var/lib/neo4j",
	"/var/lib/postgresql", "/var/lib/rabbitmq", "/var/lib/redis", "/var/log", "/var/mail", "/var/run", "/var/spool",
	"/var/tmp",
}

// MemoryWarnBytes is the memory-backed storage for protected files above
// which [Convert] warns: podman's default /dev/shm is 64 MiB, which the
// application shares.
const MemoryWarnBytes = 48 << 20

// writableWarnings returns one warning for each top-most directory that
// the application probably writes and that holds measured files
// (measured says which nodes are): a directory owned by the image's user
// when it is not root (looked up in the image's /etc/passwd, or numeric),
// or a well-known data directory ([dataDirs]). A new container on the same
// volume would find such files changed and refuse to start.
func writableWarnings(v *view, user string, measured func(string, *node) bool) []string {
	uid, uname, haveUser := imageUser(v, user)
	counts := map[string]int{}
	why := map[string]string{}
	top := "" // the top-most such directory the walk is in, or ""
	_ = walk("/", v.root, func(fp string, n *node) error {
		if top != "" && !strings.HasPrefix(fp, top+"/") {
			top = ""
		}
		switch {
		case n.kind == kindDir && top == "":
			switch {
			case slices.Contains(dataDirs, fp):
				top, why[fp] = fp, "a directory applications commonly write"
			case haveUser && n.def != noRef && v.entry(n.def).uid == uid:
				top, why[fp] = fp, "owned by "+uname
			}
		case top != "" && measured(fp, n):
			counts[top]++
		}
		return nil
	})
	var out []string
	for _, d := range slices.Sorted(maps.Keys(counts)) {
		files := "files"
		if counts[d] == 1 {
			files = "file"
		}
		out = append(out, fmt.Sprintf("%d measured %s under %s (%s): if the app writes there, a new container on the same volume will be refused; use --writable or --encrypted-volume",
			counts[d], files, d, why[d]))
	}
	return out
}

// imageUser returns the numeric user ID of the image's USER ("name",
// "uid", "name:group" or "uid:gid") and a name for it, looking the name up
// in the image's /etc/passwd; ok is false for root and for a name the
// image does not list.
func imageUser(v *view, user string) (uid int, name string, ok bool) {
	name, _, _ = strings.Cut(user, ":")
	if name == "" {
		return 0, "", false
	}
	passwd := v.passwd()
	if n, err := strconv.ParseUint(name, 10, 31); err == nil {
		uid, name = int(n), "uid "+name
		for line := range strings.SplitSeq(string(passwd), "\n") {
			if f := strings.Split(line, ":"); len(f) >= 3 && f[2] == strconv.Itoa(uid) && f[0] != "" {
				name = f[0]
				break
			}
		}
		return uid, name, uid != 0
	}
	for line := range strings.SplitSeq(string(passwd), "\n") {
		if f := strings.Split(line, ":"); len(f) >= 3 && f[0] == name {
			n, err := strconv.ParseUint(f[2], 10, 31)
			return int(n), name, err == nil && n != 0
		}
	}
	return 0, "", false
}

// passwd returns the content of the image's /etc/passwd (through its
// symbolic links), or nil when it has none of at most [maxPasswd] bytes.
func (v *view) passwd() []byte {
	_, n := v.resolve(passwdPath)
	if n == nil || n.kind != kindFile {
		return nil
	}
	li := v.idx[n.inode.layer]
	if li.passwdAt != int(n.inode.entry) {
		return nil
	}
	return li.passwd
}

// ShmSizeMiB is the /dev/shm size, in MiB, to give a container whose
// protected files need n bytes of memory-backed storage: the launcher's
// rule ([enclave.ShmSizeMiB]) for n and the delivered files' share
// ([enclave.DeliveredBytes]) on an empty /dev/shm, so that the converter
// and a launcher refusing a start suggest the same number.
func ShmSizeMiB(n int64) int64 { return enclave.ShmSizeMiB(n + enclave.DeliveredBytes) }

// MemoryNote says how much memory-backed storage protected files of n
// bytes ([Report.MemoryBytes]) need and how to give it.
func MemoryNote(n int64) string {
	size := fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	if n < 1<<20 {
		size = fmt.Sprintf("%d KiB", (n+1023)>>10)
	}
	return fmt.Sprintf("protected files need %s of memory-backed storage (/dev/shm); podman's default is 64 MiB: run with --shm-size=%dm, or in Kubernetes an emptyDir with medium Memory at /dev/shm",
		size, ShmSizeMiB(n))
}

// memoryWarning returns a warning when protected files of n bytes need
// more than [MemoryWarnBytes] of memory-backed storage, or "".
func memoryWarning(n int64) string {
	if n <= MemoryWarnBytes {
		return ""
	}
	return fmt.Sprintf("%s (more than %d MiB leaves the app little of podman's default)", MemoryNote(n), MemoryWarnBytes>>20)
}
