package bolt

import (
	"path/filepath"
	"testing"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/enginetest"
)

func TestPaymentDeadLetterStoreConformance(t *testing.T) {
	enginetest.RunPaymentDeadLetterStore(t, func(t *testing.T) engine.Store {
		return openAt(t, filepath.Join(t.TempDir(), "hoodcloud.db"))
	})
}
