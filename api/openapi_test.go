package api_test

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cloister-dev/cloister/api"
	"github.com/cloister-dev/cloister/coordinator/server"
)

type openAPI struct {
	Paths      map[string]map[string]operation `json:"paths"`
	Components struct {
		Schemas map[string]schema `json:"schemas"`
	} `json:"components"`
}

type operation struct {
	Tags []string `json:"tags"`
}

type schema struct {
	Properties map[string]struct {
		Enum []string `json:"enum"`
	} `json:"properties"`
}

func loadOpenAPI(t *testing.T) *openAPI {
	t.Helper()
	b, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc openAPI
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	return &doc
}

// TestOpenAPIRoutes checks that openapi.json documents exactly the routes the server serves,
// each under the API (tag) that serves it.
func TestOpenAPIRoutes(t *testing.T) {
	doc := loadOpenAPI(t)
	served := map[string]bool{}
	for apiName, patterns := range server.Routes() {
		for _, p := range patterns {
			method, path, _ := strings.Cut(p, " ")
			served[apiName+" "+strings.ToLower(method)+" "+path] = true
			op, ok := doc.Paths[path][strings.ToLower(method)]
			if !ok {
				t.Errorf("%s API serves %s, which openapi.json does not document", apiName, p)
				continue
			}
			if !slices.Contains(op.Tags, apiName) {
				t.Errorf("openapi.json: %s is served by the %s API but tagged %v", p, apiName, op.Tags)
			}
		}
	}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			for _, tag := range op.Tags {
				if !served[tag+" "+method+" "+path] {
					t.Errorf("openapi.json documents %s %s on the %s API, which does not serve it", strings.ToUpper(method), path, tag)
				}
			}
		}
	}
}

// TestOpenAPISchemas checks that every wire type of package api has a schema whose properties
// are exactly its JSON fields, and that the error codes match the Code constants.
func TestOpenAPISchemas(t *testing.T) {
	doc := loadOpenAPI(t)
	types := map[string]reflect.Type{
		"Status": reflect.TypeFor[api.Status](), "Collateral": reflect.TypeFor[api.Collateral](),
		"QuoteResponse": reflect.TypeFor[api.QuoteResponse](), "SetManifestResponse": reflect.TypeFor[api.SetManifestResponse](),
		"Secret": reflect.TypeFor[api.Secret](), "SecretsResponse": reflect.TypeFor[api.SecretsResponse](),
		"SetSecretsRequest": reflect.TypeFor[api.SetSecretsRequest](), "ActivationRequest": reflect.TypeFor[api.ActivationRequest](),
		"ActivationResponse": reflect.TypeFor[api.ActivationResponse](), "Error": reflect.TypeFor[api.Error](),
		"ErrorBody":     reflect.TypeFor[api.ErrorBody](),
		"PendingUpdate": reflect.TypeFor[api.PendingUpdate](), "Approval": reflect.TypeFor[api.Approval](),
		"ApproveRequest": reflect.TypeFor[api.ApproveRequest](), "ApproveResponse": reflect.TypeFor[api.ApproveResponse](),
		"UpdateSVNRequest": reflect.TypeFor[api.UpdateSVNRequest](), "EpochQuoteResponse": reflect.TypeFor[api.EpochQuoteResponse](),
		"RecoveryStatus": reflect.TypeFor[api.RecoveryStatus](), "RecoveryChallenge": reflect.TypeFor[api.RecoveryChallenge](),
		"RecoveryResponse": reflect.TypeFor[api.RecoveryResponse](),
	}
	structs, codes := declarations(t)
	for _, name := range structs {
		if _, ok := types[name]; !ok {
			t.Errorf("api.%s has no entry in this test (and so maybe none in openapi.json)", name)
		}
	}
	for name, typ := range types {
		s, ok := doc.Components.Schemas[name]
		if !ok {
			t.Errorf("openapi.json has no schema %s", name)
			continue
		}
		fields := map[string]bool{}
		for f := range typ.Fields() {
			tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			fields[tag] = true
			if _, ok := s.Properties[tag]; !ok {
				t.Errorf("schema %s lacks property %q of api.%s.%s", name, tag, name, f.Name)
			}
		}
		for p := range s.Properties {
			if !fields[p] {
				t.Errorf("schema %s has property %q, which api.%s does not", name, p, name)
			}
		}
	}
	enum := doc.Components.Schemas["ErrorBody"].Properties["code"].Enum
	slices.Sort(enum)
	slices.Sort(codes)
	if !slices.Equal(enum, codes) {
		t.Errorf("ErrorBody.code enum %v, api.Code* constants %v", enum, codes)
	}
}

// declarations returns the struct type names and the values of the Code* constants of api.go
// and recovery.go.
func declarations(t *testing.T) (structs, codes []string) {
	t.Helper()
	for _, file := range []string{"api.go", "recovery.go"} {
		structs, codes = declarationsIn(t, file, structs, codes)
	}
	return structs, codes
}

// declarationsIn adds the struct type names and Code* values of one file of the package.
func declarationsIn(t *testing.T, file string, structs, codes []string) ([]string, []string) {
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.TypeSpec:
			if _, ok := n.Type.(*ast.StructType); ok {
				structs = append(structs, n.Name.Name)
			}
		case *ast.ValueSpec:
			for i, id := range n.Names {
				if strings.HasPrefix(id.Name, "Code") && i < len(n.Values) {
					if lit, ok := n.Values[i].(*ast.BasicLit); ok {
						v, _ := strconv.Unquote(lit.Value)
						codes = append(codes, v)
					}
				}
			}
		}
		return true
	})
	return structs, codes
}
