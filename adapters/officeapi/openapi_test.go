package officeapi

import (
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
