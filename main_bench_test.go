package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// BenchmarkPaymentToRunning measures what a customer waits for: from the
// signed payment webhook to the node running, on the embedded appliance
// with the local provisioner. Run with a fixed count, e.g.
//
//	go test -run '^$' -bench PaymentToRunning -benchtime 3x .
//
// Besides the latencies it reports provisions per second: nodes running
// per second of wall time, batch after batch. The local hosts run
// hoodcloud-agent; HOODCLOUD_BENCH_AGENT=alias runs them as `hoodcloud
// agent` instead, as before the ops-agent had a binary of its own.
func BenchmarkPaymentToRunning(b *testing.B) {
	requireLoopbackRange(b)
	for _, concurrent := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("concurrent-%d", concurrent), func(b *testing.B) {
			cfg := testConfig(b, b.TempDir())
			cfg.DevToken = "bench-admin"
			if os.Getenv("HOODCLOUD_BENCH_AGENT") == "alias" {
				cfg.AgentBinary = applianceAsAgent(b)
			}
			m := MustOpenMain(b, cfg)
			customers := make([]apiClient, concurrent)
			for i := range customers {
				customers[i] = signUp(b, m, fmt.Sprintf("c%d@example.com", i), i+1)
			}
			var latencies []time.Duration
			var mu sync.Mutex
			b.ResetTimer()
			began := time.Now()
			for n := range b.N {
				var wg sync.WaitGroup
				for i, c := range customers {
					wg.Go(func() {
						d := payAndWaitRunning(b, m, c, fmt.Sprintf("%d-%d", n, i))
						mu.Lock()
						latencies = append(latencies, d)
						mu.Unlock()
					})
				}
				wg.Wait()
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N*concurrent)/time.Since(began).Seconds(), "provisions/s")
			slices.Sort(latencies)
			b.ReportMetric(float64(latencies[len(latencies)/2].Milliseconds()), "p50-ms")
			b.ReportMetric(float64(latencies[(len(latencies)*99)/100].Milliseconds()), "p99-ms")
		})
	}
}

// applianceAsAgent is an agent binary that runs this test binary as
// `hoodcloud agent`.
func applianceAsAgent(tb testing.TB) string {
	p := filepath.Join(tb.TempDir(), "hoodcloud-agent")
	script := "#!/bin/sh\nexec '" + os.Args[0] + "' agent \"$@\"\n"
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		tb.Fatal(err)
	}
	return p
}

// signUp registers a customer who calls from loopback address i (see
// loopbackClient), so that sign-up limits per IP do not slow a crowd.
func signUp(tb testing.TB, m *Main, email string, i int) apiClient {
	api := apiClient{t: tb, base: "http://" + m.HTTP.Addr() + "/api/v1", token: m.Config.DevToken, client: loopbackClient(i)}
	api.do("POST", "/users", `{"email":"`+email+`","password":"a long enough password"}`, 201, nil)
	var tokens struct {
		AccessToken string `json:"access_token"`
	}
	api.do("POST", "/auth/login", `{"email":"`+email+`","password":"a long enough password"}`, 200, &tokens)
	api.token = tokens.AccessToken
	return api
}

// payAndWaitRunning buys a demo validator and returns webhook → running.
func payAndWaitRunning(tb testing.TB, m *Main, api apiClient, ref string) time.Duration {
	var sub struct{ ID string }
	api.do("POST", "/subscriptions", `{"chain_profile_id":"cosmos-demo","node_type":"validator","duration":"1m"}`, 201, &sub)
	key, _ := validatorKey(tb)
	sealed := sealTo(tb, m.Boot.SealedBoxKey.PublicKey().Bytes(), key)
	api.do("POST", "/subscriptions/"+sub.ID+"/inputs", `{"inputs":[{"name":"moniker","value":"bench"},{"name":"priv_validator_key","value":"`+sealed+`"}]}`, 200, nil)
	var pay struct{ ID string }
	api.do("POST", "/payments", `{"external_id":"inv-`+ref+`","amount_cents":7900,"currency":"EUR","subscription_ids":["`+sub.ID+`"]}`, 201, &pay)
	start := time.Now()
	api.webhook([]byte(`{"event_id":"evt-`+ref+`","payment_id":"`+pay.ID+`"}`), m.Boot.WebhookSecret, 202)
	waitRunning(tb, m, sub.ID, 5*time.Minute)
	return time.Since(start)
}
