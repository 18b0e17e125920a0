package profile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/hoodcloud/hoodcloud/engine"
)

// ManifestDir is the folder of a chains dir holding upgrade manifests:
// ManifestDir/{chain_profile_id}/{upgrade_id}.yaml.
const ManifestDir = "upgrades"

// Manifests finds upgrade manifests in sources laid out like a chains dir
// (see ManifestDir). A later source's file replaces an earlier one's with
// the same ids, so the chains dir comes after the embedded defaults.
//
// Files are read at every call: a manifest dropped into the chains dir is
// found at once, without a restart or a reload. Safe for concurrent use.
type Manifests struct {
	sources []Source
}

// NewManifests reads manifests from sources, the later overriding the
// earlier; a source with a nil FS, or without ManifestDir, has none.
func NewManifests(sources ...Source) *Manifests {
	return &Manifests{sources: slices.Clone(sources)}
}

// Lookup returns upgrade upgradeID of chain profile chainID, validated
// against p, the chain's current profile. Returns EInvalid for a malformed
// id (before any file is touched) and for a bad manifest, ENotFound naming
// both ids if no source has it.
func (ms *Manifests) Lookup(chainID, upgradeID string, p *ChainProfile) (*Manifest, error) {
	if err := checkChainRef(chainID); err != nil {
		return nil, err
	}
	if !upgradeIDPattern.MatchString(upgradeID) {
		return nil, engine.Errorf(engine.EInvalid, "%q is not an upgrade id: 1-64 letters, digits, dots, underscores and dashes", upgradeID)
	}
	for _, src := range slices.Backward(ms.sources) {
		m, err := readAndParse(src, chainID, upgradeID, p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		return m, err
	}
	return nil, engine.Errorf(engine.ENotFound, "upgrade %q of chain profile %q not found", upgradeID, chainID)
}

// List returns every upgrade of chain profile chainID ordered by id, each
// validated against p. A bad file is not skipped silently: List returns the
// good manifests together with an error naming every bad one (EInvalid
// when all are invalid, EInternal when one could not be read).
func (ms *Manifests) List(chainID string, p *ChainProfile) ([]*Manifest, error) {
	if err := checkChainRef(chainID); err != nil {
		return nil, err
	}
	where, bad := ms.manifestFiles(chainID)
	var out []*Manifest
	for _, id := range slices.Sorted(maps.Keys(where)) {
		m, err := readAndParse(ms.sources[where[id]], chainID, id, p)
		if err != nil {
			bad = append(bad, err)
			continue
		}
		out = append(out, m)
	}
	return out, joinManifestErrors(bad)
}

// manifestFiles finds the chain's manifests in every source: for each
// upgrade id, the index of the last source that has it. Files that cannot
// be manifests are returned as errors; hidden files (editors' swap files)
// and anything not ending in .yaml or .yml are not manifests.
func (ms *Manifests) manifestFiles(chainID string) (map[string]int, []error) {
	where := map[string]int{}
	var bad []error
	dir := path.Join(ManifestDir, chainID)
	for i, src := range ms.sources {
		if src.FS == nil {
			continue
		}
		entries, err := fs.ReadDir(src.FS, dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			bad = append(bad, fmt.Errorf("read %s/%s: %w", src.Name, dir, err))
			continue
		}
		for _, e := range entries {
			name := e.Name()
			id, isYAML := strings.CutSuffix(name, ".yaml")
			switch {
			case strings.HasPrefix(name, ".") || e.IsDir():
			case strings.HasSuffix(name, ".yml"):
				bad = append(bad, engine.Errorf(engine.EInvalid, "%s/%s/%s: an upgrade manifest's name ends in .yaml", src.Name, dir, name))
			case !isYAML:
			case !upgradeIDPattern.MatchString(id):
				bad = append(bad, engine.Errorf(engine.EInvalid, "%s/%s/%s: the upgrade id must be 1-64 letters, digits, dots, underscores and dashes", src.Name, dir, name))
			default:
				where[id] = i
			}
		}
	}
	return where, bad
}

// checkChainRef validates the chain id before it becomes part of a path,
// so that no caller's input can name a file outside ManifestDir.
func checkChainRef(chainID string) error {
	if !idPattern.MatchString(chainID) {
		return engine.Errorf(engine.EInvalid, "%q is not a chain profile id", chainID)
	}
	return nil
}

func manifestPath(chainID, upgradeID string) string {
	return path.Join(ManifestDir, chainID, upgradeID+".yaml")
}

// readAndParse reads and parses one source's manifest of the ids.
func readAndParse(src Source, chainID, upgradeID string, p *ChainProfile) (*Manifest, error) {
	name := manifestPath(chainID, upgradeID)
	data, err := readManifest(src, name)
	if err != nil {
		return nil, err
	}
	return ParseManifest(src.Name+"/"+name, chainID, upgradeID, data, p)
}

// readManifest reads one manifest, bounded by MaxManifestBytes. A source
// without it returns an error matching fs.ErrNotExist.
func readManifest(src Source, name string) ([]byte, error) {
	if src.FS == nil {
		return nil, fs.ErrNotExist
	}
	f, err := src.FS.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("read %s/%s: %w", src.Name, name, err)
	}
	defer f.Close()
	if info, err := f.Stat(); err == nil && !info.Mode().IsRegular() {
		return nil, engine.Errorf(engine.EInvalid, "%s/%s: not a regular file", src.Name, name)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxManifestBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s/%s: %w", src.Name, name, err)
	}
	if len(data) > MaxManifestBytes {
		return nil, engine.Errorf(engine.EInvalid, "%s/%s: larger than %d bytes", src.Name, name, MaxManifestBytes)
	}
	return data, nil
}

// joinManifestErrors reports every bad manifest in one error: EInvalid
// with each file's problems when all of them are invalid files, otherwise
// an internal error carrying every message for the log.
func joinManifestErrors(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	msgs := make([]string, len(errs))
	invalid := true
	for i, err := range errs {
		invalid = invalid && engine.IsCode(err, engine.EInvalid)
		msgs[i] = err.Error()
		if engine.IsCode(err, engine.EInvalid) {
			msgs[i] = engine.ErrorMessage(err)
		}
	}
	if invalid {
		return engine.Errorf(engine.EInvalid, "%s", strings.Join(msgs, "; "))
	}
	return errors.New(strings.Join(msgs, "; "))
}
