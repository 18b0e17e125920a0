// Command depcheck enforces the dependency rules: the engine imports no
// infrastructure, the Temporal SDK only in its workflows package, YAML
// only in its profile package; one package links the Temporal server; the
// ops-agent links none of the control plane's infrastructure. `make lint`
// runs it from the module root.
package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

const module = "github.com/hoodcloud/hoodcloud/"

// rule forbids packages matching any of deny (by prefix, after the module
// path is trimmed) to packages under scope, except those listed in allow.
type rule struct {
	scope  string   // package pattern, e.g. "./engine/..."
	direct bool     // check direct imports only, not every dependency
	deny   []string // import path prefixes
	allow  []string // packages (module-relative) the rule does not apply to
	why    string
}

var rules = []rule{
	{scope: "./engine/...", why: "engine imports infrastructure", deny: []string{
		"github.com/gin-gonic/", "github.com/jackc/pgx", "go.etcd.io/bbolt", "github.com/nats-io/",
		"github.com/redis/", "github.com/alicebob/miniredis", "github.com/hashicorp/vault",
		"go.temporal.io/server", module + "store", module + "web", module + "agent", module + "proto",
	}},
	{scope: "./engine/...", why: "only engine/workflows may use the Temporal SDK (and its gRPC)",
		deny: []string{"go.temporal.io/", "google.golang.org/grpc"}, allow: []string{"engine/workflows"}},
	{scope: "./engine/...", direct: true, why: "only engine/profile may parse YAML",
		deny: []string{"gopkg.in/yaml", "sigs.k8s.io/yaml", "github.com/goccy/go-yaml"}, allow: []string{"engine/profile"}},
	{scope: "./...", direct: true, why: "only store/temporal/devserver may import the Temporal server (its link is large and slow)",
		deny: []string{"go.temporal.io/server"}, allow: []string{"store/temporal/devserver"}},
	{scope: "./agent/cmd/hoodcloud-agent", why: "the ops-agent runs on every node host: it links no control-plane infrastructure",
		deny: []string{"go.temporal.io/", "github.com/nats-io/", "go.etcd.io/bbolt", "github.com/jackc/pgx",
			"github.com/gin-gonic/", "github.com/alicebob/miniredis", "github.com/redis/", "github.com/hashicorp/vault"}},
}

func main() {
	failed := false
	for _, r := range rules {
		violations, err := r.check()
		if err != nil {
			fmt.Fprintln(os.Stderr, "depcheck:", err)
			os.Exit(2)
		}
		for _, v := range violations {
			fmt.Fprintf(os.Stderr, "%s: %s\n", r.why, v)
			failed = true
		}
	}
	if failed {
		os.Exit(1)
	}
}

// check lists "package -> import" pairs that break r.
func (r rule) check() ([]string, error) {
	field := "Deps"
	if r.direct {
		field = "Imports"
	}
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join ."+field+" \" \"}}", r.scope).Output()
	if err != nil {
		return nil, fmt.Errorf("go list %s: %w", r.scope, err)
	}
	var violations []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || r.allows(fields[0]) {
			continue
		}
		if v := r.violation(fields[0], fields[1:]); v != "" {
			violations = append(violations, v)
		}
	}
	return violations, sc.Err()
}

// violation names the first denied dependency of pkg and how many more
// there are; empty when there is none.
func (r rule) violation(pkg string, deps []string) string {
	var denied []string
	for _, dep := range deps {
		if r.denies(dep) {
			denied = append(denied, dep)
		}
	}
	switch len(denied) {
	case 0:
		return ""
	case 1:
		return pkg + " -> " + denied[0]
	}
	return fmt.Sprintf("%s -> %s (and %d more)", pkg, denied[0], len(denied)-1)
}

func (r rule) allows(pkg string) bool {
	rel := strings.TrimPrefix(pkg, module)
	for _, a := range r.allow {
		if rel == a || strings.HasPrefix(rel, a+"/") {
			return true
		}
	}
	return false
}

func (r rule) denies(dep string) bool {
	for _, d := range r.deny {
		if strings.HasPrefix(dep, d) {
			return true
		}
	}
	return false
}
