package cli

import (
	"github.com/cloister-dev/cloister/internal/demo"
	"github.com/spf13/cobra"
)

func (a *app) newDemoCmd() *cobra.Command {
	var cfg demo.Config
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a whole confidential deployment on this machine, in simulation mode",
		Long: `Run the whole Cloister flow on this machine with real processes, in simulation mode (no SGX
needed, nothing protected): a simulated SGX platform, a Coordinator, a client verifying it, a
manifest, an mTLS server and client (openssl and curl, unmodified) that get their certificates and
secrets through the launcher, and a tampered workload that is refused. Exits 0 only if every step
did what it should, and cleans up after itself unless --keep.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.Out = cmd.OutOrStdout()
			if err := demo.Run(cmd.Context(), cfg); err != nil {
				return &exitError{code: 1} // Run has told the story, failure included
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&cfg.Keep, "keep", false, "leave the Coordinator running and its files in place")
	cmd.Flags().StringVar(&cfg.Dir, "dir", "", "working directory (default: a new temporary directory)")
	return cmd
}
