package manifest

import (
	"slices"
	"strings"
	"testing"
)

// TestTemplateChecks puts one template into a workload and checks the problem reported at
// its path, or that it is accepted when msg is empty.
func TestTemplateChecks(t *testing.T) {
	for _, tc := range []struct {
		name  string
		where string // "env", "files" or "argv"
		tmpl  string
		msg   string
	}{
		// accepted
		{"literal", "env", "plain text", ""},
		{"all data", "files", "{{.Workload.Name}}{{.Workload.Instance}}{{.Workload.SPIFFEID}}{{.Workload.Cert}}{{.Workload.Key}}{{.Workload.Chain}}{{.CA.Root}}{{.CA.Intermediate}}", ""},
		{"all secret methods", "files", "{{.Secrets.token.Raw}}{{.Secrets.token.Hex}}{{.Secrets.token.Base64}}{{.Secrets.tls.Raw}}{{.Secrets.tls.Cert}}{{.Secrets.tls.Key}}{{.Secrets.tls.Public}}", ""},
		{"dollar root", "env", "{{$.Secrets.token.Hex}}", ""},
		{"if else", "env", `{{if eq .Workload.Name "server"}}a{{else if .CA.Root}}b{{else}}c{{end}}`, ""},
		{"variables", "env", "{{$n := .Workload.Name}}{{$n}}-{{$n}}", ""},
		{"allowed functions", "env", `{{slice .Secrets.token.Hex 0 8}}{{len .Secrets.upload.Raw}}{{index .Workload.Name 0}}{{and .CA.Root (not false)}}{{or "" "x"}}{{if ne 1 2}}{{end}}{{if lt 1 2}}{{end}}{{if le 1 2}}{{end}}{{if gt 2 1}}{{end}}{{if ge 2 1}}{{end}}`, ""},
		{"comments and trimming", "env", "{{/* note */}} {{- .Workload.Name -}} ", ""},
		{"raw user-defined in argv", "argv", "{{.Secrets.upload.Raw}}", ""},
		{"length of raw key in env", "env", "{{len .Secrets.token.Raw}}", ""},
		{"length of raw certificate in argv", "argv", "{{.Secrets.tls.Raw | len}}", ""},
		{"length of raw key in a condition", "env", "{{if gt (len .Secrets.token.Raw) 16}}long{{end}}", ""},
		// rejected
		{"undefined secret", "env", "{{.Secrets.tokn.Hex}}", `template references undefined secret "tokn"; defined secrets: tls, token, upload`},
		{"undefined secret after $", "env", "{{$.Secrets.tokn.Hex}}", `undefined secret "tokn"`},
		{"undefined secret in dead branch", "env", "{{if false}}{{.Secrets.tokn.Hex}}{{end}}", `undefined secret "tokn"`},
		{"cert of symmetric key", "files", "{{.Secrets.token.Cert}}", `template {{.Secrets.token.Cert}}: secret "token" is a symmetric-key secret and has no .Cert; expected one of .Raw, .Hex, .Base64`},
		{"key of user-defined", "files", "{{.Secrets.upload.Key}}", `secret "upload" is a user-defined secret and has no .Key`},
		{"unknown certificate method", "files", "{{.Secrets.tls.PEM}}", "has no .PEM; expected one of .Raw, .Hex, .Base64, .Cert, .Key, .Public"},
		{"field of method result", "files", "{{.Secrets.token.Hex.X}}", "has no .Hex.X"},
		{"secret without method", "env", "{{.Secrets.token}}", "expected .Secrets.token followed by one of .Raw, .Hex, .Base64"},
		{"secrets map", "env", "{{index .Secrets \"token\"}}", "expected a secret name after .Secrets"},
		{"whole data", "files", "{{.}}", "template {{.}}: expected a named value such as .Workload.Name, found {{.}} (the whole template data)"},
		{"dollar alone", "files", "{{$}}", "found $ alone"},
		{"workload whole", "env", "{{.Workload}}", "expected .Workload followed by one of .Name, .Instance, .SPIFFEID, .Cert, .Key, .Chain"},
		{"workload typo", "env", "{{.Workload.Nmae}}", "expected .Workload followed by one of"},
		{"CA typo", "env", "{{.CA.Rot}}", "expected .CA followed by one of .Root, .Intermediate"},
		{"unknown root", "env", "{{.Env.HOME}}", "expected .Secrets, .Workload or .CA, found .Env"},
		{"chain", "env", "{{(.Workload).Name}}", "found field access on a parenthesized expression"},
		{"range", "env", "{{range $i := 3}}x{{end}}", "template uses {{range}}"},
		{"with", "env", "{{with .Workload}}{{.Name}}{{end}}", "template uses {{with}}"},
		{"define", "files", `{{define "x"}}a{{end}}b`, "{{define}} and {{block}} are not supported"},
		{"block", "files", `{{block "x" .Workload.Name}}a{{end}}`, "{{define}} and {{block}} are not supported"},
		{"template call", "files", `{{template "x"}}`, "template uses {{template}} or {{block}}"},
		{"printf", "argv", `{{printf "%s" .Workload.Name}}`, "template calls printf, which manifest templates do not offer; available functions: and, eq, ge, gt, index, le, len, lt, ne, not, or, slice"},
		{"html in pipeline", "files", `{{.Workload.Name | html}}`, "template calls html"},
		{"urlquery", "env", `{{urlquery .Secrets.upload.Raw}}`, "template calls urlquery"},
		{"raw key in env", "env", "{{.Secrets.token.Raw}}", "environment values cannot contain NUL bytes and the raw bytes of a symmetric-key secret may; use .Hex or .Base64"},
		{"raw certificate in argv", "argv", "{{.Secrets.tls.Raw}}", "argv values cannot contain NUL bytes and the raw bytes of a certificate secret may"},
		{"raw key sliced in env", "env", "{{slice .Secrets.token.Raw 0 2}}", "environment values cannot contain NUL bytes"},
		{"raw key beside len in env", "env", "{{len .Secrets.token.Raw}}{{.Secrets.token.Raw}}", "environment values cannot contain NUL bytes"},
		{"syntax", "files", "{{.Workload.Name}", "template syntax error: line 1: bad character U+007D '}'"},
		{"syntax on line 2", "files", "a\n{{if}}", "template syntax error: line 2: missing value for if"},
		{"unknown function", "env", "{{upper .Workload.Name}}", "template calls upper, which manifest templates do not offer; available functions: and, eq, ge, gt, index, le, len, lt, ne, not, or, slice"},
		{"unknown function in pipeline", "files", "{{.Workload.Name | lower}}", "template calls lower, which manifest templates do not offer; available functions: and,"},
		{"unknown function and syntax error", "env", "{{upper .Workload.Name}", "template syntax error: line 1: bad character U+007D '}'"},
		{"unclosed if", "env", "{{if .CA.Root}}", "template syntax error: line 1: unexpected EOF"},
		{"dry run index", "env", "{{index .Workload.Name 99}}", "template line 1:2: at <index .Workload.Name 99>: error calling index: index out of range: 99"},
		{"dry run comparison", "env", "{{if lt .Workload.Name 3}}{{end}}", "error calling lt: incompatible types for comparison"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := baseDoc(t)
			w := at(d, "workloads", "server")
			path := "$.workloads.server." + tc.where
			switch tc.where {
			case "env":
				w["env"] = obj{"V": tc.tmpl}
				path += ".V"
			case "files":
				w["files"] = obj{"/etc/v": tc.tmpl}
				path += `["/etc/v"]`
			case "argv":
				w["argv"] = arr{"/bin/app", tc.tmpl}
				path += "[1]"
			}
			_, err := Parse(marshal(t, d))
			if tc.msg == "" {
				if err != nil {
					t.Fatalf("template %q rejected: %v", tc.tmpl, err)
				}
				return
			}
			wantFieldError(t, err, path, tc.msg, 0)
		})
	}
}

func TestSecretsUsedBy(t *testing.T) {
	d := baseDoc(t)
	at(d, "secrets")["greeting"] = obj{"type": "plain", "value": "hi"}
	at(d, "workloads")["server"] = obj{
		"package": "web",
		"env":     obj{"A": "{{.Secrets.token.Hex}}{{.Secrets.token.Base64}}", "B": "{{if false}}{{.Secrets.greeting.Raw}}{{end}}"},
		"files":   obj{"/tls.pem": "{{.Secrets.tls.Cert}}"},
		"argv":    arr{"{{$.Secrets.upload.Raw}}"},
	}
	at(d, "workloads")["worker"] = obj{"package": "web", "env": obj{"X": "{{.Workload.Name}}"}}
	m := mustParse(t, marshal(t, d))
	for _, tc := range []struct {
		workload string
		want     []string
	}{
		{"server", []string{"greeting", "tls", "token", "upload"}},
		{"worker", nil},
		{"missing", nil},
	} {
		got := m.SecretsUsedBy(tc.workload)
		if !slices.Equal(got, tc.want) {
			t.Errorf("SecretsUsedBy(%q) = %q; want %q", tc.workload, got, tc.want)
		}
	}
	got := m.SecretsUsedBy("server")
	got[0] = "changed"
	if m.SecretsUsedBy("server")[0] != "greeting" {
		t.Errorf("changing the returned slice changed the manifest")
	}
}

func TestCleanTemplateErrorIsBounded(t *testing.T) {
	d := baseDoc(t)
	long := strings.Repeat("x", 10_000)
	at(d, "workloads", "server")["env"] = obj{"V": `{{if lt .Workload.Name 1 "` + long + `"}}{{end}}`}
	_, err := Parse(marshal(t, d))
	fes := fieldErrors(t, err)
	if len(fes) != 1 || len(fes[0].Msg) > maxTemplateError+64 {
		t.Fatalf("got %d problems, first message %d bytes; want one of at most %d bytes", len(fes), len(fes[0].Msg), maxTemplateError+64)
	}
}

// TestTemplateOfBadSecretType checks that a secret whose type is wrong gets one problem, at its
// type: templates that use it are not checked against a type it does not have.
func TestTemplateOfBadSecretType(t *testing.T) {
	d := baseDoc(t)
	at(d, "secrets")["k"] = obj{"type": "symetric-key", "size": 128}
	at(d, "workloads", "server")["env"] = obj{"A": "{{slice .Secrets.k.Hex 0 8}}", "B": "{{.Secrets.k.Raw}}", "C": "{{.Secrets.k.Cert}}"}
	_, err := Parse(marshal(t, d))
	fes := fieldErrors(t, err)
	if len(fes) != 1 || fes[0].Path != "$.secrets.k.type" {
		t.Fatalf("Parse = %v; want one problem, at $.secrets.k.type", err)
	}
}

// TestRenderLengthInEnv checks that the length of a key's raw bytes renders as a number.
func TestRenderLengthInEnv(t *testing.T) {
	d := baseDoc(t)
	at(d, "workloads", "server")["env"] = obj{"N": "{{len .Secrets.token.Raw}}"}
	m := mustParse(t, marshal(t, d))
	r, err := m.Render("server", RenderInput{Secrets: map[string]SecretValue{"token": {Bytes: make([]byte, 32)}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Env["N"]; got != "32" {
		t.Errorf("rendered {{len .Secrets.token.Raw}} = %q; want 32", got)
	}
}
