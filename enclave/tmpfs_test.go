package enclave

import (
	"errors"
	"strings"
	"testing"
)

// In-enclave tmpfs mounts: what is inside one, and the rules a signed manifest must keep.
func TestEnclaveTmpfs(t *testing.T) {
	m := &Manifest{EnclaveTmpfs: []string{DeliveredDir, ProtectedDir}}
	for dir, want := range map[string]bool{
		DeliveredDir: true, DeliveredDir + "/etc/app": true, ProtectedDir + "/x": true,
		"/dev/shm": false, DeliveredDir + "-x": false, "/etc/app": false,
	} {
		if got := m.InEnclaveTmpfs(dir); got != want {
			t.Errorf("InEnclaveTmpfs(%q) = %v, want %v", dir, got, want)
		}
	}
	valid := func() *Manifest {
		return &Manifest{Version: FormatVersion, Argv: []string{"/bin/app"},
			Files:        []File{{Path: "/bin/app", SHA256: Digest{1}}},
			EnclaveTmpfs: []string{DeliveredDir, "/run/app"}}
	}
	if err := valid().Validate(); err != nil {
		t.Fatalf("Validate = %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(*Manifest)
		want string
	}{
		{"relative", func(m *Manifest) { m.EnclaveTmpfs = []string{"run"} }, `enclave_tmpfs[0] "run": not absolute`},
		{"root", func(m *Manifest) { m.EnclaveTmpfs = []string{"/"} }, `enclave_tmpfs[0] "/": names the root directory`},
		{"unsorted", func(m *Manifest) { m.EnclaveTmpfs = []string{"/run/app", DeliveredDir} }, "expected sorted unique paths"},
		{"nested", func(m *Manifest) { m.EnclaveTmpfs = []string{"/run", "/run/app"} }, `inside "/run"; expected mounts that do not nest`},
		{"nested, not adjacent", func(m *Manifest) { m.EnclaveTmpfs = []string{"/a", "/a-b", "/a/x"} }, `enclave_tmpfs[2] "/a/x": inside "/a"; expected mounts that do not nest`},
		{"nested, unsorted", func(m *Manifest) { m.EnclaveTmpfs = []string{"/a/x/y", "/a"} }, `enclave_tmpfs[0] "/a/x/y": inside "/a"`},
		{"hides a file", func(m *Manifest) { m.EnclaveTmpfs = []string{"/bin"} }, `files[0].path "/bin/app": inside in-enclave tmpfs "/bin"`},
	} {
		m := valid()
		tc.edit(m)
		err := m.Validate()
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Validate = %v; want %q", tc.name, err, tc.want)
		}
	}
}
