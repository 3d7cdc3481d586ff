package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// SecretValue is the value of one secret, as the Coordinator passes it to
// [Manifest.Render]. Render only reads it.
type SecretValue struct {
	// Bytes is the secret itself: the key of a symmetric-key secret (Size/8 bytes), the
	// uploaded value of a user-defined secret (1 to MaxSize bytes) or the DER certificate
	// of a certificate secret. Templates see it through .Raw, .Hex and .Base64.
	Bytes []byte
	// CertPEM, KeyPEM and PublicPEM are a certificate secret's certificate, PKCS #8
	// private key and public key as PEM, seen through .Cert, .Key and .Public.
	CertPEM, KeyPEM, PublicPEM []byte
}

// RenderInput is what [Manifest.Render] fills templates with. A field that a template uses
// must not be empty; unused fields may be.
type RenderInput struct {
	// Secrets holds the values of the secrets the workload uses, see
	// [Manifest.SecretsUsedBy]; per-instance secrets hold this instance's values. Plain
	// secrets are taken from the manifest; entries for them here are not consulted.
	Secrets map[string]SecretValue
	// Instance is the workload instance's ID (.Workload.Instance).
	Instance string
	// SPIFFEID is the workload's SPIFFE ID (.Workload.SPIFFEID). Empty means
	// [Manifest.SPIFFEID]; anything else must equal it.
	SPIFFEID string
	// CertPEM is the workload's certificate (.Workload.Cert).
	CertPEM string
	// KeyPEM is the workload's private key (.Workload.Key), or a placeholder that the
	// launcher replaces when the key never leaves the enclave.
	KeyPEM string
	// ChainPEM is the workload certificate followed by the intermediate CA (.Workload.Chain).
	ChainPEM string
	// RootPEM is the deployment's root CA certificate (.CA.Root).
	RootPEM string
	// IntermediatePEM is the deployment's current intermediate CA certificate
	// (.CA.Intermediate).
	IntermediatePEM string
}

// Rendered is a workload's configuration, ready to deliver.
type Rendered struct {
	// Files maps absolute paths to contents.
	Files map[string][]byte
	// Env maps environment variable names to values.
	Env map[string]string
	// Argv is the command line; nil means the image's own.
	Argv []string
}

// Render fills the templates of workload with in. It uses the templates Parse compiled,
// so it is cheap, and it is safe to call from many goroutines at once.
//
// Errors are *[FieldError] values naming the template's JSON path: an unknown workload, a
// value missing from in for a secret the workload uses, a symmetric-key or user-defined
// value of the wrong size, a template that uses an empty input field, an environment value
// or argument containing a NUL byte, or output beyond [MaxRenderedValue] for one value or
// [MaxRenderedTotal] in all (these wrap [ErrTooLarge]). Errors never contain secret values.
func (m *Manifest) Render(workload string, in RenderInput) (*Rendered, error) {
	if m.workloads == nil {
		return nil, errors.New("manifest: Render needs a Manifest returned by Parse")
	}
	cw, ok := m.workloads[workload]
	if !ok {
		return nil, &FieldError{Path: "$.workloads", Msg: fmt.Sprintf("unknown workload %s; defined workloads: %s",
			quote(workload), nameList(sortedKeys(m.Workloads)))}
	}
	if in.SPIFFEID != "" && in.SPIFFEID != cw.spiffeID {
		return nil, &FieldError{Path: keyPath("$.workloads", workload), Msg: fmt.Sprintf(
			"render input SPIFFE ID is %s; expected %s", quote(in.SPIFFEID), cw.spiffeID)}
	}
	data, err := m.data(cw, in, true)
	if err != nil {
		return nil, err
	}
	var ps problems
	out := render(cw, data, &ps)
	if err := ps.err(); err != nil {
		return nil, err
	}
	return out, nil
}

// SecretsUsedBy returns the sorted names of the secrets that the templates of workload
// reference, so that the Coordinator can fetch and deliver only those. It returns nil for
// an unknown workload and for a Manifest that Parse did not make. The caller owns the slice.
func (m *Manifest) SecretsUsedBy(workload string) []string {
	if cw, ok := m.workloads[workload]; ok {
		return slices.Clone(cw.secrets)
	}
	return nil
}

// data builds the template data for cw from in. With check set it verifies that every
// secret cw uses is present and of the size the manifest says.
func (m *Manifest) data(cw *compiledWorkload, in RenderInput, check bool) (*tmplData, error) {
	views := make([]secretView, len(cw.secrets))
	data := &tmplData{
		Secrets: make(map[string]*secretView, len(cw.secrets)),
		Workload: &workloadView{name: cw.name, instance: in.Instance, spiffeID: cw.spiffeID,
			cert: in.CertPEM, key: in.KeyPEM, chain: in.ChainPEM},
		CA: &caView{root: in.RootPEM, intermediate: in.IntermediatePEM},
	}
	var missing []string
	for i, name := range cw.secrets {
		s := m.Secrets[name]
		v, ok := cw.plain[name]
		if !ok {
			v, ok = in.Secrets[name]
		}
		if !ok {
			missing = append(missing, name)
			continue
		}
		if check {
			if err := checkValue(name, s, v); err != nil {
				return nil, err
			}
		}
		views[i] = secretView{name: name, typ: s.Type, val: v}
		data.Secrets[name] = &views[i]
	}
	if len(missing) > 0 {
		return nil, &FieldError{Path: keyPath("$.workloads", cw.name), Msg: fmt.Sprintf(
			"render input lacks values of secrets the workload uses: %s", nameList(missing))}
	}
	return data, nil
}

// checkValue verifies the size of a secret's value against its definition.
func checkValue(name string, s Secret, v SecretValue) error {
	var msg string
	switch {
	case s.Type == SymmetricKey && len(v.Bytes) != s.Size/8:
		msg = fmt.Sprintf("render input value is %d bytes; expected %d (a %d-bit symmetric key)", len(v.Bytes), s.Size/8, s.Size)
	case s.Type == UserDefined && len(v.Bytes) == 0:
		msg = "render input has no value; expected one set through the API"
	case s.Type == UserDefined && len(v.Bytes) > s.MaxSize:
		msg = fmt.Sprintf("render input value is %d bytes; expected at most %d (max_size)", len(v.Bytes), s.MaxSize)
	default:
		return nil
	}
	return &FieldError{Path: keyPath("$.secrets", name), Msg: msg}
}

// render executes every template of cw, reporting problems to ps. It stops early once the
// total output limit is reached.
func render(cw *compiledWorkload, data *tmplData, ps *problems) *Rendered {
	r := &renderer{data: data, budget: MaxRenderedTotal, ps: ps}
	out := &Rendered{}
	if len(cw.env) > 0 {
		out.Env = make(map[string]string, len(cw.env))
		for i := range cw.env {
			if s, ok := r.text(&cw.env[i]); ok {
				out.Env[cw.env[i].key] = s
			}
		}
	}
	if len(cw.files) > 0 {
		out.Files = make(map[string][]byte, len(cw.files))
		for i := range cw.files {
			if b, ok := r.bytes(&cw.files[i]); ok {
				out.Files[cw.files[i].key] = b
			}
		}
	}
	if len(cw.argv) > 0 {
		out.Argv = make([]string, len(cw.argv))
		for i := range cw.argv {
			out.Argv[i], _ = r.text(&cw.argv[i])
		}
	}
	return out
}

// renderer executes templates within a shared output budget.
type renderer struct {
	data     *tmplData
	budget   int // bytes of output left
	ps       *problems
	overflow bool // the total budget is spent; later values are not rendered
}

// text renders an environment value or argument.
func (r *renderer) text(v *compiledValue) (string, bool) {
	if v.tmpl == nil {
		if !r.charge(v, len(v.literal)) || !r.checkNUL(v, strings.IndexByte(v.literal, 0) < 0) {
			return "", false
		}
		return v.literal, true
	}
	b, ok := r.execute(v)
	if !ok || !r.checkNUL(v, bytes.IndexByte(b, 0) < 0) {
		return "", false
	}
	return string(b), true
}

// bytes renders a file.
func (r *renderer) bytes(v *compiledValue) ([]byte, bool) {
	if v.tmpl == nil {
		if !r.charge(v, len(v.literal)) {
			return nil, false
		}
		return []byte(v.literal), true
	}
	return r.execute(v)
}

func (r *renderer) execute(v *compiledValue) ([]byte, bool) {
	if r.overflow {
		return nil, false
	}
	w := &limitedBuffer{limit: min(MaxRenderedValue, r.budget)}
	if err := v.tmpl.Execute(w, r.data); err != nil {
		if errors.Is(err, errOverLimit) {
			r.charge(v, w.limit+1)
			return nil, false
		}
		r.ps.addErr(&FieldError{Path: v.path, Msg: "template " + cleanTemplateError(err), Err: err})
		return nil, false
	}
	r.budget -= len(w.b)
	return w.b, true
}

// charge takes n bytes of output for v from the budget, reporting when it cannot.
func (r *renderer) charge(v *compiledValue, n int) bool {
	switch {
	case r.overflow:
		return false
	case n > MaxRenderedValue:
		r.ps.addErr(&FieldError{Path: v.path, Err: ErrTooLarge,
			Msg: fmt.Sprintf("rendered %s value exceeds %d bytes", v.kind, MaxRenderedValue)})
		return false
	case n > r.budget:
		r.overflow = true
		r.ps.addErr(&FieldError{Path: v.path, Err: ErrTooLarge,
			Msg: fmt.Sprintf("rendered output of the workload exceeds %d bytes in total", MaxRenderedTotal)})
		return false
	}
	r.budget -= n
	return true
}

// checkNUL reports an environment value or argument that contains a NUL byte.
func (r *renderer) checkNUL(v *compiledValue, noNUL bool) bool {
	if noNUL {
		return true
	}
	r.ps.addErr(&FieldError{Path: v.path, Msg: fmt.Sprintf(
		"rendered %s value contains a NUL byte; expected text without NUL, which %s values cannot hold", v.kind, v.kind)})
	return false
}

// errOverLimit is returned by limitedBuffer.Write past its limit.
var errOverLimit = errors.New("output limit reached")

// limitedBuffer collects output up to limit bytes.
type limitedBuffer struct {
	b     []byte
	limit int
}

func (w *limitedBuffer) Write(p []byte) (int, error) {
	if len(w.b)+len(p) > w.limit {
		return 0, errOverLimit
	}
	w.b = append(w.b, p...)
	return len(p), nil
}
