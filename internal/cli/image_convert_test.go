package cli

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/cloister-dev/cloister/attest"
	"github.com/cloister-dev/cloister/cli/jsonoutput"
)

// --key-file is needed for --protect only: an encrypted volume's key comes from the Coordinator.
func TestImageConvertKeyFile(t *testing.T) {
	a := &app{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard, getenv: func(string) string { return "" }}
	for _, tc := range []struct {
		name    string
		f       imageConvertFlags
		wantErr bool
	}{
		{"volume only", imageConvertFlags{volumes: []string{"/data"}, writable: []string{"/srv"}}, false},
		{"protect", imageConvertFlags{protect: []string{"/etc/secret"}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.f
			f.signKey, f.launcher, f.protectVersion, f.isvProdID = "../../enclave/testdata/signer.pem", "/cloister-launch", 1, 1
			f.coordProdID = attest.CoordinatorProdID
			cfg, err := a.imageConvertConfig(a.newImageConvertCmd(), &f)
			if got := err != nil && strings.Contains(err.Error(), "--protect needs --key-file"); got != tc.wantErr {
				t.Fatalf("imageConvertConfig: %v; want a --key-file error: %v", err, tc.wantErr)
			}
			if !tc.wantErr && (err != nil || len(cfg.EncryptedVolumes) != 1 || len(cfg.Writable) != 1) {
				t.Errorf("config %+v, %v; want the volume and the writable path", cfg, err)
			}
		})
	}
}

// The text output names the encrypted volumes with their seeds, the unmeasured directories and
// the memory the protected files need, and asks to upload only the user-defined file key.
func TestPrintImageConvert(t *testing.T) {
	d := &jsonoutput.ImageConvert{
		ImageReport: jsonoutput.ImageReport{
			Image: "oci:out", Digest: "sha256:ab", Argv: []string{"/usr/bin/postgres"},
			ProtectedFiles: []jsonoutput.ProtectedFile{{Path: "/etc/pg/pg.conf", Key: "files", Mode: "0600"}},
			Volumes: []jsonoutput.Volume{{Path: "/var/lib/pg", Key: "pgvol", Seed: true, Mode: "0700", UID: 104, GID: 105,
				SeedPath: "/cloister/seed/var/lib/pg", SeedFiles: 3, SeedBytes: 2048}},
			Unmeasured:  []jsonoutput.Unmeasured{{Path: "/srv/state", Reason: "--writable", Files: 2}},
			MemoryBytes: 43201331,
		},
		ManifestEntry: jsonoutput.ManifestEntry{
			Workloads: map[string]jsonoutput.ManifestWorkload{"pg": {Package: "pg", FileKeys: []string{"files", "pgvol"}}},
			Secrets:   map[string]jsonoutput.ManifestSecret{"files": {Type: "user-defined"}, "pgvol": {Type: "symmetric-key", Size: 256}},
		},
		KeyFile: "pg.key",
	}
	var b bytes.Buffer
	printImageConvert(&b, "oci:in", d)
	out := b.String()
	for _, want := range []string{
		`/var/lib/pg (key "pgvol", mode 0700, owner 104:105, seeded on first start from 3 files (2.0 KiB) at /cloister/seed/var/lib/pg, which are measured, not encrypted)`,
		"/srv/state (--writable, 2 files)",
		"protected files need 41.2 MiB of memory-backed storage (/dev/shm); podman's default is 64 MiB: run with --shm-size=107m, or in Kubernetes an emptyDir with medium Memory at /dev/shm",
		"cloister secret set files --file pg.key",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "secret set pgvol") {
		t.Errorf("output asks to upload the volume key, which the Coordinator generates:\n%s", out)
	}
}
