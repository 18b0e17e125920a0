package gateway_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/agent/gateway"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func TestGatewayServesHealthUntilClosed(t *testing.T) {
	g := gateway.New(gateway.Config{Addr: "127.0.0.1:0"})
	if err := g.Open(); err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(g.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health = %v, %v; want SERVING", resp, err)
	}
	g.Close(ctx)
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err == nil {
		t.Fatal("health still answers after Close")
	}
}

func TestGatewayPortInUseIsAClearError(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	err = gateway.New(gateway.Config{Addr: busy.Addr().String()}).Open()
	if err == nil || !strings.Contains(err.Error(), "agent gateway listen "+busy.Addr().String()) {
		t.Fatalf("Open on a busy port = %v", err)
	}
}
