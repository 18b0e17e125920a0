package web_test

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/hoodcloud/hoodcloud/web"
)

// TestRolloutSchemasNameEveryField: each rollout body the API takes or
// answers has, in the OpenAPI document, exactly the fields it has in Go.
func TestRolloutSchemasNameEveryField(t *testing.T) {
	doc, _ := servedOpenAPI(t, newFixture(t))
	bodies := map[string]any{
		"CreateRolloutRequest":      web.CreateRolloutRequest{},
		"CreateRolloutGroupRequest": web.CreateRolloutGroupRequest{},
		"RolloutUpgradeRequest":     web.UpgradeRequest{},
		"RolloutArtifact":           web.RolloutArtifactJSON{},
		"RolloutConfigChange":       web.RolloutConfigChangeJSON{},
		"SkipRequest":               web.SkipRequest{},
		"Rollout":                   web.RolloutJSON{},
		"Rollout.upgrade":           web.RolloutUpgradeJSON{},
		"Rollout.plan":              web.RolloutPlanJSON{},
		"RolloutNode":               web.RolloutNodeJSON{},
		"RolloutView":               web.RolloutViewJSON{},
		"RolloutView.batches":       web.RolloutBatchJSON{},
		"Rollouts":                  web.RolloutsJSON{},
		"RolloutGroup":              web.RolloutGroupJSON{},
		"RolloutGroupView":          web.RolloutGroupViewJSON{},
		"RolloutGroups":             web.RolloutGroupsJSON{},
	}
	for name, v := range bodies {
		documented := schemaProperties(t, doc, name)
		if want := jsonFieldNames(reflect.TypeOf(v)); !slices.Equal(documented, want) {
			t.Errorf("schema %s has %v, the Go body %v", name, documented, want)
		}
	}
}

// schemaProperties names the properties of a schema, or of the object
// property (of an array's items) a dotted name picks in it.
func schemaProperties(t *testing.T, doc openAPIDoc, name string) []string {
	t.Helper()
	type schema struct {
		Properties map[string]json.RawMessage `json:"properties"`
		Items      json.RawMessage            `json:"items"`
	}
	top, inner, _ := strings.Cut(name, ".")
	raw, ok := doc.Components.Schemas[top]
	if !ok {
		t.Fatalf("no schema %s", top)
	}
	var s schema
	json.Unmarshal(raw, &s)
	if inner != "" {
		var prop schema
		json.Unmarshal(s.Properties[inner], &prop)
		if s = prop; prop.Items != nil {
			s = schema{}
			json.Unmarshal(prop.Items, &s)
		}
	}
	var out []string
	for p := range s.Properties {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// jsonFieldNames are the names encoding/json gives the struct's fields.
func jsonFieldNames(t reflect.Type) []string {
	var out []string
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "-" && f.IsExported() {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}
