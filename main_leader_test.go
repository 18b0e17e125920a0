//go:build linux

package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
	"github.com/hoodcloud/hoodcloud/internal/testenv"
	"github.com/hoodcloud/hoodcloud/store/postgres"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// takeoverLimit is how soon a standby must lead after the leader dies or
// stops answering.
const takeoverLimit = 15 * time.Second

// TestLeaderFailover runs two appliances as separate processes on one
// PostgreSQL database, one Redis, one NATS and one Temporal (the first's
// embedded one), sharing a master key. It kills the leader (the standby
// leads within 15 s), restarts it as a standby, then pauses the new leader
// with SIGSTOP in the middle of its work (the other leads within 15 s) and
// resumes it: it steps down, and none of the writes it had under way lands
// under its old epoch. A trigger in the test database is the witness: it
// records, for every subscription write, which instance made it and the
// leader epoch at that moment.
func TestLeaderFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three appliance processes")
	}
	db := leaderTestDatabase(t)
	key := make([]byte, 32)
	rand.Read(key)
	t.Setenv("HOODCLOUD_MASTER_KEY", base64.StdEncoding.EncodeToString(key)) // both instances, through the environment
	shared := []string{"--log-level", "info", "--cache", leaderTestRedis(t), "--events", testenv.NATSURL(t),
		"--subscription-expiry-interval", "100ms"}

	argsA := append(crashServeArgs(t, t.TempDir()), shared...)
	argsA = append(argsA, "--store", withAppName(t, db, "hctest-a"))
	a := &leaderInstance{name: "a", args: argsA}
	a.start(t)
	a.waitRole(t, true, time.Second)
	temporal := "127.0.0.1:" + flagValue(argsA, "--temporal-frontend-port")
	argsB := append(crashServeArgs(t, t.TempDir()), shared...)
	argsB = append(argsB, "--store", withAppName(t, db, "hctest-b"), "--temporal", temporal)
	b := &leaderInstance{name: "b", args: argsB}
	b.start(t)
	b.waitRole(t, false, time.Second)
	if got := leaderComponent(t, b.base()); got != "healthy standby" {
		t.Fatalf("the standby's /readyz leader component = %q, want healthy standby", got)
	}

	// The leader dies: its connections close with it.
	killed := time.Now()
	a.proc.kill(t)
	b.waitRole(t, true, takeoverLimit)
	t.Logf("SIGKILL of the leader: the standby led after %s", time.Since(killed).Round(time.Millisecond))
	epochB := storedEpoch(t, db)

	a.start(t) // back as a standby
	a.waitRole(t, false, time.Second)

	// Work for the leader: subscriptions that all fall due at once.
	const due = 3000
	seedDueSubscriptions(t, db, due, time.Now().Add(6*time.Second))
	testenv.WaitFor(t, "b to expire subscriptions", func() bool { return b.fencedWrites(t, "written") > 0 })

	// The leader stops answering in the middle of it, its connections open.
	b.signal(t, syscall.SIGSTOP)
	stopped := time.Now()
	a.waitRole(t, true, takeoverLimit)
	t.Logf("SIGSTOP of the leader: the standby led after %s", time.Since(stopped).Round(time.Millisecond))
	if got, want := leaderComponent(t, a.base()), fmt.Sprintf("healthy leader (epoch %d)", epochB+1); got != want {
		t.Fatalf("the new leader's /readyz leader component = %q, want %q", got, want)
	}
	testenv.WaitFor(t, "a to expire subscriptions", func() bool { return a.fencedWrites(t, "written") > 0 })
	b.signal(t, syscall.SIGCONT)
	b.waitRole(t, false, takeoverLimit)

	testenv.WaitFor(t, "every due subscription expired", func() bool { return auditedWrites(t, db, "") == due })
	landed, deposed := auditedWrites(t, db, "hctest-b"), staleWrites(t, db, "hctest-b", epochB)
	written, refused := b.fencedWrites(t, "written"), b.fencedWrites(t, "refused")
	t.Logf("the paused leader: %d fenced writes written under epoch %d, %d refused after it resumed; %d landed under a newer epoch; the new leader wrote %d",
		written, epochB, refused, deposed, a.fencedWrites(t, "written"))
	if deposed != 0 {
		t.Fatalf("%d writes of the paused leader landed after a newer leader took over", deposed)
	}
	if written != landed {
		t.Fatalf("the paused leader counted %d writes written, the database saw %d", written, landed)
	}
	if a.fencedWrites(t, "refused") != 0 {
		t.Fatal("the new leader's writes were refused")
	}
	t.Logf("b's leadership:\n%s", linesNaming(b.proc.stderr.String(), "leader"))
}

// leaderInstance is one of the appliances of TestLeaderFailover.
type leaderInstance struct {
	name string
	args []string
	proc *childAppliance
}

func (l *leaderInstance) start(t *testing.T) {
	t.Helper()
	p := startAppliance(t, l.args)
	l.proc = p
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("instance %s logs:\n%s", l.name, tail(p.stderr.String(), 8<<10))
		}
	})
}

func (l *leaderInstance) base() string { return "http://" + flagValue(l.args, "--http-addr") }

func (l *leaderInstance) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := l.proc.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("%s to %s: %v", sig, l.name, err)
	}
}

// waitRole waits until the instance's hoodcloud_is_leader says leading.
func (l *leaderInstance) waitRole(t *testing.T, leading bool, within time.Duration) {
	t.Helper()
	want := map[bool]float64{true: 1, false: 0}[leading]
	deadline := time.Now().Add(within)
	for {
		got, err := scrapeMetric(l.base(), "hoodcloud_is_leader")
		if err == nil && got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("instance %s: hoodcloud_is_leader = %v (%v) after %s, want %v", l.name, got, err, within, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (l *leaderInstance) fencedWrites(t *testing.T, outcome string) int {
	t.Helper()
	v, err := scrapeMetric(l.base(), `hoodcloud_leader_fenced_writes_total{outcome="`+outcome+`"}`)
	if err != nil {
		t.Fatalf("instance %s: %v", l.name, err)
	}
	return int(v)
}

// leaderComponent is the status and detail of /readyz's leader component.
func leaderComponent(t *testing.T, base string) string {
	t.Helper()
	var ready struct {
		Components []struct{ Name, Status, Detail string }
	}
	decodeJSON(t, getText(t, base+"/readyz"), &ready)
	for _, c := range ready.Components {
		if c.Name == "leader" {
			return c.Status + " " + c.Detail
		}
	}
	return "missing"
}

// scrapeMetric reads one sample from /metrics.
func scrapeMetric(base, sample string) (float64, error) {
	client := http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get(base + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	s := bufio.NewScanner(resp.Body)
	s.Buffer(nil, 1<<20)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), sample+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /metrics", sample)
}

// leaderTestDatabase is a fresh migrated database whose subscription
// writes are audited: who wrote (the connection's application name) under
// which stored leader epoch.
func leaderTestDatabase(t *testing.T) string {
	t.Helper()
	db := testenv.PostgresDatabase(t)
	if _, err := postgres.NewMigrator(db).Up(t.Context()); err != nil {
		t.Fatalf("migrate up: %v", err)
	}
	leaderTestExec(t, db, `CREATE TABLE fence_audit (app text NOT NULL, epoch bigint NOT NULL);
		CREATE FUNCTION fence_audit() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			INSERT INTO fence_audit SELECT current_setting('application_name'), epoch FROM leader_epoch;
			RETURN NEW;
		END $$;
		CREATE TRIGGER fence_audit AFTER UPDATE ON subscriptions FOR EACH ROW EXECUTE FUNCTION fence_audit();`)
	return db
}

func leaderTestExec(t *testing.T, db, sql string, args ...any) {
	t.Helper()
	pool, err := pgxpool.New(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(t.Context(), sql, args...); err != nil {
		t.Fatal(err)
	}
}

func leaderTestCount(t *testing.T, db, sql string, args ...any) int {
	t.Helper()
	pool, err := pgxpool.New(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var n int
	if err := pool.QueryRow(t.Context(), sql, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// auditedWrites counts the subscription writes of app ("" for all).
func auditedWrites(t *testing.T, db, app string) int {
	return leaderTestCount(t, db, `SELECT count(*) FROM fence_audit WHERE $1 = '' OR app = $1`, app)
}

// staleWrites counts app's writes that landed after an epoch newer than
// its own was stored.
func staleWrites(t *testing.T, db, app string, epoch int64) int {
	return leaderTestCount(t, db, `SELECT count(*) FROM fence_audit WHERE app = $1 AND epoch <> $2`, app, epoch)
}

func storedEpoch(t *testing.T, db string) int64 {
	t.Helper()
	s := postgres.New(db, nil)
	if err := s.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	epoch, _, err := s.LeaderEpoch(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return epoch
}

// seedDueSubscriptions stores n active subscriptions that all expire at.
func seedDueSubscriptions(t *testing.T, db string, n int, at time.Time) {
	t.Helper()
	s := postgres.New(db, prometheus.NewRegistry())
	if err := s.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	parallel(t, 8, func(w int) error {
		for i := w; i < n; i += 8 {
			sub := &engine.Subscription{ID: engine.NewID("sub"), UserID: "user_failover", ChainProfileID: "cometbft-kvstore",
				NodeType: "validator", Duration: "1m", Provider: "local", Region: "local", InstanceType: "small",
				Status: engine.SubscriptionActive, ExpiresAt: at, CreatedAt: time.Now(), UpdatedAt: time.Now()}
			if err := s.CreateSubscription(context.Background(), sub); err != nil {
				return err
			}
		}
		return nil
	})
	if wait := time.Until(at); wait < 0 {
		t.Logf("seeding took past the expiry by %s: the leader began on part of them", -wait)
	}
}

// withAppName names the instance's connections, for the audit.
func withAppName(t *testing.T, db, name string) string {
	t.Helper()
	u, err := url.Parse(db)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("application_name", name)
	u.RawQuery = q.Encode()
	return u.String()
}

// leaderTestRedis is the test Redis on a database of its own, so the
// instances' keys (under the appliance's fixed prefix) meet no other test's.
func leaderTestRedis(t *testing.T) string {
	t.Helper()
	u, err := url.Parse(testenv.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	n, _ := rand.Int(rand.Reader, big.NewInt(15))
	u.Path = "/" + strconv.FormatInt(n.Int64()+1, 10)
	return u.String()
}
