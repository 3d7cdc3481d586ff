package cli

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"time"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/cli/jsonoutput"
	"github.com/cloister-dev/cloister/pki"

	"github.com/spf13/cobra"
)

func (a *app) newStatusCmd() *cobra.Command {
	var (
		conn connFlags
		out  outputFlag
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the Coordinator's state",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client(&conn)
			if err != nil {
				return err
			}
			st, err := c.Status(cmd.Context())
			if err != nil {
				return err
			}
			root, err := a.pinnedRoot(&conn)
			if err != nil {
				return err
			}
			if h := st.AuditHead; h != nil {
				if err := h.Verify(root); err != nil {
					return withCode(jsonoutput.CodeNotVerified, fmt.Errorf("the Coordinator's audit head is not signed by the pinned root: %w", err))
				}
			}
			// Refuse a state older than one seen before (seen.go), then remember this one.
			if err := a.checkSeenState(&conn, root, st); err != nil {
				return err
			}
			if h := st.AuditHead; h != nil {
				if err := a.saveSeenHead(&conn, root, h); err != nil {
					return err
				}
			}
			s := statusJSON(st)
			return out.print(cmd.OutOrStdout(), s, func(w io.Writer) {
				fmt.Fprintf(w, "state             %s\n", s.State)
				fmt.Fprintf(w, "manifest version  %d\n", s.ManifestVersion)
				if s.ManifestDigest != "" {
					fmt.Fprintf(w, "manifest SHA-256  %s\n", s.ManifestDigest)
				}
				fmt.Fprintf(w, "TEE               %s\n", s.TEE)
				fmt.Fprintf(w, "version           %s\n", s.Version)
				if len(s.Activations) == 0 {
					fmt.Fprintf(w, "activations       none\n")
				} else {
					fmt.Fprintf(w, "activations\n")
				}
				for _, name := range slices.Sorted(maps.Keys(s.Activations)) {
					fmt.Fprintf(w, "  %-15s %d\n", name, s.Activations[name])
				}
				if h := s.AuditHead; h != nil {
					fmt.Fprintf(w, "audit head        entry %d, hash %s, signed %s\n", h.Seq, h.Hash, h.Time)
				}
				if s.StateVersion != 0 {
					fmt.Fprintf(w, "state version     %d\n", s.StateVersion)
				}
				if s.Message != "" {
					fmt.Fprintf(w, "%s\n", s.Message)
				}
			})
		},
	}
	a.registerConnFlags(cmd, &conn)
	out.register(cmd)
	return cmd
}

// statusJSON is the --output json document of s.
func statusJSON(s *api.Status) jsonoutput.Status {
	out := jsonoutput.Status{
		State: s.State, Simulation: s.Simulation, TEE: s.TEE, Version: s.Version,
		ManifestVersion: s.ManifestVersion, ManifestDigest: s.ManifestDigest, Message: s.Message,
		Activations: map[string]uint64{}, StateVersion: s.StateVersion, StateHash: s.StateHash,
	}
	maps.Copy(out.Activations, s.Activations)
	if s.AuditHead != nil {
		out.AuditHead = new(auditHeadJSON(s.AuditHead))
	}
	out.Recovery = recoveryStatusJSON(s.Recovery)
	return out
}

func (a *app) newCertificateCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "certificate",
		Short: "Print the deployment's certificates (PEM)",
	}
	for _, which := range []struct{ name, short string }{
		{"root", "the deployment root CA: the trust anchor of every workload"},
		{"intermediate", "the intermediate CA of the current manifest version"},
		{"chain", "intermediate then root"},
	} {
		var (
			conn connFlags
			out  outputFlag
		)
		sub := &cobra.Command{
			Use:   which.name,
			Short: "Print " + which.short,
			Long:  "Print " + which.short + ", as PEM; --output json adds the fields people check.",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := a.client(&conn)
				if err != nil {
					return err
				}
				pemText, err := c.Certificate(cmd.Context(), which.name)
				if err != nil {
					return err
				}
				certs, err := pki.ParseCertsPEM([]byte(pemText))
				if err != nil {
					return fmt.Errorf("coordinator sent a certificate that does not parse: %w", err)
				}
				list := jsonoutput.Certificates{Certificates: []jsonoutput.Certificate{}}
				for _, ct := range certs {
					list.Certificates = append(list.Certificates, jsonoutput.Certificate{
						Subject: ct.Subject.String(), Issuer: ct.Issuer.String(),
						NotBefore: ct.NotBefore.UTC().Format(time.RFC3339), NotAfter: ct.NotAfter.UTC().Format(time.RFC3339),
						SHA256: fingerprint(ct), Simulation: pki.IsSimulation(ct), PEM: string(pki.EncodeCertPEM(ct)),
					})
				}
				return out.print(cmd.OutOrStdout(), list, func(w io.Writer) { io.WriteString(w, pemText) })
			},
		}
		a.registerConnFlags(sub, &conn)
		out.register(sub)
		cmd.AddCommand(sub)
	}
	return cmd
}
