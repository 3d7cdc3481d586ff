package launcher

import (
	"bufio"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// userDB is the image's user and group databases, read as runc reads them to give a
// container's process its HOME and supplementary groups.
type userDB struct {
	passwd, group string
}

// imageUsers is the image's own databases.
var imageUsers = userDB{passwd: "/etc/passwd", group: "/etc/group"}

// lookup returns the passwd entry of uid: its name and home directory.
func (db userDB) lookup(uid int) (name, home string, ok bool) {
	id := strconv.Itoa(uid)
	for f := range db.entries(db.passwd, 7) {
		if f[2] == id {
			return f[0], f[5], true
		}
	}
	return "", "", false
}

// home returns the home directory of uid as runc sets HOME: the passwd entry's, "/" without one.
func (db userDB) home(uid int) string {
	if _, h, ok := db.lookup(uid); ok && h != "" {
		return h
	}
	return "/"
}

// memberOf returns the groups that list name as a member.
func (db userDB) memberOf(name string) []int {
	var gids []int
	if name == "" {
		return nil
	}
	for f := range db.entries(db.group, 4) {
		if g, err := strconv.Atoi(f[2]); err == nil && slices.Contains(strings.Split(f[3], ","), name) {
			gids = append(gids, g)
		}
	}
	return gids
}

// entries yields the lines of a colon-separated database with n fields; others are skipped.
func (db userDB) entries(path string, n int) func(yield func([]string) bool) {
	return func(yield func([]string) bool) {
		f, err := os.Open(path)
		if err != nil {
			return
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := sc.Text()
			if line == "" || line[0] == '#' {
				continue
			}
			if fields := strings.Split(line, ":"); len(fields) == n && !yield(fields) {
				return
			}
		}
	}
}

// groups returns the supplementary groups runc gives user uid with primary group gid: gid
// first, then every group of the image's /etc/group listing the user's name, then extra (the
// groups the runtime added), without repeats. It returns nil when no switch is needed (uid < 0).
func (db userDB) groups(uid, gid int, extra []int) []int {
	if uid < 0 {
		return nil
	}
	groups := []int{gid}
	add := func(gids []int) {
		for _, g := range gids {
			if !slices.Contains(groups, g) {
				groups = append(groups, g)
			}
		}
	}
	if name, _, ok := db.lookup(uid); ok {
		add(db.memberOf(name))
	}
	add(extra)
	return groups
}

// runtimeGroups returns the supplementary groups the container runtime added (podman run
// --group-add) to the launcher's own: the launcher runs as root, and runc gives it root's groups
// from the image's /etc/group, its own gid and those added. own are the launcher's groups.
func (db userDB) runtimeGroups(own []int, ownGID int) []int {
	rootName := "root"
	if n, _, ok := db.lookup(0); ok {
		rootName = n
	}
	image := db.memberOf(rootName)
	var extra []int
	for _, g := range own {
		if g != ownGID && !slices.Contains(image, g) && !slices.Contains(extra, g) {
			extra = append(extra, g)
		}
	}
	return extra
}

// appGroups returns the supplementary groups of the application's user uid:gid, as runc would
// give them to the original image's process (see groups and runtimeGroups); nil with no switch.
func (db userDB) appGroups(uid, gid int) []int {
	if uid < 0 {
		return nil
	}
	own, err := syscall.Getgroups()
	if err != nil {
		own = nil
	}
	return db.groups(uid, gid, db.runtimeGroups(own, syscall.Getgid()))
}

// setEnv returns env, sorted, with name set to value, replacing any earlier value.
func setEnv(env []string, name, value string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	out = append(out, name+"="+value)
	slices.Sort(out)
	return out
}
