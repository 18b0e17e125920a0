package agent

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	agentv1 "github.com/hoodcloud/hoodcloud/proto/agent/v1"
)

// TestHeartbeatLoad measures heartbeat latency with many agents in one
// process, each on its own mutual-TLS connection to a real gateway (bbolt
// Store, embedded Redis). It runs only when asked:
//
//	HOODCLOUD_AGENT_LOAD_AGENTS=1000 HOODCLOUD_AGENT_LOAD_RATE=333 \
//	HOODCLOUD_AGENT_LOAD_SECONDS=10 go test -run TestHeartbeatLoad -v ./agent/
func TestHeartbeatLoad(t *testing.T) {
	agents := envInt("HOODCLOUD_AGENT_LOAD_AGENTS", 0)
	if agents == 0 {
		t.Skip("set HOODCLOUD_AGENT_LOAD_AGENTS to run the heartbeat load test")
	}
	rate := envInt("HOODCLOUD_AGENT_LOAD_RATE", 333)
	seconds := envInt("HOODCLOUD_AGENT_LOAD_SECONDS", 10)
	e := newTestEnv(t)
	clients := enrolMany(t, e, agents)

	start := time.Now()
	lat, errs := paceHeartbeats(clients, rate, time.Duration(seconds)*time.Second)
	elapsed := time.Since(start)
	slices.Sort(lat)
	if len(lat) == 0 {
		t.Fatalf("no heartbeat succeeded (%d errors)", errs)
	}
	t.Logf("agents=%d target=%d/s achieved=%.0f/s heartbeats=%d errors=%d p50=%s p90=%s p99=%s max=%s",
		agents, rate, float64(len(lat))/elapsed.Seconds(), len(lat), errs,
		pct(lat, 50), pct(lat, 90), pct(lat, 99), lat[len(lat)-1])
	if errs > 0 {
		t.Errorf("%d heartbeats failed", errs)
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

func pct(sorted []time.Duration, p int) time.Duration {
	return sorted[(len(sorted)-1)*p/100]
}

type loadClient struct {
	nodeID string
	client agentv1.AgentServiceClient
}

// enrolMany issues n agent certificates and opens one connection each,
// handshaking them all before the measurement starts.
func enrolMany(t *testing.T, e *testEnv, n int) []loadClient {
	t.Helper()
	clients := make([]loadClient, n)
	var (
		wg    sync.WaitGroup
		slots = make(chan struct{}, 8)
		errs  = make(chan error, n)
	)
	for i := range clients {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			errs <- enrolOne(t, e, clients, i)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return clients
}

// enrolOne enrols agent i and makes its first heartbeat, which also does
// the TLS handshake.
func enrolOne(t *testing.T, e *testEnv, clients []loadClient, i int) error {
	id := fmt.Sprintf("node_load_%05d", i)
	cfg, err := loadTLS(e, id)
	if err != nil {
		return err
	}
	clients[i] = loadClient{nodeID: id, client: e.client(t, cfg)}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = clients[i].client.Heartbeat(ctx, &agentv1.HeartbeatRequest{NodeId: id})
	return err
}

func loadTLS(e *testEnv, nodeID string) (*tls.Config, error) {
	ctx := context.Background()
	tok, err := e.identity.IssueEnrollmentToken(ctx, nodeID, time.Hour)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return nil, err
	}
	en, err := e.identity.Enroll(ctx, tok, nodeID, csr, "load")
	if err != nil {
		return nil, err
	}
	creds := &agentCredentials{ca: e.identity.CA(), cert: tls.Certificate{Certificate: [][]byte{en.CertificateDER}, PrivateKey: key}}
	return creds.tlsConfig("127.0.0.1"), nil
}

// paceHeartbeats sends rate heartbeats a second, round robin over the
// clients, for d, and returns the latencies of those that succeeded.
func paceHeartbeats(clients []loadClient, rate int, d time.Duration) ([]time.Duration, int) {
	var mu sync.Mutex
	var lat []time.Duration
	errs := 0
	var wg sync.WaitGroup
	start, interval := time.Now(), time.Second/time.Duration(rate)
	for i := 0; ; i++ {
		// Open loop: each heartbeat has its slot; a late generator catches
		// up instead of dropping slots.
		at := start.Add(time.Duration(i) * interval)
		if at.Sub(start) >= d {
			break
		}
		time.Sleep(time.Until(at))
		c := clients[i%len(clients)]
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			t0 := time.Now()
			_, err := c.client.Heartbeat(ctx, &agentv1.HeartbeatRequest{NodeId: c.nodeID})
			took := time.Since(t0)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs++
				return
			}
			lat = append(lat, took)
		})
	}
	wg.Wait()
	return lat, errs
}
