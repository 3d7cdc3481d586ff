package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"github.com/cloister-dev/cloister/cli/jsonoutput"
	"github.com/cloister-dev/cloister/enclave"
	"github.com/cloister-dev/cloister/image"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/spf13/cobra"
)

func (a *app) newImageInspectCmd() *cobra.Command {
	var (
		out    outputFlag
		verify bool
	)
	cmd := &cobra.Command{
		Use:   "inspect IMAGE",
		Short: "Show a converted image's measurement and enclave manifest; --verify re-hashes every file",
		Long: `Read /cloister/enclave.json from a converted image, check its signature and show the image's
measurement, signer and files. With --verify, read every layer again, stack them as a container
runtime does and compare every trusted and protected file with the manifest; any difference (a
changed, missing or unmeasured file) is an error.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			opts := []image.Option{image.WithKeychain(authn.DefaultKeychain)}
			src, err := image.Open(ctx, args[0], opts...)
			if err != nil {
				return err
			}
			defer src.Close()
			var r *image.Report
			if verify {
				bar := a.imageProgressBar("verifying")
				r, err = image.Verify(ctx, src, append(opts, image.WithProgress(bar.update))...)
				bar.finish()
			} else {
				r, _, err = image.Inspect(ctx, src, opts...)
			}
			if r == nil {
				return err
			}
			doc := jsonoutput.ImageInspect{
				ImageReport:   imageReportJSON(r),
				Verified:      verify && err == nil,
				ManifestEntry: manifestEntryJSON(r.Snippet(image.PackageName(args[0]))),
			}
			if perr := out.print(cmd.OutOrStdout(), doc, func(w io.Writer) { printImageInspect(w, args[0], &doc.ImageReport, verify && err == nil) }); perr != nil {
				return perr
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&verify, "verify", false, "re-hash every file from the layers and fail on any difference")
	out.register(cmd)
	return cmd
}

func printImageInspect(w io.Writer, ref string, r *jsonoutput.ImageReport, verified bool) {
	fmt.Fprintf(w, "%s", ref)
	if r.Digest != "" {
		fmt.Fprintf(w, " (%s)", r.Digest)
	}
	fmt.Fprintf(w, "\n  runs              %s\n", strings.Join(r.Argv, " "))
	fmt.Fprintf(w, "  trusted files     %d (%s)\n  protected files   %d\n", r.Files, imageByteSize(r.Bytes), len(r.ProtectedFiles))
	for _, p := range r.ProtectedFiles {
		fmt.Fprintf(w, "    %s (%d bytes, key %q, version %d)\n", p.Path, p.Size, p.Key, p.Version)
	}
	if len(r.ProtectedFiles) > 0 {
		fmt.Fprintf(w, "  memory            %s\n", image.MemoryNote(r.MemoryBytes))
	}
	printVolumes(w, r)
	if len(r.Exclude) > 0 {
		fmt.Fprintf(w, "  not measured      %s\n", strings.Join(r.Exclude, " "))
	}
	fmt.Fprintf(w, "  MRENCLAVE (sim)   %s\n  MRSIGNER          %s\n  ISVPRODID/ISVSVN  %d/%d\n  launcher SHA-256  %s\n",
		r.MREnclaveSimulation, r.MRSigner, r.ISVProdID, r.ISVSVN, r.LauncherSHA256)
	if verified {
		fmt.Fprintf(w, "  verified: every file matches the signed enclave manifest\n")
	}
}

func (a *app) newImageKeygenCmd() *cobra.Command {
	var out outputFlag
	cmd := &cobra.Command{
		Use:   "keygen FILE",
		Short: "Create an SGX enclave signing key (RSA-3072, exponent 3) and print its MRSIGNER",
		Long: `Create an enclave signing key in FILE (PEM, mode 0600; an existing file is never overwritten)
and print its MRSIGNER. The same key signs enclave manifests (cloister image convert) and Gramine
SIGSTRUCTs (gramine-sgx-sign --key FILE).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			key, err := enclave.GenerateKey()
			if err != nil {
				return err
			}
			if err := createExclusive(args[0], enclave.MarshalKey(key), 0o600); errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("keygen: %w (an existing key is never overwritten)", err)
			} else if err != nil {
				return fmt.Errorf("keygen: %w", err)
			}
			mrsigner := enclave.Digest(enclave.MRSigner(&key.PublicKey)).String()
			doc := jsonoutput.ImageKeygen{File: args[0], MRSigner: mrsigner}
			return out.print(cmd.OutOrStdout(), doc, func(w io.Writer) {
				fmt.Fprintf(w, "Created signing key %s.\nMRSIGNER %s\n", args[0], mrsigner)
			})
		},
	}
	out.register(cmd)
	return cmd
}
