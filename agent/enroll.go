package agent

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"

	"github.com/hoodcloud/hoodcloud/engine"
	agentv1 "github.com/hoodcloud/hoodcloud/proto/agent/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

// agentCredentials are what an enrolled agent holds.
type agentCredentials struct {
	cert tls.Certificate
	ca   *x509.Certificate
}

// tlsConfig trusts only the appliance CA and presents the agent certificate.
func (c *agentCredentials) tlsConfig(serverName string) *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(c.ca)
	cfg := &tls.Config{RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS13}
	if c.cert.PrivateKey != nil {
		cfg.Certificates = []tls.Certificate{c.cert}
	}
	return cfg
}

// loadCredentials reads the key, certificate and CA from dir; it returns
// nil, nil when the agent has not enrolled yet.
func loadCredentials(dir string) (*agentCredentials, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, certFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read agent certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, keyFile))
	if err != nil {
		return nil, fmt.Errorf("read agent key: %w", err)
	}
	defer engine.Zero(keyPEM)
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, errors.New("agent key and certificate do not match")
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("parse agent certificate: %w", err)
		}
	}
	ca, err := readCAFile(filepath.Join(dir, caFile))
	if err != nil {
		return nil, err
	}
	return &agentCredentials{cert: cert, ca: ca}, nil
}

func readCAFile(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read CA certificate: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	ca, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse CA certificate: %w", err)
	}
	return ca, nil
}

// errEnrollRejected means the gateway refused the token: retrying is useless.
var errEnrollRejected = errors.New("the gateway refused the enrollment token")

// enroll generates a key and CSR, exchanges the token for a certificate
// over TLS verified against the CA file, and stores all three in dataDir.
func enroll(ctx context.Context, cfg AgentConfig) (*agentCredentials, error) {
	if cfg.EnrollmentToken == "" || cfg.CAFile == "" {
		return nil, errors.New("not enrolled: an enrollment token and the CA file are required")
	}
	ca, err := readCAFile(cfg.CAFile)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("agent key: %w", err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cfg.NodeID}}, key)
	if err != nil {
		return nil, fmt.Errorf("agent CSR: %w", err)
	}
	resp, err := callEnroll(ctx, cfg, &agentCredentials{ca: ca}, csr)
	if err != nil {
		return nil, err
	}
	return storeCredentials(cfg.DataDir, key, resp)
}

func callEnroll(ctx context.Context, cfg AgentConfig, bootstrap *agentCredentials, csr []byte) (*agentv1.EnrollResponse, error) {
	conn, err := grpc.NewClient(cfg.GatewayAddr, grpc.WithTransportCredentials(credentials.NewTLS(bootstrap.tlsConfig(cfg.serverName()))))
	if err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	defer conn.Close()
	resp, err := agentv1.NewAgentServiceClient(conn).Enroll(ctx, &agentv1.EnrollRequest{
		EnrollmentToken: cfg.EnrollmentToken, NodeId: cfg.NodeID, CsrDer: csr, AgentVersion: cfg.Version,
	})
	switch status.Code(err) {
	case codes.OK:
		return resp, nil
	case codes.Unauthenticated, codes.InvalidArgument, codes.PermissionDenied:
		return nil, fmt.Errorf("%w: %s", errEnrollRejected, status.Convert(err).Message())
	default:
		return nil, fmt.Errorf("enroll: %w", err)
	}
}

// storeCredentials writes key, certificate and CA, 0600 each.
func storeCredentials(dir string, key *ecdsa.PrivateKey, resp *agentv1.EnrollResponse) (*agentCredentials, error) {
	if len(resp.GetCertificateChainDer()) == 0 {
		return nil, errors.New("enroll: the gateway returned no certificate")
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode agent key: %w", err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	engine.Zero(keyDER)
	defer engine.Zero(keyPEM)
	var certPEM []byte
	for _, der := range resp.GetCertificateChainDer() {
		certPEM = append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: resp.GetCaCertificateDer()})
	for name, b := range map[string][]byte{keyFile: keyPEM, caFile: caPEM} {
		if err := writeFileAtomic(filepath.Join(dir, name), b); err != nil {
			return nil, fmt.Errorf("store %s: %w", name, err)
		}
	}
	// The certificate last: its presence means enrolled.
	if err := writeFileAtomic(filepath.Join(dir, certFile), certPEM); err != nil {
		return nil, fmt.Errorf("store %s: %w", certFile, err)
	}
	return loadCredentials(dir)
}

// serverName is the gateway's host, checked against its certificate.
func (c AgentConfig) serverName() string {
	if c.ServerName != "" {
		return c.ServerName
	}
	host, _, err := net.SplitHostPort(c.GatewayAddr)
	if err != nil {
		return c.GatewayAddr
	}
	return host
}
