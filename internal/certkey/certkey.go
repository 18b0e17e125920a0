// Package certkey is the path arithmetic of certmagic storage keys, shared
// by the Store adapters: keys are slash-separated and directories exist
// only as prefixes of keys.
package certkey

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"slices"
	"strings"
)

// Under returns what every key below dir starts with: "dir/", or "" for
// the root.
func Under(dir string) string {
	if dir == "" {
		return ""
	}
	return dir + "/"
}

// Check refuses a key that cannot name a file: empty, with a leading or
// trailing slash, or an empty component.
func Check(key string) error {
	if key == "" || strings.HasPrefix(key, "/") || strings.HasSuffix(key, "/") || strings.Contains(key, "//") {
		return &fs.PathError{Op: "store", Path: key, Err: fs.ErrInvalid}
	}
	return nil
}

// NotExist is the error for a missing key; errors.Is(err, fs.ErrNotExist)
// holds, as certmagic expects.
func NotExist(op, key string) error {
	return &fs.PathError{Op: op, Path: key, Err: fs.ErrNotExist}
}

// IsNotExist reports whether err says a key is missing.
func IsNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }

// List returns the entries of dir, sorted, given the file keys below it
// (each starting with Under(dir)): with recursive every file and
// directory below dir, otherwise only its direct children.
func List(dir string, files []string, recursive bool) []string {
	under := Under(dir)
	seen := map[string]bool{}
	var out []string
	for _, f := range files {
		parts := strings.Split(strings.TrimPrefix(f, under), "/")
		depth := len(parts)
		if !recursive {
			depth = 1
		}
		for i := 1; i <= depth; i++ {
			entry := under + strings.Join(parts[:i], "/")
			if !seen[entry] {
				seen[entry] = true
				out = append(out, entry)
			}
		}
	}
	slices.Sort(out)
	return out
}

// NewOwner returns a random lock owner token: each Lock call gets its own,
// so an Unlock releases only what its Lock took.
func NewOwner() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
