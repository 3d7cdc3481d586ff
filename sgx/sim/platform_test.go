package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/sgx"
)

func TestCreateLayout(t *testing.T) {
	p := create(t, Options{})
	dir := p.Dir()
	if !filepath.IsAbs(dir) || p.CollateralDir() != dir {
		t.Errorf("Dir() = %q, CollateralDir() = %q; want the same absolute path", dir, p.CollateralDir())
	}
	want := slices.Concat(collateralFiles, []string{fileReadme, fileMetadata, fileRootCA, filePCKChain, dirPrivate})
	var got []string
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		got = append(got, e.Name())
		if mode := mustStat(t, filepath.Join(dir, e.Name())).Mode(); e.Name() != dirPrivate && mode.Perm() != publicPerm {
			t.Errorf("%s has mode %v, want %v", e.Name(), mode, fs.FileMode(publicPerm))
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("directory holds %v, want %v", got, want)
	}
	if mode := mustStat(t, filepath.Join(dir, dirPrivate)).Mode(); mode.Perm() != 0o700 {
		t.Errorf("%s has mode %v, want drwx------", dirPrivate, mode)
	}
	var keys keySet
	for _, f := range keys.files() {
		fi := mustStat(t, filepath.Join(dir, f.name))
		if fi.Mode().Perm() != secretPerm {
			t.Errorf("%s has mode %v, want -rw-------", f.name, fi.Mode())
		}
		if b := readTestFile(t, dir, f.name); !bytes.HasPrefix(b, []byte("-----BEGIN PRIVATE KEY-----\n")) {
			t.Errorf("%s is not a PKCS #8 PEM key", f.name)
		}
	}
	if !bytes.Equal(readTestFile(t, dir, fileRootCA), p.RootPEM()) || p.Root().Subject.CommonName != RootCAName {
		t.Errorf("RootPEM() differs from %s, or Root() is %q, want %q", fileRootCA, p.Root().Subject.CommonName, RootCAName)
	}
	if !strings.Contains(p.Root().Subject.Organization[0], "INSECURE") {
		t.Errorf("root organization %q does not say INSECURE", p.Root().Subject.Organization)
	}
	if m, _ := filepath.Glob(filepath.Join(filepath.Dir(dir), ".*")); len(m) != 0 {
		t.Errorf("Create left %v behind", m)
	}

	var m map[string]any
	if err := json.Unmarshal(readTestFile(t, dir, fileMetadata), &m); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]any{
		"format": metadataFormat, "fmspc": "00aa55000000", "pce_id": "0000", "sgx_type": 0.0,
		"pck_ca_type": "processor", "created": testNow.Format(time.RFC3339),
	} {
		if m[key] != want {
			t.Errorf("platform.json %s = %v, want %v", key, m[key], want)
		}
	}
	if w, _ := m["warning"].(string); !strings.Contains(w, "INSECURE") || !strings.Contains(w, "forge") {
		t.Errorf("platform.json warning = %q, want it to say the platform is insecure and quotes can be forged", w)
	}
	if qe, _ := m["qe"].(map[string]any); qe["isvsvn"] != float64(DefaultQESVN) || qe["isvprodid"] != 1.0 {
		t.Errorf("platform.json qe = %v, want isvsvn %d, isvprodid 1", qe, DefaultQESVN)
	}
}

func mustStat(t *testing.T, name string) fs.FileInfo {
	t.Helper()
	fi, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	return fi
}

func TestLoadRoundTrip(t *testing.T) {
	p := create(t, Options{CAType: sgx.PCKCAPlatform, QESVN: new(uint16(5))})
	l, err := Load(p.Dir())
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if !l.Root().Equal(p.Root()) || l.FMSPC() != p.FMSPC() || l.QEIdentity() != p.QEIdentity() || l.Dir() != p.Dir() {
		t.Error("loaded platform differs from the created one")
	}
	if !slices.Equal(l.quoteTemplate[:sgx.HeaderSize], p.quoteTemplate[:sgx.HeaderSize]) {
		t.Errorf("quote header %x, created platform's %x", l.quoteTemplate[:sgx.HeaderSize], p.quoteTemplate[:sgx.HeaderSize])
	}
	raw, err := l.Quote(testBody())
	if err != nil {
		t.Fatal(err)
	}
	q, err := sgx.ParseQuote(raw)
	if err != nil {
		t.Fatal(err)
	}
	att, _ := q.AttestationPublicKey()
	verifyRS(t, "quote of the loaded platform", att, q.SignedBytes(), q.Signature)
	verifyRS(t, "QE report of the loaded platform", q.PCKChain[0].PublicKey, q.RawQEReport(), q.QEReportSignature)
	if !q.PCKChain[0].Equal(p.certs.pck) {
		t.Error("loaded platform quotes with another PCK certificate")
	}
}

func TestCreateTarget(t *testing.T) {
	parent := t.TempDir()
	empty := filepath.Join(parent, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Create(empty, Options{}); err != nil {
		t.Errorf("Create in an empty directory: %v", err)
	}
	if _, err := Create(filepath.Join(parent, "new", "nested"), Options{}); err != nil {
		t.Errorf("Create with a missing parent: %v", err)
	}
	file := filepath.Join(parent, "file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{empty, file} {
		before := readDirNames(t, parent)
		_, err := Create(dir, Options{})
		if !errors.Is(err, ErrExists) {
			t.Errorf("Create(%s) = %v, want ErrExists", filepath.Base(dir), err)
		}
		if after := readDirNames(t, parent); !slices.Equal(before, after) {
			t.Errorf("failed Create changed %v to %v", before, after)
		}
	}
	if _, err := Create(t.TempDir(), Options{CAType: "tdx", CollateralValidity: -time.Hour}); err == nil ||
		!strings.Contains(err.Error(), `found "tdx"`) || !strings.Contains(err.Error(), "found -1h0m0s") {
		t.Errorf("Create with two bad options = %v, want an error naming both", err)
	}
}

func readDirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestLoadErrors(t *testing.T) {
	other := create(t, Options{})
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, dir string)
		want   string
		is     error
	}{
		{"no platform.json", func(t *testing.T, dir string) { remove(t, dir, fileMetadata) }, fileMetadata, ErrIncomplete},
		{"no root", func(t *testing.T, dir string) { remove(t, dir, fileRootCA) }, fileRootCA, fs.ErrNotExist},
		{"huge root", func(t *testing.T, dir string) { write(t, dir, fileRootCA, make([]byte, maxPEMFileSize+1)) }, "larger than the 65536 bytes allowed", nil},
		{"unknown metadata member", func(t *testing.T, dir string) {
			edit(t, dir, fileMetadata, `"format"`, `"extra": 1, "format"`)
		}, `unknown field "extra"`, nil},
		{"newer metadata format", func(t *testing.T, dir string) { edit(t, dir, fileMetadata, metadataFormat, "cloister-sim-platform-v2") }, `found "cloister-sim-platform-v2"`, nil},
		{"metadata FMSPC differs", func(t *testing.T, dir string) {
			edit(t, dir, fileMetadata, `"fmspc": "00aa55000000"`, `"fmspc": "00aa55000001"`)
		}, "fmspc: PCK certificate has 00aa55000000, found 00aa55000001", nil},
		{"bad QE MRSIGNER", func(t *testing.T, dir string) { edit(t, dir, fileMetadata, `"mrsigner": "`, `"mrsigner": "zz`) }, "qe.mrsigner: expected hex", nil},
		{"PCK chain of another platform", func(t *testing.T, dir string) {
			write(t, dir, filePCKChain, readTestFile(t, other.Dir(), filePCKChain))
		}, filePCKChain, nil},
		{"key of another platform", func(t *testing.T, dir string) {
			write(t, dir, "private/pck_key.pem", readTestFile(t, other.Dir(), "private/pck_key.pem"))
		}, `private/pck_key.pem: key does not belong to certificate "Cloister Simulated SGX PCK Certificate"`, nil},
		{"key that is not PKCS #8", func(t *testing.T, dir string) {
			write(t, dir, "private/attestation_key.pem", readTestFile(t, dir, fileRootCA))
		}, "private/attestation_key.pem: expected exactly one PEM block of type PRIVATE KEY", nil},
		{"TCB Signing certificate not from the root", func(t *testing.T, dir string) {
			write(t, dir, fileTCBInfoChain, readTestFile(t, other.Dir(), fileTCBInfoChain))
		}, fileTCBInfoChain + ": expected a TCB Signing certificate issued by the root", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := create(t, Options{})
			tc.damage(t, p.Dir())
			_, err := Load(p.Dir())
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p.Dir()) {
				t.Errorf("Load error %q does not name %q and the directory", err, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("Load error %v is not %v", err, tc.is)
			}
		})
	}
}

func remove(t *testing.T, dir, name string) {
	t.Helper()
	if err := os.Remove(filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, dir, name string, b []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func edit(t *testing.T, dir, name, old, new string) {
	t.Helper()
	b := readTestFile(t, dir, name)
	if !bytes.Contains(b, []byte(old)) {
		t.Fatalf("%s does not contain %q", name, old)
	}
	write(t, dir, name, bytes.Replace(b, []byte(old), []byte(new), 1))
}

// TestWriteCollateralIntoPlatform rewrites the platform's own collateral: Load still works and
// the new status is there.
func TestWriteCollateralIntoPlatform(t *testing.T) {
	p := create(t, Options{})
	if err := p.WriteCollateral(p.Dir(), CollateralOptions{TCBStatus: "OutOfDate"}); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p.Dir()); err != nil {
		t.Fatalf("Load after WriteCollateral into the platform: %v", err)
	}
	if !bytes.Contains(readTestFile(t, p.Dir(), fileTCBInfo), []byte(`"tcbStatus":"OutOfDate"`)) {
		t.Error("platform collateral does not have the OutOfDate level")
	}
	if m, _ := filepath.Glob(filepath.Join(p.Dir(), ".*")); len(m) != 0 {
		t.Errorf("WriteCollateral left temporary files %v", m)
	}
}

func FuzzParseMetadata(f *testing.F) {
	p := create(f, Options{})
	f.Add(readTestFile(f, p.Dir(), fileMetadata))
	f.Add([]byte(`{"format":"cloister-sim-platform-v1"}`))
	f.Add([]byte(`{"format":"cloister-sim-platform-v1"} {}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseMetadata(b)
		if err != nil {
			return
		}
		if m.Format != metadataFormat {
			t.Fatalf("parsed format %q, want %q", m.Format, metadataFormat)
		}
		again, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := parseMetadata(again)
		if err != nil {
			t.Fatalf("re-encoded metadata does not parse: %v", err)
		}
		if !m.Created.Equal(m2.Created) {
			t.Fatalf("created %v became %v", m.Created, m2.Created)
		}
		m.Created, m2.Created = time.Time{}, time.Time{}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("metadata %+v became %+v after a round trip", m, m2)
		}
	})
}
