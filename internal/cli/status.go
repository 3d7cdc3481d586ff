package cli

import (
	"fmt"
	"io"

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
		var conn connFlags
		sub := &cobra.Command{
			Use:   which.name,
			Short: "Print " + which.short,
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := a.client(&conn)
				if err != nil {
					return err
				}
				pem, err := c.Certificate(cmd.Context(), which.name)
				if err != nil {
					return err
				}
				_, err = io.WriteString(cmd.OutOrStdout(), pem)
				return err
			},
		}
		a.registerConnFlags(sub, &conn)
		cmd.AddCommand(sub)
	}
	return cmd
}
