package cli

import (
	"errors"
	"fmt"
	"io"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/cli/jsonoutput"
	"github.com/cloister-dev/cloister/manifest"
	"github.com/spf13/cobra"
)

func (a *app) newManifestCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "manifest",
		Short: "Check, set, get, compare, propose and approve the deployment manifest",
	}
	cmd.AddCommand(a.newManifestCheckCmd(), a.newManifestSetCmd(false), a.newManifestSetCmd(true), a.newManifestGetCmd(), a.newManifestDiffCmd())
	cmd.AddCommand(a.governanceCmds()...)
	return cmd
}

func readManifestFile(path string) ([]byte, error) { return readBounded(path, manifest.MaxSize) }

func (a *app) newManifestCheckCmd() *cobra.Command {
	var out outputFlag
	cmd := &cobra.Command{
		Use:   "check FILE",
		Short: "Check a manifest locally and report every problem with its JSON path",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			raw, err := readManifestFile(args[0])
			if err != nil {
				return err
			}
			res := jsonoutput.ManifestCheck{Problems: []jsonoutput.Problem{}}
			m, perr := manifest.Parse(raw)
			if perr == nil {
				res.Valid, res.Digest = true, fmt.Sprintf("%x", m.Digest())
			}
			for _, e := range flatten(perr) {
				if fe, ok := errors.AsType[*manifest.FieldError](e); ok {
					res.Problems = append(res.Problems, jsonoutput.Problem{Path: fe.Path, Message: fe.Msg})
				} else {
					res.Problems = append(res.Problems, jsonoutput.Problem{Path: "$", Message: e.Error()})
				}
			}
			err = out.print(cmd.OutOrStdout(), res, func(w io.Writer) {
				if res.Valid {
					fmt.Fprintf(w, "%s is valid (SHA-256 %s).\n", args[0], res.Digest)
					return
				}
				fmt.Fprintf(w, "%s has %d problem(s):\n", args[0], len(res.Problems))
				for _, p := range res.Problems {
					fmt.Fprintf(w, "  %s: %s\n", p.Path, p.Message)
				}
			})
			if err == nil && !res.Valid {
				return &exitError{code: 1}
			}
			return err
		},
	}
	out.register(cmd)
	return cmd
}

// manifestSetJSON is the --output json document of r.
func manifestSetJSON(r *api.SetManifestResponse) jsonoutput.ManifestSet {
	return jsonoutput.ManifestSet{Version: r.Version, Digest: r.Digest, RecoveryShares: sharesJSON(r.RecoveryShares), RecoveryWarning: r.RecoveryWarning}
}

// diffJSON is the --output json document of a manifest diff: an array, empty when nothing
// changed.
func diffJSON(changes []manifest.Change) jsonoutput.ManifestDiff {
	out := jsonoutput.ManifestDiff{}
	for _, c := range changes {
		out = append(out, jsonoutput.ManifestChange{Path: c.Path, Kind: string(c.Kind)})
	}
	return out
}

// flatten lists the errors joined in err.
func flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

// newManifestSetCmd makes `manifest set` or, with update, `manifest update`: the same request,
// but update refuses to act as the first manifest, so that a mistyped address cannot make an
// operator the trust-on-first-use owner of the wrong Coordinator.
func (a *app) newManifestSetCmd(update bool) *cobra.Command {
	var (
		conn   connFlags
		out    outputFlag
		shares sharesFlag
	)
	use, short := "set FILE", "Set the deployment manifest (the first, or an update)"
	if update {
		use, short = "update FILE", "Update the deployment manifest; fails if none is set yet"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long: `Send a manifest to the verified Coordinator. The first manifest may be set by anyone who
reached the Coordinator (trust on first use: set it right after verifying a fresh Coordinator);
later updates need --cert/--key of a user whose role grants update on the manifest.
"manifest update" is "manifest set" that refuses to set a first manifest.`,
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
			if update {
				st, err := c.Status(cmd.Context())
				if err != nil {
					return err
				}
				if st.ManifestVersion == 0 {
					return fmt.Errorf("coordinator %s has no manifest yet; set the first one with `cloister manifest set`", conn.addr)
				}
			}
			res, err := c.SetManifest(cmd.Context(), raw)
			if err != nil {
				return err
			}
			paths, werr := shares.write(res.RecoveryShares)
			r := manifestSetJSON(res)
			err = out.print(cmd.OutOrStdout(), r, func(w io.Writer) {
				fmt.Fprintf(w, "Manifest version %d set (SHA-256 %s).\n", r.Version, r.Digest)
				printShares(w, res.RecoveryShares, paths, res.RecoveryWarning)
			})
			return errors.Join(werr, err)
		},
	}
	a.registerConnFlags(cmd, &conn)
	out.register(cmd)
	shares.register(cmd)
	return cmd
}

func (a *app) newManifestGetCmd() *cobra.Command {
	var conn connFlags
	cmd := &cobra.Command{
		Use:   "get",
		Short: "Print the current manifest exactly as it was set",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client(&conn)
			if err != nil {
				return err
			}
			raw, _, err := c.Manifest(cmd.Context())
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(raw)
			return err
		},
	}
	a.registerConnFlags(cmd, &conn)
	return cmd
}

func (a *app) newManifestDiffCmd() *cobra.Command {
	var (
		conn connFlags
		out  outputFlag
	)
	cmd := &cobra.Command{
		Use:   "diff [OLD] NEW",
		Short: "Show what a manifest changes, against the Coordinator's current one or another file",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var oldRaw []byte
			newPath := args[len(args)-1]
			if len(args) == 2 {
				b, err := readManifestFile(args[0])
				if err != nil {
					return err
				}
				oldRaw = b
			} else {
				c, err := a.client(&conn)
				if err != nil {
					return err
				}
				if oldRaw, _, err = c.Manifest(cmd.Context()); err != nil {
					return err
				}
			}
			oldM, err := manifest.Parse(oldRaw)
			if err != nil {
				return fmt.Errorf("old manifest: %w", err)
			}
			newRaw, err := readManifestFile(newPath)
			if err != nil {
				return err
			}
			newM, err := manifest.Parse(newRaw)
			if err != nil {
				return fmt.Errorf("%s: %w", newPath, err)
			}
			changes := diffJSON(manifest.Diff(oldM, newM))
			return out.print(cmd.OutOrStdout(), changes, func(w io.Writer) {
				if len(changes) == 0 {
					fmt.Fprintln(w, "No changes.")
				}
				for _, c := range changes {
					fmt.Fprintf(w, "%-8s %s\n", c.Kind, c.Path)
				}
			})
		},
	}
	a.registerConnFlags(cmd, &conn)
	out.register(cmd)
	return cmd
}
