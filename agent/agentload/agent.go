package agentload

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	crand "crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/rand/v2"
	"time"

	agentv1 "github.com/hoodcloud/hoodcloud/proto/agent/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
)

// simAgent is one simulated ops-agent: its node, its connection under its
// own certificate, and what it last reported.
type simAgent struct {
	nodeID string
	conn   *grpc.ClientConn
	rpc    agentv1.AgentServiceClient
	height uint64 // the simulated chain's height, one block per heartbeat
}

// enrollAgent enrols as the ops-agent does (a fresh P-256 key, a CSR, the
// Enroll call over server-authenticated TLS), then connects with the
// issued certificate and heartbeats once.
func enrollAgent(ctx context.Context, cfg Config, tok EnrollmentToken) (*simAgent, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), crand.Reader)
	if err != nil {
		return nil, err
	}
	certDER, err := callEnroll(ctx, cfg, tok, key)
	if err != nil {
		return nil, err
	}
	a := &simAgent{nodeID: tok.NodeID, height: rand.Uint64N(1 << 24)}
	if err := a.connect(cfg, tls.Certificate{Certificate: [][]byte{certDER}, PrivateKey: key}); err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, cfg.CallTimeout)
	defer cancel()
	if _, err := a.heartbeat(cctx, cfg.Version); err != nil {
		a.close()
		return nil, err
	}
	return a, nil
}

func callEnroll(ctx context.Context, cfg Config, tok EnrollmentToken, key *ecdsa.PrivateKey) ([]byte, error) {
	csr, err := x509.CreateCertificateRequest(crand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: tok.NodeID}}, key)
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient(cfg.Gateway, grpc.WithTransportCredentials(credentials.NewTLS(tlsConfig(cfg, nil))))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	cctx, cancel := context.WithTimeout(ctx, cfg.CallTimeout)
	defer cancel()
	resp, err := agentv1.NewAgentServiceClient(conn).Enroll(cctx, &agentv1.EnrollRequest{
		EnrollmentToken: tok.Token, NodeId: tok.NodeID, CsrDer: csr, AgentVersion: cfg.Version,
	})
	if err != nil {
		return nil, err
	}
	if len(resp.GetCertificateChainDer()) == 0 {
		return nil, errors.New("the gateway returned no certificate")
	}
	return resp.GetCertificateChainDer()[0], nil
}

// connect opens the agent's connection with the ops-agent's settings:
// TLS 1.3 trusting only the agent CA, and its reconnection backoff.
func (a *simAgent) connect(cfg Config, cert tls.Certificate) error {
	conn, err := grpc.NewClient(cfg.Gateway,
		grpc.WithTransportCredentials(credentials.NewTLS(tlsConfig(cfg, &cert))),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: cfg.MinBackoff, Multiplier: 1.6, Jitter: 0.2, MaxDelay: cfg.MaxBackoff},
			MinConnectTimeout: 5 * time.Second,
		}))
	if err != nil {
		return err
	}
	a.conn, a.rpc = conn, agentv1.NewAgentServiceClient(conn)
	return nil
}

func tlsConfig(cfg Config, cert *tls.Certificate) *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(cfg.CA)
	c := &tls.Config{RootCAs: pool, ServerName: cfg.ServerName, MinVersion: tls.VersionTLS13}
	if cert != nil {
		c.Certificates = []tls.Certificate{*cert}
	}
	return c
}

// heartbeat reports what a healthy, synced node's agent reports. Only the
// agent's own goroutine calls it.
func (a *simAgent) heartbeat(ctx context.Context, version string) (*agentv1.HeartbeatResponse, error) {
	a.height++
	return a.rpc.Heartbeat(ctx, &agentv1.HeartbeatRequest{
		NodeId: a.nodeID, AgentVersion: version, AppHealth: agentv1.AppHealth_APP_HEALTH_HEALTHY,
		Sync: &agentv1.SyncStatus{CurrentHeight: a.height, HighestHeight: a.height, Peers: 8},
	})
}

func (a *simAgent) close() {
	if a.conn != nil {
		a.conn.Close()
	}
}
