package local

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The files of a host directory. The enrolment token is kept (0600, like
// the env file a cloud host gets) only until the agent holds its
// certificate: an agent interrupted while enrolling, by an appliance
// crash say, needs it again when the host is adopted after the restart.
const (
	tokenFile      = "enroll.token"         // the one-time enrolment token, until the agent enrolled
	agentCertFile  = "agent/agent-cert.pem" // written by the agent once enrolled
	hostFile       = "host.json"            // hostRecord: labels, so ListHosts survives a restart
	caFile         = "ca.pem"               // the appliance agent CA, 0600
	agentDataDir   = "agent"                // the agent's --data-dir
	logFile        = "agent.log"            // the agent's stdout and stderr
	pidFile        = "agent.pid"            // the agent's pid, to stop an orphan after an appliance crash
	destroyingFile = "destroying"           // present once a destruction began: never restart the agent
	creatingPrefix = ".creating-"           // a host directory being assembled, renamed into place when whole
	removingPrefix = ".removing-"           // a destroyed host's directory, renamed away before its removal
)

// hostRecord is what host.json holds.
type hostRecord struct {
	NodeID      string            `json:"node_id"`
	Incarnation string            `json:"incarnation,omitempty"`
	Labels      map[string]string `json:"labels"`
	GatewayAddr string            `json:"gateway_addr"`
	CreatedAt   time.Time         `json:"created_at"`
}

func (r hostRecord) hostID() string { return hostID(r.NodeID, r.Incarnation) }

// hostDir is the directory of host id.
func (p *Provisioner) hostDir(id string) string { return filepath.Join(p.cfg.Dir, id) }

// readRecord reads the host.json of dir; fs.ErrNotExist if there is none.
func readRecord(dir string) (hostRecord, error) {
	var r hostRecord
	b, err := os.ReadFile(filepath.Join(dir, hostFile))
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("read %s: %w", filepath.Join(dir, hostFile), err)
	}
	return r, nil
}

// assembleHostDir writes a complete host directory under a temporary name
// and renames it into place, so a crash never leaves a half-made host that
// CreateHost would return. fs.ErrExist if the host directory appeared
// meanwhile.
func (p *Provisioner) assembleHostDir(rec hostRecord, caPEM []byte) error {
	tmp, err := os.MkdirTemp(p.cfg.Dir, creatingPrefix+rec.hostID()+"-")
	if err != nil {
		return fmt.Errorf("make host dir: %w", err)
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	if err := writeHostFiles(tmp, rec, caPEM); err != nil {
		return err
	}
	err = os.Rename(tmp, p.hostDir(rec.hostID()))
	if err != nil && dirExists(p.hostDir(rec.hostID())) {
		return fs.ErrExist
	}
	if err != nil {
		return fmt.Errorf("make host dir: %w", err)
	}
	return nil
}

func writeHostFiles(dir string, rec hostRecord, caPEM []byte) error {
	if err := os.WriteFile(filepath.Join(dir, caFile), caPEM, 0o600); err != nil {
		return fmt.Errorf("write ca file: %w", err)
	}
	if err := os.Mkdir(filepath.Join(dir, agentDataDir), 0o700); err != nil {
		return fmt.Errorf("make agent data dir: %w", err)
	}
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return fmt.Errorf("encode host record: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, hostFile), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write host record: %w", err)
	}
	return nil
}

// markDestroying records that the host is going away, so that an appliance
// restarting halfway through a destruction does not start its agent again.
func markDestroying(dir string) error {
	err := os.WriteFile(filepath.Join(dir, destroyingFile), nil, 0o600)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // the directory is gone already
	}
	return err
}

func isDestroying(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, destroyingFile))
	return err == nil
}

func dirExists(dir string) bool {
	fi, err := os.Stat(dir)
	return err == nil && fi.IsDir()
}

func writePID(dir string, pid int) error {
	return os.WriteFile(filepath.Join(dir, pidFile), []byte(strconv.Itoa(pid)+"\n"), 0o600)
}

func readPID(dir string) int {
	b, err := os.ReadFile(filepath.Join(dir, pidFile))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return 0
	}
	return pid
}

// removeHostDir moves the host directory into a trash directory, so the
// host is gone at once, then deletes it; Open finishes a deletion an
// appliance crash cut short.
func (p *Provisioner) removeHostDir(id string) error {
	if !dirExists(p.hostDir(id)) {
		return nil
	}
	trash, err := os.MkdirTemp(p.cfg.Dir, removingPrefix+id+"-")
	if err != nil {
		return fmt.Errorf("remove host dir: %w", err)
	}
	if err := os.Rename(p.hostDir(id), filepath.Join(trash, id)); err != nil {
		_ = os.Remove(trash)
		return fmt.Errorf("remove host dir: %w", err)
	}
	if err := os.RemoveAll(trash); err != nil {
		return fmt.Errorf("remove host dir: %w", err)
	}
	return nil
}

// removeLeftovers deletes the directories of creations and destructions
// that never finished.
func (p *Provisioner) removeLeftovers() error {
	entries, err := os.ReadDir(p.cfg.Dir)
	if err != nil {
		return fmt.Errorf("read hosts dir: %w", err)
	}
	for _, e := range entries {
		leftover := strings.HasPrefix(e.Name(), creatingPrefix) || strings.HasPrefix(e.Name(), removingPrefix)
		if e.IsDir() && leftover {
			if err := os.RemoveAll(filepath.Join(p.cfg.Dir, e.Name())); err != nil {
				return fmt.Errorf("remove unfinished host dir: %w", err)
			}
		}
	}
	return nil
}
