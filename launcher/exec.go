package launcher

import (
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"
	"syscall"
)

// Exec replaces the launcher with the application. It returns only if that fails.
func Exec(p *Plan) error {
	if err := os.Chdir(p.Dir); err != nil {
		return fmt.Errorf("working directory: %w", err)
	}
	if p.UID >= 0 {
		if err := syscall.Setgroups([]int{p.GID}); err != nil {
			return fmt.Errorf("drop supplementary groups: %w", err)
		}
		if err := syscall.Setgid(p.GID); err != nil {
			return fmt.Errorf("switch to group %d: %w", p.GID, err)
		}
		if err := syscall.Setuid(p.UID); err != nil {
			return fmt.Errorf("switch to user %d: %w", p.UID, err)
		}
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
