package manifest

import (
	"bytes"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cloister-dev/cloister/sgx/verify"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

const schemaURL = "https://cloister.dev/schema/manifest-v1.json"

// compileSchema compiles the embedded schema with a validator independent of this package.
func compileSchema(tb testing.TB) *jsonschema.Schema {
	tb.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(Schema()))
	if err != nil {
		tb.Fatalf("schema is not JSON: %v", err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(schemaURL, doc); err != nil {
		tb.Fatal(err)
	}
	sch, err := c.Compile(schemaURL)
	if err != nil {
		tb.Fatalf("compile schema: %v", err)
	}
	return sch
}

// schemaAccepts validates b against sch.
func schemaAccepts(sch *jsonschema.Schema, b []byte) error {
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return err
	}
	return sch.Validate(inst)
}

// The example manifests in testdata: valid ones pass both; invalid-schema ones are
// structurally wrong and fail both; invalid-semantic ones are structurally fine (the schema
// accepts them) but break a rule only Parse checks.
func TestSchemaAndParseAgreeOnExamples(t *testing.T) {
	sch := compileSchema(t)
	for _, tc := range []struct {
		dir               string
		schemaOK, parseOK bool
	}{
		{"valid", true, true},
		{"invalid-schema", false, false},
		{"invalid-semantic", true, false},
	} {
		files, err := filepath.Glob(filepath.Join("testdata", tc.dir, "*.json"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no examples in testdata/%s (%v)", tc.dir, err)
		}
		for _, f := range files {
			t.Run(tc.dir+"/"+filepath.Base(f), func(t *testing.T) {
				b, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				schemaErr := schemaAccepts(sch, b)
				_, parseErr := Parse(b)
				if (schemaErr == nil) != tc.schemaOK {
					t.Errorf("schema validation error = %v; want accepted = %v", schemaErr, tc.schemaOK)
				}
				if (parseErr == nil) != tc.parseOK {
					t.Errorf("Parse error = %v; want accepted = %v", parseErr, tc.parseOK)
				}
			})
		}
	}
}

// TestSchemaMatchesTypes walks the Go types and the schema together and fails on any
// property that one has and the other lacks, at any depth.
func TestSchemaMatchesTypes(t *testing.T) {
	var root map[string]any
	if err := json.Unmarshal(Schema(), &root); err != nil {
		t.Fatal(err)
	}
	w := &schemaWalker{t: t, root: root}
	w.compare("$", reflect.TypeFor[Manifest](), root)
	// Manifest, Settings, Package, Workload, TLS, Secret, User, Role, Governance, Recovery.
	if w.structs != 10 {
		t.Errorf("compared %d struct types; want the 10 of the manifest", w.structs)
	}
}

type schemaWalker struct {
	t       *testing.T
	root    map[string]any
	structs int
}

// resolve follows a local $ref, keeping the referring schema's own keywords.
func (w *schemaWalker) resolve(s map[string]any) map[string]any {
	ref, ok := s["$ref"].(string)
	if !ok {
		return s
	}
	name, ok := strings.CutPrefix(ref, "#/$defs/")
	if !ok {
		w.t.Fatalf("unsupported $ref %q", ref)
	}
	target, ok := w.root["$defs"].(map[string]any)[name].(map[string]any)
	if !ok {
		w.t.Fatalf("$ref %q does not resolve", ref)
	}
	merged := map[string]any{}
	maps.Copy(merged, w.resolve(target))
	for k, v := range s {
		if k != "$ref" {
			merged[k] = v
		}
	}
	return merged
}

func (w *schemaWalker) compare(p string, t reflect.Type, s map[string]any) {
	s = w.resolve(s)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	jsonType := func() []string {
		switch v := s["type"].(type) {
		case string:
			return []string{v}
		case []any:
			var ts []string
			for _, x := range v {
				ts = append(ts, x.(string))
			}
			return ts
		}
		return nil // enum or const only
	}
	wantType := func(want string) {
		if ts := jsonType(); ts != nil && !slices.Contains(ts, want) {
			w.t.Errorf("%s: schema type %v; Go type %v wants %q", p, ts, t, want)
		}
	}
	if reflect.PointerTo(t).Implements(textUnmarshalerType) {
		wantType("string")
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		w.structs++
		wantType("object")
		if s["additionalProperties"] != false {
			w.t.Errorf("%s: schema object for %v lacks \"additionalProperties\": false", p, t)
		}
		props, _ := s["properties"].(map[string]any)
		fields := jsonFields(t)
		for _, f := range fields {
			prop, ok := props[f.name].(map[string]any)
			if !ok {
				w.t.Errorf("%s: Go field %v.%s (%q) has no schema property", p, t, t.Field(f.index).Name, f.name)
				continue
			}
			if d, _ := prop["description"].(string); d == "" {
				w.t.Errorf("%s.%s: schema property has no description", p, f.name)
			}
			fp := keyPath(p, f.name)
			nullable := slices.Contains(w.typesOf(prop), "null")
			if nullable != f.nullable {
				w.t.Errorf("%s: schema allows null = %v; Go field nullable = %v", fp, nullable, f.nullable)
			}
			w.compare(fp, t.Field(f.index).Type, prop)
		}
		for name := range props {
			if !slices.ContainsFunc(fields, func(f jsonField) bool { return f.name == name }) {
				w.t.Errorf("%s: schema property %q has no Go field in %v", p, name, t)
			}
		}
	case reflect.Map:
		wantType("object")
		elem, ok := s["additionalProperties"].(map[string]any)
		if !ok {
			w.t.Errorf("%s: schema for map %v has no additionalProperties schema", p, t)
			return
		}
		w.compare(p+".*", t.Elem(), elem)
	case reflect.Slice:
		wantType("array")
		items, ok := s["items"].(map[string]any)
		if !ok {
			w.t.Errorf("%s: schema for slice %v has no items schema", p, t)
			return
		}
		w.compare(p+"[*]", t.Elem(), items)
	case reflect.String:
		if jsonType() == nil && s["enum"] == nil && s["const"] == nil {
			w.t.Errorf("%s: schema for string has no type, enum or const", p)
		}
		wantType("string")
	case reflect.Bool:
		wantType("boolean")
	default:
		wantType("integer")
	}
}

func (w *schemaWalker) typesOf(s map[string]any) []string {
	switch v := w.resolve(s)["type"].(type) {
	case string:
		return []string{v}
	case []any:
		var ts []string
		for _, x := range v {
			ts = append(ts, x.(string))
		}
		return ts
	}
	return nil
}

// TestSchemaEnums keeps the schema's enumerations and per-type rules equal to the Go ones.
func TestSchemaEnums(t *testing.T) {
	var root struct {
		Defs map[string]struct {
			Properties map[string]struct {
				Enum  []string `json:"enum"`
				Items struct {
					Enum []string `json:"enum"`
				} `json:"items"`
			} `json:"properties"`
			AllOf []struct {
				If struct {
					Properties struct {
						Type struct{ Const string } `json:"type"`
					} `json:"properties"`
				} `json:"if"`
				Then struct {
					Properties map[string]json.RawMessage `json:"properties"`
				} `json:"then"`
			} `json:"allOf"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(Schema(), &root); err != nil {
		t.Fatal(err)
	}
	strs := func(v any) []string {
		var out []string
		for _, x := range reflect.ValueOf(v).Seq2() {
			out = append(out, x.String())
		}
		return out
	}
	for _, tc := range []struct {
		name         string
		schema, inGo []string
	}{
		{"secret types", root.Defs["secret"].Properties["type"].Enum, strs(SecretTypes)},
		{"key algorithms", root.Defs["secret"].Properties["algorithm"].Enum, strs(KeyAlgorithms)},
		{"TCB statuses", root.Defs["package"].Properties["tcb_statuses"].Items.Enum, strs(verify.TCBStatuses)},
		{"resources", root.Defs["role"].Properties["resource"].Enum, strs(Resources)},
		{"actions", root.Defs["role"].Properties["actions"].Items.Enum, []string{string(Read), string(Write), string(Update)}},
	} {
		if !slices.Equal(tc.schema, tc.inGo) {
			t.Errorf("%s: schema enum %v; Go %v", tc.name, tc.schema, tc.inGo)
		}
	}
	// Each secret type's branch forbids exactly the keys that do not apply to it.
	branches := root.Defs["secret"].AllOf
	if len(branches) != len(SecretTypes) {
		t.Fatalf("schema has %d secret type branches; want %d", len(branches), len(SecretTypes))
	}
	for _, b := range branches {
		typ := SecretType(b.If.Properties.Type.Const)
		for _, f := range secretFields {
			forbidden := string(b.Then.Properties[f.key]) == "false"
			if applies := slices.Contains(f.types, typ); applies == forbidden {
				t.Errorf("secret type %s, key %s: schema forbids = %v; Go applies = %v", typ, f.key, forbidden, applies)
			}
		}
	}
}

// TestSchemaObjectsClosed checks that every fixed object in the schema rejects unknown keys.
func TestSchemaObjectsClosed(t *testing.T) {
	var root any
	if err := json.Unmarshal(Schema(), &root); err != nil {
		t.Fatal(err)
	}
	var walk func(p string, v any)
	walk = func(p string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if _, fixed := v["properties"]; fixed && v["type"] == "object" && v["additionalProperties"] != false {
				t.Errorf("%s: object with properties lacks \"additionalProperties\": false", p)
			}
			for k, c := range v {
				walk(p+"/"+k, c)
			}
		case []any:
			for i, c := range v {
				walk(p+"/"+strconv.Itoa(i), c)
			}
		}
	}
	walk("#", root)
}
