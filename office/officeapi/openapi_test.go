package officeapi

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// openAPIDoc is the API's published description, kept beside the docs.
var openAPIDoc = filepath.Join("..", "..", "docs", "openapi", "office-api.yaml")

// TestOpenAPIRoutes fails when a route the server registers is missing from
// the OpenAPI document, or the document describes one the server lacks.
// (test/integration/openapi validates the document itself against OpenAPI 3.1.)
func TestOpenAPIRoutes(t *testing.T) {
	b, err := os.ReadFile(openAPIDoc)
	if err != nil {
		t.Fatal(err)
	}
	documented, err := documentedRoutes(b)
	if err != nil {
		t.Fatalf("%s: %v", openAPIDoc, err)
	}
	var registered []string
	for _, e := range (&Server{}).endpoints() {
		registered = append(registered, e.pattern)
	}
	for _, e := range (&Server{}).openEndpoints() {
		registered = append(registered, e.pattern)
	}
	slices.Sort(registered)
	for _, r := range registered {
		if !slices.Contains(documented, r) {
			t.Errorf("%s is served but not in %s", r, openAPIDoc)
		}
	}
	for _, d := range documented {
		if !slices.Contains(registered, d) {
			t.Errorf("%s is in %s but not served", d, openAPIDoc)
		}
	}
	if len(registered) == 0 {
		t.Fatal("no routes registered")
	}
}

// documentedRoutes lists the operations of an OpenAPI document as ServeMux
// patterns ("GET /offices/{office}"), sorted.
func documentedRoutes(doc []byte) ([]string, error) {
	var d struct {
		Paths map[string]map[string]yaml.Node `yaml:"paths"`
	}
	if err := yaml.Unmarshal(doc, &d); err != nil {
		return nil, err
	}
	var routes []string
	for path, item := range d.Paths {
		for key := range item {
			switch key {
			case "get", "put", "post", "delete", "options", "head", "patch", "trace":
				routes = append(routes, strings.ToUpper(key)+" "+path)
			}
		}
	}
	slices.Sort(routes)
	return routes, nil
}

func TestDocumentedRoutes(t *testing.T) {
	doc := []byte(`
paths:
  /a:
    parameters: []
    get: {}
    post: {}
  /a/{b}:
    summary: x
    delete: {}
`)
	got, err := documentedRoutes(doc)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"DELETE /a/{b}", "GET /a", "POST /a"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// TestOpenAPINoEmptyValues catches a plain scalar with a comma inside a YAML
// flow mapping ({description: a, b}): YAML reads the text after the comma as
// further keys without values, and OpenAPI 3.1 refuses the unknown keys. The
// document has no key that is meant to be empty.
func TestOpenAPINoEmptyValues(t *testing.T) {
	b, err := os.ReadFile(openAPIDoc)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range emptyValues(t, b) {
		t.Errorf("%s:%s has no value (a comma in an unquoted flow-mapping value?)", openAPIDoc, k)
	}
}

func TestEmptyValues(t *testing.T) {
	got := emptyValues(t, []byte("a: {description: No such office, message or part., x: 1}\nb: [{c: ~}]\nd: ''\n"))
	want := []string{`1: key "message or part."`, `2: key "c"`}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// emptyValues lists the keys of doc whose value is null, as `LINE: key "KEY"`.
func emptyValues(t *testing.T, doc []byte) []string {
	t.Helper()
	var root yaml.Node
	if err := yaml.Unmarshal(doc, &root); err != nil {
		t.Fatal(err)
	}
	var found []string
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				if v := n.Content[i+1]; v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
					found = append(found, fmt.Sprintf("%d: key %q", n.Content[i].Line, n.Content[i].Value))
				}
			}
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(&root)
	return found
}
