package agent

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"sync"
	"time"

	agentv1 "github.com/hoodcloud/hoodcloud/proto/agent/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

// rpcTimeout bounds each call to the gateway; a replaced connection is
// closed once calls begun on it have had this long to finish.
const rpcTimeout = 10 * time.Second

// gatewayConn is the agent's connection to the gateway under its current
// certificate. A renewal switches to a new connection for the calls that
// follow; the old one is closed after its calls had time to finish.
type gatewayConn struct {
	cfg AgentConfig

	mu      sync.Mutex
	creds   *agentCredentials
	conn    *grpc.ClientConn
	client  agentv1.AgentServiceClient
	retired sync.WaitGroup
	closed  chan struct{}
}

func dialGateway(cfg AgentConfig, creds *agentCredentials) (*gatewayConn, error) {
	g := &gatewayConn{cfg: cfg, closed: make(chan struct{})}
	if err := g.use(creds); err != nil {
		return nil, err
	}
	return g, nil
}

// use connects with creds; later calls go over the new connection.
func (g *gatewayConn) use(creds *agentCredentials) error {
	conn, err := grpc.NewClient(g.cfg.GatewayAddr,
		grpc.WithTransportCredentials(credentials.NewTLS(creds.tlsConfig(g.cfg.serverName()))),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: g.cfg.MinBackoff, Multiplier: 1.6, Jitter: 0.2, MaxDelay: g.cfg.MaxBackoff},
			MinConnectTimeout: 5 * time.Second,
		}))
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	g.mu.Lock()
	old := g.conn
	g.creds, g.conn, g.client = creds, conn, agentv1.NewAgentServiceClient(conn)
	g.mu.Unlock()
	if old != nil {
		g.retire(old)
	}
	return nil
}

// retire closes old once calls begun on it have finished or timed out.
func (g *gatewayConn) retire(old *grpc.ClientConn) {
	g.retired.Go(func() {
		select {
		case <-time.After(rpcTimeout + time.Second):
		case <-g.closed:
		}
		old.Close()
	})
}

func (g *gatewayConn) rpc() agentv1.AgentServiceClient {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.client
}

func (g *gatewayConn) credentials() *agentCredentials {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.creds
}

func (g *gatewayConn) close() {
	close(g.closed)
	g.retired.Wait()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.conn.Close()
}

// renewCertificates renews the certificate whenever it is due, retrying
// with backoff, until ctx ends.
func (a *opsAgent) renewCertificates(ctx context.Context) {
	for {
		if !sleep(ctx, time.Until(agentv1.RenewAt(a.gw.credentials().cert.Leaf))) {
			return
		}
		for failures := 0; ; failures++ {
			err := a.renew(ctx)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return
			}
			a.cfg.Logger.Warn("certificate renewal failed, retrying", "err", err, "code", status.Code(err).String(),
				"not_after", a.gw.credentials().cert.Leaf.NotAfter)
			if !sleep(ctx, BackoffDelay(a.cfg.MinBackoff, a.cfg.MaxBackoff, failures)) {
				return
			}
		}
	}
}

// renew gets a new certificate for the agent's key over the current
// connection, stores it atomically and connects with it. The key stays:
// a reply lost on the way is simply asked for again.
func (a *opsAgent) renew(ctx context.Context) error {
	started := time.Now()
	creds := a.gw.credentials()
	key, ok := creds.cert.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return errors.New("the agent key is not an ECDSA key")
	}
	csr, err := nodeCSR(a.cfg.NodeID, key)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, rpcTimeout)
	defer cancel()
	resp, err := a.gw.rpc().Renew(cctx, &agentv1.RenewRequest{NodeId: a.cfg.NodeID, CsrDer: csr, AgentVersion: a.cfg.Version})
	if err != nil {
		return err
	}
	next, err := storeCertificate(a.cfg.DataDir, key, resp.GetCertificateChainDer(), trustedCAs(resp.GetTrustedCaDer(), resp.GetCaCertificateDer()))
	if err != nil {
		return fmt.Errorf("store the renewed certificate: %w", err)
	}
	if err := a.gw.use(next); err != nil {
		return err
	}
	a.cfg.Logger.Info("certificate renewed", "not_after", next.cert.Leaf.NotAfter, "took", time.Since(started))
	return nil
}
