// Package assets holds the files built into the binary: for now the default
// chain profiles.
package assets

import (
	"embed"
	"io/fs"
)

//go:embed chains/*.yaml
var chains embed.FS

// Chains holds the default chain profiles at its root, one per file; the
// config dir's chain profiles override them by id.
var Chains fs.FS = mustSub(chains, "chains")

func mustSub(fsys fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		panic("assets: " + err.Error()) // only for a bad literal dir name
	}
	return sub
}
