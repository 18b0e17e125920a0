package agent

import (
	"os"
	"os/user"
	"path/filepath"
	"testing"
)

func TestChainFilesGoToTheChainsUserButNotTheAgentsDirectory(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"config/priv_validator_key.json", hostDir + "/bin/x/1/x"} {
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte("k"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var changed []string
	saved := walkChown
	walkChown = func(_ *os.Root, path string, uid, gid int) error {
		changed = append(changed, path)
		return nil
	}
	t.Cleanup(func() { walkChown = saved })
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	if err := chownTree(root, 1234, 1234); err != nil {
		t.Fatal(err)
	}
	// The chain data dir and the agent's directory stay the agent's.
	want := []string{"config", "config/priv_validator_key.json"}
	if len(changed) != len(want) {
		t.Fatalf("changed %v, want %v", changed, want)
	}
	for i := range want {
		if changed[i] != want[i] {
			t.Fatalf("changed %v, want %v", changed, want)
		}
	}
}

func TestWithoutTheChainsUserNothingChanges(t *testing.T) {
	if _, err := user.Lookup("hoodcloud-no-such-user"); err == nil {
		t.Skip("the account exists here")
	}
	if err := giveToUser(t.TempDir(), "hoodcloud-no-such-user"); err != nil {
		t.Fatalf("a host without the chain's user: %v", err)
	}
}

func TestContainerFilesGoToTheContainersNumericUser(t *testing.T) {
	root, err := os.OpenRoot(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	if err := root.WriteFile("key", []byte("k"), 0o600); err != nil {
		t.Fatal(err)
	}
	var got [][2]int
	saved := walkChown
	walkChown = func(_ *os.Root, _ string, uid, gid int) error {
		got = append(got, [2]int{uid, gid})
		return nil
	}
	t.Cleanup(func() { walkChown = saved })
	for user, want := range map[string][2]int{"1000:1001": {1000, 1001}, "1000": {1000, 1000}} {
		got = nil
		if err := giveToContainerUser(root, user); err != nil || len(got) != 1 || got[0] != want {
			t.Errorf("user %q: chowned %v, %v; want %v", user, got, err, want)
		}
	}
	if err := giveToContainerUser(root, "chain"); err == nil {
		t.Error("a container user by name was accepted: its uid inside the image is unknown here")
	}
}
