package cli

import (
	"os"

	"github.com/cloister-dev/cloister/launcher"
	"github.com/spf13/cobra"
)

func (a *app) newLaunchCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "launch",
		Short: "Run the launcher here, as cloister-launch does in a container",
		Long: `Attest, activate with the Coordinator and exec the application named by the enclave manifest,
exactly as cloister-launch does inside a confidential container; configured by the same CLOISTER_*
environment variables (CLOISTER_COORDINATOR, CLOISTER_WORKLOAD, CLOISTER_INSTANCE, CLOISTER_TEE,
CLOISTER_SIM_DIR, CLOISTER_ENCLAVE_MANIFEST). In simulation the measurement covers this binary,
which must be the one the enclave manifest records (cloister enclave sign records the cloister
that signs it).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			code := launcher.Main(cmd.Context(), a.getenv, os.Environ(), a.stderr)
			return &exitError{code: code}
		},
	}
}
