// Package observe watches running nodes: health policies in CEL turn each
// node's latest heartbeat into a verdict, and the evaluator turns confirmed
// verdicts into node states, incidents and remediation.
package observe

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/ast"
	"github.com/hoodcloud/hoodcloud/engine"
)

// Verdict is what a policy says of a node, from the worst down.
type Verdict string

const (
	VerdictCritical Verdict = "critical"
	VerdictDegraded Verdict = "degraded"
	VerdictSyncing  Verdict = "syncing"
	VerdictOK       Verdict = "ok"
	VerdictUnknown  Verdict = "unknown" // no rule matched, or the facts could not be read
)

// verdictRank orders verdicts: rules are tried worst first, so a node both
// stuck and without a heartbeat is critical, whatever the declared order.
var verdictRank = map[Verdict]int{VerdictCritical: 0, VerdictDegraded: 1, VerdictSyncing: 2, VerdictOK: 3}

// ruled reports whether a rule may give v: any verdict but unknown.
func (v Verdict) ruled() bool { _, ok := verdictRank[v]; return ok }

// Bad reports whether the verdict opens an incident.
func (v Verdict) Bad() bool { return v == VerdictCritical || v == VerdictDegraded }

// Remedy is what the evaluator does, once per incident, for a rule that
// matched: "" for nothing, RemedyRestart to restart the chain.
type Remedy string

const RemedyRestart Remedy = "restart"

// RuleSpec is a policy rule as a chain profile declares it.
type RuleSpec struct {
	Name     string
	Verdict  Verdict
	When     string // a CEL expression over the Facts' variables, of type bool
	Summary  string // for people: the incident's summary
	Remedy   Remedy
	Disabled bool // drops the default rule of the same name
}

// Rule is a compiled RuleSpec.
type Rule struct {
	RuleSpec
	program cel.Program
}

// Policy is a chain profile's compiled rules, worst verdict first and in
// declared order within a verdict. Immutable and safe for concurrent use.
type Policy struct {
	rules []*Rule
}

// Rules returns the rules in the order they are tried.
func (p *Policy) Rules() []*Rule { return p.rules }

// MaxCost bounds one rule's evaluation (CEL cost units): a rule that could
// walk a huge metrics map for every node of every cycle is refused at load.
const MaxCost = 10_000

var (
	rulePattern = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)
	// metricPattern is Prometheus's metric name syntax: the only names a
	// rule may look up, so a name never smuggles anything into a query.
	metricPattern = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]{0,199}$`)
)

// Compile merges specs over the default rules (a spec replaces the default
// of the same name; Disabled drops it) and compiles each. Every problem is
// reported at once, each naming its rule and field, as EInvalid.
func Compile(specs []RuleSpec) (*Policy, error) {
	var problems []string
	var rules []*Rule
	for _, s := range merge(Defaults(), specs) {
		r, err := compileRule(s)
		if err != nil {
			problems = append(problems, fmt.Sprintf("rule %q: %v", s.Name, err))
			continue
		}
		rules = append(rules, r)
	}
	if len(problems) > 0 {
		return nil, engine.Errorf(engine.EInvalid, "%s", strings.Join(problems, "; "))
	}
	slices.SortStableFunc(rules, func(a, b *Rule) int { return verdictRank[a.Verdict] - verdictRank[b.Verdict] })
	return &Policy{rules: rules}, nil
}

// merge lays specs over defaults by name, keeping the defaults' order and
// appending new names in their declared order.
func merge(defaults, specs []RuleSpec) []RuleSpec {
	out := slices.Clone(defaults)
	for _, s := range specs {
		i := slices.IndexFunc(out, func(d RuleSpec) bool { return d.Name == s.Name })
		if i < 0 {
			out = append(out, s)
		} else {
			out[i] = s
		}
	}
	return slices.DeleteFunc(out, func(s RuleSpec) bool { return s.Disabled })
}

func compileRule(s RuleSpec) (*Rule, error) {
	switch {
	case !rulePattern.MatchString(s.Name):
		return nil, fmt.Errorf("name: must match %s", rulePattern)
	case !s.Verdict.ruled():
		return nil, fmt.Errorf("verdict: must be critical, degraded, syncing or ok, got %q", s.Verdict)
	case s.Remedy != "" && s.Remedy != RemedyRestart:
		return nil, fmt.Errorf("remedy: must be %q or empty, got %q", RemedyRestart, s.Remedy)
	case s.Remedy != "" && !s.Verdict.Bad():
		return nil, fmt.Errorf("remedy: only a critical or degraded rule has one")
	case strings.TrimSpace(s.When) == "":
		return nil, fmt.Errorf("when: is required")
	}
	prg, err := compileCondition(s.When)
	if err != nil {
		return nil, fmt.Errorf("when: %v", err)
	}
	if s.Summary == "" {
		s.Summary = fmt.Sprintf("health policy %s: %s", s.Name, s.When)
	}
	return &Rule{RuleSpec: s, program: prg}, nil
}

// compileCondition compiles a bool CEL expression over Facts, refusing
// what could cost more than MaxCost or names a metric by anything but a
// literal.
func compileCondition(expr string) (cel.Program, error) {
	checked, iss := environment.Compile(expr)
	if iss.Err() != nil {
		return nil, iss.Err()
	}
	if !checked.OutputType().IsExactType(cel.BoolType) {
		return nil, fmt.Errorf("must be a bool expression, is %s", checked.OutputType())
	}
	if err := checkMetricNames(checked.NativeRep()); err != nil {
		return nil, err
	}
	if est, err := environment.EstimateCost(checked, costEstimator{}); err == nil && est.Max > MaxCost {
		return nil, fmt.Errorf("may cost up to %d, more than the limit %d", est.Max, MaxCost)
	}
	return environment.Program(checked, cel.CostLimit(MaxCost), cel.EvalOptions(cel.OptOptimize))
}

// checkMetricNames demands that every metric()/has_metric() names its
// metric with a string literal of Prometheus syntax.
func checkMetricNames(a *ast.AST) error {
	var bad error
	ast.PostOrderVisit(a.Expr(), ast.NewExprVisitor(func(e ast.Expr) {
		if bad != nil || e.Kind() != ast.CallKind {
			return
		}
		call := e.AsCall()
		if call.FunctionName() != "metric" && call.FunctionName() != "has_metric" {
			return
		}
		args := call.Args()
		if len(args) != 2 || args[1].Kind() != ast.LiteralKind {
			bad = fmt.Errorf("%s() takes the metric name as a string literal", call.FunctionName())
			return
		}
		name, ok := args[1].AsLiteral().Value().(string)
		if !ok || !metricPattern.MatchString(name) {
			bad = fmt.Errorf("%s(): %q is not a metric name", call.FunctionName(), args[1].AsLiteral().Value())
		}
	}))
	return bad
}

// Result is a policy's verdict on a node and the rule that gave it.
type Result struct {
	Verdict Verdict
	Rule    *Rule   // nil for VerdictUnknown
	Errors  []error // rules that failed to evaluate (a metric missing, the cost limit)
}

// Evaluate tries the rules worst first and returns the first that matches.
// A rule that fails to evaluate counts as not matching and is reported.
func (p *Policy) Evaluate(f *Facts) Result {
	var res Result
	for _, r := range p.rules {
		out, _, err := r.program.Eval(f)
		if err != nil {
			res.Errors = append(res.Errors, fmt.Errorf("rule %s: %w", r.Name, err))
			continue
		}
		if b, ok := out.Value().(bool); ok && b {
			res.Verdict, res.Rule = r.Verdict, r
			return res
		}
	}
	res.Verdict = VerdictUnknown
	return res
}
