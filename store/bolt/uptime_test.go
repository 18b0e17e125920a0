package bolt

import (
	"path/filepath"
	"testing"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/enginetest"
)

func TestUptime(t *testing.T) {
	enginetest.RunUptime(t, func(t *testing.T) engine.Store {
		return openAt(t, filepath.Join(t.TempDir(), "hoodcloud.db"))
	})
}
