package gateway

import (
	"context"
	"testing"

	"github.com/hoodcloud/hoodcloud/engine"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestGatewayErrorCodesAreMappedInOneTable(t *testing.T) {
	for code, want := range map[engine.Code]codes.Code{
		engine.ENotFound: codes.NotFound, engine.EUnauthorized: codes.Unauthenticated,
		engine.EForbidden: codes.PermissionDenied, engine.EInvalid: codes.InvalidArgument,
		engine.EUnavailable: codes.Unavailable, engine.EInternal: codes.Internal,
	} {
		err := toStatus(engine.Errorf(code, "m"))
		if status.Code(err) != want {
			t.Errorf("%s → %s; want %s", code, status.Code(err), want)
		}
	}
	if err := toStatus(context.DeadlineExceeded); status.Code(err) != codes.Internal || status.Convert(err).Message() != "internal error" {
		t.Errorf("a foreign error leaks: %v", err)
	}
}
