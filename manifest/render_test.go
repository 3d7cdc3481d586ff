package manifest

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// renderDoc is a manifest whose server workload reads every piece of template data.
func renderDoc(tb testing.TB) []byte {
	tb.Helper()
	d := baseDoc(tb)
	d["settings"] = obj{"trust_domain": "prod.example"}
	at(d, "secrets")["greeting"] = obj{"type": "plain", "value": "héllo"}
	at(d, "workloads")["server"] = obj{
		"package": "web",
		"env": obj{
			"TOKEN_HEX": "{{.Secrets.token.Hex}}",
			"TOKEN_B64": "{{.Secrets.token.Base64}}",
			"GREETING":  "{{.Secrets.greeting.Raw}}!",
			"UPLOAD":    "{{.Secrets.upload.Raw}}",
			"ID":        "{{.Workload.Name}}/{{.Workload.Instance}} {{.Workload.SPIFFEID}}",
			"STATIC":    "literal",
		},
		"files": obj{
			"/tls/cert.pem":     "{{.Workload.Cert}}",
			"/tls/key.pem":      "{{.Workload.Key}}",
			"/tls/chain.pem":    "{{.Workload.Chain}}",
			"/tls/root.pem":     "{{.CA.Root}}",
			"/tls/inter.pem":    "{{.CA.Intermediate}}",
			"/secret/cert.pem":  "{{.Secrets.tls.Cert}}",
			"/secret/key.pem":   "{{.Secrets.tls.Key}}",
			"/secret/pub.pem":   "{{.Secrets.tls.Public}}",
			"/secret/cert.der":  "{{.Secrets.tls.Raw}}",
			"/secret/token.bin": "{{.Secrets.token.Raw}}",
			"/etc/app.conf":     "{{if eq .Workload.Instance \"0\"}}leader{{else}}follower{{end}}\n",
		},
		"argv": arr{"/bin/app", "--token={{slice .Secrets.token.Hex 0 8}}"},
	}
	return marshal(tb, d)
}

func renderInput() RenderInput {
	return RenderInput{
		Secrets: map[string]SecretValue{
			"token":    {Bytes: bytes.Repeat([]byte{0xab, 0x00}, 16)},
			"upload":   {Bytes: []byte("uploaded")},
			"tls":      {Bytes: []byte{0x30, 0x82}, CertPEM: []byte("SECRET CERT"), KeyPEM: []byte("SECRET KEY"), PublicPEM: []byte("SECRET PUB")},
			"greeting": {Bytes: []byte("not the manifest's value")},
		},
		Instance:        "0",
		CertPEM:         "LEAF",
		KeyPEM:          "KEY",
		ChainPEM:        "LEAF+INTER",
		RootPEM:         "ROOT",
		IntermediatePEM: "INTER",
	}
}

func TestRender(t *testing.T) {
	m := mustParse(t, renderDoc(t))
	in := renderInput()
	token := in.Secrets["token"].Bytes
	got, err := m.Render("server", in)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	want := &Rendered{
		Env: map[string]string{
			"TOKEN_HEX": hex.EncodeToString(token),
			"TOKEN_B64": base64.StdEncoding.EncodeToString(token),
			"GREETING":  "héllo!",
			"UPLOAD":    "uploaded",
			"ID":        "server/0 spiffe://prod.example/server",
			"STATIC":    "literal",
		},
		Files: map[string][]byte{
			"/tls/cert.pem":     []byte("LEAF"),
			"/tls/key.pem":      []byte("KEY"),
			"/tls/chain.pem":    []byte("LEAF+INTER"),
			"/tls/root.pem":     []byte("ROOT"),
			"/tls/inter.pem":    []byte("INTER"),
			"/secret/cert.pem":  []byte("SECRET CERT"),
			"/secret/key.pem":   []byte("SECRET KEY"),
			"/secret/pub.pem":   []byte("SECRET PUB"),
			"/secret/cert.der":  {0x30, 0x82},
			"/secret/token.bin": token,
			"/etc/app.conf":     []byte("leader\n"),
		},
		Argv: []string{"/bin/app", "--token=ab00ab00"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Render mismatch (-want +got):\n%s", diff)
	}
}

func TestRenderWithoutTemplates(t *testing.T) {
	m := mustParse(t, []byte(`{"packages": {"p": {"mrenclave": "`+hexA+`"}}, "workloads": {"w": {"package": "p"}}}`))
	got, err := m.Render("w", RenderInput{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Argv != nil || got.Env != nil || got.Files != nil {
		t.Errorf("Render of a workload without templates = %+v; want all nil (image's own argv)", got)
	}
}

func TestRenderErrors(t *testing.T) {
	big := bytes.Repeat([]byte("s"), 600<<10)
	for _, tc := range []struct {
		name     string
		workload string
		mutate   func(d obj)
		in       func(in *RenderInput)
		path     string
		msg      string
		count    int // problems expected; 0 means 1
		tooLarge bool
	}{
		{name: "unknown workload", workload: "sever", path: "$.workloads", msg: `unknown workload "sever"; defined workloads: server`},
		{name: "wrong SPIFFE ID", in: func(in *RenderInput) { in.SPIFFEID = "spiffe://cloister.internal/server" },
			path: "$.workloads.server", msg: `render input SPIFFE ID is "spiffe://cloister.internal/server"; expected spiffe://prod.example/server`},
		{name: "missing secrets", in: func(in *RenderInput) { delete(in.Secrets, "token"); delete(in.Secrets, "tls") },
			path: "$.workloads.server", msg: "render input lacks values of secrets the workload uses: tls, token"},
		{name: "short key", in: func(in *RenderInput) { in.Secrets["token"] = SecretValue{Bytes: make([]byte, 16)} },
			path: "$.secrets.token", msg: "render input value is 16 bytes; expected 32 (a 256-bit symmetric key)"},
		{name: "user-defined unset", in: func(in *RenderInput) { in.Secrets["upload"] = SecretValue{} },
			path: "$.secrets.upload", msg: "render input has no value; expected one set through the API"},
		{name: "user-defined too large", in: func(in *RenderInput) { in.Secrets["upload"] = SecretValue{Bytes: make([]byte, 64<<10+1)} },
			path: "$.secrets.upload", msg: "render input value is 65537 bytes; expected at most 65536 (max_size)"},
		{name: "no instance", in: func(in *RenderInput) { in.Instance = "" },
			path: "$.workloads.server.env.ID", msg: "error calling Instance: the render input has no instance ID", count: 2},
		{name: "no workload key", in: func(in *RenderInput) { in.KeyPEM = "" },
			path: `$.workloads.server.files["/tls/key.pem"]`, msg: "the render input has no workload key"},
		{name: "no root", in: func(in *RenderInput) { in.RootPEM = "" },
			path: `$.workloads.server.files["/tls/root.pem"]`, msg: "the render input has no root CA certificate"},
		{name: "no secret certificate", in: func(in *RenderInput) { in.Secrets["tls"] = SecretValue{Bytes: []byte{1}} },
			path: `$.workloads.server.files["/secret/cert.pem"]`, msg: `error calling Cert: secret "tls" has no Cert in the render input`, count: 3},
		{name: "NUL in user value", in: func(in *RenderInput) { in.Secrets["upload"] = SecretValue{Bytes: []byte("a\x00b")} },
			path: "$.workloads.server.env.UPLOAD", msg: "rendered environment value contains a NUL byte"},
		{name: "value too large",
			mutate: func(d obj) {
				at(d, "secrets", "upload")["max_size"] = MaxUserDefinedSize
				at(d, "workloads", "server", "files")["/big"] = "{{.Secrets.upload.Raw}}{{.Secrets.upload.Raw}}"
			},
			in:   func(in *RenderInput) { in.Secrets["upload"] = SecretValue{Bytes: big} },
			path: `$.workloads.server.files["/big"]`, msg: "rendered file value exceeds 1048576 bytes", tooLarge: true},
		{name: "total too large",
			mutate: func(d obj) {
				at(d, "secrets", "upload")["max_size"] = MaxUserDefinedSize
				files := at(d, "workloads", "server", "files")
				for i := range 30 {
					files[fmt.Sprintf("/big/%02d", i)] = "{{.Secrets.upload.Raw}}"
				}
			},
			in: func(in *RenderInput) { in.Secrets["upload"] = SecretValue{Bytes: big} },
			// The environment's UPLOAD value renders first and takes 600 KiB of the budget.
			path: `$.workloads.server.files["/big/26"]`, msg: "rendered output of the workload exceeds 16777216 bytes in total", tooLarge: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := obj{}
			if err := json.Unmarshal(renderDoc(t), &d); err != nil {
				t.Fatal(err)
			}
			if tc.mutate != nil {
				tc.mutate(d)
			}
			m := mustParse(t, marshal(t, d))
			in := renderInput()
			if tc.in != nil {
				tc.in(&in)
			}
			workload := tc.workload
			if workload == "" {
				workload = "server"
			}
			out, err := m.Render(workload, in)
			if out != nil {
				t.Errorf("Render returned output with error %v", err)
			}
			wantFieldError(t, err, tc.path, tc.msg, tc.count)
			if errors.Is(err, ErrTooLarge) != tc.tooLarge {
				t.Errorf("errors.Is(err, ErrTooLarge) = %v; want %v", !tc.tooLarge, tc.tooLarge)
			}
			for _, secret := range []string{"uploaded", "SECRET KEY", hex.EncodeToString(in.Secrets["token"].Bytes)} {
				if secret != "" && strings.Contains(err.Error(), secret) {
					t.Errorf("error reveals a secret value: %v", err)
				}
			}
		})
	}
}

// TestRenderConcurrent renders from many goroutines at once; run with -race.
func TestRenderConcurrent(t *testing.T) {
	m := mustParse(t, renderDoc(t))
	want, err := m.Render("server", renderInput())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			in := renderInput()
			in.Instance = fmt.Sprint(i % 2)
			got, err := m.Render("server", in)
			if err != nil {
				t.Errorf("Render: %v", err)
				return
			}
			if i%2 == 0 && !cmp.Equal(want, got) {
				t.Errorf("concurrent Render differs: %s", cmp.Diff(want, got))
			}
		})
	}
	wg.Wait()
}

// TestRenderComputesEncodingsOnce checks that each encoding of a secret is computed once
// per render however often a template repeats it, so a short template cannot make Render
// allocate without bound.
func TestRenderComputesEncodingsOnce(t *testing.T) {
	const size, repeats = 256 << 10, 50
	d := baseDoc(t)
	at(d, "secrets", "upload")["max_size"] = MaxUserDefinedSize
	at(d, "workloads", "server")["env"] = obj{"V": strings.Repeat("{{$x := .Secrets.upload.Hex}}", repeats)}
	m := mustParse(t, marshal(t, d))
	in := RenderInput{Secrets: map[string]SecretValue{"upload": {Bytes: make([]byte, size)}}}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if _, err := m.Render("server", in); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	// One hex encoding is 2*size bytes; recomputing it per reference would be 50 times that.
	if got, limit := after.TotalAlloc-before.TotalAlloc, uint64(4*2*size); got > limit {
		t.Errorf("Render allocated %d bytes for %d references to one %d-byte secret; want at most %d", got, repeats, size, limit)
	}
}
