package agentload

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of /proc CPU times: 100 on every Linux
// architecture Go supports.
const clockTicks = 100

// RaiseOpenFiles lifts this process's soft limit on open files to the hard
// limit (Go does so at start, but not for every child it execs) and
// returns the limit now in force. Each agent and each accepted agent
// holds one descriptor.
func RaiseOpenFiles() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("read the open files limit: %w", err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return 0, fmt.Errorf("raise the open files limit: %w", err)
		}
	}
	return lim.Cur, nil
}

// cpuTime is the CPU a process has used, user and system, from
// /proc/<pid>/stat.
func cpuTime(pid int) (time.Duration, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces: fields count from after its ')'.
	i := strings.LastIndexByte(string(raw), ')')
	if i < 0 {
		return 0, errors.New("unexpected /proc stat format")
	}
	f := strings.Fields(string(raw[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("unexpected /proc stat format")
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14 of stat
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// machineTimes is the machine's busy and total CPU time, from /proc/stat.
func machineTimes() (busy, total time.Duration, err error) {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0, errors.New("unexpected /proc/stat format")
	}
	var idle int64
	for i, v := range f[1:min(len(f), 9)] { // user … steal; guest time is already in user
		n, _ := strconv.ParseInt(v, 10, 64)
		if i == 3 || i == 4 { // idle, iowait
			idle += n
		}
		total += time.Duration(n)
	}
	busy = (total - time.Duration(idle)) * time.Second / clockTicks
	return busy, total * time.Second / clockTicks, nil
}

// residentMB is a process's resident set size.
func residentMB(pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// loadAverage is the first three fields of /proc/loadavg.
func loadAverage() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(raw))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// cpuMeter measures the CPU share of the gateway, of this process and of
// the whole machine over an interval.
type cpuMeter struct {
	gatewayPID int
	at         time.Time
	gateway    time.Duration
	self       time.Duration
	busy       time.Duration
	total      time.Duration
}

// CPUShare is CPU used over a wall-clock interval, as a share of one core
// (1 = a core fully busy) and of all the machine's cores.
type CPUShare struct {
	Core    float64
	Machine float64
}

func (c CPUShare) String() string {
	return fmt.Sprintf("%.0f%% of a core, %.0f%% of %d cores", 100*c.Core, 100*c.Machine, runtime.NumCPU())
}

func startCPUMeter(gatewayPID int) *cpuMeter {
	m := &cpuMeter{gatewayPID: gatewayPID, at: time.Now()}
	m.gateway, _ = cpuTime(gatewayPID)
	m.self, _ = cpuTime(os.Getpid())
	m.busy, m.total, _ = machineTimes()
	return m
}

// shares returns the gateway's, this process's and the machine's CPU
// since the meter started.
func (m *cpuMeter) shares() (gateway, self CPUShare, machine float64) {
	wall := time.Since(m.at)
	gw, _ := cpuTime(m.gatewayPID)
	me, _ := cpuTime(os.Getpid())
	busy, total, _ := machineTimes()
	share := func(d time.Duration) CPUShare {
		core := d.Seconds() / wall.Seconds()
		return CPUShare{Core: core, Machine: core / float64(runtime.NumCPU())}
	}
	if total > m.total {
		machine = (busy - m.busy).Seconds() / (total - m.total).Seconds()
	}
	return share(gw - m.gateway), share(me - m.self), machine
}
