package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/cloister-dev/cloister/attest"
	"github.com/cloister-dev/cloister/cli/jsonoutput"
	"github.com/cloister-dev/cloister/enclave"
	"github.com/cloister-dev/cloister/image"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/spf13/cobra"
)

// imageCoordinatorFlags are the flags of `cloister image coordinator`.
type imageCoordinatorFlags struct {
	signKey, binary, enclaveSize, gramineDir string
	isvProdID, isvSVN                        uint16
	threads                                  int
	args                                     []string
	out                                      outputFlag
}

func (a *app) newImageCoordinatorCmd() *cobra.Command {
	var f imageCoordinatorFlags
	cmd := &cobra.Command{
		Use:   "coordinator DST",
		Short: "Build the Coordinator itself as a confidential image",
		Long: `Write the Coordinator as a confidential image to DST: one layer with the static
cloister-coordinator binary (/usr/local/bin/cloister-coordinator; the commands coordinator and
injector of cloister, without the rest, since the enclave measures and loads all of it; --binary,
else the one next to cloister, else in PATH), its state directory /var/lib/cloister (mount a volume there), an
enclave manifest signed with --sign-key, and a Gramine manifest for SGX (quotes and sealing keys
from /dev/attestation, the state directory an encrypted mount sealed to the signer). The
entrypoint is ` + "`cloister-coordinator coordinator --data-dir /var/lib/cloister --client-addr 0.0.0.0:4433 --mesh-addr 0.0.0.0:2001`" + `;
arguments given to the container are appended, e.g. --simulation /sim with a simulated platform
mounted at /sim. The same binary, key and flags always give the same image digest.

It prints the MRENCLAVE the Coordinator quotes in simulation and the MRSIGNER of the key, which
` + "`cloister verify --mrenclave` and `--mrsigner`" + ` take. On SGX hardware the MRENCLAVE is what
gramine-sgx-sign prints for /cloister/gramine.manifest.`,
		Example: `  cloister image keygen signer.pem
  CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o cloister-coordinator ./cmd/cloister-coordinator
  cloister image coordinator --binary cloister-coordinator --sign-key signer.pem oci:coordinator-image:1`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return a.runImageCoordinator(cmd, args[0], &f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.signKey, "sign-key", "", "the enclave signing key: PEM, RSA-3072 with exponent 3 (make one with: cloister image keygen FILE)")
	fl.StringVar(&f.binary, "binary", "", "the static cloister-coordinator binary to put in the image (default: the one next to cloister, else in PATH)")
	fl.Uint16Var(&f.isvProdID, "isvprodid", attest.CoordinatorProdID, "the Coordinator enclave's product ID (ISVPRODID)")
	fl.Uint16Var(&f.isvSVN, "isvsvn", attest.CoordinatorSVN, "the Coordinator enclave's security version (ISVSVN)")
	fl.StringVar(&f.enclaveSize, "enclave-size", image.DefaultCoordinatorEnclaveSize, "enclave size, a power of two with K, M, G or T")
	fl.IntVar(&f.threads, "threads", image.DefaultCoordinatorThreads, "maximum number of enclave threads")
	fl.StringArrayVar(&f.args, "arg", nil, "an argument of `cloister-coordinator coordinator` signed into the enclave's fixed argv after the built-in ones, e.g. --arg=--pccs-url=https://pccs.example:8081/sgx/certification/v4 (repeatable; on SGX the container's own arguments are not used)")
	fl.StringVar(&f.gramineDir, "gramine-libdir", image.DefaultGramineLibDir, "where Gramine is installed in the image that runs this one on SGX")
	f.out.register(cmd)
	return cmd
}

func (a *app) runImageCoordinator(cmd *cobra.Command, dst string, f *imageCoordinatorFlags) error {
	var errs []error
	if _, err := image.ParseReference(dst); err != nil {
		errs = append(errs, err)
	}
	cfg := image.CoordinatorConfig{Binary: f.binary, ISVProdID: f.isvProdID, ISVSVN: f.isvSVN,
		EnclaveSize: f.enclaveSize, Threads: f.threads, GramineLibDir: f.gramineDir, Args: f.args}
	var err error
	if cfg.Binary, err = findBinary(f.binary, CoordinatorBinary, "--binary", image.BuildCoordinatorHint); err != nil {
		errs = append(errs, err)
	}
	if f.signKey == "" {
		errs = append(errs, errors.New("--sign-key is required (make one with `cloister image keygen FILE`)"))
	} else if b, err := readBounded(f.signKey, 64<<10); err != nil {
		errs = append(errs, fmt.Errorf("--sign-key: %w", err))
	} else if cfg.SignKey, err = enclave.ParseKey(b); err != nil {
		errs = append(errs, fmt.Errorf("--sign-key %s: %w", f.signKey, err))
	}
	if err := errors.Join(errs...); err != nil {
		return usageError(err)
	}
	ctx := cmd.Context()
	res, err := image.Coordinator(ctx, cfg)
	if err != nil {
		return err
	}
	defer res.Close()
	if _, err := image.Write(ctx, dst, res.Image, image.WithKeychain(authn.DefaultKeychain)); err != nil {
		return err
	}
	r := &res.Report
	doc := jsonoutput.ImageCoordinator{
		Image: dst, Digest: r.Digest, MREnclaveSimulation: r.MREnclaveSimulation, MRSigner: r.MRSigner,
		MRSignerSimulation: fmt.Sprintf("%x", attest.SimCoordinatorSigner), ISVProdID: r.ISVProdID, ISVSVN: r.ISVSVN,
		BinarySHA256: r.BinarySHA256, BinarySize: r.BinarySize, Entrypoint: r.Entrypoint,
	}
	return f.out.print(cmd.OutOrStdout(), doc, func(w io.Writer) { printImageCoordinator(w, cfg.Binary, &doc) })
}

func printImageCoordinator(w io.Writer, binary string, d *jsonoutput.ImageCoordinator) {
	fmt.Fprintf(w, "Wrote the Coordinator image %s (%s).\n", d.Image, d.Digest)
	fmt.Fprintf(w, "  binary            %s (%s, sha256 %s)\n", binary, imageByteSize(d.BinarySize), d.BinarySHA256)
	fmt.Fprintf(w, "  runs              %s\n", strings.Join(d.Entrypoint, " "))
	fmt.Fprintf(w, "  MRENCLAVE (sim)   %s\n", d.MREnclaveSimulation)
	fmt.Fprintf(w, "  MRSIGNER          %s\n", d.MRSigner)
	fmt.Fprintf(w, "  MRSIGNER (sim)    %s\n", d.MRSignerSimulation)
	fmt.Fprintf(w, "  ISVPRODID/ISVSVN  %d/%d\n", d.ISVProdID, d.ISVSVN)
	fmt.Fprintf(w, "\nIn simulation, with a platform made by `cloister sim init DIR` mounted at /sim:\n")
	fmt.Fprintf(w, "  podman run -d -p 127.0.0.1:4433:4433 -p 127.0.0.1:2001:2001 -v DIR:/sim:ro IMAGE --simulation /sim\n")
	fmt.Fprintf(w, "  cloister verify -c 127.0.0.1:4433 --simulation DIR --mrenclave %s\n", d.MREnclaveSimulation)
	fmt.Fprintf(w, "On SGX the MRENCLAVE is the one gramine-sgx-sign prints when it signs /cloister/gramine.manifest\n")
	fmt.Fprintf(w, "with the same key (it depends on Gramine's own files); pin it, or the signer:\n")
	fmt.Fprintf(w, "  cloister verify -c HOST:4433 --mrsigner %s --isvprodid %d --min-isvsvn %d\n", d.MRSigner, d.ISVProdID, d.ISVSVN)
	fmt.Fprintf(w, "On Kubernetes the webhook requires the same identity (docs/kubernetes.md):\n")
	fmt.Fprintf(w, "  cloister install --set image.repository=REPOSITORY --set injector.coordinatorIdentity.mrsigner=%s --set injector.coordinatorIdentity.isvprodid=%d --set injector.coordinatorIdentity.minISVSVN=%d\n",
		d.MRSigner, d.ISVProdID, d.ISVSVN)
}
