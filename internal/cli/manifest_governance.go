package cli

import (
	"bufio"
	"crypto"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/cli/jsonoutput"
	"github.com/cloister-dev/cloister/client"
	"github.com/cloister-dev/cloister/manifest"
	"github.com/spf13/cobra"
)

// The governance commands: updates that several updaters approve, and security-version updates.

func (a *app) governanceCmds() []*cobra.Command {
	return []*cobra.Command{a.newManifestProposeCmd(), a.newManifestApproveCmd(), a.newManifestPendingCmd(),
		a.newManifestCancelCmd(), a.newManifestUpdateSVNCmd()}
}

// pendingJSON is the --output json document of p; pending says whether p is (still) pending.
func pendingJSON(p *api.PendingUpdate, pending bool) jsonoutput.ManifestPending {
	out := jsonoutput.ManifestPending{
		Pending: pending, ID: p.ID, Digest: p.Digest, BaseVersion: p.BaseVersion, BaseDigest: p.BaseDigest,
		Proposer: p.Proposer, ProposedAt: rfc3339(p.ProposedAt), ExpiresAt: rfc3339(p.ExpiresAt), Threshold: p.Threshold,
		Approvals: []jsonoutput.ManifestApproval{},
	}
	for _, ap := range p.Approvals {
		out.Approvals = append(out.Approvals, jsonoutput.ManifestApproval{User: ap.User, At: rfc3339(ap.At)})
	}
	return out
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func printPending(w io.Writer, title string, p jsonoutput.ManifestPending) {
	fmt.Fprintf(w, "%s (proposal %s)\n", title, p.ID)
	fmt.Fprintf(w, "  manifest SHA-256  %s\n", p.Digest)
	fmt.Fprintf(w, "  replaces          version %d (SHA-256 %s)\n", p.BaseVersion, p.BaseDigest)
	fmt.Fprintf(w, "  proposed by       %s at %s\n", p.Proposer, p.ProposedAt)
	fmt.Fprintf(w, "  expires           %s\n", p.ExpiresAt)
	var names []string
	for _, ap := range p.Approvals {
		names = append(names, ap.User)
	}
	fmt.Fprintf(w, "  approvals         %d of %d", len(p.Approvals), p.Threshold)
	if len(names) > 0 {
		fmt.Fprintf(w, ": %s", strings.Join(names, ", "))
	}
	fmt.Fprintln(w)
}

func (a *app) newManifestProposeCmd() *cobra.Command {
	var (
		conn connFlags
		out  outputFlag
	)
	cmd := &cobra.Command{
		Use:   "propose FILE",
		Short: "Propose a manifest update for updaters to approve",
		Long: `Propose a new manifest as the pending update. The Coordinator checks it as "manifest set"
would and keeps it until governance.update_threshold users with the manifest update role have
approved it ("cloister manifest approve"), it is cancelled, or it expires. Proposing is not
approving: approve it too if you mean to. Needs --cert/--key of a user with the manifest update
role. One update is pending at a time.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			raw, err := readManifestFile(args[0])
			if err != nil {
				return err
			}
			c, err := a.client(&conn)
			if err != nil {
				return err
			}
			p, err := c.ProposeManifest(cmd.Context(), raw)
			if err != nil {
				return err
			}
			doc := pendingJSON(p, true)
			return out.print(cmd.OutOrStdout(), doc, func(w io.Writer) {
				printPending(w, "Manifest update proposed", doc)
				fmt.Fprintf(w, "Updaters approve it with `cloister manifest approve --hash %s`.\n", doc.Digest)
			})
		},
	}
	a.registerConnFlags(cmd, &conn)
	out.register(cmd)
	return cmd
}

// pendingWithChanges fetches the pending update and the manifest in force, checks that they
// are what they claim to be, and returns both with the changes between them. It returns nil
// when no update is pending.
func (a *app) pendingWithChanges(cmd *cobra.Command, c *client.Client, conn *connFlags) (*api.PendingUpdate, []manifest.Change, error) {
	p, err := c.PendingManifest(cmd.Context())
	if e, ok := errors.AsType[*client.APIError](err); ok && e.StatusCode == http.StatusNotFound {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	if got := fmt.Sprintf("%x", sha256.Sum256(p.Manifest)); got != p.Digest {
		return nil, nil, fmt.Errorf("the pending manifest has SHA-256 %s, but the Coordinator says %s", got, p.Digest)
	}
	root, err := a.pinnedRoot(conn)
	if err != nil {
		return nil, nil, err
	}
	if fp := fingerprint(root); fp != p.Deployment {
		return nil, nil, fmt.Errorf("the pending update is for deployment %s, but the pinned root of %s is %s", p.Deployment, conn.addr, fp)
	}
	curRaw, version, err := c.Manifest(cmd.Context())
	if err != nil {
		return nil, nil, err
	}
	if got := fmt.Sprintf("%x", sha256.Sum256(curRaw)); version != p.BaseVersion || got != p.BaseDigest {
		return nil, nil, fmt.Errorf("the pending update replaces version %d (SHA-256 %s), but version %d (SHA-256 %s) is in force",
			p.BaseVersion, p.BaseDigest, version, got)
	}
	cur, err := manifest.Parse(curRaw)
	if err != nil {
		return nil, nil, fmt.Errorf("the manifest in force: %w", err)
	}
	next, err := manifest.Parse(p.Manifest)
	if err != nil {
		return nil, nil, fmt.Errorf("the pending manifest: %w", err)
	}
	return p, manifest.Diff(cur, next), nil
}

func (a *app) newManifestPendingCmd() *cobra.Command {
	var (
		conn connFlags
		out  outputFlag
	)
	cmd := &cobra.Command{
		Use:   "pending",
		Short: "Show the pending manifest update, its approvals and what it changes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client(&conn)
			if err != nil {
				return err
			}
			p, changes, err := a.pendingWithChanges(cmd, c, &conn)
			if err != nil {
				return err
			}
			if p == nil {
				return out.print(cmd.OutOrStdout(), jsonoutput.ManifestPending{}, func(w io.Writer) {
					fmt.Fprintln(w, "No manifest update is pending.")
				})
			}
			doc := pendingJSON(p, true)
			doc.Changes = diffJSON(changes)
			return out.print(cmd.OutOrStdout(), doc, func(w io.Writer) {
				printPending(w, "Pending manifest update", doc)
				printChanges(w, changes)
			})
		},
	}
	a.registerConnFlags(cmd, &conn)
	out.register(cmd)
	return cmd
}

func printChanges(w io.Writer, changes []manifest.Change) {
	if len(changes) == 0 {
		fmt.Fprintln(w, "It changes nothing against the manifest in force.")
		return
	}
	fmt.Fprintln(w, "Changes against the manifest in force:")
	for _, ch := range changes {
		fmt.Fprintf(w, "  %-8s %s\n", ch.Kind, ch.Path)
	}
}

// userSigner loads the private key of the user certificate in conn, which signs approvals.
func userSigner(conn *connFlags) (crypto.Signer, error) {
	if conn.certFile == "" || conn.keyFile == "" {
		return nil, usageError(errors.New("approving needs --cert and --key of a user with the manifest update role: the key signs the approval"))
	}
	pair, err := tls.LoadX509KeyPair(conn.certFile, conn.keyFile)
	if err != nil {
		return nil, fmt.Errorf("user certificate: %w", err)
	}
	s, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("user key %s cannot sign", conn.keyFile)
	}
	return s, nil
}

func (a *app) newManifestApproveCmd() *cobra.Command {
	var (
		conn   connFlags
		out    outputFlag
		shares sharesFlag
		hash   string
		yes    bool
	)
	cmd := &cobra.Command{
		Use:   "approve",
		Short: "Approve the pending manifest update by signing it with your user key",
		Long: `Fetch the pending manifest update, check it (its SHA-256, the deployment and the manifest it
replaces), show what it changes and ask for confirmation, then sign its approval message with
the private key of --cert (--key) and send the signature. The approval that reaches the
threshold applies the update. --hash makes sure the update approved is the one you reviewed;
--yes skips the question (and the diff). See docs/manifest.md for what is signed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if hash != "" && !isLowerHex(hash, 64) {
				return usageError(fmt.Errorf("--hash: expected a SHA-256 of 64 lowercase hex digits, found %q", hash))
			}
			key, err := userSigner(&conn)
			if err != nil {
				return err
			}
			c, err := a.client(&conn)
			if err != nil {
				return err
			}
			p, changes, err := a.pendingWithChanges(cmd, c, &conn)
			if err != nil {
				return err
			}
			if p == nil {
				return errors.New("no manifest update is pending")
			}
			if hash != "" && hash != p.Digest {
				return fmt.Errorf("the pending update is manifest %s (proposal %s by %s), not %s; nothing was approved", p.Digest, p.ID, p.Proposer, hash)
			}
			if !yes {
				w := cmd.ErrOrStderr()
				printPending(w, "Pending manifest update", pendingJSON(p, true))
				printChanges(w, changes)
				fmt.Fprint(w, "Approve this update? [y/N] ")
				line, _ := bufio.NewReader(a.stdin).ReadString('\n')
				if ans := strings.ToLower(strings.TrimSpace(line)); ans != "y" && ans != "yes" {
					return errors.New("not approved (answer y to approve, or pass --yes)")
				}
			}
			sig, err := client.SignApproval(key, p)
			if err != nil {
				return err
			}
			r, err := c.ApproveManifest(cmd.Context(), p, sig)
			if err != nil {
				return err
			}
			doc := jsonoutput.ManifestApprove{Approvals: r.Approvals, Threshold: r.Threshold, Applied: r.Applied, Version: r.Version, Digest: r.Digest,
				RecoveryShares: sharesJSON(r.RecoveryShares), RecoveryWarning: r.RecoveryWarning}
			paths, werr := shares.write(r.RecoveryShares)
			return errors.Join(werr, out.print(cmd.OutOrStdout(), doc, func(w io.Writer) {
				if doc.Applied {
					fmt.Fprintf(w, "Approved (%d of %d): the update is applied as manifest version %d (SHA-256 %s).\n", doc.Approvals, doc.Threshold, doc.Version, doc.Digest)
					printShares(w, r.RecoveryShares, paths, r.RecoveryWarning)
					return
				}
				fmt.Fprintf(w, "Approved (%d of %d); the update applies when %d more updater(s) approve it.\n", doc.Approvals, doc.Threshold, doc.Threshold-doc.Approvals)
			}))
		},
	}
	a.registerConnFlags(cmd, &conn)
	out.register(cmd)
	shares.register(cmd)
	cmd.Flags().StringVar(&hash, "hash", "", "SHA-256 of the manifest you mean to approve (hex); refuse if another is pending")
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "approve without showing the changes and asking")
	return cmd
}

func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func (a *app) newManifestCancelCmd() *cobra.Command {
	var (
		conn connFlags
		out  outputFlag
		id   string
	)
	cmd := &cobra.Command{
		Use:   "cancel",
		Short: "Withdraw the pending manifest update (its proposer or an updater)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if id != "" && !isLowerHex(id, 32) {
				return usageError(fmt.Errorf("--id: expected a proposal ID of 32 lowercase hex digits, found %q", id))
			}
			c, err := a.client(&conn)
			if err != nil {
				return err
			}
			p, err := c.CancelManifest(cmd.Context(), id)
			if err != nil {
				return err
			}
			doc := pendingJSON(p, false)
			return out.print(cmd.OutOrStdout(), doc, func(w io.Writer) {
				printPending(w, "Manifest update withdrawn", doc)
			})
		},
	}
	a.registerConnFlags(cmd, &conn)
	out.register(cmd)
	cmd.Flags().StringVar(&id, "id", "", "withdraw only this proposal (its ID), not another that may have replaced it")
	return cmd
}

func (a *app) newManifestUpdateSVNCmd() *cobra.Command {
	var (
		conn   connFlags
		out    outputFlag
		shares sharesFlag
	)
	cmd := &cobra.Command{
		Use:   "update-svn PACKAGE SVN",
		Short: "Raise a package's minimum security version (min_isvsvn)",
		Long: `Raise the min_isvsvn of an mrsigner package to SVN, for a user with a packages role that
grants update on it. It needs no approval (it only tightens), refuses a value that is not
higher, and makes a new manifest version with a new intermediate CA. Activations below SVN are
refused from then on; running workloads keep their certificates until they expire. A pending
manifest update is withdrawn.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			svn, err := strconv.ParseUint(args[1], 10, 16)
			if err != nil {
				return usageError(fmt.Errorf("SVN: expected an integer from 0 to 65535, found %q", args[1]))
			}
			c, err := a.client(&conn)
			if err != nil {
				return err
			}
			res, err := c.UpdateSVN(cmd.Context(), args[0], uint16(svn))
			if err != nil {
				return err
			}
			paths, werr := shares.write(res.RecoveryShares)
			r := manifestSetJSON(res)
			return errors.Join(werr, out.print(cmd.OutOrStdout(), r, func(w io.Writer) {
				fmt.Fprintf(w, "Package %s: min_isvsvn is %d in manifest version %d (SHA-256 %s).\n", args[0], svn, r.Version, r.Digest)
				printShares(w, res.RecoveryShares, paths, res.RecoveryWarning)
			}))
		},
	}
	a.registerConnFlags(cmd, &conn)
	out.register(cmd)
	shares.register(cmd)
	return cmd
}
