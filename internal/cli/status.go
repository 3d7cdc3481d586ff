package cli

import (
	"fmt"
	"io"
	"time"

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
			if err := out.validate(); err != nil {
				return err
			}
			c, err := a.client(&conn)
			if err != nil {
				return err
			}
			s, err := c.Status(cmd.Context())
			if err != nil {
				return err
			}
			return out.print(cmd.OutOrStdout(), s, func(w io.Writer) {
				fmt.Fprintf(w, "state             %s\n", s.State)
				fmt.Fprintf(w, "manifest version  %d\n", s.ManifestVersion)
				if s.ManifestDigest != "" {
					fmt.Fprintf(w, "manifest SHA-256  %s\n", s.ManifestDigest)
				}
				fmt.Fprintf(w, "TEE               %s\n", s.TEE)
				fmt.Fprintf(w, "version           %s\n", s.Version)
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
				if err := out.validate(); err != nil {
					return err
				}
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
				type certJSON struct {
					Subject    string `json:"subject"`
					Issuer     string `json:"issuer"`
					NotBefore  string `json:"not_before"`
					NotAfter   string `json:"not_after"`
					SHA256     string `json:"sha256"`
					Simulation bool   `json:"simulation"`
					PEM        string `json:"pem"`
				}
				var list []certJSON
				for _, ct := range certs {
					list = append(list, certJSON{
						Subject: ct.Subject.String(), Issuer: ct.Issuer.String(),
						NotBefore: ct.NotBefore.UTC().Format(time.RFC3339), NotAfter: ct.NotAfter.UTC().Format(time.RFC3339),
						SHA256: fingerprint(ct), Simulation: pki.IsSimulation(ct), PEM: string(pki.EncodeCertPEM(ct)),
					})
				}
				return out.print(cmd.OutOrStdout(), map[string]any{"certificates": list}, func(w io.Writer) { io.WriteString(w, pemText) })
			},
		}
		a.registerConnFlags(sub, &conn)
		out.register(sub)
		cmd.AddCommand(sub)
	}
	return cmd
}
