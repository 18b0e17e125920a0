package profile

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/hoodcloud/hoodcloud/engine"
)

// ChecksumsFile, when a source has one, lists the SHA-256 of every profile
// file in the `sha256sum` format ("<hex>  <name>"). A release writes it last,
// so a half-copied release fails verification instead of being loaded.
const ChecksumsFile = "checksums.txt"

// Source is a place profiles are read from: the *.yaml and *.yml files at the
// root of FS. A later source overrides an earlier one profile by profile (by
// id), so the config dir comes after the embedded defaults.
type Source struct {
	Name string // recorded as ChainProfile.Source: "assets", or the config dir
	FS   fs.FS  // nil, or a root that does not exist, is an empty source
}

type sourceFile struct {
	name string
	data []byte
}

// sourceFiles is what one read of every source found.
type sourceFiles struct {
	files     [][]sourceFile // per source: profile files sorted by name
	checksums [][]byte       // per source: the checksums file, nil if absent
	sum       string         // fingerprint of all of the above
}

func readSources(sources []Source) (*sourceFiles, error) {
	sf := &sourceFiles{files: make([][]sourceFile, len(sources)), checksums: make([][]byte, len(sources))}
	h := sha256.New()
	for i, src := range sources {
		files, sums, err := readSource(src)
		if err != nil {
			return nil, fmt.Errorf("read chain profiles from %s: %w", src.Name, err)
		}
		sf.files[i], sf.checksums[i] = files, sums
		hashFile(h, fmt.Sprintf("source %d", i), nil)
		hashFile(h, ChecksumsFile, sums)
		for _, f := range files {
			hashFile(h, f.name, f.data)
		}
		if err := hashCompanions(h, src); err != nil {
			return nil, fmt.Errorf("read chain profiles from %s: %w", src.Name, err)
		}
	}
	sf.sum = hex.EncodeToString(h.Sum(nil))
	return sf, nil
}

// hashCompanions adds the other files beside the profiles (a genesis file
// a profile names, say) by name, size and modification time, so that the
// watcher reloads when one of them changes.
func hashCompanions(h interface{ Write([]byte) (int, error) }, src Source) error {
	if src.FS == nil {
		return nil
	}
	entries, err := fs.ReadDir(src.FS, ".")
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") || isProfileFile(name) || name == ChecksumsFile {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // gone since the listing
		}
		hashFile(h, name, fmt.Appendf(nil, "%d %d", info.Size(), info.ModTime().UnixNano()))
	}
	return nil
}

// hashFile writes a length-prefixed name and content so no two sets of files
// hash alike by shifting bytes between them.
func hashFile(h interface{ Write([]byte) (int, error) }, name string, data []byte) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(name)))
	h.Write(n[:])
	h.Write([]byte(name))
	binary.BigEndian.PutUint64(n[:], uint64(len(data)))
	h.Write(n[:])
	h.Write(data)
}

func readSource(src Source) ([]sourceFile, []byte, error) {
	if src.FS == nil {
		return nil, nil, nil
	}
	entries, err := fs.ReadDir(src.FS, ".")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	var files []sourceFile
	var sums []byte
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || (!isProfileFile(name) && name != ChecksumsFile) {
			continue
		}
		data, err := readBounded(src.FS, name)
		if err != nil {
			return nil, nil, err
		}
		if name == ChecksumsFile {
			sums = data
			continue
		}
		files = append(files, sourceFile{name: name, data: data})
	}
	return files, sums, nil // fs.ReadDir sorts by name
}

// isProfileFile skips hidden files: editors' lock and swap files, and the
// "..data"-style entries of atomically updated mounts.
func isProfileFile(name string) bool {
	return !strings.HasPrefix(name, ".") && (strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml"))
}

func readBounded(fsys fs.FS, name string) ([]byte, error) {
	info, err := fs.Stat(fsys, name)
	if err != nil {
		return nil, err
	}
	if info.Size() > MaxProfileBytes {
		return nil, engine.Errorf(engine.EInvalid, "%s: larger than %d bytes", name, MaxProfileBytes)
	}
	return fs.ReadFile(fsys, name)
}

// verifyChecksums checks every profile file against the checksums file. Lines
// naming other files (upgrade manifests, nested paths) are not ours to check.
func verifyChecksums(srcName string, sums []byte, files []sourceFile) []string {
	want, bad := parseChecksums(sums)
	var problems []string
	for _, b := range bad {
		problems = append(problems, srcName+"/"+b)
	}
	for _, f := range files {
		digest, ok := want[f.name]
		sum := sha256.Sum256(f.data)
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("%s/%s: not listed in %s", srcName, f.name, ChecksumsFile))
		case digest != hex.EncodeToString(sum[:]):
			problems = append(problems, fmt.Sprintf("%s/%s: SHA-256 differs from %s", srcName, f.name, ChecksumsFile))
		}
		delete(want, f.name)
	}
	for _, name := range slices.Sorted(maps.Keys(want)) {
		problems = append(problems, fmt.Sprintf("%s/%s: listed in %s but missing", srcName, name, ChecksumsFile))
	}
	return problems
}

// parseChecksums reads "<hex>  <name>" lines (a "*" before the name marks
// binary mode in sha256sum and is ignored); blank lines and "#" comments are
// skipped.
func parseChecksums(data []byte) (map[string]string, []string) {
	want := map[string]string{}
	var bad []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		digest, name, ok := strings.Cut(line, " ")
		name = strings.TrimPrefix(strings.TrimSpace(name), "*")
		if !ok || !sha256Pattern.MatchString(strings.ToLower(digest)) || name == "" {
			bad = append(bad, fmt.Sprintf("%s line %d: want \"<sha256>  <file>\"", ChecksumsFile, n))
			continue
		}
		name = strings.TrimPrefix(path.Clean(name), "./")
		if !strings.Contains(name, "/") && isProfileFile(name) {
			want[name] = strings.ToLower(digest)
		}
	}
	if sc.Err() != nil {
		bad = append(bad, fmt.Sprintf("%s: %v", ChecksumsFile, sc.Err()))
	}
	return want, bad
}
