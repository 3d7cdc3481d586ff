package cli

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/cloister-dev/cloister/manifest"
	"github.com/spf13/cobra"
)

func (a *app) newUserCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Make manifest users: client certificates for operators",
	}
	cmd.AddCommand(a.newUserNewCmd())
	return cmd
}

// userName is the rule for manifest user names (docs/manifest.md, Names); the name is also
// a file name.
var userName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// userValidity is the default validity of a user certificate.
const userValidity = 365 * 24 * time.Hour

func (a *app) newUserNewCmd() *cobra.Command {
	var (
		roles    []string
		dir      string
		validity time.Duration
		addTo    string
	)
	cmd := &cobra.Command{
		Use:   "new NAME",
		Short: "Make a user's key and client certificate, and the manifest entry that names them",
		Long: `Make a private key (ECDSA P-256) and a self-signed client certificate for the manifest user
NAME, and write them to NAME.key (PKCS #8 PEM, mode 0600) and NAME.pem in --dir. Existing files
are never overwritten.

It prints the user's entry for the users section of a deployment manifest, with the certificate's
PEM escaped as a JSON string. With --manifest FILE it prints FILE with the entry added to its users
section instead; nothing else in FILE changes. Give the key and certificate to commands that act
as the user: --cert NAME.pem --key NAME.key.`,
		Example: `  cloister user new alice --role secrets-admin
  cloister user new alice --role secrets-admin --manifest examples/manifest.json > manifest.json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if !userName.MatchString(name) {
				return usageError(fmt.Errorf("user name %q: expected 1 to 64 ASCII letters, digits, '.', '_' or '-', starting with a letter or digit", name))
			}
			if validity < time.Minute {
				return usageError(fmt.Errorf("--validity: expected at least 1m, found %s", validity))
			}
			var doc []byte
			if addTo != "" {
				b, err := readBounded(addTo, manifest.MaxSize)
				if err != nil {
					return fmt.Errorf("--manifest: %w", err)
				}
				doc = b
			}
			keyPath, certPath := filepath.Join(dir, name+".key"), filepath.Join(dir, name+".pem")
			for _, p := range []string{keyPath, certPath} {
				if _, err := os.Lstat(p); err == nil {
					return fmt.Errorf("%s exists; expected a new file (user files are never overwritten)", p)
				} else if !errors.Is(err, fs.ErrNotExist) {
					return err
				}
			}
			keyPEM, certPEM, cert, err := newUserCert(name, validity)
			if err != nil {
				return err
			}
			entry, err := userEntry(name, string(certPEM), roles)
			if err != nil {
				return err
			}
			var out []byte
			if doc != nil {
				if out, err = addUser(doc, name, entry); err != nil {
					return fmt.Errorf("--manifest %s: %w", addTo, err)
				}
			}
			if err := createExclusive(keyPath, keyPEM, 0o600); err != nil {
				return err
			}
			if err := createExclusive(certPath, certPEM, 0o644); err != nil {
				os.Remove(keyPath)
				return err
			}
			fmt.Fprintf(a.stderr, "Wrote %s (the private key: keep it) and %s (valid until %s).\n",
				keyPath, certPath, cert.NotAfter.UTC().Format(time.RFC3339))
			w := cmd.OutOrStdout()
			if out != nil {
				fmt.Fprintf(a.stderr, "Added user %s to the users section of %s.\n", name, addTo)
				_, err := w.Write(out)
				return err
			}
			fmt.Fprintf(a.stderr, "Add this entry to the users section of your manifest:\n")
			_, err = fmt.Fprintf(w, "%s\n", entry)
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&roles, "role", nil, "a role of the manifest the user gets (repeatable)")
	fl.StringVar(&dir, "dir", ".", "directory to write NAME.key and NAME.pem to")
	fl.DurationVar(&validity, "validity", userValidity, "how long the certificate is valid")
	fl.StringVar(&addTo, "manifest", "", "print this manifest with the user added, instead of the entry alone")
	return cmd
}

// newUserCert makes a P-256 key and a self-signed client certificate for name, valid from a
// minute ago (for clocks slightly behind) for validity.
func newUserCert(name string, validity time.Duration) (keyPEM, certPEM []byte, cert *x509.Certificate, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("make the user certificate: %w", err)
	}
	cert, err = x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, nil, err
	}
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return keyPEM, certPEM, cert, nil
}

// userEntry is the member of a manifest's users object for name, on one line:
// "name": {"certificate": "…", "roles": […]}.
func userEntry(name, certPEM string, roles []string) ([]byte, error) {
	if roles == nil {
		roles = []string{}
	}
	v, err := json.Marshal(struct {
		Certificate string   `json:"certificate"`
		Roles       []string `json:"roles"`
	}{certPEM, roles})
	if err != nil {
		return nil, err
	}
	k, _ := json.Marshal(name)
	v = bytes.Replace(v, []byte(`","roles":`), []byte(`", "roles": `), 1)
	v = bytes.Replace(v, []byte(`{"certificate":`), []byte(`{"certificate": `), 1)
	return fmt.Appendf(nil, "%s: %s", k, v), nil
}

// addUser returns the manifest doc with entry (a member made by userEntry) added to its users
// object, which it creates if there is none. The rest of doc is kept byte for byte.
func addUser(doc []byte, name string, entry []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errors.New("expected a JSON object")
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("invalid JSON: %w", err)
		}
		keyEnd := dec.InputOffset()
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("invalid JSON: %w", err)
		}
		if tok != "users" {
			continue
		}
		var users map[string]json.RawMessage
		if err := json.Unmarshal(raw, &users); err != nil {
			return nil, fmt.Errorf("users: expected an object, found %s", raw[:min(len(raw), 20)])
		}
		if _, ok := users[name]; ok {
			return nil, fmt.Errorf("users: user %q is there already", name)
		}
		end := int(dec.InputOffset()) - 1 // the users object's '}'
		indent := lineIndent(doc, int(keyEnd))
		last := lastNonSpace(doc, end)
		sep := ","
		if len(users) == 0 {
			sep = ""
		}
		return splice(doc, last, end, sep+"\n"+indent+"  "+string(entry)+"\n"+indent), nil
	}
	if _, err := dec.Token(); err != nil { // the top-level '}'
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	end := int(dec.InputOffset()) - 1
	last := lastNonSpace(doc, end)
	sep := ","
	if doc[last-1] == '{' {
		sep = ""
	}
	return splice(doc, last, end, sep+"\n  \"users\": {\n    "+string(entry)+"\n  }\n"), nil
}

// splice replaces doc[from:to] with s.
func splice(doc []byte, from, to int, s string) []byte {
	out := make([]byte, 0, len(doc)+len(s))
	out = append(out, doc[:from]...)
	out = append(out, s...)
	return append(out, doc[to:]...)
}

// lastNonSpace returns the offset just after the last non-space byte before end.
func lastNonSpace(doc []byte, end int) int {
	i := end
	for i > 0 && strings.IndexByte(" \t\r\n", doc[i-1]) >= 0 {
		i--
	}
	return i
}

// lineIndent returns the spaces and tabs that start the line holding offset off.
func lineIndent(doc []byte, off int) string {
	start := bytes.LastIndexByte(doc[:off], '\n') + 1
	i := start
	for i < len(doc) && (doc[i] == ' ' || doc[i] == '\t') {
		i++
	}
	return string(doc[start:i])
}
