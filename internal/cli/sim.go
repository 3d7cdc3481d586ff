package cli

import (
	"fmt"
	"time"

	"github.com/cloister-dev/cloister/sgx"
	"github.com/cloister-dev/cloister/sgx/sim"
	"github.com/spf13/cobra"
)

func (a *app) newSimCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Manage simulated SGX platforms (for development and CI; NOT secure)",
	}
	var (
		validity time.Duration
		caType   string
	)
	initCmd := &cobra.Command{
		Use:   "init DIR",
		Short: "Create a simulated SGX platform in DIR",
		Long: `Create a simulated SGX platform: a root CA standing in for Intel's, a PCK CA and PCK
certificate with SGX extensions, a TCB signing certificate, signed TCB Info and QE Identity,
CRLs, and the Quoting Enclave's keys, laid out like a real collateral directory.

Quotes made with it are byte-compatible SGX quotes v3 that go through the same verification as
real ones, but anyone holding DIR can forge any quote: it proves nothing. Coordinators and
launchers accept it only when told to (--simulation DIR, CLOISTER_SIM_DIR) and then say so.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := sim.Options{CollateralValidity: validity}
			switch caType {
			case "processor":
				opts.CAType = sgx.PCKCAProcessor
			case "platform":
				opts.CAType = sgx.PCKCAPlatform
			default:
				return fmt.Errorf("--ca %q: expected processor or platform", caType)
			}
			p, err := sim.Create(args[0], opts)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Created a simulated SGX platform in %s (FMSPC %X).\n", p.Dir(), p.FMSPC())
			fmt.Fprintf(cmd.OutOrStdout(), "Its root certificate is %s/root_ca.pem. SIMULATION ONLY: it protects nothing.\n", p.Dir())
			return nil
		},
	}
	initCmd.Flags().DurationVar(&validity, "collateral-validity", sim.DefaultCollateralValidity, "how long the simulated TCB Info, QE Identity and CRLs stay valid")
	initCmd.Flags().StringVar(&caType, "ca", "processor", "PCK CA type: processor or platform")
	cmd.AddCommand(initCmd)
	return cmd
}
