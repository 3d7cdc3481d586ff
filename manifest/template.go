package manifest

import (
	"fmt"
	"slices"
	"strings"
	"text/template"
	"text/template/parse"
)

// Templates are Go text/template with missingkey=error, restricted so that what a template
// reads is known from its parse tree and its memory use is bounded:
//
//   - data is reached only as .Secrets.NAME.METHOD, .Workload.FIELD and .CA.FIELD (or the
//     same after $); a bare {{.}}, .Secrets without a name and field access on
//     parenthesized expressions are rejected, so no template can reach a secret it does not
//     name. That makes [Manifest.SecretsUsedBy] exact.
//   - {{range}}, {{with}}, {{define}}, {{block}} and {{template}} are rejected: dot is
//     always the root, and execution time is linear in the template's length.
//   - the builtins that build new strings (print, printf, println, html, js, urlquery) and
//     call are not available: every string a template handles is either text from the
//     manifest or a value computed once per render, so a small template cannot allocate
//     without bound. Output goes to a writer bounded by MaxRenderedValue.

// tmplName names every parsed template; cleanTemplateError removes it from messages.
const tmplName = "tmpl"

// valueKind says where a rendered value goes.
type valueKind uint8

const (
	kindFile valueKind = iota
	kindEnv
	kindArgv
)

func (k valueKind) String() string {
	switch k {
	case kindEnv:
		return "environment"
	case kindArgv:
		return "argv"
	}
	return "file"
}

// compiledValue is one env value, file or argument of a workload, parsed once.
type compiledValue struct {
	key     string             // environment variable name or file path; "" for argv
	path    string             // JSON path, for errors
	kind    valueKind          //
	literal string             // the value itself when it contains no action
	tmpl    *template.Template // nil for literals
}

// compiledWorkload holds a workload's parsed templates in a fixed order (env and files by
// key) and the secrets they reference.
type compiledWorkload struct {
	name     string
	spiffeID string
	env      []compiledValue
	files    []compiledValue
	argv     []compiledValue
	secrets  []string               // sorted, unique
	plain    map[string]SecretValue // values of the plain secrets in secrets
}

// deniedFuncs replaces the builtins templates may not use, in case the static check is
// ever bypassed.
var deniedFuncs = func() template.FuncMap {
	fm := template.FuncMap{}
	for _, name := range []string{"call", "html", "js", "print", "printf", "println", "urlquery"} {
		fm[name] = func(...any) (string, error) {
			return "", fmt.Errorf("function %s is not available in manifest templates", name)
		}
	}
	return fm
}()

// allowedFuncs lists the builtins templates may call.
var allowedFuncs = []string{"and", "eq", "ge", "gt", "index", "le", "len", "lt", "ne", "not", "or", "slice"}

// Fields of .Workload and .CA, and methods of secrets by type.
var (
	workloadFields = []string{"Name", "Instance", "SPIFFEID", "Cert", "Key", "Chain"}
	caFields       = []string{"Root", "Intermediate"}
	bytesMethods   = []string{"Raw", "Hex", "Base64"}
	certMethods    = []string{"Raw", "Hex", "Base64", "Cert", "Key", "Public"}
)

func secretMethods(t SecretType) []string {
	if t == Certificate {
		return certMethods
	}
	return bytesMethods
}

// compileValue parses and checks the template text found at path p. It reports problems
// to ps and returns ok false if there were any; used receives the secrets referenced.
func compileValue(p, key, text string, kind valueKind, secrets map[string]Secret, used map[string]struct{}, ps *problems) (cv compiledValue, ok bool) {
	cv = compiledValue{key: key, path: p, kind: kind}
	if !strings.Contains(text, "{{") {
		cv.literal = text
		return cv, true
	}
	t, err := template.New(tmplName).Option("missingkey=error").Funcs(deniedFuncs).Parse(text)
	if err != nil {
		// A call of a function text/template does not know fails the parse. When that was
		// the only problem, the checker names each such function and the ones there are.
		tree := parse.New(tmplName)
		tree.Mode = parse.SkipFuncCheck
		if _, perr := tree.Parse(text, "", "", map[string]*parse.Tree{}); perr != nil {
			err = perr // a syntax error, which the unknown function may have hidden
		} else if tree.Root != nil {
			c := &checker{path: p, kind: kind, secrets: secrets, used: map[string]struct{}{}, ps: ps, before: ps.len()}
			c.walk(tree.Root)
			if ps.len() > c.before {
				return cv, false
			}
		}
		ps.add(p, "template syntax error: %s", cleanTemplateError(err))
		return cv, false
	}
	if len(t.Templates()) != 1 || t.Tree == nil {
		ps.add(p, "template defines named templates; {{define}} and {{block}} are not supported")
		return cv, false
	}
	c := &checker{path: p, kind: kind, secrets: secrets, used: used, ps: ps, before: ps.len()}
	c.walk(t.Tree.Root)
	if ps.len() > c.before || c.untyped {
		// A secret of no valid type has its problem reported at its type; what the
		// template may do with it is unknown, so it is neither checked further nor run.
		return cv, false
	}
	cv.tmpl = t
	return cv, true
}

// checker walks a template's parse tree, enforcing the restrictions above.
type checker struct {
	path    string
	kind    valueKind
	secrets map[string]Secret
	used    map[string]struct{}
	ps      *problems
	before  int
	counted bool // the value walked is an argument of len: only its length reaches the output
	untyped bool // the template uses a secret whose type is not valid
}

func (c *checker) fail(n parse.Node, format string, args ...any) {
	c.ps.add(c.path, "template {{%s}}: %s", shorten(n.String()), fmt.Sprintf(format, args...))
}

func (c *checker) walk(n parse.Node) {
	switch n := n.(type) {
	case *parse.ListNode:
		if n != nil {
			for _, child := range n.Nodes {
				c.walk(child)
			}
		}
	case *parse.ActionNode:
		c.walk(n.Pipe)
	case *parse.IfNode:
		c.walk(n.Pipe)
		c.walk(n.List)
		c.walk(n.ElseList)
	case *parse.RangeNode:
		c.ps.add(c.path, "template uses {{range}}, which manifest templates do not support")
	case *parse.WithNode:
		c.ps.add(c.path, "template uses {{with}}, which manifest templates do not support; name values in full, as in .Secrets.NAME.Hex")
	case *parse.TemplateNode:
		c.ps.add(c.path, "template uses {{template}} or {{block}}, which manifest templates do not support")
	case *parse.PipeNode:
		if n != nil {
			for i, cmd := range n.Cmds {
				if i+1 < len(n.Cmds) && isLen(n.Cmds[i+1]) && len(cmd.Args) == 1 { // X | len
					c.walkCounted(cmd.Args[0])
					continue
				}
				c.walk(cmd)
			}
		}
	case *parse.CommandNode:
		if isLen(n) { // len X
			c.walk(n.Args[0])
			for _, arg := range n.Args[1:] {
				c.walkCounted(arg)
			}
			return
		}
		for _, arg := range n.Args {
			c.walk(arg)
		}
	case *parse.IdentifierNode:
		if !slices.Contains(allowedFuncs, n.Ident) {
			c.ps.add(c.path, "template calls %s, which manifest templates do not offer; available functions: %s",
				n.Ident, strings.Join(allowedFuncs, ", "))
		}
	case *parse.FieldNode:
		c.reference(n, n.Ident)
	case *parse.VariableNode:
		if n.Ident[0] == "$" {
			if len(n.Ident) == 1 {
				c.fail(n, "expected a named value after $, such as $.Workload.Name, found $ alone")
				return
			}
			c.reference(n, n.Ident[1:])
		}
	case *parse.DotNode:
		c.fail(n, "expected a named value such as .Workload.Name, found {{.}} (the whole template data)")
	case *parse.ChainNode:
		c.fail(n, "expected a named value, found field access on a parenthesized expression")
	}
	// Text, comments, and bool, number, string and nil constants need no check.
}

// isLen reports whether cmd calls len.
func isLen(cmd *parse.CommandNode) bool {
	id, ok := cmd.Args[0].(*parse.IdentifierNode)
	return ok && id.Ident == "len"
}

// walkCounted walks n, an argument of len. A value named directly (.Secrets.NAME.Raw) then
// reaches the output only as its length, a number, so raw bytes are allowed in environment
// values and arguments; anything else is walked as usual.
func (c *checker) walkCounted(n parse.Node) {
	switch n.(type) {
	case *parse.FieldNode, *parse.VariableNode:
		c.counted = true
		defer func() { c.counted = false }()
	}
	c.walk(n)
}

// reference checks a field chain from the root of the template data.
func (c *checker) reference(n parse.Node, ident []string) {
	switch ident[0] {
	case "Secrets":
		c.secretReference(n, ident[1:])
	case "Workload":
		if len(ident) != 2 || !slices.Contains(workloadFields, ident[1]) {
			c.fail(n, "expected .Workload followed by one of .%s", strings.Join(workloadFields, ", ."))
		}
	case "CA":
		if len(ident) != 2 || !slices.Contains(caFields, ident[1]) {
			c.fail(n, "expected .CA followed by one of .%s", strings.Join(caFields, ", ."))
		}
	default:
		c.fail(n, "expected .Secrets, .Workload or .CA, found .%s", ident[0])
	}
}

func (c *checker) secretReference(n parse.Node, ident []string) {
	if len(ident) == 0 {
		c.fail(n, "expected a secret name after .Secrets, as in .Secrets.NAME.Hex")
		return
	}
	name := ident[0]
	s, ok := c.secrets[name]
	if !ok {
		c.ps.add(c.path, "template references undefined secret %s; defined secrets: %s", quote(name), nameList(sortedKeys(c.secrets)))
		return
	}
	if !slices.Contains(SecretTypes, s.Type) {
		c.untyped = true
		return
	}
	methods := secretMethods(s.Type)
	switch {
	case len(ident) == 1:
		c.fail(n, "expected .Secrets.%s followed by one of .%s", name, strings.Join(methods, ", ."))
		return
	case len(ident) > 2 || !slices.Contains(methods, ident[1]):
		c.fail(n, "secret %s is a %s secret and has no .%s; expected one of .%s",
			quote(name), s.Type, strings.Join(ident[1:], "."), strings.Join(methods, ", ."))
		return
	}
	if ident[1] == "Raw" && c.kind != kindFile && !c.counted && (s.Type == SymmetricKey || s.Type == Certificate) {
		c.fail(n, "%s values cannot contain NUL bytes and the raw bytes of a %s secret may; use .Hex or .Base64",
			c.kind, s.Type)
		return
	}
	c.used[name] = struct{}{}
}

// shorten cuts template source quoted in a message to maxQuoted bytes.
func shorten(s string) string {
	if len(s) <= maxQuoted {
		return s
	}
	return strings.ToValidUTF8(s[:maxQuoted], "") + "…"
}

// maxTemplateError bounds a template error message, which quotes template source.
const maxTemplateError = 512

// cleanTemplateError turns "template: tmpl:1:5: executing "tmpl" at <x>: msg" into
// "line 1:5: at <x>: msg", shortened to maxTemplateError bytes.
func cleanTemplateError(err error) string {
	s := err.Error()
	s = strings.TrimPrefix(s, "template: "+tmplName+":")
	s = strings.Replace(s, `executing "`+tmplName+`" `, "", 1)
	if len(s) > maxTemplateError {
		s = strings.ToValidUTF8(s[:maxTemplateError], "") + "…"
	}
	return "line " + s
}
