package image

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cloister-dev/cloister/enclave"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Labels the converter sets on the image configuration.
const (
	LabelMREnclaveSimulation = "dev.cloister.mrenclave-simulation"
	LabelMRSigner            = "dev.cloister.mrsigner"
	LabelISVProdID           = "dev.cloister.isvprodid"
	LabelISVSVN              = "dev.cloister.isvsvn"
)

// Result is a converted image. Its unchanged layers are read from the
// Source and its new layers from temporary files, so keep the Source open
// until the image is written, then Close both.
type Result struct {
	// Image is the converted image.
	Image v1.Image
	// Report describes it; Report.Digest is the image's digest.
	Report Report
	tmp    string
}

// Close removes the temporary files of the new layers.
func (r *Result) Close() error {
	if r == nil || r.tmp == "" {
		return nil
	}
	return os.RemoveAll(r.tmp)
}

// Convert turns src into a confidential image, streaming: every layer is
// read once to hash its files (workers layers at a time, each file hashed
// as it streams by, nothing held in memory but the file list); the layers
// that hold protected paths are read a second time and written without
// them to temporary files, encrypting each protected file on the way; the
// layers that hold the content of a seeded encrypted volume are read again
// to copy it; one layer is added with /cloister/launch, the signed
// /cloister/enclave.json, /cloister/gramine.manifest, the encrypted files,
// the seeds and the directories above what it writes outside /cloister.
// Unchanged layers keep their blobs byte for byte. The image's VOLUME
// paths and cfg.Writable are left unmeasured, and a protected path at,
// above or below one of them or an encrypted volume is refused before
// anything is written.
//
// The result depends only on src, cfg.SignKey and cfg.FileKey (and the
// launcher): timestamps come from the image's creation time, tar headers
// and file order are fixed, and compression is deterministic, so
// converting twice gives the same digest.
//
// Errors wrap [ErrUnsafe] or [ErrLimit] (with a [*LayerError] naming the
// layer and path) for layers the converter refuses, and [ErrPlaintext]
// when a protected file's plaintext would stay in the image.
func Convert(ctx context.Context, src *Source, cfg Config, opts ...Option) (_ *Result, err error) {
	cfg, err = cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("convert: %w", err)
	}
	o := newOptions(opts)
	li, err := checkLauncher(cfg.Launcher)
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(cfg.TempDir, "cloister-convert-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	t := &tracker{phase: "reading", layers: len(src.layers), total: src.compressedSize()}
	stop := t.report(o.progress)
	idx, err := indexLayers(ctx, src, &cfg.Limits, cfg.Workers, t)
	stop()
	if err != nil {
		return nil, err
	}
	v, err := mergeLayers(idx)
	if err != nil {
		return nil, err
	}
	vp, err := planVolumes(v, src.config.Config.Volumes, &cfg)
	if err != nil {
		return nil, err
	}
	if err := checkProtectConflicts(v, cfg.Protect, vp); err != nil {
		return nil, err
	}
	exclude := cfg.Exclude
	for _, pat := range vp.excludes() {
		if !slices.Contains(exclude, pat) {
			exclude = append(slices.Clip(exclude), pat)
		}
	}
	excluded := excluder(exclude)
	p, err := planProtection(v, cfg.Protect, excluded)
	if err != nil {
		return nil, err
	}
	// Nothing below an encrypted volume is measured where it lies: a seed
	// is measured where it moves to.
	skip := func(fp string) bool { return excluded(fp) || vp.inVolume(fp) }
	files, err := trustedFiles(v, p, skip)
	if err != nil {
		return nil, err
	}
	files = append(files, vp.seedFiles...)
	slices.SortFunc(files, func(a, b enclave.File) int { return strings.Compare(a.Path, b.Path) })
	warnings := writableWarnings(v, src.config.Config.User, func(fp string, n *node) bool {
		return n.kind == kindFile && !skip(fp) && p.protected[fp] == nil
	})

	rt := &tracker{phase: "rewriting"}
	for l, ok := range p.rewrite {
		if ok {
			rt.layers++
			rt.total += src.layers[l].desc.Size
		}
	}
	rw := &rewriter{src: src, v: v, p: p, cfg: &cfg, dir: tmp, t: rt}
	stop = rw.t.report(o.progress)
	err = rw.run(ctx)
	stop()
	if err != nil {
		return nil, err
	}
	if len(vp.seedFiles) > 0 {
		st := &tracker{phase: "seeding"}
		stop = st.report(o.progress)
		err = extractSeeds(ctx, src, v, vp, &cfg, tmp, st)
		stop()
		if err != nil {
			return nil, err
		}
	}
	enc := slices.Collect(maps.Values(rw.out))
	var prot []enclave.ProtectedFile
	for _, e := range enc {
		if e.file.Mode, e.file.UID, e.file.GID, err = attrs(e.hdr.Mode, e.hdr.Uid, e.hdr.Gid); err != nil {
			return nil, fmt.Errorf("protect %s: %w", e.file.Path, err)
		}
		prot = append(prot, e.file)
	}
	dirs, err := protectedDirs(v, p)
	if err != nil {
		return nil, err
	}

	m, err := enclaveManifest(&src.config.Config, &cfg, files, prot, dirs, exclude, vp.volumes)
	if err != nil {
		return nil, err
	}
	m.Launcher = li.record
	signedBytes, err := enclave.Sign(m, cfg.SignKey)
	if err != nil {
		return nil, fmt.Errorf("signing the enclave manifest: %w", err)
	}
	signed, err := enclave.Parse(signedBytes)
	if err != nil {
		return nil, fmt.Errorf("reading back the signed enclave manifest: %w", err)
	}
	gramine, err := writeTemp(tmp, "gramine-*.manifest", func(w io.Writer) error {
		return gramineManifest(w, &gramineInput{m: signed.Manifest, cfg: &cfg, launcherSum: li.sum,
			manifestSum: sha256.Sum256(signedBytes), manifestSize: int64(len(signedBytes))})
	})
	if err != nil {
		return nil, fmt.Errorf("writing the Gramine manifest: %w", err)
	}

	created := src.config.Created.Time
	if created.IsZero() {
		created = time.Unix(0, 0)
	}
	created = created.UTC().Truncate(time.Second)
	added, err := addedLayer(tmp, src.mediaType, created, li, signedBytes, gramine, enc, vp.seed, outsideEntries(v, enc, vp.volumes))
	if err != nil {
		return nil, err
	}

	report := newReport(signed, li.sum)
	report.Unmeasured = vp.unmeasured
	if w := memoryWarning(report.MemoryBytes); w != "" {
		warnings = append(warnings, w)
	}
	if w := unstrippedWarning(li); w != "" {
		warnings = append(warnings, w)
	}
	if w := buildIDWarning(li); w != "" {
		warnings = append(warnings, w)
	}
	report.Warnings = warnings
	img, err := assemble(src, rw.lays, added, &report, created, cfg.RedactHistory)
	if err != nil {
		return nil, err
	}
	err = checkOutputMetadata(img, signedBytes, rw.plain)
	for _, pt := range rw.plain {
		clear(pt.data)
	}
	if err != nil {
		return nil, err
	}
	d, err := img.Digest()
	if err != nil {
		return nil, err
	}
	report.Digest = d.String()
	return &Result{Image: img, Report: report, tmp: tmp}, nil
}

// assemble builds the output image: the source's layers (rewritten where
// lays has one) and the added layer, with the configuration changed to run
// the launcher, and with every build command of the history replaced by
// [RedactedCreatedBy] when redact is set.
func assemble(src *Source, lays []*fileLayer, added *fileLayer, r *Report, created time.Time, redact bool) (v1.Image, error) {
	cfg := src.config.DeepCopy()
	if redact {
		for i := range cfg.History {
			cfg.History[i].CreatedBy = RedactedCreatedBy
		}
	}
	var layers []outLayer
	for i, l := range src.layers {
		if fl := lays[i]; fl != nil {
			layers = append(layers, outLayer{desc: fl.descriptor(), layer: fl})
			r.Layers.Rewritten++
		} else {
			layers = append(layers, outLayer{desc: l.desc, layer: blobLayer{src: l}})
			r.Layers.Copied++
		}
	}
	layers = append(layers, outLayer{desc: added.descriptor(), layer: added})
	r.Layers.Added = 1

	c := &cfg.Config
	c.Entrypoint = []string{LauncherPath}
	c.Cmd = nil
	// The launcher starts as root to write the delivered files, then
	// switches to the image's user (recorded in the enclave manifest).
	c.User = ""
	if c.Labels == nil {
		c.Labels = map[string]string{}
	}
	c.Labels[LabelMREnclaveSimulation] = r.MREnclaveSimulation
	c.Labels[LabelMRSigner] = r.MRSigner
	c.Labels[LabelISVProdID] = strconv.Itoa(int(r.ISVProdID))
	c.Labels[LabelISVSVN] = strconv.Itoa(int(r.ISVSVN))
	if len(cfg.History) > 0 { // an image without history keeps none, so counts still match
		cfg.History = append(cfg.History, v1.History{
			Created:   v1.Time{Time: created},
			CreatedBy: "cloister image convert",
			Comment:   "confidential container: launcher, signed enclave manifest, protected files",
		})
	}
	img, err := newOutImage(src.mediaType, cfg, layers)
	if c, ok := img.(*converted); ok {
		c.source = src.name
	}
	return img, err
}

// checkOutputMetadata searches the converted image's configuration and
// manifest, and its enclave manifest, for the protected plaintext (see
// [checkMetadata]); the layers were rewritten without it.
func checkOutputMetadata(img v1.Image, enclaveManifest []byte, plain []plaintext) error {
	if len(plain) == 0 {
		return nil
	}
	rawCfg, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	rawManifest, err := img.RawManifest()
	if err != nil {
		return err
	}
	return checkMetadata([]metadataBlob{
		{name: "the image configuration", raw: rawCfg,
			hint: "remove the value from the image's environment, labels or history (rebuild the image without it)"},
		{name: "the enclave manifest " + EnclaveManifestPath, raw: enclaveManifest,
			hint: "remove the value from the image's command line, environment, working directory or user, or from --entrypoint and --cmd"},
		{name: "the image manifest", raw: rawManifest, hint: "rebuild the image without it"},
	}, plain)
}

// writeTemp writes a new file in dir with fill and returns its name.
func writeTemp(dir, pattern string, fill func(io.Writer) error) (string, error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return "", err
	}
	err = fill(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return f.Name(), err
}
