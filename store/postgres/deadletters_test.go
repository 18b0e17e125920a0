package postgres_test

import (
	"testing"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/engine/enginetest"
)

func TestPaymentDeadLetterStore(t *testing.T) {
	enginetest.RunPaymentDeadLetterStore(t, func(t *testing.T) engine.Store {
		return mustOpen(t, mustMigratedDatabase(t))
	})
}
