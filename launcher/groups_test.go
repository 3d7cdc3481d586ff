package launcher

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// fakeUsers writes an image's /etc/passwd and /etc/group.
func fakeUsers(t *testing.T) userDB {
	t.Helper()
	dir := t.TempDir()
	db := userDB{passwd: filepath.Join(dir, "passwd"), group: filepath.Join(dir, "group")}
	passwd := `root:x:0:0:root:/root:/bin/bash
# a comment
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
postgres:x:104:104:PostgreSQL administrator,,,:/var/lib/postgresql:/bin/bash
nohome:x:1001:1001:::/bin/sh
broken line
`
	group := `root:x:0:
disk:x:6:root
ssl-cert:x:103:postgres
postgres:x:104:
video:x:44:postgres,other
staff:x:50:root,postgres
`
	if err := os.WriteFile(db.passwd, []byte(passwd), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(db.group, []byte(group), 0o644); err != nil {
		t.Fatal(err)
	}
	return db
}

// HOME comes from the passwd entry, as runc sets it: "/" without one (or without a home).
func TestUserHome(t *testing.T) {
	db := fakeUsers(t)
	for uid, want := range map[int]string{0: "/root", 104: "/var/lib/postgresql", 65534: "/nonexistent", 1001: "/", 4242: "/"} {
		if got := db.home(uid); got != want {
			t.Errorf("home(%d) = %q, want %q", uid, got, want)
		}
	}
	if got := (userDB{passwd: "/nonexistent/passwd"}).home(0); got != "/" {
		t.Errorf("home without /etc/passwd = %q, want /", got)
	}
}

// The application gets its primary group, the groups /etc/group lists it in (postgres in
// ssl-cert reads the snakeoil key through it), and the groups the runtime added to the
// launcher's (podman run --group-add), but not the groups root has in the image.
func TestSupplementaryGroups(t *testing.T) {
	db := fakeUsers(t)
	for _, tc := range []struct {
		name      string
		uid, gid  int
		own       []int // the launcher's groups
		ownGID    int
		want      []int
		wantExtra []int
	}{
		{"no switch", -1, -1, []int{0}, 0, nil, nil},
		{"postgres", 104, 104, []int{0, 6, 50}, 0, []int{104, 103, 44, 50}, nil},
		{"postgres with groups added by the runtime", 104, 104, []int{0, 6, 50, 1000, 103}, 0, []int{104, 103, 44, 50, 1000}, []int{1000, 103}},
		{"a uid without an entry", 4242424, 4242, []int{0, 7}, 0, []int{4242, 7}, []int{7}},
		{"primary group given", 104, 44, nil, 0, []int{44, 103, 50}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			extra := db.runtimeGroups(tc.own, tc.ownGID)
			if !slices.Equal(extra, tc.wantExtra) {
				t.Errorf("runtimeGroups(%v, %d) = %v, want %v", tc.own, tc.ownGID, extra, tc.wantExtra)
			}
			if got := db.groups(tc.uid, tc.gid, extra); !slices.Equal(got, tc.want) {
				t.Errorf("groups(%d, %d, %v) = %v, want %v", tc.uid, tc.gid, extra, got, tc.want)
			}
		})
	}
}

func TestSetEnv(t *testing.T) {
	got := setEnv([]string{"A=1", "HOME=/root", "B=2"}, "HOME", "/var/lib/postgresql")
	if want := []string{"A=1", "B=2", "HOME=/var/lib/postgresql"}; !slices.Equal(got, want) {
		t.Errorf("setEnv = %q, want %q", got, want)
	}
	got = setEnv([]string{"A=1", "Z=2"}, "HOME", "/")
	if want := []string{"A=1", "HOME=/", "Z=2"}; !slices.Equal(got, want) {
		t.Errorf("setEnv = %q, want %q", got, want)
	}
}
