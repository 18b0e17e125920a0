package observe

import (
	"fmt"
	"strings"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/hoodcloud/hoodcloud/engine"
)

// Gate is a rollout's condition on each node it upgraded, in the health
// policies' environment: `!crash_loop && metric(m, "cometbft_consensus_height") > 0`.
type Gate struct {
	Expr    string
	program cel.Program
}

// CompileGate compiles a gate; the error says what is wrong with expr.
func CompileGate(expr string) (*Gate, error) {
	if strings.TrimSpace(expr) == "" {
		return nil, fmt.Errorf("gate is empty")
	}
	prg, err := compileCondition(expr)
	if err != nil {
		return nil, fmt.Errorf("gate %q: %v", expr, err)
	}
	return &Gate{Expr: expr, program: prg}, nil
}

// Holds reports whether the node's facts meet the gate; an expression that
// cannot be evaluated (a metric the node does not report) does not hold.
func (g *Gate) Holds(f *Facts) (bool, error) {
	out, _, err := g.program.Eval(f)
	if err != nil {
		return false, fmt.Errorf("gate %q: %v", g.Expr, err)
	}
	b, _ := out.Value().(bool)
	return b, nil
}

// FactsOf is what a gate sees of a node from its latest heartbeat (nil:
// none), without the evaluator's memory of height progress.
func FactsOf(n *engine.Node, s *engine.AgentStatus, now time.Time) *Facts {
	f := &Facts{State: n.State}
	if s == nil {
		return f
	}
	f.HasHeartbeat, f.HeartbeatAge = true, now.Sub(s.ReportedAt)
	f.Health, f.Syncing, f.Height, f.Highest = s.Health, s.Syncing, s.BlockHeight, s.HighestBlock
	f.Peers, f.Sampled, f.Metrics = int64(s.Peers), !s.MetricsAt.IsZero(), s.Metrics
	for _, c := range s.Components {
		f.CrashLoop = f.CrashLoop || c.CrashLoop
	}
	return f
}
