package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
)

// giveToUser makes the account the chain runs as the owner of everything
// in the chain data dir but the agent's own directory (installed
// programs stay the agent's): the agent writes files, keys and what init
// steps make as itself, and a key file of mode 0600 is readable by its
// owner only. Without such an account (a development host) it does
// nothing.
func giveToUser(dir, account string) error {
	u, err := user.Lookup(account)
	var unknown user.UnknownUserError
	if errors.As(err, &unknown) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("look up user %s: %w", account, err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return fmt.Errorf("user %s has no numeric uid and gid", account)
	}
	return chownTree(dir, uid, gid)
}

// chownTree changes the owner of dir and everything below it, skipping the
// agent's directory and never following a symlink.
func chownTree(dir string, uid, gid int) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == hostDir && filepath.Dir(path) == filepath.Clean(dir) {
			return filepath.SkipDir
		}
		if err := walkChown(path, uid, gid); err != nil {
			return fmt.Errorf("hand %s to the chain's user: %w", path, err)
		}
		return nil
	})
}

// walkChown is os.Lchown; tests, which cannot give files away, watch it.
var walkChown = os.Lchown
