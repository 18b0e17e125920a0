package observe

import (
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/checker"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
	"github.com/google/cel-go/interpreter"
	"github.com/hoodcloud/hoodcloud/engine"
)

// Facts is what a rule sees of one node: its latest heartbeat, how old it
// is, the node's state and its height's progress. It is the CEL
// activation itself, so evaluating a rule allocates no variable map.
//
// The variables, as rules name them:
//
//	has_heartbeat      bool      a heartbeat is in the cache
//	heartbeat_age      duration  since the latest heartbeat (or since the node entered its state, if none ever came)
//	missed_heartbeats  int       whole heartbeat intervals in heartbeat_age
//	health             string    the agent's app health: healthy, degraded, critical, unknown
//	syncing            bool      the chain says it is catching up
//	height, highest    int       the node's block height, and the network's as the node knows it
//	behind             int       highest - height, 0 when unknown
//	peers              int
//	sampled            bool      the agent has sampled the chain's metrics (height, peers are meaningful)
//	crash_loop         bool      a component keeps crashing
//	state              string    the node's state
//	stalled_for        duration  since the height last grew (0 while it grows)
//	stuck_after        duration  the appliance's setting for "stuck"
//	m                  map       the chain's metrics: metric(m, "name"), has_metric(m, "name")
type Facts struct {
	HasHeartbeat     bool
	HeartbeatAge     time.Duration
	MissedHeartbeats int64
	Health           engine.AppHealth
	Syncing          bool
	Height, Highest  uint64
	Peers            int64
	Sampled          bool
	CrashLoop        bool
	State            engine.NodeState
	StalledFor       time.Duration
	StuckAfter       time.Duration
	Metrics          map[string]float64
}

// ResolveName serves the rule variables.
func (f *Facts) ResolveName(name string) (any, bool) {
	switch name {
	case "has_heartbeat":
		return types.Bool(f.HasHeartbeat), true
	case "heartbeat_age":
		return types.Duration{Duration: f.HeartbeatAge}, true
	case "missed_heartbeats":
		return types.Int(f.MissedHeartbeats), true
	case "health":
		return types.String(f.Health), true
	case "syncing":
		return types.Bool(f.Syncing), true
	case "height":
		return types.Int(f.Height), true
	case "highest":
		return types.Int(f.Highest), true
	case "behind":
		if f.Highest > f.Height {
			return types.Int(f.Highest - f.Height), true
		}
		return types.Int(0), true
	case "peers":
		return types.Int(f.Peers), true
	case "sampled":
		return types.Bool(f.Sampled), true
	case "crash_loop":
		return types.Bool(f.CrashLoop), true
	case "state":
		return types.String(f.State), true
	case "stalled_for":
		return types.Duration{Duration: f.StalledFor}, true
	case "stuck_after":
		return types.Duration{Duration: f.StuckAfter}, true
	case "m":
		return metricsMap(f.Metrics), true
	}
	return nil, false
}

func (f *Facts) Parent() interpreter.Activation { return nil }

// metricsMap is the chain's metrics as a CEL map without copying them.
type metricsMap map[string]float64

// environment declares the variables and functions every rule may use.
var environment = func() *cel.Env {
	mapType := cel.MapType(cel.StringType, cel.DoubleType)
	env, err := cel.NewEnv(
		cel.Variable("has_heartbeat", cel.BoolType),
		cel.Variable("heartbeat_age", cel.DurationType),
		cel.Variable("missed_heartbeats", cel.IntType),
		cel.Variable("health", cel.StringType),
		cel.Variable("syncing", cel.BoolType),
		cel.Variable("height", cel.IntType),
		cel.Variable("highest", cel.IntType),
		cel.Variable("behind", cel.IntType),
		cel.Variable("peers", cel.IntType),
		cel.Variable("sampled", cel.BoolType),
		cel.Variable("crash_loop", cel.BoolType),
		cel.Variable("state", cel.StringType),
		cel.Variable("stalled_for", cel.DurationType),
		cel.Variable("stuck_after", cel.DurationType),
		cel.Variable("m", mapType),
		cel.Function("metric", cel.Overload("metric_map_string", []*cel.Type{mapType, cel.StringType}, cel.DoubleType,
			cel.BinaryBinding(func(m, name ref.Val) ref.Val { return lookupMetric(m, name, false) }))),
		cel.Function("has_metric", cel.Overload("has_metric_map_string", []*cel.Type{mapType, cel.StringType}, cel.BoolType,
			cel.BinaryBinding(func(m, name ref.Val) ref.Val { return lookupMetric(m, name, true) }))),
	)
	if err != nil {
		panic(err) // the declarations above are constant
	}
	return env
}()

// lookupMetric serves metric() (the value; an error when absent, so a rule
// guards with has_metric) and has_metric().
func lookupMetric(m, name ref.Val, presence bool) ref.Val {
	n, ok := name.(types.String)
	if !ok {
		return types.NewErr("metric name must be a string")
	}
	var v float64
	var found bool
	switch mm := m.Value().(type) {
	case metricsMap:
		v, found = mm[string(n)]
	default:
		mapper, ok := m.(traits.Mapper)
		if !ok {
			return types.NewErr("metrics must be a map")
		}
		var val ref.Val
		if val, found = mapper.Find(n); found {
			d, isDouble := val.(types.Double)
			if !isDouble {
				return types.NewErr("metric %s is not a number", n)
			}
			v = float64(d)
		}
	}
	if presence {
		return types.Bool(found)
	}
	if !found {
		return types.NewErr("no metric %s", n)
	}
	return types.Double(v)
}

// costEstimator bounds what CEL cannot know: a metrics map of at most
// maxMetrics entries.
type costEstimator struct{}

const maxMetrics = 1000

func (costEstimator) EstimateSize(checker.AstNode) *checker.SizeEstimate {
	return &checker.SizeEstimate{Min: 0, Max: maxMetrics}
}

func (costEstimator) EstimateCallCost(string, string, *checker.AstNode, []checker.AstNode) *checker.CallEstimate {
	return nil
}
