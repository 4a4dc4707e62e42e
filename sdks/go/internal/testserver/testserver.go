// Package testserver gives the SDK's tests a real Keyward server: the one named by
// KEYWARD_URL and KEYWARD_MANAGEMENT_KEY (and KEYWARD_WORKSPACE_ID), or else one started
// from KEYWARD_BIN (`serve --data-dir TMP --listen 127.0.0.1:0 --webhook-allow-private`).
package testserver

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// Server is a running Keyward server.
type Server struct {
	URL           string
	ManagementKey string
	WorkspaceID   string
	// OperatorToken is the kw_op_ token a fresh server prints (empty for KEYWARD_URL's).
	OperatorToken string
	cmd           *exec.Cmd
	dir           string
}

var (
	once   sync.Once
	shared *Server
	err    error
)

// Shared returns the tests' server, starting it on first use; it skips the test when there
// is none (neither KEYWARD_URL nor KEYWARD_BIN set).
func Shared(t testing.TB) *Server {
	t.Helper()
	once.Do(func() {
		if u := os.Getenv("KEYWARD_URL"); u != "" && os.Getenv("KEYWARD_MANAGEMENT_KEY") != "" {
			shared = &Server{URL: strings.TrimRight(u, "/"), ManagementKey: os.Getenv("KEYWARD_MANAGEMENT_KEY"), WorkspaceID: os.Getenv("KEYWARD_WORKSPACE_ID")}
			return
		}
		if bin := os.Getenv("KEYWARD_BIN"); bin != "" {
			shared, err = Start(bin)
			return
		}
		err = errors.New("no server: set KEYWARD_URL and KEYWARD_MANAGEMENT_KEY, or KEYWARD_BIN")
	})
	if shared == nil {
		if os.Getenv("KEYWARD_REQUIRE_SERVER") != "" {
			t.Fatalf("keyward server: %v", err)
		}
		t.Skipf("keyward server: %v", err)
	}
	return shared
}

// StopShared stops the shared server if this process started it (call from TestMain).
func StopShared() {
	if shared != nil {
		shared.Close()
	}
}

var (
	listenRe = regexp.MustCompile(`keyward listening.*addr=([0-9.:\[\]a-f]+)`)
	mkRe     = regexp.MustCompile(`[a-z0-9]+_mk_[A-Za-z0-9]+`)
	wsRe     = regexp.MustCompile(`ws_[A-Za-z0-9]+`)
	opRe     = regexp.MustCompile(`kw_op_[A-Za-z0-9_]+`)
)

// Start runs `bin serve` on a fresh data dir and a free port and waits until it listens.
func Start(bin string, extra ...string) (*Server, error) {
	return StartAt(bin, "127.0.0.1:0", extra...)
}

// StartAt is Start listening at listen (e.g. a port chosen beforehand, to give the server a
// --public-url naming it).
func StartAt(bin, listen string, extra ...string) (*Server, error) {
	dir, err := os.MkdirTemp("", "keyward-go-test-")
	if err != nil {
		return nil, err
	}
	args := append([]string{"serve", "--data-dir", dir + "/data", "--listen", listen, "--webhook-allow-private"}, extra...)
	cmd := exec.Command(bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &Server{cmd: cmd, dir: dir}
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			if s.ManagementKey == "" {
				s.ManagementKey = mkRe.FindString(line)
			}
			if s.WorkspaceID == "" {
				s.WorkspaceID = wsRe.FindString(line)
			}
			if s.OperatorToken == "" {
				s.OperatorToken = opRe.FindString(line)
			}
			if m := listenRe.FindStringSubmatch(line); m != nil && !sent {
				s.URL = "http://" + m[1]
				sent = true
				ready <- nil
			}
		}
		if !sent {
			ready <- errors.New("keyward serve exited before listening")
		}
	}()
	select {
	case err := <-ready:
		if err != nil {
			s.Close()
			return nil, err
		}
	case <-time.After(30 * time.Second):
		s.Close()
		return nil, fmt.Errorf("keyward serve did not listen within 30s")
	}
	return s, nil
}

// Close stops a server this package started.
func (s *Server) Close() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		_, _ = s.cmd.Process.Wait()
		s.cmd = nil
	}
	if s.dir != "" {
		_ = os.RemoveAll(s.dir)
		s.dir = ""
	}
}
