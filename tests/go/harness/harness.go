// Package harness starts a real `fjord dev` process for Go client tests.
//
// The node binds its Kafka listener on port 0; the harness reads the bound port back from the
// "fjord node ready" log line and then waits until a raw Metadata request lists a broker.
// Every process it starts is killed at the end (and by the kernel if the test binary dies
// first: Pdeathsig).
package harness

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	startTimeout = 30 * time.Second
	stopTimeout  = 20 * time.Second
)

// Node is one running `fjord dev` process.
type Node struct {
	Bootstrap string // 127.0.0.1:PORT, the bound Kafka listener
	LogPath   string
	cmd       *exec.Cmd
	exited    chan struct{}
	exitErr   error
	dataDir   string
}

// Binary is $FJORD_BIN, else $CARGO_TARGET_DIR/debug/fjord, else ~/.cache/fjord/target/debug/fjord.
func Binary() (string, error) {
	var candidates []string
	if p := os.Getenv("FJORD_BIN"); p != "" {
		candidates = append(candidates, p)
	} else {
		if d := os.Getenv("CARGO_TARGET_DIR"); d != "" {
			candidates = append(candidates, filepath.Join(d, "debug", "fjord"))
		}
		if home, err := os.UserHomeDir(); err == nil {
			candidates = append(candidates, filepath.Join(home, ".cache", "fjord", "target", "debug", "fjord"))
		}
	}
	for _, c := range candidates {
		if st, err := os.Stat(c); err == nil && !st.IsDir() {
			return c, nil
		}
	}
	return "", fmt.Errorf("fjord binary not found (tried %s); build it with `cargo build --bins` or set FJORD_BIN",
		strings.Join(candidates, ", "))
}

// Start launches `fjord dev` on port 0 and returns once it answers Metadata.
func Start(name string) (*Node, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	logDir := os.Getenv("FJORD_E2E_LOG_DIR")
	if logDir == "" {
		logDir = filepath.Join(os.TempDir(), "fjord-e2e-logs")
	}
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, err
	}
	dataDir, err := os.MkdirTemp("", "fjord-go-"+name+"-")
	if err != nil {
		return nil, err
	}
	n := &Node{
		LogPath: filepath.Join(logDir, fmt.Sprintf("go-%s-%d-%s.log", name, os.Getpid(), randomHex(3))),
		exited:  make(chan struct{}),
		dataDir: dataDir,
	}
	logFile, err := os.Create(n.LogPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child keeps its own descriptor
	n.cmd = exec.Command(bin, "dev",
		"--data-dir", filepath.Join(dataDir, "data"),
		"--kafka-addr", "127.0.0.1:0",
		"--http-addr", "127.0.0.1:0")
	n.cmd.Stdout = logFile
	n.cmd.Stderr = logFile
	n.cmd.Env = append(os.Environ(), "NO_COLOR=1", "RUST_BACKTRACE=1")
	// If this test binary dies (e.g. `go test -timeout`), the kernel kills the node too.
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := n.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	go func() {
		n.exitErr = n.cmd.Wait()
		close(n.exited)
	}()
	if err := n.waitReady(); err != nil {
		n.kill()
		return nil, fmt.Errorf("%w\n%s", err, n.Tail(60))
	}
	return n, nil
}

// The ready line carries e.g. `kafka_listeners=PLAINTEXT://127.0.0.1:41234`.
var readyLine = regexp.MustCompile(`fjord node ready.*kafka_listeners=\S*?PLAINTEXT://([0-9.]+:[0-9]+)`)

func (n *Node) waitReady() error {
	deadline := time.Now().Add(startTimeout)
	for n.Bootstrap == "" {
		if m := readyLine.FindStringSubmatch(n.Log()); m != nil {
			n.Bootstrap = m[1]
			break
		}
		if err := n.sleepUnlessExited(deadline, "no \"fjord node ready\" line with a PLAINTEXT listener"); err != nil {
			return err
		}
	}
	last := "no attempt"
	for {
		brokers, err := metadataBrokerCount(n.Bootstrap)
		if err == nil && brokers > 0 {
			return nil
		}
		if err != nil {
			last = err.Error()
		} else {
			last = "Metadata lists no broker"
		}
		if err := n.sleepUnlessExited(deadline, "Metadata on "+n.Bootstrap+": "+last); err != nil {
			return err
		}
	}
}

func (n *Node) sleepUnlessExited(deadline time.Time, what string) error {
	select {
	case <-n.exited:
		return fmt.Errorf("fjord exited during startup (%v)", n.exitErr)
	case <-time.After(50 * time.Millisecond):
	}
	if time.Now().After(deadline) {
		return fmt.Errorf("fjord not ready within %s (%s)", startTimeout, what)
	}
	return nil
}

// metadataBrokerCount sends a Metadata v0 request for all topics and returns how many brokers
// the answer lists. Client-independent on purpose: the harness should not depend on the
// clients under test.
func metadataBrokerCount(addr string) (int32, error) {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	clientID := "fjord-go-harness"
	var body bytes.Buffer
	_ = binary.Write(&body, binary.BigEndian, int16(3)) // api key: Metadata
	_ = binary.Write(&body, binary.BigEndian, int16(0)) // version 0
	_ = binary.Write(&body, binary.BigEndian, int32(1)) // correlation id
	_ = binary.Write(&body, binary.BigEndian, int16(len(clientID)))
	body.WriteString(clientID)
	_ = binary.Write(&body, binary.BigEndian, int32(0)) // topics: empty array = all
	frame := binary.BigEndian.AppendUint32(nil, uint32(body.Len()))
	if _, err := conn.Write(append(frame, body.Bytes()...)); err != nil {
		return 0, err
	}
	var size int32
	if err := binary.Read(conn, binary.BigEndian, &size); err != nil {
		return 0, err
	}
	if size < 8 {
		return 0, fmt.Errorf("short Metadata response (%d bytes)", size)
	}
	resp := make([]byte, size)
	if _, err := io.ReadFull(conn, resp); err != nil {
		return 0, err
	}
	if corr := int32(binary.BigEndian.Uint32(resp[0:4])); corr != 1 {
		return 0, fmt.Errorf("correlation id %d, want 1", corr)
	}
	return int32(binary.BigEndian.Uint32(resp[4:8])), nil
}

// Log is the node's whole log so far.
func (n *Node) Log() string {
	b, _ := os.ReadFile(n.LogPath)
	return string(b)
}

// Tail is the last lines of the node's log, for failure messages.
func (n *Node) Tail(lines int) string {
	all := strings.Split(strings.TrimRight(n.Log(), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return fmt.Sprintf("--- %s (last %d lines) ---\n%s", n.LogPath, len(all), strings.Join(all, "\n"))
}

// Stop ends the node with SIGTERM (SIGKILL after stopTimeout) and removes its data. It fails
// if the node had already exited on its own or its log shows a panic.
func (n *Node) Stop() error {
	var problems []string
	select {
	case <-n.exited:
		problems = append(problems, fmt.Sprintf("fjord exited on its own before the end (%v)", n.exitErr))
	default:
		_ = n.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-n.exited:
		case <-time.After(stopTimeout):
			n.kill()
			problems = append(problems, fmt.Sprintf("fjord did not exit within %s of SIGTERM", stopTimeout))
		}
	}
	log := n.Log()
	for _, marker := range []string{"panicked", "memory allocation of", "fatal runtime error"} {
		if i := strings.Index(log, marker); i >= 0 {
			start := strings.LastIndex(log[:i], "\n") + 1
			end := min(len(log), start+3000)
			problems = append(problems, "node log shows a panic or abort:\n"+log[start:end])
			break
		}
	}
	_ = os.RemoveAll(n.dataDir)
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "\n") + "\n" + n.Tail(40))
	}
	return nil
}

func (n *Node) kill() {
	_ = n.cmd.Process.Kill()
	<-n.exited
}

// Main runs a package's tests against one node: TestMain calls it and passes the result to
// os.Exit. The node log tail is printed when a test failed.
//
// With FJORD_TEST_BOOTSTRAP=HOST:PORT no node is started: the tests run against that broker
// (e.g. Apache Kafka from scripts/kafka, to check what Kafka answers where Fjord differs).
func Main(m *testing.M, name string, node **Node) int {
	if addr := os.Getenv("FJORD_TEST_BOOTSTRAP"); addr != "" {
		*node = &Node{Bootstrap: addr}
		fmt.Fprintf(os.Stderr, "harness: external broker %s (FJORD_TEST_BOOTSTRAP)\n", addr)
		return m.Run()
	}
	n, err := Start(name)
	if err != nil {
		fmt.Fprintf(os.Stderr, "harness: %v\n", err)
		return 1
	}
	*node = n
	fmt.Fprintf(os.Stderr, "harness: fjord dev on %s, log %s\n", n.Bootstrap, n.LogPath)
	code := m.Run()
	if code != 0 {
		fmt.Fprintln(os.Stderr, n.Tail(80))
	}
	if err := n.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "harness: %v\n", err)
		code = 1
	}
	return code
}

// Name is a topic or group name unique to this run: go-PREFIX-<random>.
func Name(prefix string) string {
	return "go-" + prefix + "-" + randomHex(5)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// SkipIncompatible skips a test that fails on Fjord because of a known incompatibility with
// Kafka, naming it. The test still runs against an external broker (FJORD_TEST_BOOTSTRAP, to
// confirm what Kafka does) and with FJORD_TEST_INCOMPATIBLE=1 (to check a fix).
func SkipIncompatible(t *testing.T, incompatibility string) {
	t.Helper()
	if os.Getenv("FJORD_TEST_BOOTSTRAP") == "" && os.Getenv("FJORD_TEST_INCOMPATIBLE") == "" {
		t.Skip("Fjord incompatibility: " + incompatibility)
	}
}
