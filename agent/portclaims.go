package agent

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
)

// portClaimsDir records, machine-wide, the ports chains on this machine
// were given: a port the kernel hands out as free is free only until its
// listener closes, and the hosts of the local provisioner share one
// machine, so two chains could otherwise draw the same one before either
// binds it. A file per port holds the chain data dir that has it.
var portClaimsDir = filepath.Join(os.TempDir(), "hoodcloud-port-claims") // --port-claims-dir

// claimPort records port for the chain in chainDir, and reports false when
// another chain that still exists holds it. The record is best effort: a
// machine where it cannot be kept allocates as if nobody else did.
func claimPort(port int, chainDir string) bool {
	if err := os.MkdirAll(portClaimsDir, 0o700); err != nil {
		return true
	}
	path := filepath.Join(portClaimsDir, strconv.Itoa(port))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err == nil {
		_, err = f.WriteString(chainDir)
		return errors.Join(err, f.Close()) == nil
	}
	if !errors.Is(err, fs.ErrExist) {
		return true
	}
	owner, err := os.ReadFile(path)
	switch {
	case err != nil:
		return false
	case string(owner) == chainDir:
		return true
	}
	if _, err := os.Stat(string(owner)); err == nil {
		return false // its chain is still there
	}
	// The chain that held it is gone (its host destroyed).
	return os.WriteFile(path, []byte(chainDir), 0o600) == nil
}
