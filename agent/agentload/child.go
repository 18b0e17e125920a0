package agentload

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// gatewayProcess is the gateway's process as the benchmark sees it.
type gatewayProcess struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	replies *json.Decoder
	ready   gatewayReady
}

// startGateway starts GatewayMain with args through command and waits
// until it serves or readyWithin passes.
func startGateway(ctx context.Context, command func(args ...string) *exec.Cmd, args []string, log io.Writer, readyWithin time.Duration) (*gatewayProcess, error) {
	cmd := command(args...)
	cmd.Stderr = log
	dieWithParent(cmd)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the gateway process: %w", err)
	}
	p := &gatewayProcess{cmd: cmd, stdin: stdin, replies: json.NewDecoder(stdout)}
	if err := p.awaitReady(ctx, readyWithin); err != nil {
		p.kill()
		return nil, err
	}
	return p, nil
}

func (p *gatewayProcess) awaitReady(ctx context.Context, within time.Duration) error {
	decoded := make(chan error, 1)
	go func() { decoded <- p.replies.Decode(&p.ready) }()
	select {
	case err := <-decoded:
		if err != nil {
			return fmt.Errorf("the gateway process did not start: %w", err)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(within):
		return fmt.Errorf("the gateway process did not serve within %s", within)
	}
}

func (p *gatewayProcess) pid() int { return p.cmd.Process.Pid }

// control sends one control line and reads its reply.
func (p *gatewayProcess) control(line string) (gatewayReply, error) {
	var r gatewayReply
	if _, err := io.WriteString(p.stdin, line+"\n"); err != nil {
		return r, err
	}
	if err := p.replies.Decode(&r); err != nil {
		return r, err
	}
	if r.Error != "" {
		return r, errors.New("gateway: " + r.Error)
	}
	return r, nil
}

// stop sends SIGTERM, as an operator restarting the appliance does, and
// waits for the process to exit (killing it after a minute).
func (p *gatewayProcess) stop() error {
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		p.stdin.Close()
		return err
	case <-time.After(time.Minute):
		p.cmd.Process.Kill()
		<-done
		return errors.New("the gateway process did not stop within a minute of SIGTERM")
	}
}

func (p *gatewayProcess) kill() {
	p.cmd.Process.Kill()
	p.cmd.Wait()
}

// logTail counts the lines the gateway logs and keeps the last few.
type logTail struct {
	mu    sync.Mutex
	lines int
	tail  []string
	part  []byte
}

const logTailLines = 10

func (l *logTail) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.part = append(l.part, b...)
	for {
		i := bytes.IndexByte(l.part, '\n')
		if i < 0 {
			return len(b), nil
		}
		l.lines++
		l.tail = append(l.tail, string(l.part[:i]))
		if len(l.tail) > logTailLines {
			l.tail = l.tail[1:]
		}
		l.part = l.part[i+1:]
	}
}

// summary is the line count and the last lines.
func (l *logTail) summary() (int, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lines, strings.Join(l.tail, "\n")
}
