package agent

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"

	agentv1 "github.com/hoodcloud/hoodcloud/proto/agent/v1"
)

// maxArtifactSize bounds a download: chain binaries and genesis files are
// large, but not this large.
const maxArtifactSize = 8 << 30

// installedMarker, beside an installed binary, holds the digest of the
// artifact it came from and the installed program's: the same artifact is
// not downloaded again while the program is unchanged.
const installedMarker = ".artifact-sha256"

var versionDirName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$`)

// installDir is where c's binary is installed, relative to the chain data
// dir: .hoodcloud/bin/<component>/<version>, or .../sha256-<digest
// prefix> for a component without a version.
func installDir(c *agentv1.Component) string {
	v := c.GetVersion()
	if v == "" {
		v = "sha256-" + strings.ToLower(c.GetArtifact().GetSha256())[:16]
	}
	return filepath.Join(binDir, c.GetName(), v)
}

// binaryName is the installed binary's file name: that of the binary in
// the archive, else the component's name.
func binaryName(c *agentv1.Component) string {
	if c.GetBinary() != "" {
		return path.Base(c.GetBinary())
	}
	return c.GetName()
}

// isArchive: artifacts whose URL path ends in .tar.gz or .tgz are archives.
func isArchive(rawURL string) bool {
	u, err := url.Parse(rawURL)
	if err != nil {
		return false
	}
	return strings.HasSuffix(u.Path, ".tar.gz") || strings.HasSuffix(u.Path, ".tgz")
}

// checkArtifacts refuses components whose artifacts cannot be installed
// safely: a digest is required, and the version and binary become paths.
func checkArtifacts(comps []*agentv1.Component) error {
	for _, c := range comps {
		a := c.GetArtifact()
		if a.GetUrl() == "" {
			if len(c.GetArgs()) == 0 {
				return permanent(fmt.Sprintf("component %q has neither an artifact nor a command line", c.GetName()))
			}
			continue
		}
		if err := checkDigest(a); err != nil {
			return permanent(fmt.Sprintf("component %q: %v", c.GetName(), err))
		}
		if v := c.GetVersion(); v != "" && !versionDirName.MatchString(v) {
			return permanent(fmt.Sprintf("component %q: version %q cannot name a directory", c.GetName(), v))
		}
		if err := checkBinary(c); err != nil {
			return permanent(fmt.Sprintf("component %q: %v", c.GetName(), err))
		}
	}
	return nil
}

func checkDigest(a *agentv1.Artifact) error {
	if !imageDigest.MatchString(strings.ToLower(a.GetSha256())) {
		return errors.New("the artifact's sha256 is not 64 hex digits")
	}
	return nil
}

func checkBinary(c *agentv1.Component) error {
	b, archive := c.GetBinary(), isArchive(c.GetArtifact().GetUrl())
	switch {
	case archive && b == "":
		return errors.New("the artifact is an archive but no binary in it is named")
	case !archive && b != "":
		return errors.New("a binary is named but the artifact is not a .tar.gz or .tgz archive")
	case b != "" && (ValidateKeyPath(b) != nil || strings.HasSuffix(b, "/")):
		return fmt.Errorf("binary %q is not a path inside the archive", b)
	}
	return nil
}

// installArtifacts downloads, verifies and installs every component's
// artifact that is not installed with the same digest already.
func (h *chainHost) installArtifacts(ctx context.Context, root *os.Root, comps []*agentv1.Component, progress ProgressFunc) error {
	for _, c := range comps {
		if c.GetArtifact().GetUrl() == "" {
			continue
		}
		if err := h.ensureInstalled(ctx, root, c, progress); err != nil {
			return err
		}
	}
	return nil
}

// installed reports whether c's binary is in place from the same artifact.
// The marker holds the artifact's digest and the installed program's: the
// program is hashed again, so a file changed since (by anyone) is
// installed anew rather than run.
func installed(root *os.Root, c *agentv1.Component) bool {
	dir := installDir(c)
	got, err := root.ReadFile(filepath.Join(dir, installedMarker))
	artifact, program, ok := strings.Cut(string(got), "\n")
	if err != nil || !ok || artifact != strings.ToLower(c.GetArtifact().GetSha256()) {
		return false
	}
	sum, err := rootFileSHA256(root, filepath.Join(dir, binaryName(c)))
	return err == nil && sum == strings.TrimSpace(program)
}

func (h *chainHost) install(ctx context.Context, root *os.Root, c *agentv1.Component, progress ProgressFunc) error {
	what := fmt.Sprintf("component %q", c.GetName())
	tmp, err := h.download(ctx, root, c.GetArtifact(), what, progress)
	if err != nil {
		return err
	}
	defer root.Remove(tmp)
	dir := installDir(c)
	if err := root.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("%s: install: %w", what, err)
	}
	target := filepath.Join(dir, binaryName(c))
	if c.GetBinary() != "" {
		if tmp, err = extractBinary(root, tmp, c.GetBinary(), dir); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		defer root.Remove(tmp)
	}
	if err := root.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("%s: install: %w", what, err)
	}
	if err := root.Rename(tmp, target); err != nil {
		return fmt.Errorf("%s: install: %w", what, err)
	}
	program, err := rootFileSHA256(root, target)
	if err != nil {
		return fmt.Errorf("%s: install: %w", what, err)
	}
	marker := strings.ToLower(c.GetArtifact().GetSha256()) + "\n" + program + "\n"
	return writeInRoot(root, filepath.Join(dir, installedMarker), []byte(marker), 0o644)
}

// extractBinary copies the regular file named binary out of the .tar.gz
// archive into a new file in dir, and returns that file. Nothing else in
// the archive is written.
func extractBinary(root *os.Root, archive, binary, dir string) (string, error) {
	f, err := root.Open(archive)
	if err != nil {
		return "", err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return "", permanent("the artifact is not a gzip archive: " + err.Error())
	}
	tr := tar.NewReader(zr)
	want := path.Clean(binary)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return "", permanent(fmt.Sprintf("the archive holds no %q", binary))
		}
		if err != nil {
			return "", permanent("read the archive: " + err.Error())
		}
		if path.Clean(strings.TrimPrefix(hdr.Name, "./")) != want {
			continue
		}
		if hdr.Typeflag != tar.TypeReg {
			return "", permanent(fmt.Sprintf("%q in the archive is not a regular file", binary))
		}
		return copyToNew(root, dir, io.LimitReader(tr, maxArtifactSize))
	}
}

// copyToNew writes r to a new file in dir and returns its path.
func copyToNew(root *os.Root, dir string, r io.Reader) (string, error) {
	tmp := filepath.Join(dir, ".install-"+randomSuffix())
	out, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o700)
	if err != nil {
		return "", err
	}
	_, err = io.Copy(out, r)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		root.Remove(tmp)
		return "", err
	}
	return tmp, nil
}

// download fetches a into a new file under downloadDir, verifying its
// SHA-256 as it arrives, and returns the file. A digest that differs is a
// permanent failure and the file is removed.
func (h *chainHost) download(ctx context.Context, root *os.Root, a *agentv1.Artifact, what string, progress ProgressFunc) (string, error) {
	if err := checkDigest(a); err != nil {
		return "", permanent(fmt.Sprintf("%s: %v", what, err))
	}
	body, total, err := h.open(ctx, a.GetUrl())
	if err != nil {
		return "", fmt.Errorf("%s: download: %w", what, err)
	}
	defer body.Close()
	if err := root.MkdirAll(downloadDir, 0o700); err != nil {
		return "", fmt.Errorf("%s: download: %w", what, err)
	}
	sum := sha256.New()
	counted := &progressReader{r: io.TeeReader(io.LimitReader(body, maxArtifactSize+1), sum), total: total, what: what, progress: progress}
	tmp, err := copyToNew(root, downloadDir, counted)
	if err != nil {
		return "", fmt.Errorf("%s: download: %w", what, err)
	}
	if err := verifyDownload(sum, counted.done, a.GetSha256()); err != nil {
		root.Remove(tmp)
		return "", permanent(fmt.Sprintf("%s: %v; not installed", what, err))
	}
	return tmp, nil
}

func verifyDownload(sum hash.Hash, size uint64, want string) error {
	if size > maxArtifactSize {
		return fmt.Errorf("the artifact is larger than %d bytes", uint64(maxArtifactSize))
	}
	if got := hex.EncodeToString(sum.Sum(nil)); got != strings.ToLower(want) {
		return fmt.Errorf("the artifact's SHA-256 is %s, not the expected %s", got, strings.ToLower(want))
	}
	return nil
}

// open starts reading an http(s) or file URL; total is 0 when unknown.
// Errors show the URL without credentials or query.
func (h *chainHost) open(ctx context.Context, rawURL string) (io.ReadCloser, uint64, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, 0, permanent("the artifact URL does not parse")
	}
	shown := (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
	switch u.Scheme {
	case "file":
		f, err := os.Open(u.Path)
		if err != nil {
			return nil, 0, permanent(fmt.Sprintf("%s: %v", shown, errors.Unwrap(err)))
		}
		var size uint64
		if fi, err := f.Stat(); err == nil {
			size = uint64(fi.Size())
		}
		return f, size, nil
	case "http", "https":
		return h.get(ctx, u, shown)
	default:
		return nil, 0, permanent(fmt.Sprintf("artifact URL scheme %q: want http, https or file", u.Scheme))
	}
}

func (h *chainHost) get(ctx context.Context, u *url.URL, shown string) (io.ReadCloser, uint64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, 0, permanent("the artifact URL is not usable")
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("GET %s failed", shown) // the error would show the whole URL
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		err := fmt.Errorf("GET %s: %s", shown, resp.Status)
		if resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests {
			return nil, 0, permanent(err.Error())
		}
		return nil, 0, err
	}
	return resp.Body, uint64(max(resp.ContentLength, 0)), nil
}

// progressReader reports the bytes read so far.
type progressReader struct {
	r        io.Reader
	done     uint64
	total    uint64
	what     string
	progress ProgressFunc
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.done += uint64(n)
	pct := 0.0
	if p.total > 0 {
		pct = min(60*float64(p.done)/float64(p.total), 60) // downloads are the first 60%
	}
	p.progress(Progress{Percent: pct, BytesDone: p.done, BytesTotal: p.total, Message: "download " + p.what})
	return n, err
}

// writeGenesis writes the chain's genesis: downloaded and verified unless
// the file there has the digest already, or given.
func (h *chainHost) writeGenesis(ctx context.Context, root *os.Root, g *agentv1.Genesis, progress ProgressFunc) error {
	if g == nil {
		return nil
	}
	a := g.GetArtifact()
	if a.GetUrl() == "" {
		if err := writeInRoot(root, g.GetPath(), g.GetContent(), 0o644); err != nil {
			return fmt.Errorf("genesis %q: %w", g.GetPath(), err)
		}
		return nil
	}
	if got, err := rootFileSHA256(root, g.GetPath()); err == nil && got == strings.ToLower(a.GetSha256()) {
		return nil
	}
	tmp, err := h.download(ctx, root, a, "genesis", progress)
	if err != nil {
		return err
	}
	defer root.Remove(tmp)
	if d := filepath.Dir(g.GetPath()); d != "." {
		if err := root.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("genesis %q: %w", g.GetPath(), err)
		}
	}
	if err := root.Chmod(tmp, 0o644); err != nil {
		return fmt.Errorf("genesis %q: %w", g.GetPath(), err)
	}
	if err := root.Rename(tmp, g.GetPath()); err != nil {
		return fmt.Errorf("genesis %q: %w", g.GetPath(), err)
	}
	return nil
}

func rootFileSHA256(root *os.Root, name string) (string, error) {
	f, err := root.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return "", fs.ErrInvalid
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
