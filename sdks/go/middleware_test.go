package keyward_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	keyward "github.com/keyward/keyward-go"
)

type answer struct {
	status int
	header http.Header
	body   map[string]interface{}
}

func (a answer) errCode() (string, string) {
	e, _ := a.body["error"].(map[string]interface{})
	c, _ := e["code"].(string)
	v, _ := e["verification_code"].(string)
	return c, v
}

func send(t *testing.T, req *http.Request) answer {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]interface{}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%d: not JSON: %q", resp.StatusCode, b)
	}
	return answer{resp.StatusCode, resp.Header, m}
}

// echo answers the verification the middleware put in the context, and the body it got.
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	v, ok := keyward.FromContext(r.Context())
	b, _ := io.ReadAll(r.Body)
	_ = json.NewEncoder(w).Encode(map[string]interface{}{"ok": ok, "key_id": v.KeyID, "code": v.Code, "body": string(b)})
})

func TestMiddleware(t *testing.T) {
	kw, srv, ctx := setup(t)
	defer rescue(t)
	verifier := keyward.New(srv.URL)
	// Scope from the path: /wallets/{id}.
	walletScope := keyward.ScopeFunc(func(r *http.Request) string {
		return "wallet:" + strings.TrimPrefix(r.URL.Path, "/wallets/")
	})
	mux := http.NewServeMux()
	mux.Handle("/wallets/", keyward.Middleware(verifier, keyward.Require("wallet.read"), walletScope)(echo))
	mux.Handle("/both", keyward.Middleware(verifier, keyward.Require("a.read"), keyward.Require("b.read"))(echo))
	mux.Handle("/live", keyward.Middleware(verifier, keyward.Environment("live"))(echo))
	mux.Handle("/custom", keyward.Middleware(verifier, keyward.OnRefusal(func(w http.ResponseWriter, r *http.Request, e *keyward.Error, _ *keyward.Verification) {
		w.WriteHeader(418)
		fmt.Fprintf(w, `{"teapot":%q}`, e.Code)
	}))(echo))
	mux.Handle("/signed", keyward.Middleware(verifier, keyward.Require("wallet.read"))(echo))
	app := httptest.NewServer(mux)
	defer app.Close()

	key := must(kw.Keys.Create(ctx, keyward.CreateKey{Name: name(t), Permissions: []string{"wallet.read", "a.read"}, Scopes: []string{"wallet:w_1"}}))
	get := func(path, secret string) answer {
		req, _ := http.NewRequest("GET", app.URL+path, nil)
		if secret != "" {
			req.Header.Set("Authorization", "Bearer "+secret)
		}
		return send(t, req)
	}
	if a := get("/wallets/w_1", key.Secret); a.status != 200 || a.body["key_id"] != key.ID || a.body["ok"] != true {
		t.Fatalf("in scope: %+v", a)
	}
	if a := get("/wallets/w_2", key.Secret); a.status != 403 {
		t.Fatalf("out of scope: %+v", a)
	}
	if a := get("/both", key.Secret); a.status != 403 {
		t.Fatalf("two requirements, one held: %+v", a)
	}
	if a := get("/live", key.Secret); a.status != 403 {
		t.Fatalf("test key on a live route: %+v", a)
	} else if c, v := a.errCode(); c != "forbidden" || v != "WRONG_ENVIRONMENT" {
		t.Fatalf("wrong environment: %s %s", c, v)
	}
	if a := get("/custom", ""); a.status != 418 || a.body["teapot"] != "unauthenticated" {
		t.Fatalf("OnRefusal: %+v", a)
	}
	if a := get("/wallets/w_1", ""); a.status != 401 || a.header.Get("WWW-Authenticate") == "" {
		t.Fatalf("no key: %+v", a)
	}

	// Rate limited: 429 with Retry-After, in Keyward's shape.
	limited := must(kw.Keys.Create(ctx, keyward.CreateKey{Name: name(t), Permissions: []string{"wallet.read"}, Scopes: []string{"wallet:*"},
		Ratelimits: []keyward.RateLimit{{Name: "tight", Limit: 1, Duration: "1h"}}}))
	if a := get("/wallets/w_9", limited.Secret); a.status != 200 {
		t.Fatalf("first call: %+v", a)
	}
	a := get("/wallets/w_9", limited.Secret)
	if c, v := a.errCode(); a.status != 429 || c != "rate_limited" || v != "RATE_LIMITED" || a.header.Get("Retry-After") == "" {
		t.Fatalf("rate limited: %+v", a)
	}

	// A signed request passes, its body still readable by the handler.
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer := keyward.NewSigner(priv)
	must(kw.Keys.Create(ctx, keyward.CreateKey{Name: name(t), PublicKey: signer.PublicKeyHex(), Permissions: []string{"wallet.read"}}))
	req, _ := http.NewRequest("POST", app.URL+"/signed?x=1", bytes.NewReader([]byte(`{"amount":"1.5"}`)))
	if err := signer.SignRequest(req); err != nil {
		t.Fatal(err)
	}
	if a := send(t, req); a.status != 200 || a.body["body"] != `{"amount":"1.5"}` {
		t.Fatalf("signed: %+v", a)
	}
	req, _ = http.NewRequest("POST", app.URL+"/signed?x=1", bytes.NewReader([]byte(`{"amount":"1.5"}`)))
	_ = signer.SignRequest(req)
	req.Body = io.NopCloser(strings.NewReader(`{"amount":"9999"}`))
	req.ContentLength = -1
	if a := send(t, req); a.status != 401 {
		t.Fatalf("signed, body changed: %+v", a)
	} else if _, v := a.errCode(); v != "INVALID_SIGNATURE" {
		t.Fatalf("signed, body changed: %s", v)
	}

	// Keyward unreachable: fail closed with 503.
	down := httptest.NewServer(keyward.Middleware(keyward.New("http://127.0.0.1:1", keyward.WithMaxRetries(0)))(echo))
	defer down.Close()
	req, _ = http.NewRequest("GET", down.URL, nil)
	req.Header.Set("X-API-Key", key.Secret)
	if a := send(t, req); a.status != 503 {
		t.Fatalf("keyward down: %+v", a)
	} else if c, _ := a.errCode(); c != "unavailable" {
		t.Fatalf("keyward down: %s", c)
	}
}
