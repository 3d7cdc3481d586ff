package cli

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/cloister-dev/cloister/cli/jsonoutput"
	"github.com/cloister-dev/cloister/client"
	"github.com/cloister-dev/cloister/internal/atomicfile"
	"github.com/cloister-dev/cloister/pki"
	"github.com/spf13/cobra"
)

// connFlags are the flags of every command that talks to a Coordinator.
type connFlags struct {
	addr      string
	configDir string
	certFile  string
	keyFile   string
	// kube names the cluster whose Coordinator is reached through a port-forward when no
	// address is given (see reachCoordinator); pinKey then names its pinned root.
	kube   kubeFlags
	pinKey string
}

func (a *app) registerConnFlags(cmd *cobra.Command, f *connFlags) {
	def := a.getenv("CLOISTER_ADDR")
	if def == "" {
		def = "localhost:4433"
	}
	cmd.Flags().StringVarP(&f.addr, "coordinator", "c", def, "host:port of the Coordinator's client API (env CLOISTER_ADDR)")
	cmd.Flags().StringVar(&f.configDir, "config-dir", "", "where verified Coordinators' roots are pinned (default: $CLOISTER_CONFIG_DIR or ~/.config/cloister)")
	cmd.Flags().StringVar(&f.certFile, "cert", a.getenv("CLOISTER_CERT"), "client certificate of a manifest user, PEM (env CLOISTER_CERT)")
	cmd.Flags().StringVar(&f.keyFile, "key", a.getenv("CLOISTER_KEY"), "private key of --cert, PEM (env CLOISTER_KEY)")
	// With --kubeconfig, --kube-context or --namespace and no address, the command reaches
	// the in-cluster Coordinator through a port-forward for as long as it runs.
	f.kube.register(cmd)
	// It wraps RunE (set before this is called), so that a failure to reach the cluster is
	// the command's error, not a usage error.
	run := cmd.RunE
	if run == nil {
		panic("registerConnFlags: " + cmd.Name() + " has no RunE yet")
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if !cmd.Flags().Changed("coordinator") && a.getenv("CLOISTER_ADDR") == "" && f.kube.set(cmd) {
			if err := a.reachCoordinator(cmd, f); err != nil {
				return err
			}
		}
		return run(cmd, args)
	}
}

func (a *app) configDir(f *connFlags) (string, error) {
	if f.configDir != "" {
		return f.configDir, nil
	}
	if d := a.getenv("CLOISTER_CONFIG_DIR"); d != "" {
		return d, nil
	}
	d, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no --config-dir and no user configuration directory: %w", err)
	}
	return filepath.Join(d, "cloister"), nil
}

// pinPath is where the deployment root of the Coordinator at addr is pinned.
func (a *app) pinPath(f *connFlags) (string, error) {
	dir, err := a.configDir(f)
	if err != nil {
		return "", err
	}
	key := f.addr
	if f.pinKey != "" {
		key = f.pinKey
	}
	name := strings.NewReplacer(":", "_", "/", "_", "[", "", "]", "").Replace(key)
	return filepath.Join(dir, "coordinators", name, "root.pem"), nil
}

// pinnedRoot loads the pinned deployment root of the Coordinator at f.addr.
func (a *app) pinnedRoot(f *connFlags) (*x509.Certificate, error) {
	p, err := a.pinPath(f)
	if err != nil {
		return nil, err
	}
	b, err := readBounded(p, 64<<10)
	if errors.Is(err, fs.ErrNotExist) && f.pinKey != "" {
		return nil, withCode(jsonoutput.CodeNotVerified,
			fmt.Errorf("the Coordinator in namespace %s has not been verified yet: run `cloister verify --namespace %s` first", f.kube.namespace, f.kube.namespace))
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil, withCode(jsonoutput.CodeNotVerified,
			fmt.Errorf("coordinator %s has not been verified yet: run `cloister verify --coordinator %s` first", f.addr, f.addr))
	}
	if err != nil {
		return nil, err
	}
	certs, err := pki.ParseCertsPEM(b)
	if err != nil || len(certs) != 1 {
		return nil, withCode(jsonoutput.CodeNotVerified, fmt.Errorf("pinned root %s is damaged (%v); verify the Coordinator again", p, err))
	}
	return certs[0], nil
}

// pin stores root as the pinned deployment root. An existing different pin is an error unless
// replace is set: a changed root means a different deployment, or an attack.
func (a *app) pin(f *connFlags, root *x509.Certificate, replace bool) (string, error) {
	p, err := a.pinPath(f)
	if err != nil {
		return "", err
	}
	if old, err := a.pinnedRoot(f); err == nil && !bytes.Equal(old.Raw, root.Raw) && !replace {
		return "", withCode(jsonoutput.CodePinChanged, fmt.Errorf("the deployment root of %s changed: pinned %s, now %s; if this is a new deployment you trust, verify again with --replace-pin",
			f.addr, fingerprint(old), fingerprint(root)))
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return "", err
	}
	// The pinned root is a trust anchor: a crash must leave the old one or the new one, and a
	// planted file beside it must not receive it (atomicfile uses a fresh random name).
	return p, atomicfile.Write(p, pki.EncodeCertPEM(root), 0o600)
}

func fingerprint(c *x509.Certificate) string {
	h := sha256.Sum256(c.Raw)
	return hex.EncodeToString(h[:])
}

// client returns an SDK client for f.addr that pins the verified root and authenticates with
// the user certificate, if any.
func (a *app) client(f *connFlags) (*client.Client, error) {
	root, err := a.pinnedRoot(f)
	if err != nil {
		return nil, err
	}
	var opts []client.Option
	if f.certFile != "" || f.keyFile != "" {
		if f.certFile == "" || f.keyFile == "" {
			return nil, usageError(errors.New("--cert and --key go together"))
		}
		cert, err := tls.LoadX509KeyPair(f.certFile, f.keyFile)
		if err != nil {
			return nil, fmt.Errorf("user certificate: %w", err)
		}
		opts = append(opts, client.WithCertificate(cert))
	}
	return client.New(f.addr, root, opts...), nil
}
