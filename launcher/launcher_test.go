package launcher

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/client/attested"
)

func TestConfigFromEnv(t *testing.T) {
	host, source := defaultInstance(os.ReadFile) // the container ID, or random
	if source == "" {
		host = "random"
	}
	environ := []string{"A=1", "B=2"}
	for _, tc := range []struct {
		name string
		env  map[string]string
		want Config
		errs []string // every one must be in the error
	}{{
		name: "everything set",
		env: map[string]string{EnvCoordinator: "10.0.0.1:2001", EnvWorkload: "web", EnvInstance: "web-1", EnvTEE: "Simulation",
			EnvSimDir: "/sim", EnvEnclaveManifest: "/m.json", EnvRetryTimeout: "30s"},
		want: Config{Coordinator: "10.0.0.1:2001", Workload: "web", Instance: "web-1", TEE: TEESimulation, SimDir: "/sim",
			EnclaveManifest: "/m.json", RetryTimeout: 30 * time.Second, HostEnv: environ},
	}, {
		name: "defaults",
		env:  map[string]string{EnvCoordinator: "c:1", EnvWorkload: "w"},
		want: Config{Coordinator: "c:1", Workload: "w", Instance: host, EnclaveManifest: DefaultEnclaveManifest, RetryTimeout: 2 * time.Minute, HostEnv: environ},
	}, {
		name: "gramine",
		env:  map[string]string{EnvCoordinator: "c:1", EnvWorkload: "w", EnvTEE: "GRAMINE"},
		want: Config{Coordinator: "c:1", Workload: "w", Instance: host, TEE: TEEGramine, EnclaveManifest: DefaultEnclaveManifest, RetryTimeout: 2 * time.Minute, HostEnv: environ},
	}, {
		name: "nothing set: every problem at once",
		env:  map[string]string{EnvTEE: "sgx", EnvRetryTimeout: "soon"},
		errs: []string{
			"CLOISTER_COORDINATOR is not set; expected host:port of the Coordinator's workload API",
			"CLOISTER_WORKLOAD is not set; expected the workload's name in the deployment manifest",
			`CLOISTER_TEE="sgx": expected gramine or simulation`,
			`CLOISTER_RETRY_TIMEOUT="soon": expected a duration such as 2m`,
		},
	}, {
		name: "negative retry timeout",
		env:  map[string]string{EnvCoordinator: "c:1", EnvWorkload: "w", EnvRetryTimeout: "-1s"},
		errs: []string{`CLOISTER_RETRY_TIMEOUT="-1s": expected a duration such as 2m`},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			cfg, err := ConfigFromEnv(func(k string) string { return tc.env[k] }, environ, &stderr)
			if len(tc.errs) > 0 {
				if err == nil {
					t.Fatalf("ConfigFromEnv(%v) succeeded; want an error", tc.env)
				}
				for _, w := range tc.errs {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not say %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("ConfigFromEnv: %v", err)
			}
			if cfg.Log == nil {
				t.Errorf("no logger")
			}
			cfg.Log = nil
			if tc.want.Instance == "random" && len(cfg.Instance) == 32 && lastHexID(cfg.Instance+strings.Repeat("0", 32)) != "" {
				cfg.Instance = "random" // 128 random bits in hex
			}
			if cfg.Coordinator != tc.want.Coordinator || cfg.Workload != tc.want.Workload || cfg.Instance != tc.want.Instance ||
				cfg.TEE != tc.want.TEE || cfg.SimDir != tc.want.SimDir || cfg.EnclaveManifest != tc.want.EnclaveManifest ||
				cfg.RetryTimeout != tc.want.RetryTimeout || !slices.Equal(cfg.HostEnv, tc.want.HostEnv) {
				t.Errorf("ConfigFromEnv = %+v\nwant %+v", cfg, tc.want)
			}
		})
	}
}

const testPlaceholder = "cloister-workload-key-00112233445566778899aabbccddeeff"

func TestSubstituteKey(t *testing.T) {
	key := "-----BEGIN PRIVATE KEY-----\nKEY\n-----END PRIVATE KEY-----\n"
	resp := &api.ActivationResponse{
		KeyPlaceholder: testPlaceholder,
		Files: map[string][]byte{
			"/key.pem":    []byte(testPlaceholder),
			"/bundle.pem": []byte("CERT\n" + testPlaceholder + "CERT2\n" + testPlaceholder),
			"/other":      []byte("cloister-workload-key-ffffffffffffffffffffffffffffffff"),
		},
		Env:  map[string]string{"KEY": testPlaceholder, "X": "plain"},
		Argv: []string{"/app", "--key=" + testPlaceholder, "plain"},
	}
	if err := substituteKey(resp, key); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{
		"/key.pem":    key,
		"/bundle.pem": "CERT\n" + key + "CERT2\n" + key,
		"/other":      "cloister-workload-key-ffffffffffffffffffffffffffffffff", // not this launch's placeholder
	} {
		if got := string(resp.Files[p]); got != want {
			t.Errorf("file %s = %q, want %q", p, got, want)
		}
	}
	if resp.Env["KEY"] != key || resp.Env["X"] != "plain" {
		t.Errorf("env = %q", resp.Env)
	}
	if want := []string{"/app", "--key=" + key, "plain"}; !slices.Equal(resp.Argv, want) {
		t.Errorf("argv = %q, want %q", resp.Argv, want)
	}
	for _, bad := range []string{"", "cloister-workload-key-", "key", "cloister-workload-key-short", "CLOISTER-WORKLOAD-KEY-00112233445566778899aabbccddeeff"} {
		err := substituteKey(&api.ActivationResponse{KeyPlaceholder: bad, Files: map[string][]byte{"/f": []byte(bad)}}, key)
		if err == nil || !strings.Contains(err.Error(), "expected cloister-workload-key-<random hex>") {
			t.Errorf("placeholder %q: %v; want a refusal", bad, err)
		}
	}
}

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	bin, notExec, sub := filepath.Join(dir, "bin"), filepath.Join(dir, "noexec"), filepath.Join(dir, "sub")
	for _, d := range []string{bin, notExec, filepath.Join(sub, "prog")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p string, mode os.FileMode) {
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(bin, "prog"), 0o755)
	write(filepath.Join(notExec, "prog"), 0o644)
	for _, tc := range []struct {
		name string
		prog string
		env  []string
		want string
		err  string
	}{
		{"absolute path as it is", "/does/not/matter", nil, "/does/not/matter", ""},
		{"relative path with a slash", "./prog", nil, "./prog", ""},
		{"PATH from the application's environment", "prog", []string{"A=1", "PATH=" + bin}, filepath.Join(bin, "prog"), ""},
		{"not executable and directories skipped", "prog", []string{"PATH=" + notExec + ":" + sub + ":" + bin}, filepath.Join(bin, "prog"), ""},
		{"last PATH wins", "prog", []string{"PATH=/nowhere", "PATH=" + bin}, filepath.Join(bin, "prog"), ""},
		{"default PATH", "sh", nil, "", ""},
		{"not found", "prog", []string{"PATH=" + notExec + ":" + sub}, "", `program "prog" not found in PATH ` + notExec + ":" + sub},
		{"empty", "", nil, "", "argv[0] is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := lookPath(tc.prog, tc.env)
			switch {
			case tc.err != "":
				if err == nil || err.Error() != tc.err {
					t.Errorf("lookPath(%q) = %q, %v; want error %q", tc.prog, got, err, tc.err)
				}
			case err != nil:
				t.Errorf("lookPath(%q): %v", tc.prog, err)
			case tc.want == "" && filepath.Base(got) != "sh":
				t.Errorf("lookPath(sh) with the default PATH = %q", got)
			case tc.want != "" && got != tc.want:
				t.Errorf("lookPath(%q) = %q, want %q", tc.prog, got, tc.want)
			}
		})
	}
}

func TestRetryable(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&attested.APIError{StatusCode: 503, Code: api.CodeNotReady}, true},
		{&attested.APIError{StatusCode: 503}, true},
		{&attested.APIError{StatusCode: http.StatusTooManyRequests}, true},
		{&attested.APIError{StatusCode: 403, Code: api.CodePolicy}, false},
		{&attested.APIError{StatusCode: 409, Code: api.CodeActivationLimit}, false},
		{&attested.APIError{StatusCode: 404, Code: api.CodeUnknownWorkload}, false},
		{&attested.DialError{Addr: "x:1", Err: errors.New("refused")}, true},
		{errors.New("coordinator at x failed verification"), false},
		{io.ErrUnexpectedEOF, false},
		{fmt.Errorf("activate: %w: EOF", attested.ErrConnClosed), true},
	} {
		if got := retryable(tc.err); got != tc.want {
			t.Errorf("retryable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
