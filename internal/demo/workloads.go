package demo

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/cloister-dev/cloister/enclave"
	"github.com/cloister-dev/cloister/image"
)

// workloads is what prepareWorkloads made.
type workloads struct {
	manifest       []byte // the deployment manifest
	serverAddr     string
	tamperedMarker string // the tampered program would create this file if it ran
}

// prepareWorkloads signs an enclave manifest for each demo workload and writes the deployment
// manifest that admits them.
func (d *run) prepareWorkloads() (*workloads, error) {
	key, err := enclave.GenerateKey()
	if err != nil {
		return nil, err
	}
	mrsigner := enclave.MRSigner(&key.PublicKey)
	d.detail("enclave signer MRSIGNER %s (RSA-3072, e=3, as SGX wants)", hex.EncodeToString(mrsigner[:]))
	// The manifests record the launcher, this cloister binary, as the converter records
	// cloister-launch: it checks that it is that binary and need not hash itself.
	launcher, err := image.DescribeLauncher(d.cfg.Exe)
	if err != nil {
		return nil, fmt.Errorf("describe the launcher: %w", err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	w := &workloads{serverAddr: fmt.Sprintf("127.0.0.1:%d", port)}
	openssl, _ := exec.LookPath("openssl")
	curl, _ := exec.LookPath("curl")
	sh, _ := exec.LookPath("sh")
	path := "/usr/local/bin:/usr/bin:/bin"

	serverDir := filepath.Join(d.dir, "server")
	www := filepath.Join(serverDir, "www")
	if err := os.MkdirAll(www, 0o755); err != nil {
		return nil, err
	}
	server := &enclave.Manifest{
		Argv: []string{openssl, "s_server", "-accept", w.serverAddr, "-quiet", "-WWW",
			"-cert", filepath.Join(serverDir, "cert.pem"), "-cert_chain", filepath.Join(serverDir, "chain.pem"),
			"-key", filepath.Join(serverDir, "key.pem"),
			"-CAfile", filepath.Join(serverDir, "ca.pem"), "-Verify", "2", "-verify_return_error"},
		Env:        map[string]string{"PATH": path},
		WorkingDir: www,
	}
	clientDir := filepath.Join(d.dir, "client")
	got := filepath.Join(clientDir, "got.txt")
	client := &enclave.Manifest{
		Argv: []string{sh, "-c", fmt.Sprintf(
			`curl --silent --show-error --fail --cacert ca.pem --cert cert.pem --key key.pem https://localhost:%d/greeting.txt > %s && grep -q "$DEMO_TOKEN" %s`,
			port, got, got)},
		Env:        map[string]string{"PATH": path},
		WorkingDir: clientDir,
	}
	tamperedDir := filepath.Join(d.dir, "tampered")
	script := filepath.Join(tamperedDir, "app.sh")
	w.tamperedMarker = filepath.Join(tamperedDir, "it-ran")
	if err := os.MkdirAll(tamperedDir, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(script, []byte("echo hello > "+w.tamperedMarker+"\n"), 0o755); err != nil {
		return nil, err
	}
	tampered := &enclave.Manifest{Argv: []string{sh, script}, Env: map[string]string{"PATH": path}, WorkingDir: tamperedDir}

	for _, wl := range []struct {
		name  string
		m     *enclave.Manifest
		files []string
	}{
		{"server", server, []string{openssl}},
		{"client", client, []string{sh, curl}},
		{"tampered", tampered, []string{sh, script}},
	} {
		if err := os.MkdirAll(filepath.Join(d.dir, wl.name), 0o755); err != nil {
			return nil, err
		}
		wl.m.Version, wl.m.ISVProdID, wl.m.ISVSVN, wl.m.Launcher = enclave.FormatVersion, 1, 1, launcher
		for _, f := range wl.files {
			tf, err := trustedFile(f)
			if err != nil {
				return nil, err
			}
			wl.m.Files = append(wl.m.Files, tf)
		}
		signed, err := enclave.Sign(wl.m, key)
		if err != nil {
			return nil, fmt.Errorf("sign the %s enclave manifest: %w", wl.name, err)
		}
		if err := os.WriteFile(filepath.Join(d.dir, wl.name, "enclave.json"), signed, 0o644); err != nil {
			return nil, err
		}
		d.detail("%-8s trusts %d file(s), runs %s", wl.name, len(wl.m.Files), filepath.Base(wl.m.Argv[0]))
	}
	// The change comes after signing: the manifest still records the original script.
	if err := os.WriteFile(script, []byte("echo hello > "+w.tamperedMarker+"\necho and something the signer never saw\n"), 0o755); err != nil {
		return nil, err
	}
	d.detail("then changed %s after signing", script)

	pkg := map[string]any{"mrsigner": hex.EncodeToString(mrsigner[:]), "isvprodid": 1, "min_isvsvn": 1}
	tlsFiles := func(dir string) map[string]string {
		return map[string]string{
			filepath.Join(dir, "cert.pem"): "{{.Workload.Chain}}",
			filepath.Join(dir, "key.pem"):  "{{.Workload.Key}}",
			filepath.Join(dir, "ca.pem"):   "{{.CA.Root}}",
		}
	}
	serverFiles := tlsFiles(serverDir)
	serverFiles[filepath.Join(serverDir, "cert.pem")] = "{{.Workload.Cert}}" // s_server takes the chain apart
	serverFiles[filepath.Join(serverDir, "chain.pem")] = "{{.CA.Intermediate}}"
	serverFiles[filepath.Join(www, "greeting.txt")] = "Hello from a confidential server. Shared token: {{.Secrets.token.Hex}}\n"
	m := map[string]any{
		"packages": map[string]any{"demo": pkg},
		"workloads": map[string]any{
			"server":   map[string]any{"package": "demo", "tls": map[string]any{"dns": []string{"localhost"}, "ip": []string{"127.0.0.1"}}, "files": serverFiles},
			"client":   map[string]any{"package": "demo", "files": tlsFiles(clientDir), "env": map[string]string{"DEMO_TOKEN": "{{.Secrets.token.Hex}}"}},
			"tampered": map[string]any{"package": "demo"},
		},
		"secrets": map[string]any{"token": map[string]any{"type": "symmetric-key", "size": 128}},
	}
	if w.manifest, err = json.MarshalIndent(m, "", "  "); err != nil {
		return nil, err
	}
	return w, os.WriteFile(filepath.Join(d.dir, "manifest.json"), w.manifest, 0o644)
}

func trustedFile(path string) (enclave.File, error) {
	root, err := os.OpenRoot("/")
	if err != nil {
		return enclave.File{}, err
	}
	defer root.Close()
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return enclave.File{}, err
	}
	sum, size, err := enclave.HashFile(root, real[1:])
	if err != nil {
		return enclave.File{}, fmt.Errorf("hash %s: %w", path, err)
	}
	return enclave.File{Path: path, SHA256: sum, Size: size}, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
