package agentload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
	"unicode"
)

// BenchConfig describes a benchmark run; zero fields take the defaults.
type BenchConfig struct {
	// Gateway runs GatewayMain with args in a new process. Required.
	Gateway func(args ...string) *exec.Cmd

	Agents   int           // default 10,000
	Interval time.Duration // each agent's interval in the steady phase and the storms; default 30s
	Steady   time.Duration // the steady phase; default 60s
	// Rates are the steps, in heartbeats per second over the same agents,
	// tried in order until one misses the goal; default (nil) 1k, 2k, 4k,
	// 8k, 16k; empty: no steps.
	Rates []float64
	Step  time.Duration // each step; default 30s
	Goal  time.Duration // the p99 a step must stay under; default 20ms
	// Downs are the gateway restarts: for each, the gateway is stopped,
	// stays down this long beyond its own restart time, and starts again
	// on the same port and data dir; default one restart at once.
	Downs []time.Duration
	// RejoinWithin is the longest wait for the fleet to rejoin a restarted
	// gateway; default two intervals and a minute.
	RejoinWithin time.Duration
	// Quiet is the most CPU other processes may use, as a share of the
	// machine, for a phase to count as measured on a quiet machine: before
	// each phase the benchmark waits up to QuietWait for it, and a phase
	// that misses the goal on a busier machine is run again, twice at
	// most. Defaults 0.25 and 3 minutes; 1 takes any machine as it is.
	Quiet     float64
	QuietWait time.Duration
	// WithoutLastSeen runs the gateway without its LastSeenAt writes, to
	// measure what they cost.
	WithoutLastSeen bool
	// DataDir is the gateway's data dir; default a new temporary one,
	// removed afterwards.
	DataDir string
	// ProfileDir, when set, receives the gateway's log and, per phase, its
	// CPU profile, and its heap profile and goroutines at the phase's end.
	ProfileDir string
	// Out receives a line per phase as it ends; default discarded.
	Out io.Writer
}

func (c BenchConfig) withDefaults() BenchConfig {
	if c.Agents <= 0 {
		c.Agents = 10_000
	}
	if c.Interval <= 0 {
		c.Interval = 30 * time.Second
	}
	if c.Steady <= 0 {
		c.Steady = time.Minute
	}
	if c.Rates == nil {
		c.Rates = []float64{1000, 2000, 4000, 8000, 16000}
	}
	if c.Step <= 0 {
		c.Step = 30 * time.Second
	}
	if c.Goal <= 0 {
		c.Goal = 20 * time.Millisecond
	}
	if c.Downs == nil {
		c.Downs = []time.Duration{0}
	}
	if c.Quiet <= 0 {
		c.Quiet = 0.25
	}
	if c.QuietWait <= 0 {
		c.QuietWait = 3 * time.Minute
	}
	if c.RejoinWithin <= 0 {
		c.RejoinWithin = 2*c.Interval + time.Minute
	}
	if c.Out == nil {
		c.Out = io.Discard
	}
	return c
}

// Report is what a benchmark run measured.
type Report struct {
	Agents      int
	LoadAverage string        // 1, 5 and 15 minutes, before the gateway started
	OpenFiles   uint64        // this process's open files limit
	Enrolment   time.Duration // enrolling and connecting every agent
	Steady      Phase
	Steps       []Phase
	// Sustained is the highest step rate that met the goal; 0 if none did.
	Sustained float64
	Goal      time.Duration
	Storms    []Storm
	// GatewayLogLines is how many lines the gateway logged (warnings and
	// errors); GatewayLogTail are the last of them.
	GatewayLogLines int
	GatewayLogTail  string
}

// Phase is a Result with the CPU and memory it cost.
type Phase struct {
	Name string
	Result
	Gateway   CPUShare // the gateway process
	Generator CPUShare // this process: the simulated agents
	// MachineBusy is the share of the machine's CPU in use by anything,
	// the other tenants of a shared machine included.
	MachineBusy       float64
	OthersBusy        float64 // MachineBusy less the gateway's and the agents' share
	LoadAverage       string  // 1, 5 and 15 minutes, at the phase's end
	GatewayRSSMB      float64
	GatewayGoroutines int
	GeneratorRSSMB    float64
}

// Storm is a gateway restart and the fleet rejoining it.
type Storm struct {
	// Phase holds every heartbeat due from the stop until the fleet
	// rejoined, and the new gateway's CPU from its start.
	Phase
	Down         time.Duration // requested downtime between the old gateway's exit and the new one's start
	Stop         time.Duration // SIGTERM until the old gateway exited
	StopError    string        // why the stop was not clean, if it was not
	Start        time.Duration // exec until the new gateway served
	Rejoin       Rejoin        // counted from the new gateway serving
	AfterRestart Result        // heartbeats due once the new gateway served
}

// Bench starts the gateway process on a fresh data dir, enrols the fleet
// in this process, then runs the steady phase, the rate steps and the
// restarts.
func Bench(ctx context.Context, cfg BenchConfig) (*Report, error) {
	cfg = cfg.withDefaults()
	if cfg.Gateway == nil {
		return nil, errors.New("agentload: BenchConfig.Gateway is required")
	}
	b := &bench{cfg: cfg, log: &logTail{}, report: &Report{Agents: cfg.Agents, Goal: cfg.Goal, LoadAverage: loadAverage()}}
	if err := b.prepare(ctx); err != nil {
		return nil, err
	}
	defer b.close()
	err := b.run(ctx)
	b.report.GatewayLogLines, b.report.GatewayLogTail = b.log.summary()
	return b.report, err
}

type bench struct {
	cfg     BenchConfig
	log     *logTail
	logFile *os.File // the gateway's whole log, in ProfileDir
	report  *Report
	dataDir string
	tempDir bool
	gateway *gatewayProcess
	fleet   *Fleet
}

// prepare checks the open files limit and makes the data dir.
func (b *bench) prepare(ctx context.Context) error {
	limit, err := RaiseOpenFiles()
	if err != nil {
		return err
	}
	b.report.OpenFiles = limit
	if need := uint64(b.cfg.Agents) + 1024; limit < need {
		return fmt.Errorf("agentload: %d agents need about %d open files; the limit is %d (ulimit -n)", b.cfg.Agents, need, limit)
	}
	if b.cfg.ProfileDir != "" {
		if err := os.MkdirAll(b.cfg.ProfileDir, 0o755); err != nil {
			return err
		}
		if b.logFile, err = os.Create(filepath.Join(b.cfg.ProfileDir, "gateway.log")); err != nil {
			return err
		}
	}
	b.dataDir = b.cfg.DataDir
	if b.dataDir == "" {
		if b.dataDir, err = os.MkdirTemp("", "agentload-"); err != nil {
			return err
		}
		b.tempDir = true
	}
	return ctx.Err()
}

func (b *bench) gatewayArgs(more ...string) []string {
	return append([]string{"--data-dir", b.dataDir, fmt.Sprintf("--last-seen=%t", !b.cfg.WithoutLastSeen)}, more...)
}

// gatewayLog is where the gateway's stderr goes.
func (b *bench) gatewayLog() io.Writer {
	if b.logFile == nil {
		return b.log
	}
	return io.MultiWriter(b.log, b.logFile)
}

func (b *bench) close() {
	if b.fleet != nil {
		b.fleet.Close()
	}
	if b.gateway != nil {
		b.gateway.stop()
	}
	if b.logFile != nil {
		b.logFile.Close()
	}
	if b.tempDir {
		os.RemoveAll(b.dataDir)
	}
}

func (b *bench) run(ctx context.Context) error {
	if err := b.enrol(ctx); err != nil {
		return err
	}
	var err error
	if b.report.Steady, _, err = b.measured(ctx, "steady", Load{Interval: b.cfg.Interval, Duration: b.cfg.Steady}, nil); err != nil {
		return err
	}
	if err := b.steps(ctx); err != nil {
		return err
	}
	for _, down := range b.cfg.Downs {
		s, err := b.storm(ctx, down)
		if err != nil {
			return err
		}
		b.report.Storms = append(b.report.Storms, s)
	}
	return nil
}

// enrol starts the gateway, which issues the tokens, and enrols the fleet.
func (b *bench) enrol(ctx context.Context) error {
	g, err := startGateway(ctx, b.cfg.Gateway, b.gatewayArgs("--agents", fmt.Sprint(b.cfg.Agents)), b.gatewayLog(), 10*time.Minute)
	if err != nil {
		return err
	}
	b.gateway = g
	ca, err := parseCACert(g.ready.CAPEM)
	if err != nil {
		return err
	}
	start := time.Now()
	b.fleet, err = Enroll(ctx, Config{Gateway: g.ready.Addr, CA: ca, Tokens: g.ready.Tokens})
	if err != nil {
		return err
	}
	b.report.Enrolment = time.Since(start)
	fmt.Fprintf(b.cfg.Out, "enrolled and connected %d agents in %s (%.0f/s)\n",
		b.cfg.Agents, b.report.Enrolment.Round(time.Millisecond), float64(b.cfg.Agents)/b.report.Enrolment.Seconds())
	return nil
}

// steps raises the rate until a step misses the goal, then tries once the
// rate halfway between the last that met it and the one that missed.
func (b *bench) steps(ctx context.Context) error {
	var met, missed float64
	try := func(rate float64) (bool, error) {
		_, ok, err := b.measured(ctx, fmt.Sprintf("step %.0f/s", rate), Load{Rate: rate, Duration: b.cfg.Step}, &b.report.Steps)
		if err != nil {
			return false, err
		}
		if ok {
			met = max(met, rate)
		} else if missed == 0 || rate < missed {
			missed = rate
		}
		return ok, nil
	}
	for _, rate := range b.cfg.Rates {
		ok, err := try(rate)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
	}
	if missed > 0 && missed-met >= 200 {
		if _, err := try(roundRate((met + missed) / 2)); err != nil {
			return err
		}
	}
	b.report.Sustained = met
	return nil
}

// fileName turns a phase name ("step 2000/s, again") into a file name
// ("step-2000-s-again").
func fileName(phase string) string {
	return strings.Join(strings.FieldsFunc(phase, func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	}), "-")
}

func roundRate(r float64) float64 { return float64(int(r/100) * 100) }

// measured runs a phase once the machine is quiet, and again when it
// missed the goal while other processes were busy; every try is appended
// to tries when given. It returns the last try and whether it met the goal.
func (b *bench) measured(ctx context.Context, name string, l Load, tries *[]Phase) (Phase, bool, error) {
	for try := 1; ; try++ {
		b.awaitQuiet(ctx)
		p, err := b.phase(ctx, name, l)
		if err != nil {
			return p, false, err
		}
		if tries != nil {
			*tries = append(*tries, p)
		}
		ok := p.Meets(b.cfg.Goal)
		if ok || p.OthersBusy <= b.cfg.Quiet || try == 3 {
			return p, ok, nil
		}
		fmt.Fprintf(b.cfg.Out, "%s missed the goal while other processes used %.0f%% of the machine: again\n", name, 100*p.OthersBusy)
		name = strings.TrimSuffix(name, ", again") + ", again"
	}
}

// awaitQuiet waits until other processes use at most cfg.Quiet of the
// machine over 5 s, or cfg.QuietWait has passed.
func (b *bench) awaitQuiet(ctx context.Context) {
	if b.cfg.Quiet >= 1 {
		return
	}
	for deadline := time.Now().Add(b.cfg.QuietWait); time.Now().Before(deadline) && ctx.Err() == nil; {
		meter := startCPUMeter(b.gateway.pid())
		time.Sleep(5 * time.Second)
		gw, self, machine := meter.shares()
		others := othersShare(machine, gw, self)
		if others <= b.cfg.Quiet {
			return
		}
		fmt.Fprintf(b.cfg.Out, "waiting for a quiet machine: other processes use %.0f%% of it\n", 100*others)
	}
}

func othersShare(machine float64, ours ...CPUShare) float64 {
	for _, c := range ours {
		machine -= c.Machine
	}
	return max(machine, 0)
}

// phase applies one Load and measures what it cost.
func (b *bench) phase(ctx context.Context, name string, l Load) (Phase, error) {
	stopProfile := b.profile(name)
	meter := startCPUMeter(b.gateway.pid())
	res, err := b.fleet.Run(ctx, l)
	if err != nil {
		return Phase{}, err
	}
	p := b.measure(name, res, meter)
	stopProfile()
	fmt.Fprintf(b.cfg.Out, "%s: %s; gateway %s; generator %s; machine %.0f%% busy (others %.0f%%); load %s\n",
		name, res, p.Gateway, p.Generator, 100*p.MachineBusy, 100*p.OthersBusy, p.LoadAverage)
	return p, nil
}

// measure completes a Result with what the meter and the gateway say.
func (b *bench) measure(name string, res Result, meter *cpuMeter) Phase {
	p := Phase{Name: name, Result: res, LoadAverage: loadAverage(), GatewayRSSMB: residentMB(b.gateway.pid()), GeneratorRSSMB: residentMB(os.Getpid())}
	p.Gateway, p.Generator, p.MachineBusy = meter.shares()
	p.OthersBusy = othersShare(p.MachineBusy, p.Gateway, p.Generator)
	if st, err := b.gateway.control("stats"); err == nil {
		p.GatewayGoroutines = st.Goroutines
	}
	return p
}

// profile starts a gateway CPU profile when asked to and returns its stop.
func (b *bench) profile(name string) func() {
	if b.cfg.ProfileDir == "" {
		return func() {}
	}
	path, err := filepath.Abs(filepath.Join(b.cfg.ProfileDir, "gateway-"+fileName(name)+".pprof"))
	if err == nil {
		_, err = b.gateway.control("profile " + path)
	}
	if err != nil {
		fmt.Fprintf(b.cfg.Out, "%s: no profile: %v\n", name, err)
		return func() {}
	}
	base := strings.TrimSuffix(path, ".pprof")
	return func() {
		b.gateway.control("goroutine " + base + "-goroutines.txt")
		b.gateway.control("heap " + base + "-heap.pprof")
		b.gateway.control("endprofile")
	}
}

// storm restarts the gateway under the steady load and waits until every
// agent has heartbeated on the new one.
func (b *bench) storm(ctx context.Context, down time.Duration) (Storm, error) {
	b.awaitQuiet(ctx)
	s, err := b.fleet.Start(ctx, Load{Interval: b.cfg.Interval})
	if err != nil {
		return Storm{}, err
	}
	st, name := Storm{Down: down}, fmt.Sprintf("restart, down %s", down)
	stopping := time.Now()
	if err := b.gateway.stop(); err != nil {
		st.StopError = err.Error()
	}
	st.Stop = time.Since(stopping)
	time.Sleep(down)
	starting := time.Now()
	b.gateway, err = startGateway(ctx, b.cfg.Gateway, b.gatewayArgs("--addr", b.fleet.cfg.Gateway), b.gatewayLog(), time.Minute)
	if err != nil {
		s.Stop()
		b.gateway = nil
		return Storm{}, err
	}
	up := time.Now()
	st.Start = up.Sub(starting)
	s.WatchRejoin(up)
	stopProfile := b.profile(name)
	meter := startCPUMeter(b.gateway.pid())
	b.awaitRejoin(ctx, s, up, name)
	res := s.Stop()
	st.Rejoin, st.AfterRestart = s.Rejoin(), s.resultBetween(up, s.end)
	st.Phase = b.measure(name, res, meter)
	stopProfile()
	fmt.Fprintf(b.cfg.Out, "%s: stopped in %s, started in %s; %d/%d agents rejoined, the last %s after the restart, peak %d/s; after the restart: %s; gateway %s; load %s\n",
		name, st.stopped(), st.Start.Round(time.Millisecond), st.Rejoin.Agents, b.cfg.Agents,
		st.Rejoin.Last.Round(time.Millisecond), st.Rejoin.PeakPerSecond, st.AfterRestart, st.Gateway, st.LoadAverage)
	return st, nil
}

// stopped is how long the stop took, and why it was not clean.
func (s Storm) stopped() string {
	d := s.Stop.Round(time.Millisecond).String()
	if s.StopError != "" {
		d += " (" + s.StopError + ")"
	}
	return d
}

// awaitRejoin waits until every agent rejoined; with a ProfileDir, it
// records where the gateway's goroutines are 5 s after its restart.
func (b *bench) awaitRejoin(ctx context.Context, s *Session, up time.Time, name string) {
	dumped := b.cfg.ProfileDir == ""
	for time.Since(up) < b.cfg.RejoinWithin && ctx.Err() == nil {
		if s.Rejoin().Agents == b.cfg.Agents {
			return
		}
		if !dumped && time.Since(up) >= 5*time.Second {
			b.gateway.control("goroutine " + filepath.Join(b.cfg.ProfileDir, "gateway-"+fileName(name)+"-goroutines-at-5s.txt"))
			dumped = true
		}
		time.Sleep(50 * time.Millisecond)
	}
}
