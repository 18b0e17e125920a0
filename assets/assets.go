// Package assets holds the files built into the binary: the default chain
// profiles and their upgrade manifests.
package assets

import (
	"embed"
	"io/fs"
)

//go:embed chains/*.yaml
var chains embed.FS

//go:embed upgrades/*/*.yaml
var upgrades embed.FS

// Chains holds the default chain profiles at its root, one per file; the
// config dir's chain profiles override them by id.
var Chains fs.FS = mustSub(chains, "chains")

// Upgrades holds the default upgrade manifests laid out like a chains dir,
// at upgrades/{chain_profile_id}/{upgrade_id}.yaml; the chains dir's
// manifests replace them by ids (see profile.Manifests).
var Upgrades fs.FS = upgrades

func mustSub(fsys fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		panic("assets: " + err.Error()) // only for a bad literal dir name
	}
	return sub
}
