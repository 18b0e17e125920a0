package engine_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/hoodcloud/hoodcloud/engine"
)

func TestHostSpecHidesTheEnrollmentToken(t *testing.T) {
	const token = "hcenroll_super-secret-value"
	spec := engine.HostSpec{NodeID: "n1", Provider: "hetzner", Bootstrap: engine.HostBootstrap{
		AgentURL: "https://x.example/hc", GatewayAddr: "gw:7443", CACertPEM: []byte("pem"), EnrollmentToken: token,
	}}
	var text, js bytes.Buffer
	slog.New(slog.NewTextHandler(&text, nil)).Info("create", "spec", spec, "bootstrap", spec.Bootstrap)
	slog.New(slog.NewJSONHandler(&js, nil)).Info("create", "spec", spec, "bootstrap", spec.Bootstrap)
	outputs := map[string]string{
		"%v":        fmt.Sprintf("%v", spec),
		"%+v":       fmt.Sprintf("%+v", spec),
		"%#v":       fmt.Sprintf("%#v", spec),
		"Sprint":    fmt.Sprint(spec.Bootstrap),
		"slog text": text.String(),
		"slog json": js.String(),
	}
	for how, out := range outputs {
		if strings.Contains(out, token) {
			t.Errorf("%s shows the token: %s", how, out)
		}
		if !strings.Contains(out, "n1") && how != "Sprint" {
			t.Errorf("%s lost the node id: %s", how, out)
		}
	}
}
