package observe_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/observe"
	"github.com/hoodcloud/hoodcloud/internal/testenv"
	"github.com/hoodcloud/hoodcloud/store/bolt"
	"github.com/hoodcloud/hoodcloud/store/postgres"
	"github.com/hoodcloud/hoodcloud/store/redis"
)

// benchFleet is how many running nodes one evaluation cycle judges.
const benchFleet = 10_000

// BenchmarkEvaluationCycle is one cycle over a fleet of healthy running
// nodes, reads included: the nodes from the Store, their heartbeats from
// the Cache in batches, every default rule on each.
//
//	go test -run '^$' -bench EvaluationCycle -benchtime 20x ./engine/observe
func BenchmarkEvaluationCycle(b *testing.B) {
	b.Run("bolt", func(b *testing.B) {
		st := bolt.New(filepath.Join(b.TempDir(), "hoodcloud.db"))
		if err := st.Open(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		benchCycle(b, st)
	})
	b.Run("postgres", func(b *testing.B) {
		dbURL := testenv.PostgresDatabase(b)
		if _, err := postgres.NewMigrator(dbURL).Up(context.Background()); err != nil {
			b.Fatal(err)
		}
		st := postgres.New(dbURL, nil)
		if err := st.Open(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		benchCycle(b, st)
	})
}

func benchCycle(b *testing.B, st engine.Store) {
	ctx := context.Background()
	cache := redis.NewEmbedded(redis.Options{})
	if err := cache.Open(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cache.Close() })
	now := time.Now().UTC()
	seed(b, st, cache, now)
	eval := observe.NewEvaluator(observe.Config{
		Nodes: st, Incidents: st, Commands: st, Cache: cache, Statuses: cache, Events: &announcements{},
		Now: func() time.Time { return now }, HeartbeatInterval: 30 * time.Second,
	})
	b.ResetTimer()
	for b.Loop() {
		s, err := eval.Cycle(ctx)
		if err != nil || s.Nodes != benchFleet || s.Verdicts[observe.VerdictOK] != benchFleet {
			b.Fatalf("cycle %+v, %v; want every node ok", s, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/cycle")
}

// seed stores the fleet with a fresh heartbeat each, a few writers at a
// time to keep the setup short.
func seed(b *testing.B, st engine.Store, cache *redis.Embedded, now time.Time) {
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < benchFleet; i += 8 {
				id := fmt.Sprintf("node_%06d", i)
				n := &engine.Node{ID: id, SubscriptionID: "sub_" + id, OwnerID: "usr_1", ChainProfileID: "sim",
					NodeType: "full", State: engine.NodeRunning, CreatedAt: now, UpdatedAt: now, LastSeenAt: now}
				s := &engine.AgentStatus{NodeID: id, Health: engine.AppHealthHealthy, BlockHeight: 100, HighestBlock: 100,
					Peers: 5, MetricsAt: now, ReportedAt: now, Metrics: map[string]float64{"chain_block_height": 100}}
				if err := st.CreateNode(context.Background(), n); err != nil {
					errs <- err
					return
				}
				if err := cache.SetAgentStatus(context.Background(), s, time.Hour); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}
