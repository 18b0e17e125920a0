package enginetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
)

// NodeSeeder loads many nodes at once for the benchmarks. An adapter whose
// single writes are slow (one fsync per transaction) passes one through
// WithNodeSeeder; without it BenchStore calls CreateNode from many
// goroutines. A seeder must store the nodes as CreateNode would, state log
// and indexes included.
type NodeSeeder func(ctx context.Context, nodes []*engine.Node) error

// StoreBenchOption tunes BenchStore.
type StoreBenchOption func(*storeBench)

// WithNodeSeeder makes BenchStore load its node fixtures through seed.
func WithNodeSeeder(seed NodeSeeder) StoreBenchOption {
	return func(sb *storeBench) { sb.seed = seed }
}

// BenchStore measures the store's hot paths. s should be empty; the
// ListNodesByOwner benchmarks first seed 1k and 100k nodes for one owner
// each among 10k nodes of other owners, once, outside the timer.
func BenchStore(b *testing.B, s engine.Store, opts ...StoreBenchOption) {
	sb := &storeBench{s: s}
	sb.seed = sb.createConcurrently
	for _, o := range opts {
		o(sb)
	}
	b.Run("CreateSubscription", sb.createSubscription)
	b.Run("GetNode", sb.getNode)
	b.Run("ListNodesByOwner/1k", func(b *testing.B) { sb.listNodesByOwner(b, 1_000) })
	b.Run("ListNodesByOwner/100k", func(b *testing.B) { sb.listNodesByOwner(b, 100_000) })
	b.Run("AppendStateLog", sb.appendStateLog)
	b.Run("CreateUpdateCommand", sb.createUpdateCommand)
}

type storeBench struct {
	s      engine.Store
	seed   NodeSeeder
	mu     sync.Mutex
	owners map[int][]string // node IDs of the owner with that many nodes, sorted
	others bool
}

// stBenchListPage is how many nodes a ListNodesByOwner call returns, as a
// console page would.
const stBenchListPage = 50

func (sb *storeBench) createSubscription(b *testing.B) {
	user := engine.NewID("user")
	for b.Loop() {
		stBenchOK(b, sb.s.CreateSubscription(b.Context(), stSubscription(user, engine.SubscriptionActive)))
	}
}

func (sb *storeBench) getNode(b *testing.B) {
	ids := sb.ownerNodes(b, 1_000)
	for i := 0; b.Loop(); i++ {
		_, err := sb.s.GetNode(b.Context(), ids[i%len(ids)])
		stBenchOK(b, err)
	}
}

func (sb *storeBench) listNodesByOwner(b *testing.B, n int) {
	ids := sb.ownerNodes(b, n)
	owner := stBenchOwner(n)
	for b.Loop() {
		after := ids[rand.IntN(len(ids)-stBenchListPage)]
		page, err := sb.s.ListNodesByOwner(b.Context(), owner, after, stBenchListPage)
		stBenchOK(b, err)
		if len(page) != stBenchListPage {
			b.Fatalf("page of %d nodes, want %d", len(page), stBenchListPage)
		}
	}
}

func (sb *storeBench) appendStateLog(b *testing.B) {
	n := stNode(engine.NewID("user"), "bench-chain", engine.NodeRunning)
	stBenchOK(b, sb.s.CreateNode(b.Context(), n))
	next := map[engine.NodeState]engine.NodeState{engine.NodeRunning: engine.NodeDegraded, engine.NodeDegraded: engine.NodeRunning}
	version, state := n.Version, n.State
	for i := 0; b.Loop(); i++ {
		c := &engine.NodeStateChange{NodeID: n.ID, To: next[state], Reason: "bench", At: stAt(i)}
		got, err := sb.s.ChangeNodeState(b.Context(), version, c)
		stBenchOK(b, err)
		version, state = got.Version, got.State
	}
}

func (sb *storeBench) createUpdateCommand(b *testing.B) {
	node := engine.NewID("node")
	for i := 0; b.Loop(); i++ {
		c := stCommand(node, engine.CommandQueued, stAt(i))
		stBenchOK(b, sb.s.CreateCommand(b.Context(), c))
		c.Status, c.UpdatedAt = engine.CommandDelivered, stAt(i+1)
		stBenchOK(b, sb.s.UpdateCommand(b.Context(), c))
	}
}

func stBenchOwner(n int) string { return fmt.Sprintf("bench-owner-%d", n) }

// ownerNodes seeds, once, n nodes of one owner (and the other owners' 10k
// nodes) and returns the owner's node IDs in order.
func (sb *storeBench) ownerNodes(b *testing.B, n int) []string {
	b.Helper()
	sb.mu.Lock()
	defer sb.mu.Unlock()
	if sb.owners == nil {
		sb.owners = map[int][]string{}
	}
	if !sb.others {
		sb.load(b, 10_000, func(i int) string { return fmt.Sprintf("bench-other-%d", i%100) })
		sb.others = true
	}
	if ids, ok := sb.owners[n]; ok {
		return ids
	}
	ids := sb.load(b, n, func(int) string { return stBenchOwner(n) })
	sb.owners[n] = stSorted(ids)
	return sb.owners[n]
}

// load seeds n nodes, outside the timer, and returns their IDs.
func (sb *storeBench) load(b *testing.B, n int, owner func(i int) string) []string {
	b.StopTimer()
	defer b.StartTimer()
	start := time.Now()
	nodes := make([]*engine.Node, n)
	ids := make([]string, n)
	for i := range nodes {
		nodes[i] = stNode(owner(i), fmt.Sprintf("bench-chain-%d", i%10), engine.NodeStates[i%len(engine.NodeStates)])
		ids[i] = nodes[i].ID
	}
	for len(nodes) > 0 {
		chunk := nodes[:min(len(nodes), 10_000)]
		stBenchOK(b, sb.seed(b.Context(), chunk))
		nodes = nodes[len(chunk):]
	}
	b.Logf("seeded %d nodes in %v", n, time.Since(start).Round(time.Millisecond))
	return ids
}

// createConcurrently is the default seeder: CreateNode from 16 goroutines.
func (sb *storeBench) createConcurrently(ctx context.Context, nodes []*engine.Node) error {
	const workers = 16
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(nodes); i += workers {
				if err := sb.s.CreateNode(ctx, nodes[i]); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func stBenchOK(b *testing.B, err error) {
	b.Helper()
	if err != nil {
		b.Fatalf("unexpected error: %v", err)
	}
}
