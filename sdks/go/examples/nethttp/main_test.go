package main

// The held-out app test: this program, built and run for real on a free port against a real
// Keyward server, answers no key with 401, a key lacking orders.read with 403, and a good
// key with 200 and the verification visible to the handler.

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	keyward "github.com/keyward/keyward-go"
	"github.com/keyward/keyward-go/internal/testserver"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testserver.StopShared()
	os.Exit(code)
}

func TestProgram(t *testing.T) {
	srv := testserver.Shared(t)
	ctx := context.Background()
	kw := keyward.New(srv.URL, keyward.WithManagementKey(srv.ManagementKey))
	good, err := kw.Keys.Create(ctx, keyward.CreateKey{Name: "orders-reader", Permissions: []string{"orders.read"}})
	if err != nil {
		t.Fatal(err)
	}
	lacking, err := kw.Keys.Create(ctx, keyward.CreateKey{Name: "billing-only", Permissions: []string{"billing.read"}})
	if err != nil {
		t.Fatal(err)
	}

	bin := filepath.Join(t.TempDir(), "app")
	build := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "KEYWARD_URL="+srv.URL, "LISTEN=127.0.0.1:0")
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() }()
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if a := strings.TrimPrefix(sc.Text(), "listening on "); a != sc.Text() {
				addrc <- a
			}
		}
	}()
	var base string
	select {
	case a := <-addrc:
		base = "http://" + a
	case <-time.After(20 * time.Second):
		t.Fatal("the program did not listen")
	}

	call := func(header, value string) (int, map[string]interface{}, http.Header) {
		req, _ := http.NewRequest("GET", base+"/orders", nil)
		if header != "" {
			req.Header.Set(header, value)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var m map[string]interface{}
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%d: not JSON: %s", resp.StatusCode, b)
		}
		return resp.StatusCode, m, resp.Header
	}
	errOf := func(m map[string]interface{}) map[string]interface{} {
		e, _ := m["error"].(map[string]interface{})
		return e
	}

	status, body, h := call("", "")
	if e := errOf(body); status != 401 || e["code"] != "unauthenticated" || e["message"] == "" || e["verification_code"] != "MALFORMED" || h.Get("X-Keyward-Code") != "MALFORMED" {
		t.Fatalf("no key: %d %v", status, body)
	}
	status, body, _ = call("X-API-Key", "kw_test_sk_made-up")
	if status != 401 || errOf(body)["code"] != "unauthenticated" {
		t.Fatalf("bad key: %d %v", status, body)
	}
	status, body, h = call("X-API-Key", lacking.Secret)
	if e := errOf(body); status != 403 || e["code"] != "forbidden" || e["verification_code"] != "INSUFFICIENT_PERMISSIONS" || h.Get("Content-Type") != "application/json" {
		t.Fatalf("lacking key: %d %v", status, body)
	}
	status, body, _ = call("X-API-Key", good.Secret)
	if status != 200 || body["key_id"] != good.ID || body["name"] != "orders-reader" {
		t.Fatalf("good key: %d %v", status, body)
	}
	status, body, _ = call("Authorization", "Bearer "+good.Secret)
	if status != 200 || body["key_id"] != good.ID {
		t.Fatalf("good key as Bearer: %d %v", status, body)
	}
	if _, err := kw.Keys.Revoke(ctx, good.ID); err != nil {
		t.Fatal(err)
	}
	status, body, _ = call("X-API-Key", good.Secret)
	if status != 401 || errOf(body)["verification_code"] != "REVOKED" {
		t.Fatalf("revoked key: %d %v", status, body)
	}
}
