package launcher

import (
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"
	"syscall"
)

// Exec replaces the launcher with the application, which becomes the container's PID 1 and
// keeps the certificate of this activation until it expires. It returns only if that fails.
func Exec(p *Plan) error {
	if err := os.Chdir(p.Dir); err != nil {
		return fmt.Errorf("working directory: %w", err)
	}
	if p.UID >= 0 {
		if err := chownStdio(p.UID, p.GID); err != nil {
			return err
		}
		groups := p.Groups
		if len(groups) == 0 {
			groups = []int{p.GID}
		}
		if err := syscall.Setgroups(groups); err != nil {
			return fmt.Errorf("drop supplementary groups: %w", err)
		}
		if err := syscall.Setgid(p.GID); err != nil {
			return fmt.Errorf("switch to group %d: %w", p.GID, err)
		}
		if err := syscall.Setuid(p.UID); err != nil {
			return fmt.Errorf("switch to user %d: %w", p.UID, err)
		}
	}
	if p.launch != nil {
		p.launch.store.keepAcrossExec()
	}
	if err := syscall.Exec(p.Path, p.Argv, p.Env); err != nil {
		return fmt.Errorf("exec %s: %w", p.Path, err)
	}
	return nil
}

// resolveUser turns an OCI-style user ("name", "uid", "name:group", "uid:gid") into numeric
// IDs. It returns -1, -1 when no switch is needed: no user given, or the launcher is not root.
func resolveUser(spec string) (uid, gid int, err error) {
	if spec == "" || os.Geteuid() != 0 {
		return -1, -1, nil
	}
	name, group, hasGroup := strings.Cut(spec, ":")
	if uid, err = strconv.Atoi(name); err != nil {
		u, err := user.Lookup(name)
		if err != nil {
			return -1, -1, fmt.Errorf("user %q: %w", name, err)
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
	} else if u, err := user.LookupId(name); err == nil {
		gid, _ = strconv.Atoi(u.Gid)
	} else {
		gid = uid
	}
	if hasGroup {
		if gid, err = strconv.Atoi(group); err != nil {
			g, err := user.LookupGroup(group)
			if err != nil {
				return -1, -1, fmt.Errorf("group %q: %w", group, err)
			}
			gid, _ = strconv.Atoi(g.Gid)
		}
	}
	if uid == 0 && gid == 0 {
		return -1, -1, nil
	}
	return uid, gid, nil
}

// File system types (linux/magic.h) of anonymous pipes and sockets.
const (
	pipefsMagic = 0x50495045
	sockfsMagic = 0x534f434b
)

// chownStdio gives the application's user its standard input, output and error where they are
// the container's own pipes or sockets, as runc does for a container's process: an application
// that reopens /dev/stdout (/proc/self/fd/1) after the launcher switched user would otherwise
// meet a root-owned 0600 pipe and EACCES.
//
// Only anonymous pipes and sockets owned by root are changed: they exist for this process
// alone (reachable by others only through /proc/PID/fd, which needs the right to trace it).
// Terminals, /dev/null and other devices, regular files and named FIFOs or sockets are
// shared objects of a file system, which a chown would open to the application's user (a
// host tty, a log file); they stay as they are. A descriptor that is closed is skipped, and
// so is a chown the kernel refuses because an ID is not mapped in a user namespace.
func chownStdio(uid, gid int) error {
	for fd := range 3 {
		if _, err := chownIfOurs(fd, uid, gid); err != nil {
			return fmt.Errorf("give standard stream %d to user %d: %w", fd, uid, err)
		}
	}
	return nil
}

// chownIfOurs changes the owner of fd to uid:gid if it is an anonymous pipe or socket owned
// by root, and says whether it did.
func chownIfOurs(fd, uid, gid int) (bool, error) {
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		if err == syscall.EBADF {
			return false, nil
		}
		return false, err
	}
	if st.Uid != 0 || int(st.Uid) == uid {
		return false, nil
	}
	if t := st.Mode & syscall.S_IFMT; t != syscall.S_IFIFO && t != syscall.S_IFSOCK {
		return false, nil
	}
	var fs syscall.Statfs_t
	if err := syscall.Fstatfs(fd, &fs); err != nil {
		return false, err
	}
	if fs.Type != pipefsMagic && fs.Type != sockfsMagic {
		return false, nil // a named FIFO or socket: it belongs to its file system
	}
	if err := syscall.Fchown(fd, uid, gid); err != nil {
		if err == syscall.EPERM || err == syscall.EINVAL {
			return false, nil
		}
		return false, err
	}
	return true, nil
}
