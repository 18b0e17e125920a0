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
	"slices"

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
	// otherCAs are further appliance CAs trusted: during a CA rotation
	// the gateway's certificate may chain to the old CA or the new one.
	otherCAs []*x509.Certificate
}

// tlsConfig trusts only the appliance CAs and presents the agent
// certificate.
func (c *agentCredentials) tlsConfig(serverName string) *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(c.ca)
	for _, ca := range c.otherCAs {
		pool.AddCert(ca)
	}
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
	creds, err := readCAFile(filepath.Join(dir, caFile))
	if err != nil {
		return nil, err
	}
	creds.cert = cert
	return creds, nil
}

// readCAFile returns credentials trusting the CA certificates of a PEM
// file, the first as ca: one CA, or several during a CA rotation.
func readCAFile(path string) (*agentCredentials, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read CA certificate: %w", err)
	}
	var cas []*x509.Certificate
	for rest := b; ; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		ca, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse CA certificate: %w", err)
		}
		cas = append(cas, ca)
	}
	if len(cas) == 0 {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return &agentCredentials{ca: cas[0], otherCAs: cas[1:]}, nil
}

// errEnrollRejected means the gateway refused the token: retrying is useless.
var errEnrollRejected = errors.New("the gateway refused the enrollment token")

// enroll exchanges the token for a certificate over TLS verified against
// the CA file, and stores it and the CA in dataDir. The key is stored
// before the first attempt, so an agent that dies before storing the
// certificate enrols again with the same key, which the gateway accepts
// with the same token.
func enroll(ctx context.Context, cfg AgentConfig) (*agentCredentials, error) {
	if cfg.EnrollmentToken == "" || cfg.CAFile == "" {
		return nil, errors.New("not enrolled: an enrollment token and the CA file are required")
	}
	bootstrap, err := readCAFile(cfg.CAFile)
	if err != nil {
		return nil, err
	}
	key, err := loadOrCreateKey(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	csr, err := nodeCSR(cfg.NodeID, key)
	if err != nil {
		return nil, err
	}
	resp, err := callEnroll(ctx, cfg, bootstrap, csr)
	if err != nil {
		return nil, err
	}
	return storeCertificate(cfg.DataDir, key, resp.GetCertificateChainDer(), trustedCAs(resp.GetTrustedCaDer(), resp.GetCaCertificateDer()))
}

// trustedCAs is what the gateway said to trust: its list, or the reply's
// one CA from a gateway that sends no list.
func trustedCAs(trusted [][]byte, caDER []byte) [][]byte {
	if len(trusted) == 0 {
		return [][]byte{caDER}
	}
	return trusted
}

// loadOrCreateKey returns the agent's key, creating and storing it (0600)
// the first time.
func loadOrCreateKey(dir string) (*ecdsa.PrivateKey, error) {
	path := filepath.Join(dir, keyFile)
	keyPEM, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return createKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("read agent key: %w", err)
	}
	defer engine.Zero(keyPEM)
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, errors.New("the agent key file holds no PEM block")
	}
	defer engine.Zero(block.Bytes)
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, errors.New("the agent key does not parse")
	}
	key, ok := parsed.(*ecdsa.PrivateKey)
	if !ok {
		return nil, errors.New("the agent key is not an ECDSA key")
	}
	return key, nil
}

func createKey(path string) (*ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("agent key: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode agent key: %w", err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	engine.Zero(keyDER)
	defer engine.Zero(keyPEM)
	if err := writeFileAtomic(path, keyPEM); err != nil {
		return nil, fmt.Errorf("store %s: %w", keyFile, err)
	}
	return key, nil
}

// nodeCSR asks for a certificate for key; the gateway names the node.
func nodeCSR(nodeID string, key *ecdsa.PrivateKey) ([]byte, error) {
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: nodeID}}, key)
	if err != nil {
		return nil, fmt.Errorf("agent CSR: %w", err)
	}
	return csr, nil
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

// storeCertificate writes the CAs to trust and the certificate chain,
// 0600 each, after checking the certificate is for key. Each write
// replaces the file atomically; the certificate goes last, as its presence
// means enrolled.
func storeCertificate(dir string, key *ecdsa.PrivateKey, chain [][]byte, cas [][]byte) (*agentCredentials, error) {
	if len(chain) == 0 || len(cas) == 0 || slices.ContainsFunc(cas, func(der []byte) bool { return len(der) == 0 }) {
		return nil, errors.New("the gateway returned no certificate")
	}
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		return nil, fmt.Errorf("parse the issued certificate: %w", err)
	}
	if !key.PublicKey.Equal(leaf.PublicKey) {
		return nil, errors.New("the issued certificate is not for the agent's key")
	}
	var certPEM []byte
	for _, der := range chain {
		certPEM = append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	var caPEM []byte
	for _, der := range cas {
		if _, err := x509.ParseCertificate(der); err != nil {
			return nil, fmt.Errorf("parse a CA certificate the gateway sent: %w", err)
		}
		caPEM = append(caPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	if err := writeFileAtomic(filepath.Join(dir, caFile), caPEM); err != nil {
		return nil, fmt.Errorf("store %s: %w", caFile, err)
	}
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
