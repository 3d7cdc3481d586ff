package enclave

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(m *Manifest)
		want   []string // substrings of the error; none means valid
	}{
		{"full", func(m *Manifest) {}, nil},
		{"lone star allow_env", func(m *Manifest) { m.AllowEnv = []string{"*"} }, nil},
		{"root working dir", func(m *Manifest) { m.WorkingDir = "/" }, nil},
		{"user name only", func(m *Manifest) { m.User = "app" }, nil},
		{"no coordinator", func(m *Manifest) { m.Coordinator = nil }, nil},
		{"coordinator mrenclave only", func(m *Manifest) { m.Coordinator = &Coordinator{MRENCLAVE: []Digest{sum("x")}} }, nil},
		{"enclave size bytes", func(m *Manifest) { m.EnclaveSize = "4096" }, nil},
		{"enclave size 1T", func(m *Manifest) { m.EnclaveSize = "1T" }, nil},
		{"version", func(m *Manifest) { m.Version = 3 }, []string{"version: expected 2, found 3"}},
		{"version 1", func(m *Manifest) { m.Version = 1 }, []string{"version: expected 2, found 1", "convert the image again"}},
		{"no argv", func(m *Manifest) { m.Argv = nil }, []string{"argv: expected at least one element"}},
		{"empty argv0", func(m *Manifest) { m.Argv[0] = "" }, []string{"argv[0]: expected a program"}},
		{"nul in argv", func(m *Manifest) { m.Argv[2] = "a\x00b" }, []string{"argv[2]: contains a NUL"}},
		{"env name", func(m *Manifest) { m.Env["A=B"] = "x" }, []string{`env "A=B": name contains '='`}},
		{"env empty name", func(m *Manifest) { m.Env[""] = "x" }, []string{`env "": empty name`}},
		{"env value", func(m *Manifest) { m.Env["X"] = "a\x00" }, []string{`env "X": value contains a NUL`}},
		{"allow_env inner star", func(m *Manifest) { m.AllowEnv = []string{"A*B"} }, []string{`allow_env[0] "A*B": "*" may only end`}},
		{"allow_env empty", func(m *Manifest) { m.AllowEnv = []string{""} }, []string{`allow_env[0] "": empty name`}},
		{"allow_env equals", func(m *Manifest) { m.AllowEnv = []string{"A=*"} }, []string{`allow_env[0] "A=*": name contains`}},
		{"relative working dir", func(m *Manifest) { m.WorkingDir = "srv" }, []string{`working_dir "srv": not absolute`}},
		{"user empty group", func(m *Manifest) { m.User = "app:" }, []string{`user "app:": expected`}},
		{"user two colons", func(m *Manifest) { m.User = "a:b:c" }, []string{`user "a:b:c": expected`}},
		{"user newline", func(m *Manifest) { m.User = "a\nb" }, []string{"user: expected at most 256 bytes"}},
		{"relative file", func(m *Manifest) { m.Files[0].Path = "etc/x" }, []string{`files[0].path "etc/x": not absolute`}},
		{"unclean file", func(m *Manifest) { m.Files[0].Path = "/etc/../etc/x" }, []string{`not clean (expected "/etc/x")`}},
		{"root file", func(m *Manifest) { m.Files[0].Path = "/" }, []string{"names the root directory"}},
		{"long file", func(m *Manifest) { m.Files[2].Path = "/" + strings.Repeat("z", 4096) }, []string{"longer than 4096 bytes"}},
		{"unsorted files", func(m *Manifest) { m.Files[0], m.Files[1] = m.Files[1], m.Files[0] },
			[]string{`files[1].path "/etc/app.conf": expected sorted unique paths, found it after "/usr/bin/app"`}},
		{"duplicate file", func(m *Manifest) { m.Files[1].Path = m.Files[0].Path }, []string{"files[1].path", "sorted unique"}},
		{"missing digest", func(m *Manifest) { m.Files[1].SHA256 = Digest{} }, []string{"files[1].sha256: missing"}},
		{"negative size", func(m *Manifest) { m.Files[1].Size = -1 }, []string{"files[1].size: expected at least 0, found -1"}},
		{"excluded file", func(m *Manifest) { m.Exclude = append(m.Exclude, "/usr/lib/") }, []string{`files[2].path "/usr/lib/libapp.so.1": matches an exclude`}},
		{"protected also trusted", func(m *Manifest) { m.ProtectedFiles[0].Path = "/usr/bin/app" },
			[]string{`protected_files[0].path "/usr/bin/app": also listed in files`}},
		{"protected unsorted", func(m *Manifest) {
			m.ProtectedFiles = append(m.ProtectedFiles, ProtectedFile{Path: "/a", Key: "k", SHA256: sum("a")})
		}, []string{`protected_files[1].path "/a": expected sorted unique paths`}},
		{"protected key", func(m *Manifest) { m.ProtectedFiles[0].Key = "" }, []string{"protected_files[0].key"}},
		{"protected key control", func(m *Manifest) { m.ProtectedFiles[0].Key = "a\tb" }, []string{"protected_files[0].key"}},
		{"protected digest", func(m *Manifest) { m.ProtectedFiles[0].SHA256 = Digest{} }, []string{"protected_files[0].sha256: missing"}},
		{"protected size", func(m *Manifest) { m.ProtectedFiles[0].Size = -5 }, []string{"protected_files[0].size"}},
		{"volumes", func(m *Manifest) {
			m.Volumes = []Volume{{Path: "/var/lib/db", Key: "vk", Seed: true, Mode: 0o700, UID: 104, GID: 104}, {Path: "/var/lib/dbx", Key: "vk"}}
		}, nil},
		{"volume unsorted", func(m *Manifest) { m.Volumes = []Volume{{Path: "/b", Key: "k"}, {Path: "/a", Key: "k"}} },
			[]string{`volumes[1].path "/a": expected sorted unique paths`}},
		{"volume nested", func(m *Manifest) { m.Volumes = []Volume{{Path: "/a", Key: "k"}, {Path: "/a/b", Key: "k"}} },
			[]string{`volumes[1].path "/a/b": inside volume "/a"`}},
		{"volume reserved", func(m *Manifest) { m.Volumes = []Volume{{Path: "/cloister/data", Key: "k"}} },
			[]string{`volumes[0].path "/cloister/data": overlaps /cloister`}},
		{"volume above delivered", func(m *Manifest) { m.Volumes = []Volume{{Path: "/dev/shm", Key: "k"}} },
			[]string{`overlaps /dev/shm/cloister-delivered`}},
		{"volume key", func(m *Manifest) { m.Volumes = []Volume{{Path: "/data"}} }, []string{`volumes[0].key ""`}},
		{"volume owner", func(m *Manifest) { m.Volumes = []Volume{{Path: "/data", Key: "k", UID: 1<<32 - 1}} }, []string{"volumes[0]: uid 4294967295"}},
		{"volume holds trusted file", func(m *Manifest) { m.Volumes = []Volume{{Path: "/usr/lib", Key: "k"}} },
			[]string{`files[2].path "/usr/lib/libapp.so.1": inside encrypted volume "/usr/lib"`}},
		{"protected setuid kept", func(m *Manifest) { m.ProtectedFiles[0].Mode = 0o4755; m.ProtectedDirs[1].Mode = 0o1777 }, nil},
		{"protected mode type bits", func(m *Manifest) { m.ProtectedFiles[0].Mode = 0o10644 },
			[]string{"protected_files[0].mode 10644: expected permission bits only"}},
		{"protected dir mode type bits", func(m *Manifest) { m.ProtectedDirs[0].Mode = 0o40755 },
			[]string{"protected_dirs[0].mode 40755: expected permission bits only"}},
		{"protected uid -1", func(m *Manifest) { m.ProtectedFiles[0].UID = 1<<32 - 1 }, []string{"protected_files[0]: uid 4294967295"}},
		{"protected dir gid -1", func(m *Manifest) { m.ProtectedDirs[1].GID = 1<<32 - 1 }, []string{"protected_dirs[1]: uid 0, gid 4294967295"}},
		{"protected dir missing", func(m *Manifest) { m.ProtectedDirs = m.ProtectedDirs[1:] },
			[]string{`protected_dirs: "/etc" missing; expected every directory above protected files (/etc/app/key.pem)`}},
		{"protected dir extra", func(m *Manifest) { m.ProtectedDirs = append(m.ProtectedDirs, Directory{Path: "/srv", Mode: 0o755}) },
			[]string{`protected_dirs[2].path "/srv": holds no protected file`}},
		{"protected dirs unsorted", func(m *Manifest) { m.ProtectedDirs[0], m.ProtectedDirs[1] = m.ProtectedDirs[1], m.ProtectedDirs[0] },
			[]string{`protected_dirs[1].path "/etc": expected sorted unique paths`}},
		{"protected file is a protected dir", func(m *Manifest) {
			m.ProtectedFiles = append([]ProtectedFile{{Path: "/etc/app", Key: "k", SHA256: sum("a")}}, m.ProtectedFiles...)
		}, []string{`protected_files[0].path "/etc/app": also the directory of protected "/etc/app/key.pem"`}},
		{"trusted file is a protected dir", func(m *Manifest) { m.Files[0].Path = "/etc/app" },
			[]string{`files[0].path "/etc/app": also the directory of protected`}},
		{"no encrypted dir", func(m *Manifest) { m.EncryptedDir = "" }, []string{`encrypted_dir "": empty`}},
		{"relative plaintext dir", func(m *Manifest) { m.PlaintextDir = "dev/shm" }, []string{`plaintext_dir "dev/shm": not absolute`}},
		{"nested store dirs", func(m *Manifest) { m.EncryptedDir = m.PlaintextDir + "/enc" }, []string{"expected two separate directories"}},
		{"protected file in plaintext dir", func(m *Manifest) {
			m.PlaintextDir = "/etc"
		}, []string{`protected_files[0].path "/etc/app/key.pem": inside /etc`}},
		{"protected fields without files", func(m *Manifest) { m.ProtectedFiles = nil },
			[]string{"encrypted_dir, plaintext_dir, protected_dirs: expected none without protected_files"}},
		{"exclude relative", func(m *Manifest) { m.Exclude = []string{"tmp/*"} }, []string{`exclude[0] "tmp/*": expected an absolute pattern`}},
		{"exclude bad pattern", func(m *Manifest) { m.Exclude = []string{"/tmp/["} }, []string{`exclude[0] "/tmp/[": bad pattern`}},
		{"exclude root", func(m *Manifest) { m.Exclude = []string{"/"} }, []string{`exclude[0] "/": directory prefix`}},
		{"coordinator empty", func(m *Manifest) { m.Coordinator = &Coordinator{} }, []string{"coordinator: expected mrenclave or mrsigner"}},
		{"coordinator zero mrenclave", func(m *Manifest) { m.Coordinator.MRENCLAVE = []Digest{{}} }, []string{"coordinator.mrenclave[0]: all zeros"}},
		{"coordinator svn without signer", func(m *Manifest) { m.Coordinator.MRSIGNER = Digest{} }, []string{"isvprodid and min_isvsvn need mrsigner"}},
		{"enclave size not power of two", func(m *Manifest) { m.EnclaveSize = "3G" }, []string{`enclave_size "3G"`}},
		{"enclave size too big", func(m *Manifest) { m.EnclaveSize = "2T" }, []string{`enclave_size "2T"`}},
		{"enclave size sign", func(m *Manifest) { m.EnclaveSize = "+1G" }, []string{`enclave_size "+1G"`}},
		{"enclave size unit only", func(m *Manifest) { m.EnclaveSize = "G" }, []string{`enclave_size "G"`}},
		{"threads", func(m *Manifest) { m.Threads = -1 }, []string{"threads: expected 0..4096, found -1"}},
		{"launcher without build ID", func(m *Manifest) { m.Launcher.GoBuildID = "" }, nil},
		{"launcher zero hash", func(m *Manifest) { m.Launcher.SHA256 = Digest{} }, []string{"launcher.sha256: missing"}},
		{"launcher size", func(m *Manifest) { m.Launcher.Size = 0 }, []string{"launcher.size: expected 1..1073741824, found 0"}},
		{"launcher build ID", func(m *Manifest) { m.Launcher.GoBuildID = "a b" }, []string{`launcher.go_build_id "a b": expected base64url characters and slashes, found ' '`}},
		{"launcher build ID long", func(m *Manifest) { m.Launcher.GoBuildID = strings.Repeat("a", 257) }, []string{"launcher.go_build_id", "expected at most 256 bytes, found 257"}},
		{"several problems", func(m *Manifest) { m.Version, m.Threads, m.Argv = 0, 5000, nil },
			[]string{"version:", "threads:", "argv:"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := fullManifest()
			m.Files = []File{m.Files[1], m.Files[0], m.Files[2]} // sorted
			tc.modify(m)
			err := m.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Validate() = %v, want ErrInvalid", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %v\nwant it to say %q", err, w)
				}
			}
		})
	}
}

func TestValidateCapsProblems(t *testing.T) {
	m := minimalManifest()
	for i := range 150 {
		m.Files = append(m.Files, File{Path: fmt.Sprintf("/f%03d", i), Size: 1})
	}
	err := m.Validate()
	if err == nil || !strings.HasSuffix(err.Error(), "and 50 more problems") ||
		strings.Count(err.Error(), "sha256: missing") != maxProblems {
		t.Errorf("Validate() of 150 problems = %v, want %d listed and 50 counted", err, maxProblems)
	}
}

func TestExcluded(t *testing.T) {
	m := &Manifest{Exclude: []string{"/tmp/", "/var/log/*.log", "/etc/hostname"}}
	tests := []struct {
		path string
		want bool
	}{
		{"/tmp/x", true},
		{"/tmp/a/b", true},
		{"/tmp", false},
		{"/tmpfoo", false},
		{"/var/log/app.log", true},
		{"/var/log/a/app.log", false},
		{"/etc/hostname", true},
		{"/etc/hosts", false},
	}
	for _, tc := range tests {
		if got := m.Excluded(tc.path); got != tc.want {
			t.Errorf("Excluded(%q) = %v, want %v", tc.path, got, tc.want)
		}
	}
}

func TestCoordinatorAccepts(t *testing.T) {
	c := &Coordinator{MRENCLAVE: []Digest{sum("a"), sum("b")}, MRSIGNER: sum("s"), ISVProdID: 4, MinISVSVN: 2}
	tests := []struct {
		name                string
		mrenclave, mrsigner Digest
		prodID, svn         uint16
		want                string // "" means accepted
	}{
		{"mrenclave", sum("b"), sum("x"), 0, 0, ""},
		{"mrsigner", sum("z"), sum("s"), 4, 2, ""},
		{"mrsigner newer svn", sum("z"), sum("s"), 4, 9, ""},
		{"old svn", sum("z"), sum("s"), 4, 1, "isvsvn 1, expected at least 2"},
		{"wrong product", sum("z"), sum("s"), 5, 2, "isvprodid 5, expected 4"},
		{"unknown", sum("z"), sum("x"), 4, 2, "not accepted"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := c.Accepts(tc.mrenclave, tc.mrsigner, tc.prodID, tc.svn)
			if tc.want == "" && err != nil || tc.want != "" && (!errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("Accepts = %v, want %q", err, tc.want)
			}
		})
	}
	if err := (&Coordinator{MRENCLAVE: []Digest{sum("a")}}).Accepts(sum("z"), Digest{}, 0, 0); err == nil {
		t.Errorf("a zero MRSIGNER matched a zero signer")
	}
}

func TestDigestText(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{`"` + sum("a").String() + `"`, true},
		{`"` + strings.ToUpper(sum("a").String()) + `"`, false},
		{`"` + sum("a").String()[1:] + `"`, false},
		{`"` + sum("a").String() + `0"`, false},
		{`"` + strings.Repeat("g", 64) + `"`, false},
		{`12`, false},
	}
	for _, tc := range tests {
		var d Digest
		err := json.Unmarshal([]byte(tc.in), &d)
		if (err == nil) != tc.ok {
			t.Errorf("Unmarshal(%s) = %v, want ok %v", tc.in, err, tc.ok)
		}
		if err == nil {
			out, _ := json.Marshal(d)
			if string(out) != tc.in {
				t.Errorf("Marshal(Unmarshal(%s)) = %s", tc.in, out)
			}
		}
	}
}

// TestModeText: a mode is exactly four octal digits in JSON, both ways.
func TestModeText(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Mode
		ok   bool
	}{
		{"0644", 0o644, true}, {"4755", 0o4755, true}, {"7777", 0o7777, true}, {"0000", 0, true},
		{"644", 0, false}, {"00644", 0, false}, {"0648", 0, false}, {"-644", 0, false}, {"0x1f", 0, false}, {"", 0, false},
	} {
		var m Mode
		err := m.UnmarshalText([]byte(tc.in))
		if (err == nil) != tc.ok || (tc.ok && m != tc.want) {
			t.Errorf("UnmarshalText(%q) = %v, %v; want %v, ok %v", tc.in, m, err, tc.want, tc.ok)
		}
		if !tc.ok && !errors.Is(err, ErrMalformed) {
			t.Errorf("UnmarshalText(%q) = %v; want ErrMalformed", tc.in, err)
		}
		if tc.ok {
			if b, err := m.MarshalText(); err != nil || string(b) != tc.in {
				t.Errorf("MarshalText(%v) = %q, %v; want %q", m, b, err, tc.in)
			}
		}
	}
	if _, err := Mode(0o10000).MarshalText(); !errors.Is(err, ErrInvalid) {
		t.Errorf("MarshalText(010000) = %v; want ErrInvalid", err)
	}
}

func TestPlaintextBytes(t *testing.T) {
	m := &Manifest{
		ProtectedFiles: []ProtectedFile{{Size: 0}, {Size: 1}, {Size: 4096}, {Size: 4097}},
		ProtectedDirs:  []Directory{{Path: "/a"}, {Path: "/a/b"}},
	}
	// 0 + 4096 + 4096 + 8192 for the files, 2 pages for the directories.
	if got, want := m.PlaintextBytes(), int64(16384+8192); got != want {
		t.Errorf("PlaintextBytes = %d, want %d", got, want)
	}
}
