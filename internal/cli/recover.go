package cli

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/cli/jsonoutput"
	"github.com/cloister-dev/cloister/client"
	"github.com/cloister-dev/cloister/internal/atomicfile"
	"github.com/cloister-dev/cloister/recovery"
	"github.com/spf13/cobra"
)

// recoverFlags are the flags of `cloister recover` and its subcommands.
type recoverFlags struct {
	expect    verifyFlags // the expected Coordinator identity (as `cloister verify` takes it)
	addr      string
	configDir string
	key       string
	offline   bool
	challenge string
	outFile   string
	out       outputFlag
}

func (a *app) registerRecoverConn(cmd *cobra.Command, f *recoverFlags) {
	def := a.getenv("CLOISTER_ADDR")
	if def == "" {
		def = "localhost:4433"
	}
	cmd.Flags().StringVarP(&f.addr, "coordinator", "c", def, "host:port of the Coordinator's client API (env CLOISTER_ADDR)")
	cmd.Flags().StringVar(&f.configDir, "config-dir", "", "where verified Coordinators' roots are pinned; a pinned root must name the deployment being recovered (default: $CLOISTER_CONFIG_DIR or ~/.config/cloister)")
	f.expect.registerExpect(cmd)
	f.out.register(cmd)
}

func (a *app) newRecoverCmd() *cobra.Command {
	var f recoverFlags
	cmd := &cobra.Command{
		Use:   "recover SHARE",
		Short: "Hand a recovery key holder's share to a Coordinator that cannot unseal its state",
		Long: `Recover a Coordinator in recovery mode (it cannot unseal its state: another CPU, or a changed
seal key) with your share of its data key. SHARE is the share file "cloister manifest set" wrote
for you, --key your private key (PEM; RSA-3072 or X25519, the key the manifest names for you).

The command first verifies the Coordinator as "cloister verify" does (its quote, over a fresh
nonce, must come from the expected enclave and bind this connection's TLS key and its recovery
session key), and refuses a Coordinator of another deployment than a root pinned for this address.
Then it decrypts the share, encrypts it to the Coordinator's recovery session, signs the
submission with your key and submits it. When the threshold of holders have submitted, the
Coordinator rebuilds its data key, checks that it opens the whole state, seals it under its new
seal key and runs again.

Air-gapped holders: on a networked machine, "cloister recover challenge --out CHALLENGE" exports
the verified challenge; on the offline machine, "cloister recover SHARE --key KEY --offline
--challenge CHALLENGE --out SIGNED" verifies the quote in it again, and writes a signed submission
that holds the share only encrypted to the Coordinator's session; back on a networked machine,
"cloister recover submit SIGNED" submits it. A signed submission is good for one recovery session:
if the Coordinator restarts before it is submitted, export a new challenge and sign again.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return a.runRecover(cmd, &f, args[0]) },
	}
	a.registerRecoverConn(cmd, &f)
	fl := cmd.Flags()
	fl.StringVar(&f.key, "key", "", "your recovery private key, PEM (required)")
	fl.BoolVar(&f.offline, "offline", false, "sign without network access: read --challenge, write the signed submission to --out")
	fl.StringVar(&f.challenge, "challenge", "", "challenge file exported by `cloister recover challenge` (with --offline)")
	fl.StringVar(&f.outFile, "out", "", "where --offline writes the signed submission")
	cmd.AddCommand(a.newRecoverChallengeCmd(), a.newRecoverSubmitCmd(), a.newRecoverStatusCmd())
	return cmd
}

// expectation returns the Coordinator identity the flags ask for, refusing none at all.
func (f *recoverFlags) expectation() (client.Expect, error) {
	e, err := f.expect.expect()
	if err != nil {
		return e, usageError(err)
	}
	return e, f.expect.requireIdentity(e)
}

// checkPin refuses a challenge of another deployment than the root pinned for the address.
func (a *app) checkPin(f *recoverFlags, ch *recovery.Challenge) error {
	root, err := a.pinnedRoot(&connFlags{addr: f.addr, configDir: f.configDir})
	if err != nil {
		return nil // nothing pinned: the share's own deployment is checked instead
	}
	if fp := fingerprint(root); fp != ch.Deployment {
		return withCode(jsonoutput.CodeNotVerified, fmt.Errorf("the Coordinator at %s recovers deployment %s, but the root pinned for it is of deployment %s: refusing to hand it a share", f.addr, ch.Deployment, fp))
	}
	return nil
}

// loadShareAndKey reads the share file and the holder's key and decrypts the share.
func loadShareAndKey(shareFile, keyFile string) (*recovery.Share, recovery.PrivateKey, []byte, error) {
	if keyFile == "" {
		return nil, nil, nil, usageError(errors.New("--key: required: your recovery private key (PEM)"))
	}
	raw, err := readBounded(shareFile, recovery.MaxFileSize)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("share file: %w", err)
	}
	share, err := recovery.ParseShare(raw)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("share file %s: %w", shareFile, err)
	}
	kb, err := readBounded(keyFile, 64<<10)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("--key: %w", err)
	}
	priv, pub, err := recovery.ParsePrivateKey(kb)
	clear(kb)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("--key %s: %w", keyFile, err)
	}
	y, err := share.Decrypt(priv, pub)
	if err != nil {
		return nil, nil, nil, err
	}
	return share, priv, y, nil
}

func (a *app) runRecover(cmd *cobra.Command, f *recoverFlags, shareFile string) error {
	e, err := f.expectation()
	if err != nil {
		return err
	}
	if f.offline {
		return a.runRecoverOffline(cmd, f, e, shareFile)
	}
	if f.challenge != "" || f.outFile != "" {
		return usageError(errors.New("--challenge and --out go with --offline"))
	}
	share, priv, y, err := loadShareAndKey(shareFile, f.key)
	if err != nil {
		return err
	}
	defer clear(y)
	sess, err := client.DialRecovery(cmd.Context(), f.addr, e)
	if err != nil {
		return withCode(jsonoutput.CodeNotVerified, fmt.Errorf("coordinator NOT verified, nothing submitted: %w", err))
	}
	defer sess.Close()
	if err := a.checkPin(f, &sess.Challenge.Challenge); err != nil {
		return err
	}
	sub, err := recovery.NewSubmission(share, y, priv, &sess.Challenge.Challenge)
	if err != nil {
		return err
	}
	resp, err := sess.Submit(cmd.Context(), sub)
	if err != nil {
		return err
	}
	return a.printRecover(cmd, f, sess, resp)
}

func (a *app) printRecover(cmd *cobra.Command, f *recoverFlags, sess *client.RecoverySession, resp *api.RecoveryResponse) error {
	ch := &sess.Challenge.Challenge
	doc := jsonoutput.Recover{
		Coordinator: f.addr, Session: ch.Session, Received: []string{}, Threshold: ch.Threshold,
		Recovery: jsonoutput.RecoveryStatus{Reason: sess.Challenge.Reason, Possible: true, Deployment: ch.Deployment, Generation: ch.Generation,
			Threshold: ch.Threshold, Holders: ch.Holders, Received: sess.Challenge.Received},
		MREnclave: hex.EncodeToString(sess.Result.Enclave.MREnclave[:]), MRSigner: hex.EncodeToString(sess.Result.Enclave.MRSigner[:]),
	}
	if resp != nil {
		doc.Holder, doc.Received, doc.Recovered = resp.Holder, resp.Received, resp.Recovered
		doc.Recovery.Received = resp.Received
	} else {
		doc.Received = append(doc.Received, sess.Challenge.Received...)
	}
	return f.out.print(cmd.OutOrStdout(), doc, func(w io.Writer) {
		if sess.Challenge.Simulation {
			fmt.Fprintln(w, "SIMULATION: this Coordinator is not protected by SGX.")
		}
		fmt.Fprintf(w, "Coordinator %s verified (MRENCLAVE %s); it is in recovery mode: %s.\n", f.addr, doc.MREnclave, sess.Challenge.Reason)
		if resp == nil {
			fmt.Fprintf(w, "Split %s of deployment %s: %d of %d holders (%s) must submit; received: %s.\n",
				ch.Generation, ch.Deployment, ch.Threshold, len(ch.Holders), strings.Join(ch.Holders, ", "), listOrNone(doc.Received))
			return
		}
		fmt.Fprintf(w, "Share of %s accepted: %d of %d received (%s).\n", resp.Holder, len(resp.Received), ch.Threshold, strings.Join(resp.Received, ", "))
		if resp.Recovered {
			fmt.Fprintln(w, "Recovered: the Coordinator rebuilt its data key, sealed it under its new seal key and runs again.")
		} else {
			fmt.Fprintf(w, "%d more share(s) needed.\n", ch.Threshold-len(resp.Received))
		}
	})
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// runRecoverOffline signs a submission against an exported challenge, without the network.
func (a *app) runRecoverOffline(cmd *cobra.Command, f *recoverFlags, e client.Expect, shareFile string) error {
	if f.challenge == "" || f.outFile == "" {
		return usageError(errors.New("--offline needs --challenge (the exported challenge) and --out (where to write the signed submission)"))
	}
	cf, err := readChallengeFile(f.challenge, e)
	if err != nil {
		return err
	}
	share, priv, y, err := loadShareAndKey(shareFile, f.key)
	if err != nil {
		return err
	}
	defer clear(y)
	sub, err := recovery.NewSubmission(share, y, priv, &cf.Response.Challenge)
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(sub, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(f.outFile, append(b, '\n'), 0o600); err != nil {
		return err
	}
	doc := jsonoutput.RecoverOffline{File: f.outFile, Session: sub.Session, Holder: sub.Holder, Deployment: sub.Deployment, Generation: sub.Generation}
	return f.out.print(cmd.OutOrStdout(), doc, func(w io.Writer) {
		fmt.Fprintf(w, "Signed the share of %s for recovery session %s and wrote %s.\nSubmit it from a networked machine with `cloister recover submit %s`.\n",
			sub.Holder, sub.Session, f.outFile, f.outFile)
	})
}

// readChallengeFile reads a challenge file and verifies its quote again against e.
func readChallengeFile(path string, e client.Expect) (*client.ChallengeFile, error) {
	raw, err := readBounded(path, recovery.MaxFileSize)
	if err != nil {
		return nil, fmt.Errorf("--challenge: %w", err)
	}
	cf, nonce, err := client.ParseChallengeFile(raw)
	if err != nil {
		return nil, fmt.Errorf("--challenge %s: %w", path, err)
	}
	if _, err := client.VerifyRecoveryChallenge(&cf.Response, nil, nonce, e); err != nil {
		return nil, withCode(jsonoutput.CodeNotVerified, fmt.Errorf("the challenge in %s does NOT verify, nothing signed: %w", path, err))
	}
	return cf, nil
}

func (a *app) newRecoverChallengeCmd() *cobra.Command {
	var f recoverFlags
	cmd := &cobra.Command{
		Use:   "challenge",
		Short: "Export a Coordinator's verified recovery challenge for a holder who signs offline",
		Long: `Verify the Coordinator in recovery mode (as "cloister recover" does) and write its recovery
challenge, with the quote and nonce, to --out. Carry the file to the offline machine and run
"cloister recover SHARE --key KEY --offline --challenge FILE --out SIGNED" there.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.outFile == "" {
				return usageError(errors.New("--out: required: where to write the challenge"))
			}
			e, err := f.expectation()
			if err != nil {
				return err
			}
			sess, err := client.DialRecovery(cmd.Context(), f.addr, e)
			if err != nil {
				return withCode(jsonoutput.CodeNotVerified, fmt.Errorf("coordinator NOT verified: %w", err))
			}
			defer sess.Close()
			if err := a.checkPin(&f, &sess.Challenge.Challenge); err != nil {
				return err
			}
			cf := client.ChallengeFile{Format: client.ChallengeFileFormat, Coordinator: f.addr, Nonce: hex.EncodeToString(sess.Nonce[:]),
				FetchedAt: time.Now().UTC().Truncate(time.Second), Response: *sess.Challenge}
			b, err := json.MarshalIndent(cf, "", "  ")
			if err != nil {
				return err
			}
			if err := atomicfile.Write(f.outFile, append(b, '\n'), 0o644); err != nil {
				return err
			}
			ch := sess.Challenge.Challenge
			doc := jsonoutput.RecoverOffline{File: f.outFile, Session: ch.Session, Deployment: ch.Deployment, Generation: ch.Generation}
			return f.out.print(cmd.OutOrStdout(), doc, func(w io.Writer) {
				fmt.Fprintf(w, "Wrote the recovery challenge of session %s (deployment %s, split %s) to %s.\n", ch.Session, ch.Deployment, ch.Generation, f.outFile)
			})
		},
	}
	a.registerRecoverConn(cmd, &f)
	cmd.Flags().StringVar(&f.outFile, "out", "", "where to write the challenge (required)")
	return cmd
}

func (a *app) newRecoverSubmitCmd() *cobra.Command {
	var f recoverFlags
	cmd := &cobra.Command{
		Use:   "submit SIGNED",
		Short: "Submit a share signed offline by `cloister recover --offline`",
		Long: `Verify the Coordinator in recovery mode (as "cloister recover" does) and submit SIGNED, a
submission signed on an offline machine. The file holds the share only encrypted to the
Coordinator's recovery session, so the machine that submits it learns nothing.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := f.expectation()
			if err != nil {
				return err
			}
			raw, err := readBounded(args[0], recovery.MaxFileSize)
			if err != nil {
				return err
			}
			sub, err := recovery.ParseSubmission(bytes.TrimSpace(raw))
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			sess, err := client.DialRecovery(cmd.Context(), f.addr, e)
			if err != nil {
				return withCode(jsonoutput.CodeNotVerified, fmt.Errorf("coordinator NOT verified, nothing submitted: %w", err))
			}
			defer sess.Close()
			if err := a.checkPin(&f, &sess.Challenge.Challenge); err != nil {
				return err
			}
			resp, err := sess.Submit(cmd.Context(), sub)
			if err != nil {
				return err
			}
			return a.printRecover(cmd, &f, sess, resp)
		},
	}
	a.registerRecoverConn(cmd, &f)
	return cmd
}

func (a *app) newRecoverStatusCmd() *cobra.Command {
	var f recoverFlags
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Verify a Coordinator in recovery mode and show why it is there and whose shares it has",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := f.expectation()
			if err != nil {
				return err
			}
			sess, err := client.DialRecovery(cmd.Context(), f.addr, e)
			if err != nil {
				return withCode(jsonoutput.CodeNotVerified, fmt.Errorf("coordinator NOT verified: %w", err))
			}
			defer sess.Close()
			return a.printRecover(cmd, &f, sess, nil)
		},
	}
	a.registerRecoverConn(cmd, &f)
	return cmd
}

// ---- share files handed out by manifest changes ----

// sharesFlag is the --recovery-shares flag of the commands that may change the recovery keys.
type sharesFlag struct{ dir string }

func (s *sharesFlag) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&s.dir, "recovery-shares", "recovery-shares", "directory where new recovery share files are written when the manifest change splits the data key again (one per holder)")
}

// write writes each share to DIR/<holder>.<generation prefix>.share.json (0600, never over an
// existing file) and returns the paths. A share is handed out once: losing it loses that
// holder's part in a recovery.
func (s *sharesFlag) write(shares []*recovery.Share) ([]string, error) {
	if len(shares) == 0 {
		return nil, nil
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return nil, fmt.Errorf("--recovery-shares: %w", err)
	}
	var paths []string
	for _, sh := range shares {
		b, err := json.MarshalIndent(sh, "", "  ")
		if err != nil {
			return paths, err
		}
		p := filepath.Join(s.dir, fmt.Sprintf("%s.%s.share.json", sh.Holder, sh.Generation[:8]))
		out, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			_, err = out.Write(append(b, '\n'))
			if cerr := out.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			return paths, fmt.Errorf("write the share of %s (the share files are also in the --output json answer): %w", sh.Holder, err)
		}
		paths = append(paths, p)
	}
	return paths, nil
}

// printShares says where the share files went, or why there are none.
func printShares(w io.Writer, shares []*recovery.Share, paths []string, warning string) {
	if warning != "" {
		fmt.Fprintf(w, "WARNING: %s\n", warning)
	}
	if len(shares) == 0 {
		return
	}
	fmt.Fprintf(w, "The data key was split among %d recovery key holders (threshold %d, split %s). Give each holder its share file; they are handed out only now:\n",
		len(shares), shares[0].Threshold, shares[0].Generation)
	for i, p := range paths {
		fmt.Fprintf(w, "  %-16s %s\n", shares[i].Holder, p)
	}
}

// sharesJSON is the jsonoutput form of share files.
func sharesJSON(shares []*recovery.Share) []jsonoutput.RecoveryShare {
	var out []jsonoutput.RecoveryShare
	for _, s := range shares {
		out = append(out, jsonoutput.RecoveryShare(*s))
	}
	return out
}

// recoveryStatusJSON is the jsonoutput form of a recovery status.
func recoveryStatusJSON(r *api.RecoveryStatus) *jsonoutput.RecoveryStatus {
	if r == nil {
		return nil
	}
	return &jsonoutput.RecoveryStatus{Reason: r.Reason, Possible: r.Possible, Deployment: r.Deployment, Generation: r.Generation,
		Threshold: r.Threshold, Holders: r.Holders, Received: r.Received}
}
