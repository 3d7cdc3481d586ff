package launcher

import (
	"bufio"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// A user's supplementary groups from /etc/group reach the application, as container runtimes
// give them (postgres in ssl-cert reads the snakeoil key through it).
func TestSupplementaryGroups(t *testing.T) {
	if g := supplementaryGroups(-1, -1); g != nil {
		t.Errorf("no user switch: groups %v, want none", g)
	}
	if g := supplementaryGroups(4242424, 4242); !slices.Equal(g, []int{4242}) {
		t.Errorf("a uid without an entry: groups %v, want only its gid", g)
	}
	f, err := os.Open("/etc/group")
	if err != nil {
		t.Skip(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) != 4 || fields[3] == "" {
			continue
		}
		member := strings.Split(fields[3], ",")[0]
		u, err := user.Lookup(member)
		if err != nil {
			continue
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		want, _ := strconv.Atoi(fields[2])
		got := supplementaryGroups(uid, gid)
		if len(got) == 0 || got[0] != gid || !slices.Contains(got, want) {
			t.Errorf("user %s: groups %v; want %d first and group %s (%d) among them", member, got, gid, fields[0], want)
		}
		return
	}
	t.Skip("no user of this machine has a supplementary group in /etc/group")
}
