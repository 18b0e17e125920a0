package web_test

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
)

type openAPIDoc struct {
	OpenAPI    string                                `json:"openapi"`
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		Schemas map[string]json.RawMessage `json:"schemas"`
	} `json:"components"`
}

func servedOpenAPI(t *testing.T, f *fixture) (openAPIDoc, string) {
	t.Helper()
	rec := f.do(request{method: "GET", path: "/api/openapi.json"})
	var doc openAPIDoc
	f.decode(rec, 200, &doc)
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi = %q, want 3.x", doc.OpenAPI)
	}
	return doc, rec.Body.String()
}

var ginParam = regexp.MustCompile(`[:*]([A-Za-z_]+)`)

// TestOpenAPICoversRoutes fails when a /api or /.well-known route is
// missing from the document or the document lists one the router does not
// serve. The fixture configures everything, so every route is mounted.
func TestOpenAPICoversRoutes(t *testing.T) {
	f := newSubscriptionFixture(t)
	doc, _ := servedOpenAPI(t, f.fixture)
	var served []string
	for _, r := range f.server.RoutesForTest() {
		method, path, _ := strings.Cut(r, " ")
		if strings.HasPrefix(path, "/api/") || strings.HasPrefix(path, "/.well-known/") {
			served = append(served, method+" "+ginParam.ReplaceAllString(path, "{$1}"))
		}
	}
	var documented []string
	for path, ops := range doc.Paths {
		for method := range ops {
			if method != "parameters" {
				documented = append(documented, strings.ToUpper(method)+" "+path)
			}
		}
	}
	for _, r := range served {
		if !slices.Contains(documented, r) {
			t.Errorf("%s is served but not in web/openapi.json", r)
		}
	}
	for _, r := range documented {
		if !slices.Contains(served, r) {
			t.Errorf("%s is in web/openapi.json but not served", r)
		}
	}
	if len(served) < 10 {
		t.Fatalf("only %d /api routes mounted: the fixture misses some configuration", len(served))
	}
}

// TestOpenAPIReferencesResolve: every $ref names a schema the document has.
func TestOpenAPIReferencesResolve(t *testing.T) {
	doc, body := servedOpenAPI(t, newFixture(t))
	for _, m := range regexp.MustCompile(`"\$ref":\s*"#/components/schemas/([^"]+)"`).FindAllStringSubmatch(body, -1) {
		if _, ok := doc.Components.Schemas[m[1]]; !ok {
			t.Errorf("$ref to missing schema %s", m[1])
		}
	}
}
