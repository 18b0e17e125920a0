package web

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/hoodcloud/hoodcloud/engine"
)

// AgentBinaryName is the file node hosts download: the ops-agent
// (hoodcloud-agent) built for linux/amd64.
const AgentBinaryName = "hoodcloud-agent-linux-amd64"

// AgentBinaryPath is where the appliance serves it; AgentBinaryPath +
// ".sha256" serves its digest as sha256sum prints it.
const AgentBinaryPath = "/agent/" + AgentBinaryName

// EAgentBinaryMissing is the error code of an appliance that has no
// ops-agent binary to hand out: its readiness reports it, and the download
// answers 503 with it.
const EAgentBinaryMissing engine.Code = "agent_binary_missing"

// AgentBinary is the ops-agent executable the appliance hands to the hosts
// it creates. It serves the bytes of the file as it was opened, whatever
// later happens to its path (an upgrade renaming a new build over it), so
// that they always match SHA256. Safe for concurrent use.
type AgentBinary struct {
	file    *os.File
	size    int64
	modTime time.Time
	sha256  string
}

// OpenAgentBinary opens the executable at path and digests it. A missing or
// unreadable file, or one that is not an executable regular file, is an
// error with code EAgentBinaryMissing naming the path.
func OpenAgentBinary(path string) (*AgentBinary, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, agentBinaryMissing(path, err)
	}
	b, err := digestAgentBinary(path, f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return b, nil
}

func digestAgentBinary(path string, f *os.File) (*AgentBinary, error) {
	st, err := f.Stat()
	switch {
	case err != nil:
		return nil, agentBinaryMissing(path, err)
	case !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0:
		return nil, agentBinaryMissing(path, errors.New("not an executable file"))
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, st.Size())); err != nil {
		return nil, agentBinaryMissing(path, err)
	}
	return &AgentBinary{file: f, size: st.Size(), modTime: st.ModTime(), sha256: hex.EncodeToString(h.Sum(nil))}, nil
}

func agentBinaryMissing(path string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		err = errors.New("no such file")
	}
	return engine.Errorf(EAgentBinaryMissing, "no ops-agent binary to hand out to hosts at %s (%v): build it (make build puts hoodcloud-agent beside hoodcloud) or set --agent-binary, then restart", path, err)
}

// SHA256 is the hex SHA-256 of the binary, as sha256sum prints it.
func (b *AgentBinary) SHA256() string { return b.sha256 }

// Close releases the file.
func (b *AgentBinary) Close() error { return b.file.Close() }

func (s *Server) routeAgentBinary() {
	s.router.GET(AgentBinaryPath, s.agentBinary)
	s.router.HEAD(AgentBinaryPath, s.agentBinary)
	s.router.GET(AgentBinaryPath+".sha256", s.agentBinarySum)
}

// agentBinary serves the ops-agent to hosts, with ranges so that an
// interrupted download resumes. It needs no credential: the binary holds no
// secret, and hosts check it against the digest their bootstrap carries.
func (s *Server) agentBinary(c *gin.Context) {
	b := s.cfg.AgentBinary
	if b == nil {
		writeAgentBinaryMissing(c)
		return
	}
	c.Header("Content-Type", "application/octet-stream")
	c.Header("Content-Disposition", `attachment; filename="`+AgentBinaryName+`"`)
	http.ServeContent(c.Writer, c.Request, AgentBinaryName, b.modTime, io.NewSectionReader(b.file, 0, b.size))
}

// agentBinarySum serves the digest in sha256sum's format, so that
// `sha256sum --check` verifies a download saved under AgentBinaryName.
func (s *Server) agentBinarySum(c *gin.Context) {
	b := s.cfg.AgentBinary
	if b == nil {
		writeAgentBinaryMissing(c)
		return
	}
	c.Data(http.StatusOK, "text/plain; charset=utf-8", fmt.Appendf(nil, "%s  %s\n", b.sha256, AgentBinaryName))
}

func writeAgentBinaryMissing(c *gin.Context) {
	writeStatus(c, http.StatusServiceUnavailable, string(EAgentBinaryMissing), "this appliance has no ops-agent binary to hand out")
}
