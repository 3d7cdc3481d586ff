package cli

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"unicode/utf8"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/cli/jsonoutput"
	"github.com/spf13/cobra"
)

func (a *app) newSecretCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "secret",
		Short: "Read secrets and set user-defined secrets",
	}
	cmd.AddCommand(a.newSecretGetCmd(), a.newSecretSetCmd())
	return cmd
}

func (a *app) newSecretGetCmd() *cobra.Command {
	var (
		conn connFlags
		out  outputFlag
	)
	cmd := &cobra.Command{
		Use:   "get NAME...",
		Short: "Print secret values (needs a user with the read role)",
		Long: `Print the values of shared secrets. Certificates print as PEM certificate and key; other
values print as they are when they are text, and as hex otherwise. --output json gives values as
base64.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client(&conn)
			if err != nil {
				return err
			}
			got, err := c.Secrets(cmd.Context(), args...)
			if err != nil {
				return err
			}
			secrets := secretsJSON(got)
			return out.print(cmd.OutOrStdout(), secrets, func(w io.Writer) {
				for _, name := range slices.Sorted(maps.Keys(secrets)) {
					s := secrets[name]
					switch {
					case s.Certificate != "":
						fmt.Fprintf(w, "%s:\n%s%s", name, s.Certificate, s.PrivateKey)
					case utf8.Valid(s.Value) && printable(s.Value):
						fmt.Fprintf(w, "%s: %s\n", name, s.Value)
					default:
						fmt.Fprintf(w, "%s (hex): %s\n", name, hex.EncodeToString(s.Value))
					}
				}
			})
		},
	}
	a.registerConnFlags(cmd, &conn)
	out.register(cmd)
	return cmd
}

// secretsJSON is the --output json document of the secrets s.
func secretsJSON(s map[string]api.Secret) jsonoutput.Secrets {
	out := jsonoutput.Secrets{}
	for name, v := range s {
		out[name] = jsonoutput.Secret{Value: v.Value, Certificate: v.Certificate, PrivateKey: v.PrivateKey}
	}
	return out
}

func printable(b []byte) bool {
	for _, r := range string(b) {
		if r < 0x20 && r != '\n' && r != '\t' || r == 0x7f {
			return false
		}
	}
	return true
}

func (a *app) newSecretSetCmd() *cobra.Command {
	var (
		conn  connFlags
		value string
		file  string
		hexV  string
	)
	cmd := &cobra.Command{
		Use:   "set NAME (--value TEXT | --hex HEX | --file FILE)",
		Short: "Set a user-defined secret (needs a user with the write role)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var v []byte
			n := 0
			for _, s := range []string{value, file, hexV} {
				if s != "" {
					n++
				}
			}
			if n != 1 {
				return usageError(errors.New("give exactly one of --value, --hex and --file"))
			}
			switch {
			case value != "":
				v = []byte(value)
			case hexV != "":
				b, err := hex.DecodeString(hexV)
				if err != nil {
					return usageError(fmt.Errorf("--hex: %w", err))
				}
				v = b
			default:
				b, err := readBounded(file, 1<<20)
				if err != nil {
					return err
				}
				v = b
			}
			c, err := a.client(&conn)
			if err != nil {
				return err
			}
			if err := c.SetSecrets(cmd.Context(), map[string][]byte{args[0]: v}); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Secret %s set (%d bytes).\n", args[0], len(v))
			return nil
		},
	}
	a.registerConnFlags(cmd, &conn)
	cmd.Flags().StringVar(&value, "value", "", "the value, as text (visible in your shell history: prefer --file)")
	cmd.Flags().StringVar(&hexV, "hex", "", "the value, hex-encoded")
	cmd.Flags().StringVar(&file, "file", "", "read the value from this file")
	return cmd
}
