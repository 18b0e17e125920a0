package local_test

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/store/local"
)

func TestPathArtifactsArePinnedByTheirDigest(t *testing.T) {
	dir := t.TempDir()
	program := []byte("#!/bin/sh\necho chain\n")
	if err := os.WriteFile(filepath.Join(dir, "chaind"), program, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	url, sha, err := local.PathArtifacts{}.Find("chaind")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(program)
	if want := hex.EncodeToString(sum[:]); sha != want {
		t.Errorf("sha256 = %s, want %s", sha, want)
	}
	if want := "file://" + filepath.Join(dir, "chaind"); url != want {
		t.Errorf("url = %s, want %s", url, want)
	}
}

func TestAMissingProgramIsNotFound(t *testing.T) {
	a := local.PathArtifacts{LookPath: func(string) (string, error) { return "", exec.ErrNotFound }}
	if _, _, err := a.Find("cometbft"); !engine.IsCode(err, engine.ENotFound) {
		t.Fatalf("err = %v, want ENotFound", err)
	}
}
