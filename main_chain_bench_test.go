package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/agent"
	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/internal/chains"
)

// BenchmarkRealValidatorPaymentToRunning measures what a customer of a
// real chain client waits for: from the signed payment webhook to the
// CometBFT validator `running`, and to the first block signed with the
// customer's key seen on the node's RPC. It runs with a fixed count:
//
//	go test -run '^$' -bench RealValidator -benchtime 1x -timeout 30m .
//
// One validator is bought and paid five times in turn; ten validators are
// paid at once, by ten customers. After the last round's nodes have run
// for 10 s it reads the resident memory of each host's ops-agent and of its
// cometbft process.
func BenchmarkRealValidatorPaymentToRunning(b *testing.B) {
	requireLoopbackRange(b)
	withChainClient(b, chains.CometBFT)
	for _, c := range []struct {
		validators, rounds int
		heartbeats         string
	}{{1, 5, "follow-ups"}, {1, 5, "interval-only"}, {10, 1, "follow-ups"}, {10, 1, "interval-only"}} {
		b.Run(fmt.Sprintf("validators-%d/heartbeats-%s", c.validators, c.heartbeats), func(b *testing.B) {
			benchRealValidators(b, c.validators, c.rounds, c.heartbeats == "interval-only")
		})
	}
}

// intervalOnly runs the agents as before they heartbeat briskly after a
// command: the comparison shows what that is worth.
func benchRealValidators(b *testing.B, validators, rounds int, intervalOnly bool) {
	cfg := testConfig(b, b.TempDir())
	cfg.DevToken = "bench-admin"
	if intervalOnly {
		cfg.agentEnv = append(cfg.agentEnv, agent.IntervalOnlyEnv+"=1")
	}
	m := MustOpenMain(b, cfg)
	customers := make([]apiClient, validators)
	for i := range customers {
		customers[i] = signUp(b, m, fmt.Sprintf("v%d@example.com", i), i+1)
	}
	var all []validatorTimes
	var rss []hostRSS
	var whole []time.Duration
	b.ResetTimer()
	for n := range b.N * rounds {
		b.StopTimer()
		orders := make([]validatorOrder, validators)
		for i, c := range customers {
			orders[i] = orderValidator(b, m, c, fmt.Sprintf("r%d-%d", n, i))
		}
		b.StartTimer()
		round, took := payAtOnce(b, m, orders)
		b.StopTimer()
		all = append(all, round...)
		whole = append(whole, took)
		if n == b.N*rounds-1 {
			rss = hostsRSS(b, round)
			logWhereTheTimeWent(b, m, round[0])
		}
		for i, o := range orders {
			cancelAndWaitGone(b, m, customers[i], o.sub, round[i].node)
		}
		b.StartTimer()
	}
	b.StopTimer()
	reportValidatorTimes(b, all, whole, rss)
}

// validatorOrder is a subscription with its inputs given and its payment
// created: only the webhook is missing.
type validatorOrder struct {
	api       apiClient
	sub, pay  string
	ref       string
	validator string // the address CometBFT derives from the customer's key
}

func orderValidator(b *testing.B, m *Main, api apiClient, ref string) validatorOrder {
	keyFile, address, _ := customerValidatorKey(b)
	sealed := sealTo(b, m.Boot.SealedBoxKey.PublicKey().Bytes(), keyFile)
	var sub struct{ ID string }
	api.do("POST", "/subscriptions", `{"chain_profile_id":"cometbft-kvstore","node_type":"validator","duration":"1m"}`, 201, &sub)
	api.do("POST", "/subscriptions/"+sub.ID+"/inputs", `{"inputs":[{"name":"moniker","value":"bench `+ref+`"},{"name":"priv_validator_key","value":"`+sealed+`"}]}`, 200, nil)
	var pay struct{ ID string }
	api.do("POST", "/payments", `{"external_id":"inv-`+ref+`","amount_cents":100,"currency":"EUR","subscription_ids":["`+sub.ID+`"]}`, 201, &pay)
	return validatorOrder{api: api, sub: sub.ID, pay: pay.ID, ref: ref, validator: address}
}

// validatorTimes: from the webhook accepted to the node running, and to
// block 1 committed with the customer's signature.
type validatorTimes struct {
	node                *engine.Node
	running, firstBlock time.Duration
	runningAt           time.Time
}

// payAtOnce sends every order's webhook at the same moment and waits for
// each validator's first signed block; took is from the first webhook
// to the last node running.
func payAtOnce(b *testing.B, m *Main, orders []validatorOrder) (times []validatorTimes, took time.Duration) {
	times = make([]validatorTimes, len(orders))
	began := time.Now()
	var wg sync.WaitGroup
	for i, o := range orders {
		wg.Go(func() {
			start := time.Now()
			o.api.webhook([]byte(`{"event_id":"evt-`+o.ref+`","payment_id":"`+o.pay+`"}`), m.Boot.WebhookSecret, 202)
			node := waitRunning(b, m, o.sub, 5*time.Minute)
			t := validatorTimes{node: node, running: time.Since(start), runningAt: time.Now()}
			waitFor(b, time.Minute, "block 1 signed by the customer's key", func() bool {
				return signedBlockOne(node.Runtime.Ports["rpc"], o.validator)
			})
			t.firstBlock = time.Since(start)
			times[i] = t
		})
	}
	wg.Wait()
	last := slices.MaxFunc(times, func(x, y validatorTimes) int { return x.runningAt.Compare(y.runningAt) })
	return times, last.runningAt.Sub(began)
}

// signedBlockOne reports whether the node's RPC shows block 1 committed
// with validator's signature.
func signedBlockOne(rpc int, validator string) bool {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/commit?height=1", rpc))
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var c struct {
		Result struct {
			SignedHeader struct {
				Commit struct {
					Signatures []commitSig `json:"signatures"`
				} `json:"commit"`
			} `json:"signed_header"`
		} `json:"result"`
	}
	if json.NewDecoder(resp.Body).Decode(&c) != nil {
		return false
	}
	return slices.Contains(c.Result.SignedHeader.Commit.Signatures, commitSig{validator})
}

type commitSig struct {
	ValidatorAddress string `json:"validator_address"`
}

// hostRSS is the resident memory of one host's processes.
type hostRSS struct{ agent, cometbft memory }

// hostsRSS waits until the last node has run 10 s, then reads the resident
// memory of the processes whose command line names each host's directory.
func hostsRSS(b *testing.B, round []validatorTimes) []hostRSS {
	last := slices.MaxFunc(round, func(x, y validatorTimes) int { return x.runningAt.Compare(y.runningAt) })
	time.Sleep(time.Until(last.runningAt.Add(10 * time.Second))) // the figure is defined at 10 s of running
	var out []hostRSS
	for _, t := range round {
		var h hostRSS
		for _, p := range processesUnder(b, t.node.Host.Address) {
			pid, cmdline, _ := strings.Cut(p, ": ")
			n, _ := strconv.Atoi(pid)
			m, err := residentMemory(n)
			if err != nil {
				continue // gone meanwhile: an init step
			}
			switch program, _, _ := strings.Cut(cmdline, " "); filepath.Base(program) {
			case "hoodcloud-agent":
				h.agent = h.agent.plus(m)
			case "cometbft":
				h.cometbft = h.cometbft.plus(m)
			}
		}
		if h.agent.totalKB == 0 || h.cometbft.totalKB == 0 {
			b.Fatalf("host %s: no agent or no cometbft process found (%+v)", t.node.Host.Address, h)
		}
		out = append(out, h)
	}
	return out
}

func (m memory) plus(o memory) memory {
	return memory{m.totalKB + o.totalKB, m.anonKB + o.anonKB, m.fileKB + o.fileKB}
}

// logWhereTheTimeWent prints one node's state log and its agent's log,
// with times since the first entry, to show what dominates.
func logWhereTheTimeWent(b *testing.B, m *Main, t validatorTimes) {
	changes, err := m.Store.ListNodeStateLog(b.Context(), t.node.ID, time.Time{}, time.Now().Add(time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range changes {
		b.Logf("%s state %s → %s: %s", c.At.Format("15:04:05.000"), c.From, c.To, c.Reason)
	}
	logs, err := os.ReadFile(filepath.Join(t.node.Host.Address, "agent.log"))
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("agent log of %s (running after %v, first signed block after %v):\n%s", t.node.ID, t.running, t.firstBlock, logs)
}

func cancelAndWaitGone(b *testing.B, m *Main, api apiClient, sub string, node *engine.Node) {
	api.do("POST", "/subscriptions/"+sub+"/cancel", "", 200, nil)
	waitFor(b, time.Minute, "the node to be terminated", func() bool {
		n, err := m.Store.GetNode(b.Context(), node.ID)
		return err == nil && n.State == engine.NodeTerminated
	})
	waitFor(b, 30*time.Second, "the chain's processes to be gone", func() bool {
		return len(processesUnder(b, node.Host.Address)) == 0
	})
}

func reportValidatorTimes(b *testing.B, all []validatorTimes, whole []time.Duration, rss []hostRSS) {
	ms := func(d time.Duration) float64 { return float64(d.Milliseconds()) }
	running := make([]time.Duration, len(all))
	signed := make([]time.Duration, len(all))
	for i, t := range all {
		running[i], signed[i] = t.running, t.firstBlock
	}
	b.Logf("webhook → running: %v; → first signed block: %v", running, signed)
	slices.Sort(running)
	slices.Sort(signed)
	b.ReportMetric(ms(running[0]), "min_ms")
	b.ReportMetric(ms(running[len(running)/2]), "p50_ms")
	b.ReportMetric(ms(running[len(running)-1]), "max_ms")
	b.ReportMetric(ms(signed[len(signed)/2]), "signed_p50_ms")
	b.ReportMetric(ms(signed[len(signed)-1]), "signed_max_ms")
	if len(all) > len(whole) { // nodes paid at once: until the last one ran
		b.ReportMetric(ms(slices.Max(whole)), "all_running_ms")
	}
	var agent, cometbft memory
	for _, h := range rss {
		agent, cometbft = agent.plus(h.agent), cometbft.plus(h.cometbft)
		b.Logf("host RSS: agent %.1f MB (anonymous %.1f), cometbft %.1f MB (anonymous %.1f)",
			mb(h.agent.totalKB), mb(h.agent.anonKB), mb(h.cometbft.totalKB), mb(h.cometbft.anonKB))
	}
	hosts := float64(len(rss))
	b.ReportMetric(mb(agent.totalKB)/hosts, "agent_rss_MB")
	b.ReportMetric(mb(cometbft.totalKB)/hosts, "cometbft_rss_MB")
	b.ReportMetric(mb(agent.totalKB+cometbft.totalKB), "hosts_rss_MB")
}

func mb(kb int64) float64 { return float64(kb) / 1024 }
