// Package storebench compares the engine.Store adapters side by side on the
// same workload (enginetest.BenchStore):
//
//	go test -run '^$' -bench . ./store/storebench
//
// prints BenchmarkStore/bolt/… next to BenchmarkStore/postgres/…. The
// PostgreSQL half needs HOODCLOUD_TEST_POSTGRES_URL, like its tests.
package storebench

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/enginetest"
	"github.com/hoodcloud/hoodcloud/internal/testenv"
	"github.com/hoodcloud/hoodcloud/store/bolt"
	"github.com/hoodcloud/hoodcloud/store/postgres"
	"github.com/prometheus/client_golang/prometheus"
)

func BenchmarkStore(b *testing.B) {
	b.Run("bolt", func(b *testing.B) {
		s := bolt.New(filepath.Join(b.TempDir(), "hoodcloud.db"))
		bench(b, s, s.Open)
	})
	b.Run("postgres", func(b *testing.B) {
		dbURL := testenv.PostgresDatabase(b)
		if _, err := postgres.NewMigrator(dbURL).Up(b.Context()); err != nil {
			b.Fatalf("migrate: %v", err)
		}
		s := postgres.New(dbURL, prometheus.NewRegistry())
		bench(b, s, s.Open)
	})
}

// bulkCreator is a store that can load many nodes at once; BenchStore
// seeds its fixtures through it when an adapter offers one.
type bulkCreator interface {
	CreateNodes(ctx context.Context, nodes []*engine.Node) error
}

func bench(b *testing.B, s engine.Store, open func(context.Context) error) {
	if err := open(b.Context()); err != nil {
		b.Fatalf("open: %v", err)
	}
	b.Cleanup(func() { s.Close() })
	var opts []enginetest.StoreBenchOption
	if bc, ok := s.(bulkCreator); ok {
		opts = append(opts, enginetest.WithNodeSeeder(bc.CreateNodes))
	}
	enginetest.BenchStore(b, s, opts...)
}
