package cli

import (
	"bytes"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cloister-dev/cloister/cli/jsonoutput"
	"github.com/spf13/cobra"
)

var update = flag.Bool("update", false, "rewrite docs/cli from the command tree and package jsonoutput")

const (
	docsDir    = "../../docs/cli"
	jsonSrcDir = "../../cli/jsonoutput"
)

// jsonDocuments names the jsonoutput document each command with --output prints.
var jsonDocuments = map[string]any{
	"cloister status":                   jsonoutput.Status{},
	"cloister certificate root":         jsonoutput.Certificates{},
	"cloister certificate intermediate": jsonoutput.Certificates{},
	"cloister certificate chain":        jsonoutput.Certificates{},
	"cloister verify":                   jsonoutput.Verify{},
	"cloister quote inspect":            jsonoutput.QuoteInspect{},
	"cloister quote verify":             jsonoutput.QuoteVerify{},
	"cloister manifest check":           jsonoutput.ManifestCheck{},
	"cloister manifest set":             jsonoutput.ManifestSet{},
	"cloister manifest update":          jsonoutput.ManifestSet{},
	"cloister manifest diff":            jsonoutput.ManifestDiff{},
	"cloister manifest propose":         jsonoutput.ManifestPending{},
	"cloister manifest pending":         jsonoutput.ManifestPending{},
	"cloister manifest cancel":          jsonoutput.ManifestPending{},
	"cloister manifest approve":         jsonoutput.ManifestApprove{},
	"cloister manifest update-svn":      jsonoutput.ManifestSet{},
	"cloister secret get":               jsonoutput.Secrets{},
	"cloister image convert":            jsonoutput.ImageConvert{},
	"cloister image inspect":            jsonoutput.ImageInspect{},
	"cloister image keygen":             jsonoutput.ImageKeygen{},
	"cloister image bench":              jsonoutput.ImageBench{},
	"cloister bench activate":           jsonoutput.BenchActivate{},
	"cloister image coordinator":        jsonoutput.ImageCoordinator{},
	"cloister enclave sign":             jsonoutput.EnclaveSign{},
	"cloister audit log":                jsonoutput.AuditLog{},
	"cloister audit verify":             jsonoutput.AuditVerify{},
	"cloister bundle verify":            jsonoutput.BundleVerify{},
	"cloister recover":                  jsonoutput.Recover{},
	"cloister recover challenge":        jsonoutput.RecoverOffline{},
	"cloister recover submit":           jsonoutput.Recover{},
	"cloister recover status":           jsonoutput.Recover{},
	"cloister check":                    jsonoutput.Check{},
}

// docTree is the command tree as the docs show it: no environment, so flag defaults are the
// built-in ones.
func docTree() *cobra.Command {
	a := &app{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard, getenv: func(string) string { return "" }}
	return a.newRootCmd()
}

// walk calls f for cmd and every available command below it, in name order.
func walk(cmd *cobra.Command, f func(*cobra.Command)) {
	f(cmd)
	for _, c := range cmd.Commands() { // sorted by name
		if c.IsAvailableCommand() && !c.IsAdditionalHelpTopicCommand() {
			walk(c, f)
		}
	}
}

// TestJSONDocumentsListed checks that every command with --output has its document in
// jsonDocuments, and nothing else does.
func TestJSONDocumentsListed(t *testing.T) {
	seen := map[string]bool{}
	walk(docTree(), func(c *cobra.Command) {
		_, listed := jsonDocuments[c.CommandPath()]
		if has := c.Flags().Lookup("output") != nil; has != listed {
			t.Errorf("%s: has --output %v, listed in jsonDocuments %v", c.CommandPath(), has, listed)
		}
		seen[c.CommandPath()] = true
	})
	for p := range jsonDocuments {
		if !seen[p] {
			t.Errorf("jsonDocuments lists %q, which is no command", p)
		}
	}
}

// TestCLIDocs fails when docs/cli differs from what the command tree and package jsonoutput
// generate; -update rewrites it (go generate ./internal/cli).
func TestCLIDocs(t *testing.T) {
	files := genDocs(t)
	if *update {
		old, _ := filepath.Glob(filepath.Join(docsDir, "*.md"))
		for _, p := range old {
			if _, ok := files[filepath.Base(p)]; !ok {
				if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := os.MkdirAll(docsDir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range files {
			if err := os.WriteFile(filepath.Join(docsDir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	const hint = "docs/cli is generated: run `go generate ./internal/cli` and commit the result"
	onDisk, _ := filepath.Glob(filepath.Join(docsDir, "*.md"))
	for _, p := range onDisk {
		if _, ok := files[filepath.Base(p)]; !ok {
			t.Errorf("docs/cli/%s documents no command; %s", filepath.Base(p), hint)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		got, err := os.ReadFile(filepath.Join(docsDir, name))
		if err != nil {
			t.Errorf("docs/cli/%s: %v; %s", name, err, hint)
			continue
		}
		if want := files[name]; !bytes.Equal(got, want) {
			t.Errorf("docs/cli/%s is stale (%s); %s", name, firstDifference(got, want), hint)
		}
	}
}

// firstDifference describes the first line where the file on disk and the generated one differ.
func firstDifference(disk, gen []byte) string {
	a, b := strings.Split(string(disk), "\n"), strings.Split(string(gen), "\n")
	for i := range max(len(a), len(b)) {
		var x, y string
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if x != y {
			return fmt.Sprintf("line %d is %q, generated %q", i+1, x, y)
		}
	}
	return "they differ"
}

// genDocs renders docs/cli: a page per command, named after its path (cloister_manifest_set.md),
// and json.md, the reference of the JSON documents.
func genDocs(t *testing.T) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	walk(docTree(), func(c *cobra.Command) {
		files[pageName(c)] = commandPage(c)
	})
	src, err := parseJSONSource(jsonSrcDir)
	if err != nil {
		t.Fatal(err)
	}
	files["json.md"] = src.page()
	return files
}

func pageName(c *cobra.Command) string {
	return strings.ReplaceAll(c.CommandPath(), " ", "_") + ".md"
}

const generatedNote = "<!-- Generated from the command tree by `go generate ./internal/cli`; do not edit. -->\n"

// commandPage is the Markdown page of c, in the layout of cobra's doc generator, without a date.
func commandPage(c *cobra.Command) []byte {
	c.InitDefaultHelpFlag()
	var b bytes.Buffer
	fmt.Fprintf(&b, "## %s\n\n%s\n\n", c.CommandPath(), c.Short)
	if c.Long != "" {
		fmt.Fprintf(&b, "### Synopsis\n\n%s\n\n", c.Long)
	}
	if c.Runnable() {
		fmt.Fprintf(&b, "```\n%s\n```\n\n", c.UseLine())
	}
	if c.Example != "" {
		fmt.Fprintf(&b, "### Examples\n\n```\n%s\n```\n\n", c.Example)
	}
	if fl := c.NonInheritedFlags(); fl.HasAvailableFlags() {
		fmt.Fprintf(&b, "### Options\n\n```\n%s```\n\n", fl.FlagUsages())
	}
	if fl := c.InheritedFlags(); fl.HasAvailableFlags() {
		fmt.Fprintf(&b, "### Options inherited from parent commands\n\n```\n%s```\n\n", fl.FlagUsages())
	}
	if doc, ok := jsonDocuments[c.CommandPath()]; ok {
		name := reflect.TypeOf(doc).Name()
		fmt.Fprintf(&b, "### JSON output\n\nWith `--output json` it prints a [%s](json.md#%s) document; a failure before that prints an [Error](json.md#error) document.\n\n",
			name, strings.ToLower(name))
	}
	var also []*cobra.Command
	if c.HasParent() {
		also = append(also, c.Parent())
	}
	for _, sub := range c.Commands() {
		if sub.IsAvailableCommand() && !sub.IsAdditionalHelpTopicCommand() {
			also = append(also, sub)
		}
	}
	if len(also) > 0 {
		b.WriteString("### SEE ALSO\n\n")
		for _, s := range also {
			fmt.Fprintf(&b, "* [%s](%s)\t - %s\n", s.CommandPath(), pageName(s), s.Short)
		}
		b.WriteString("\n")
	}
	b.WriteString(generatedNote)
	return b.Bytes()
}

// jsonSource is what the docs need from package jsonoutput's source: its comments.
type jsonSource struct {
	pkgDoc string
	types  map[string]string // type name → doc
	fields map[string]string // Type.Field → doc (a field without one has its group's)
	codes  []codeConst       // the Code* constants, in source order
}

type codeConst struct{ name, value, doc string }

func parseJSONSource(dir string) (*jsonSource, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	slices.Sort(paths)
	s := &jsonSource{types: map[string]string{}, fields: map[string]string{}}
	fset := token.NewFileSet()
	for _, p := range paths {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, p, nil, parser.ParseComments)
		if err != nil {
			return nil, err
		}
		if f.Doc != nil {
			s.pkgDoc = f.Doc.Text()
		}
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok {
				continue
			}
			for _, spec := range g.Specs {
				switch sp := spec.(type) {
				case *ast.TypeSpec:
					doc := sp.Doc
					if doc == nil {
						doc = g.Doc
					}
					s.types[sp.Name.Name] = doc.Text()
					if st, ok := sp.Type.(*ast.StructType); ok {
						group := ""
						for _, fd := range st.Fields.List {
							if fd.Doc != nil {
								group = fd.Doc.Text()
							}
							for _, n := range fd.Names {
								s.fields[sp.Name.Name+"."+n.Name] = group
							}
						}
					}
				case *ast.ValueSpec:
					for i, n := range sp.Names {
						if !strings.HasPrefix(n.Name, "Code") || i >= len(sp.Values) {
							continue
						}
						lit, ok := sp.Values[i].(*ast.BasicLit)
						if !ok {
							continue
						}
						v, _ := strconv.Unquote(lit.Value)
						s.codes = append(s.codes, codeConst{n.Name, v, sp.Doc.Text()})
					}
				}
			}
		}
	}
	return s, nil
}

var docLink = regexp.MustCompile(`\[([A-Z]\w*)(\.\w+)?\]`)

// markdown turns a Go doc comment into Markdown: # headings one level down, indented blocks
// into code blocks, [Type] and [Type.Field] links to the type's section, other [Name]s into
// plain names.
func (s *jsonSource) markdown(text string) string {
	var b strings.Builder
	inCode, blanks := false, 0 // blank lines in a code block are held until it goes on
	for line := range strings.SplitSeq(strings.TrimRight(text, "\n"), "\n") {
		indented := strings.HasPrefix(line, "\t") || strings.HasPrefix(line, "  ")
		if inCode && line == "" {
			blanks++
			continue
		}
		if indented != inCode {
			b.WriteString("```\n")
			inCode = indented
		}
		b.WriteString(strings.Repeat("\n", blanks))
		blanks = 0
		switch {
		case inCode:
			b.WriteString(strings.TrimPrefix(strings.TrimPrefix(line, "\t"), "  ") + "\n")
		case strings.HasPrefix(line, "# "):
			b.WriteString("#" + line + "\n")
		default:
			b.WriteString(s.links(line) + "\n")
		}
	}
	if inCode {
		b.WriteString("```\n")
	}
	return b.String()
}

func (s *jsonSource) links(line string) string {
	return docLink.ReplaceAllStringFunc(line, func(m string) string {
		sub := docLink.FindStringSubmatch(m)
		if _, ok := s.types[sub[1]]; ok {
			return fmt.Sprintf("[%s%s](#%s)", sub[1], sub[2], strings.ToLower(sub[1]))
		}
		return sub[1] + sub[2]
	})
}

// cell is text as one Markdown table cell.
func (s *jsonSource) cell(text string) string {
	return strings.ReplaceAll(s.links(strings.Join(strings.Fields(text), " ")), "|", `\|`)
}

// withKeys writes the Go names of t's fields that lead a clause of text as their JSON keys, for
// readers of JSON: "Files counts the files; Bytes is their size" becomes "`files` counts the
// files; `bytes` is their size". Only leading names change, so that words like Coordinator in
// the middle of a sentence stay words.
func withKeys(t reflect.Type, text string) string {
	keys := map[string]string{}
	for f := range t.Fields() {
		if key, _, _ := strings.Cut(f.Tag.Get("json"), ","); !f.Anonymous && key != "" {
			keys[f.Name] = "`" + key + "`"
		}
	}
	return leadingNames.ReplaceAllStringFunc(text, func(m string) string {
		return leadingName.ReplaceAllStringFunc(m, func(name string) string {
			if k, ok := keys[name]; ok {
				return k
			}
			return name
		})
	})
}

var (
	// leadingNames matches a list of names ("A", "A and B", "A, B and C") at the start of text
	// or of a clause after "; " or ". ".
	leadingNames = regexp.MustCompile(`(^|; |\. )[A-Z]\w*((, [A-Z]\w*)* and [A-Z]\w*)?\b`)
	leadingName  = regexp.MustCompile(`[A-Z]\w*`)
)

var jsonoutputPath = reflect.TypeFor[jsonoutput.Status]().PkgPath()

// jsonType names t's JSON type, linking to the sections of jsonoutput's types, and lists in
// *reach the named types it uses.
func jsonType(t reflect.Type, reach *[]reflect.Type) string {
	if t.PkgPath() == jsonoutputPath && t.Name() != "" {
		if !slices.Contains(*reach, t) {
			*reach = append(*reach, t)
		}
		return fmt.Sprintf("[%s](#%s)", t.Name(), strings.ToLower(t.Name()))
	}
	switch t.Kind() {
	case reflect.Pointer:
		return jsonType(t.Elem(), reach) + " or null"
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return "string (base64)"
		}
		return "array of " + jsonType(t.Elem(), reach)
	case reflect.Map:
		return "object of " + jsonType(t.Elem(), reach) + " by name"
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	}
	panic("jsonType: no case for " + t.String())
}

// page renders json.md.
func (s *jsonSource) page() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# JSON output, version %d\n\n", jsonoutput.SchemaVersion)
	b.WriteString("Every read command of `cloister` takes `--output json` (or `-o json`) and then prints one JSON\n")
	b.WriteString("document, described here. Go programs decode it into the types of package\n")
	b.WriteString("[`cli/jsonoutput`](../../cli/jsonoutput), from which this page is generated.\n\n")
	b.WriteString(s.markdown(s.pkgDoc))
	b.WriteString("\n## Commands\n\n| Command | Document |\n| --- | --- |\n")
	var reach []reflect.Type
	for _, cmd := range slices.Sorted(maps.Keys(jsonDocuments)) {
		t := reflect.TypeOf(jsonDocuments[cmd])
		fmt.Fprintf(&b, "| [`%s`](%s) | %s |\n", cmd, strings.ReplaceAll(cmd, " ", "_")+".md", jsonType(t, &reach))
	}
	jsonType(reflect.TypeFor[jsonoutput.Error](), &reach)
	b.WriteString("\n## Documents and their parts\n")
	for i := 0; i < len(reach); i++ { // reach grows as types are rendered
		t := reach[i]
		fmt.Fprintf(&b, "\n### %s\n\n%s", t.Name(), s.markdown(s.types[t.Name()]))
		if t.Kind() != reflect.Struct {
			fmt.Fprintf(&b, "\nJSON type: %s.\n", jsonType(t, &reach))
			continue
		}
		b.WriteString("\n| Key | Type | Description |\n| --- | --- | --- |\n")
		for f := range t.Fields() {
			if f.Anonymous {
				fmt.Fprintf(&b, "| … | | Every key of %s. |\n", jsonType(f.Type, &reach))
				continue
			}
			tag := f.Tag.Get("json")
			key, opts, _ := strings.Cut(tag, ",")
			typ := jsonType(f.Type, &reach)
			if strings.Contains(opts, "omitempty") || strings.Contains(opts, "omitzero") {
				typ += ", may be omitted"
			}
			fmt.Fprintf(&b, "| `%s` | %s | %s |\n", key, typ, s.cell(withKeys(t, s.fields[t.Name()+"."+f.Name])))
		}
		if t == reflect.TypeFor[jsonoutput.ErrorBody]() {
			b.WriteString("\n| Code | When |\n| --- | --- |\n")
			for _, c := range s.codes {
				fmt.Fprintf(&b, "| `%s` | %s |\n", c.value, s.cell(strings.TrimPrefix(c.doc, c.name+":")))
			}
		}
	}
	b.WriteString("\n" + generatedNote)
	return b.Bytes()
}
