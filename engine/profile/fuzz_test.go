package profile_test

import (
	"net"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/profile"
	"github.com/hoodcloud/hoodcloud/engine/recipe"
)

// FuzzParseProfile feeds arbitrary bytes to the parser: it must never panic,
// must fail only with EInvalid naming the file, and whatever it accepts must
// keep the promises the rest of the appliance relies on. The seed corpus is
// in testdata/fuzz/FuzzParseProfile.
func FuzzParseProfile(f *testing.F) {
	f.Add([]byte(validYAML(f)))
	f.Add([]byte("id: a\nname: A\nversion: x\nfamily: f\nnode_types: [{name: n, durations: {1d: {provider: p, region: r, instance_type: i}}}]\n"))
	f.Add([]byte("a: &a [*a, *a]\n"))
	f.Add([]byte("---\n...\n---\n"))
	f.Add([]byte(withMetrics(f)))
	f.Add([]byte(validatorYAML(f)))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := profile.Parse("fuzz.yaml", data)
		if err != nil {
			if !engine.IsCode(err, engine.EInvalid) || !strings.HasPrefix(engine.ErrorMessage(err), "fuzz.yaml: ") {
				t.Fatalf("error %v: want EInvalid naming the file", err)
			}
			return
		}
		checkAccepted(t, p)
	})
}

var fuzzID = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)

// checkAccepted asserts what an accepted profile guarantees.
func checkAccepted(t *testing.T, p *profile.ChainProfile) {
	t.Helper()
	if !fuzzID.MatchString(p.ID) || len(p.NodeTypes) == 0 {
		t.Fatalf("accepted id %q with %d node types", p.ID, len(p.NodeTypes))
	}
	for _, nt := range p.NodeTypes {
		if len(nt.Offers) == 0 {
			t.Fatalf("node type %q accepted without offers", nt.Name)
		}
		for _, o := range nt.Offers {
			if got, err := p.Resolve(nt.Name, string(o.Duration)); err != nil || got != o.Placement {
				t.Fatalf("Resolve(%s, %s) = %+v, %v; want %+v", nt.Name, o.Duration, got, err, o.Placement)
			}
			if _, err := o.Duration.Expiry(time.Unix(0, 0)); err != nil {
				t.Fatalf("accepted duration %q has no expiry: %v", o.Duration, err)
			}
		}
	}
	for _, c := range p.Components {
		checkAcceptedMetrics(t, p, c)
	}
	for _, in := range p.Inputs {
		if in.Type == engine.InputSecret && in.Source == profile.SourceChainGenerated && !filepath.IsLocal(in.KeyPath) {
			t.Fatalf("accepted key_path %q outside the chain data dir", in.KeyPath)
		}
		if in.Type != engine.InputSecret {
			_ = in.CheckValue("")
			_ = in.CheckValue("0x00")
		}
		checkAcceptedInput(t, p, in)
	}
}

// checkAcceptedInput: an accepted input names declared node types only, and
// an accepted secret can be generated in its format and passes its check.
func checkAcceptedInput(t *testing.T, p *profile.ChainProfile, in profile.InputSpec) {
	t.Helper()
	for _, nt := range in.NodeTypes {
		if _, ok := p.NodeType(nt); !ok {
			t.Fatalf("input %q accepted for the undeclared node type %q", in.Name, nt)
		}
	}
	if in.Type != engine.InputSecret {
		return
	}
	key, err := profile.GenerateKey(&in)
	if err != nil {
		t.Fatalf("accepted secret %q (%s, %s) cannot be generated: %v", in.Name, in.KeyType, in.Format, err)
	}
	if err := in.CheckKey(key); err != nil {
		t.Fatalf("accepted secret %q refuses its own generated key: %v", in.Name, err)
	}
}

var fuzzMetricName = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)

// checkAcceptedMetrics asserts that an accepted metrics spec points the
// agent at its own host and names metrics it can look up.
func checkAcceptedMetrics(t *testing.T, p *profile.ChainProfile, c profile.Component) {
	t.Helper()
	m := c.Metrics
	if m == nil {
		return
	}
	ports := map[string]int{}
	for _, name := range p.Ports {
		ports[name] = 1
	}
	rendered, err := recipe.Render("metrics", m.URL, &recipe.Data{Ports: ports})
	if err != nil {
		t.Fatalf("component %q: accepted metrics url %q that does not render: %v", c.Name, m.URL, err)
	}
	u, err := url.Parse(rendered)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.User != nil {
		t.Fatalf("component %q: accepted metrics url %q", c.Name, m.URL)
	}
	if ip := net.ParseIP(u.Hostname()); u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
		t.Fatalf("component %q: accepted metrics url %q off the host", c.Name, m.URL)
	}
	if !fuzzMetricName.MatchString(m.BlockHeight) || !fuzzMetricName.MatchString(m.Peers) {
		t.Fatalf("component %q: accepted metric names %q and %q", c.Name, m.BlockHeight, m.Peers)
	}
	for _, n := range []string{m.HighestBlock, m.Syncing} {
		if n != "" && !fuzzMetricName.MatchString(n) {
			t.Fatalf("component %q: accepted metric name %q", c.Name, n)
		}
	}
}
