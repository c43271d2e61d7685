package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Ports of the campaign's own stack: far from the default stack's, so the
// two never meet.
const (
	kafkaPort      = 29092
	controllerPort = 29093
	redisPort      = 26379
	chPort         = 29000
	chHTTPPort     = 28123
	ingestAddr     = "127.0.0.1:28080"
)

// stack drives devstack/stack.sh for the campaign's folder and ports.
type stack struct {
	root  string
	dir   string
	nodes int
	log   *os.File
}

func (s *stack) env() []string {
	env := append(os.Environ(),
		"DEVSTACK_DIR="+s.dir,
		"DEVSTACK_KAFKA_PORT="+strconv.Itoa(kafkaPort),
		"DEVSTACK_KAFKA_CONTROLLER_PORT="+strconv.Itoa(controllerPort),
		"DEVSTACK_REDIS_PORT="+strconv.Itoa(redisPort),
		"DEVSTACK_CLICKHOUSE_PORT="+strconv.Itoa(chPort),
		"DEVSTACK_CLICKHOUSE_HTTP_PORT="+strconv.Itoa(chHTTPPort),
	)
	if s.nodes > 1 {
		env = append(env, "DEVSTACK_KAFKA_NODES="+strconv.Itoa(s.nodes))
	}
	return env
}

// clusterSupported says whether stack.sh can run several Kafka nodes and
// kill one: the leader-kill scenario needs both.
func clusterSupported(root string) bool {
	b, err := os.ReadFile(filepath.Join(root, "devstack", "stack.sh"))
	if err != nil {
		return false
	}
	text := string(b)
	return strings.Contains(text, "DEVSTACK_KAFKA_NODES") && strings.Contains(text, "kill-node") && strings.Contains(text, "start-node")
}

// run calls stack.sh; its output goes to the campaign's stack log, and the
// last lines into the error when it fails.
func (s *stack) run(ctx context.Context, timeout time.Duration, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{filepath.Join(s.root, "devstack", "stack.sh")}, args...)...)
	cmd.Env = s.env()
	out, err := cmd.CombinedOutput()
	fmt.Fprintf(s.log, "%s stack.sh %s\n%s", time.Now().UTC().Format(time.RFC3339), strings.Join(args, " "), out)
	if err != nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) > 8 {
			lines = lines[len(lines)-8:]
		}
		return fmt.Errorf("stack.sh %s: %v\n%s", strings.Join(args, " "), err, strings.Join(lines, "\n"))
	}
	return nil
}

func (s *stack) brokers() []string {
	var b []string
	for i := 1; i <= s.nodes; i++ {
		b = append(b, "127.0.0.1:"+strconv.Itoa(brokerPort(i)))
	}
	return b
}

// brokerPort is node i's broker port, as stack.sh numbers them.
func brokerPort(i int) int { return kafkaPort + 2*(i-1) }

func portOpen(port int) bool {
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 300*time.Millisecond)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

// ---------------------------------------------------------------- processes

// proc is one eprostream process of the system under test. The campaign
// restarts it after killing it, with the same arguments and state folder.
type proc struct {
	name  string
	args  []string
	admin string
	logf  string

	mu       sync.Mutex
	cmd      *exec.Cmd
	exited   chan struct{}
	state    *os.ProcessState
	expected bool // the campaign itself ended it
	starts   int
}

// procs is every process the campaign started, so that each is ended on
// the way out whatever happened.
type procs struct {
	bin string
	env []string
	dir string

	mu         sync.Mutex
	all        map[string]*proc
	unexpected []string // processes that exited without being told to
}

func (ps *procs) add(name, admin string, args ...string) *proc {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	p := &proc{name: name, args: args, admin: admin, logf: filepath.Join(ps.dir, "logs", name+".log")}
	ps.all[name] = p
	return p
}

func (ps *procs) get(name string) *proc {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.all[name]
}

// start runs p; its log is appended to, so one file holds all its lives.
func (ps *procs) start(p *proc) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && p.state == nil {
		return fmt.Errorf("%s is already running", p.name)
	}
	f, err := os.OpenFile(p.logf, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(f, "==== faults: start %s at %s\n", p.name, time.Now().UTC().Format(time.RFC3339Nano))
	cmd := exec.Command(ps.bin, p.args...)
	cmd.Env = append(append([]string{}, ps.env...), "ADMIN_ADDR="+p.admin)
	cmd.Stdout, cmd.Stderr = f, f
	// Its own process group: a Ctrl-C of the campaign reaches the campaign,
	// which ends the system in order, not every process at once.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	p.cmd, p.state, p.expected, p.exited = cmd, nil, false, make(chan struct{})
	p.starts++
	exited := p.exited
	go func() {
		_ = cmd.Wait()
		_ = f.Close()
		p.mu.Lock()
		p.state = cmd.ProcessState
		expected := p.expected
		p.mu.Unlock()
		close(exited)
		if !expected {
			ps.mu.Lock()
			ps.unexpected = append(ps.unexpected, fmt.Sprintf("%s exited by itself at %s (%s)", p.name,
				time.Now().UTC().Format("15:04:05"), cmd.ProcessState))
			ps.mu.Unlock()
		}
	}()
	return nil
}

// takeUnexpected returns and forgets the processes that exited on their own.
func (ps *procs) takeUnexpected() []string {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	u := ps.unexpected
	ps.unexpected = nil
	return u
}

// signal sends sig to p and waits up to wait for it to exit; it returns
// the exit state.
func (p *proc) signal(sig syscall.Signal, wait time.Duration) (*os.ProcessState, error) {
	p.mu.Lock()
	if p.cmd == nil || p.state != nil {
		p.mu.Unlock()
		return nil, fmt.Errorf("%s is not running", p.name)
	}
	p.expected = true
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if err := cmd.Process.Signal(sig); err != nil {
		return nil, fmt.Errorf("signal %s: %w", p.name, err)
	}
	select {
	case <-exited:
	case <-time.After(wait):
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-exited
		return cmd.ProcessState, fmt.Errorf("%s did not exit within %s of %s; killed", p.name, wait, sig)
	}
	return cmd.ProcessState, nil
}

func (p *proc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil && p.state == nil
}

// kill9 kills p with SIGKILL and returns an error unless the operating
// system reports that the signal ended it.
func (p *proc) kill9() error {
	st, err := p.signal(syscall.SIGKILL, 10*time.Second)
	if err != nil {
		return err
	}
	ws, ok := st.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		return fmt.Errorf("%s ended with %s, not by SIGKILL", p.name, st)
	}
	return nil
}

// waitReady polls p's /readyz until it answers 200.
func (p *proc) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		if !p.running() {
			return fmt.Errorf("%s exited before it was ready; see %s", p.name, p.logf)
		}
		resp, err := client.Get("http://" + p.admin + "/readyz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready within %s (last: %v); see %s", p.name, timeout, errOr(err, resp), p.logf)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func errOr(err error, resp *http.Response) any {
	if err != nil {
		return err
	}
	return resp.Status
}

// stopAll ends every running process: SIGTERM first, so the groups stop
// cleanly, then SIGKILL after 30 s.
func (ps *procs) stopAll() {
	ps.mu.Lock()
	var all []*proc
	for _, p := range ps.all {
		all = append(all, p)
	}
	ps.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range all {
		if !p.running() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := p.signal(syscall.SIGTERM, 30*time.Second); err != nil && !errors.Is(err, os.ErrProcessDone) {
				fmt.Fprintln(os.Stderr, "faults:", err)
			}
		}()
	}
	wg.Wait()
}

// restart starts p again after pause and waits until it is ready.
func (ps *procs) restart(ctx context.Context, p *proc, pause time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(pause):
	}
	if err := ps.start(p); err != nil {
		return err
	}
	return p.waitReady(ctx, 120*time.Second)
}
