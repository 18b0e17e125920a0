package profile

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
)

// DefaultCheckInterval is how often Watch looks for changed profiles
// (CHAINS_CHECK_INTERVAL).
const DefaultCheckInterval = time.Minute

// Set is one validated, immutable set of chain profiles.
type Set struct {
	byID     map[string]*ChainProfile
	list     []*ChainProfile // by ID
	checksum string
}

// Get returns the profile with id, or ENotFound.
func (s *Set) Get(id string) (*ChainProfile, error) {
	if p, ok := s.byID[id]; ok {
		return p, nil
	}
	return nil, engine.Errorf(engine.ENotFound, "chain profile %q not found", id)
}

// List returns every profile ordered by ID. The slice is the caller's.
func (s *Set) List() []*ChainProfile { return slices.Clone(s.list) }

// Checksum is the SHA-256 (hex) of every source file the set was built from,
// in source order, names and contents: it changes when any file does.
func (s *Set) Checksum() string { return s.checksum }

// Catalog serves the current Set and replaces it whole when the sources
// change. Safe for concurrent use: readers never block and never see a
// half-built set.
type Catalog struct {
	sources []Source
	mu      sync.Mutex // serialises reloads so compare-then-swap cannot interleave
	onSwap  []func(*Set)
	current atomic.Pointer[Set]
}

// LoadCatalog reads and validates every source, later sources overriding
// earlier ones by profile id. Any invalid file fails the whole load.
func LoadCatalog(sources ...Source) (*Catalog, error) {
	c := &Catalog{sources: slices.Clone(sources)}
	files, err := readSources(c.sources)
	if err != nil {
		return nil, err
	}
	set, err := buildSet(c.sources, files)
	if err != nil {
		return nil, err
	}
	c.current.Store(set)
	return c, nil
}

// Snapshot returns the current set; use it when several reads must agree.
func (c *Catalog) Snapshot() *Set { return c.current.Load() }

// Get returns the current profile with id, or ENotFound.
func (c *Catalog) Get(id string) (*ChainProfile, error) { return c.Snapshot().Get(id) }

// List returns the current profiles ordered by ID.
func (c *Catalog) List() []*ChainProfile { return c.Snapshot().List() }

// Checksum is the current set's checksum.
func (c *Catalog) Checksum() string { return c.Snapshot().Checksum() }

// OnSwap registers fn to run after every swap, in the reloading goroutine
// (e.g. to record the new versions in the Store); fn must not call Reload.
// Register before Watch.
func (c *Catalog) OnSwap(fn func(*Set)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.onSwap = append(c.onSwap, fn)
}

// Reload re-reads the sources and swaps in the new set if the files changed
// and all of them are valid. An invalid set is returned as an EInvalid error
// and the current one is kept.
func (c *Catalog) Reload() (swapped bool, err error) {
	_, swapped, err = c.reload("")
	return swapped, err
}

// reload is Reload that skips a set whose fingerprint is skip (one already
// rejected) and returns the fingerprint it saw.
func (c *Catalog) reload(skip string) (sum string, swapped bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	files, err := readSources(c.sources)
	if err != nil {
		return "", false, err
	}
	if files.sum == c.Checksum() || files.sum == skip {
		return files.sum, false, nil
	}
	set, err := buildSet(c.sources, files)
	if err != nil {
		return files.sum, false, err
	}
	c.current.Store(set)
	for _, fn := range c.onSwap {
		fn(set)
	}
	return files.sum, true, nil
}

// Watch reloads every interval (DefaultCheckInterval if not positive) until
// ctx is done. A rejected set is logged once, not on every tick, and the
// current set stays in service.
func (c *Catalog) Watch(ctx context.Context, interval time.Duration, logger *slog.Logger) {
	if interval <= 0 {
		interval = DefaultCheckInterval
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	var rejected string // fingerprint (or read error) last logged
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			rejected = c.poll(logger, rejected)
		}
	}
}

func (c *Catalog) poll(logger *slog.Logger, rejected string) string {
	old := c.Checksum()
	sum, swapped, err := c.reload(rejected)
	switch {
	case err != nil && sum == "":
		if key := "read: " + err.Error(); key != rejected {
			logger.Error("chain profiles unreadable; keeping the current set", "checksum", old, "err", err)
			return key
		}
		return rejected
	case err != nil:
		logger.Error("chain profiles rejected; keeping the current set", "checksum", old, "rejected", sum, "err", err)
		return sum
	case swapped:
		logger.Info("chain profiles swapped", "from", old, "to", sum, "profiles", len(c.Snapshot().list))
		return ""
	case sum == old:
		return "" // back to the serving set: a later bad set is news again
	}
	return rejected
}

// buildSet parses every file and overlays the sources. Every problem in every
// file is reported in one error.
func buildSet(sources []Source, files *sourceFiles) (*Set, error) {
	byID := map[string]*ChainProfile{}
	var problems []string
	for i, src := range sources {
		if files.checksums[i] != nil {
			problems = append(problems, verifyChecksums(src.Name, files.checksums[i], files.files[i])...)
		}
		problems = append(problems, overlay(byID, src, files.files[i])...)
	}
	if len(problems) > 0 {
		return nil, engine.Errorf(engine.EInvalid, "%s", strings.Join(problems, "; "))
	}
	if len(byID) == 0 {
		return nil, engine.Errorf(engine.EInvalid, "no chain profiles found")
	}
	set := &Set{byID: byID, checksum: files.sum}
	for _, id := range slices.Sorted(maps.Keys(byID)) {
		set.list = append(set.list, byID[id])
	}
	return set, nil
}

// overlay parses one source's files into byID, replacing profiles of earlier
// sources with the same id; within a source an id may appear once.
func overlay(byID map[string]*ChainProfile, src Source, files []sourceFile) []string {
	var problems []string
	local := map[string]string{} // id → file
	for _, f := range files {
		p, err := Parse(src.Name+"/"+f.name, f.data)
		if err != nil {
			problems = append(problems, engine.ErrorMessage(err))
			continue
		}
		if other, dup := local[p.ID]; dup {
			problems = append(problems, p.File+": chain profile \""+p.ID+"\" is already defined in "+other)
			continue
		}
		if err := p.readGenesisFile(src.FS); err != nil {
			problems = append(problems, p.File+": chain profile \""+p.ID+"\": genesis.file: "+err.Error())
			continue
		}
		local[p.ID] = p.File
		p.Source = src.Name
		byID[p.ID] = p
	}
	return problems
}
