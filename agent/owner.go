package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"strconv"
	"strings"
)

// giveToUser makes the account the chain runs as the owner of what the
// chain reads and writes in the chain data dir: the agent writes files,
// keys and what init steps make as itself, and a key file of mode 0600 is
// readable by its owner only. The chain data dir itself and the agent's
// own directory stay the agent's, so the chain's account can neither
// rename nor replace the programs the agent runs. Without such an account
// (a development host) it does nothing.
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
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("chain data dir: %w", err)
	}
	defer root.Close()
	return chownTree(root, uid, gid)
}

// giveToContainerUser hands the chain's files to the numeric "uid[:gid]"
// the containers run as (--user); an empty user keeps the image's, and
// the files the agent's.
func giveToContainerUser(root *os.Root, containerUser string) error {
	if containerUser == "" {
		return nil
	}
	u, g, hasGroup := strings.Cut(containerUser, ":")
	uid, err := strconv.Atoi(u)
	gid := uid
	if err == nil && hasGroup {
		gid, err = strconv.Atoi(g)
	}
	if err != nil {
		return permanent(fmt.Sprintf("the container user %q is not a numeric uid[:gid]", containerUser))
	}
	return chownTree(root, uid, gid)
}

// chownTree changes the owner of everything below root but the agent's
// directory. It goes through root, so a path the chain's account swapped
// for a symlink mid-walk cannot lead it outside, and never follows one.
func chownTree(root *os.Root, uid, gid int) error {
	return fs.WalkDir(root.FS(), ".", func(path string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case path == ".":
			return nil
		case d.IsDir() && path == hostDir:
			return fs.SkipDir
		}
		if err := walkChown(root, path, uid, gid); err != nil {
			return fmt.Errorf("hand %s to the chain's user: %w", path, err)
		}
		return nil
	})
}

// walkChown is (*os.Root).Lchown; tests, which cannot give files away,
// watch it.
var walkChown = func(root *os.Root, path string, uid, gid int) error { return root.Lchown(path, uid, gid) }
