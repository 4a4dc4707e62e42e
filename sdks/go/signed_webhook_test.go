package keyward_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	keyward "github.com/keyward/keyward-go"
)

// vectorsPath is the signing vectors (KEYWARD_VECTORS overrides).
func vectorsPath() string {
	if p := os.Getenv("KEYWARD_VECTORS"); p != "" {
		return p
	}
	// The repository's copy (the one the Rust crates test against).
	for _, p := range []string{filepath.Join("..", "..", "crates", "keyward-core", "tests", "vectors", "request-signing.json")} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

func TestSigningVectors(t *testing.T) {
	p := vectorsPath()
	if p == "" {
		t.Fatal("no signing vectors (crates/keyward-core/tests/vectors/request-signing.json)")
	}
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var vec struct {
		Ed25519 struct {
			Seed   string `json:"secret_seed_hex"`
			Public string `json:"public_key_hex"`
			Cases  []struct {
				Method, Path, Nonce, Params, Body string
				StringToSign                      string `json:"string_to_sign"`
				Digest                            string `json:"digest_hex"`
				Signature                         string `json:"signature_hex"`
			} `json:"cases"`
		} `json:"ed25519"`
	}
	if err := json.Unmarshal(raw, &vec); err != nil {
		t.Fatal(err)
	}
	s, err := keyward.NewSignerFromHex(vec.Ed25519.Seed)
	if err != nil {
		t.Fatal(err)
	}
	if s.PublicKeyHex() != vec.Ed25519.Public {
		t.Fatalf("public key %s, want %s", s.PublicKeyHex(), vec.Ed25519.Public)
	}
	if len(vec.Ed25519.Cases) == 0 {
		t.Fatal("no cases")
	}
	for _, c := range vec.Ed25519.Cases {
		if got := string(keyward.StringToSign(c.Method, c.Path, c.Nonce, c.Params, []byte(c.Body))); got != c.StringToSign {
			t.Errorf("string to sign %q, want %q", got, c.StringToSign)
		}
		d := keyward.SignatureDigest(c.Method, c.Path, c.Nonce, c.Params, []byte(c.Body))
		if hex.EncodeToString(d[:]) != c.Digest {
			t.Errorf("%s %s: digest %x, want %s", c.Method, c.Path, d, c.Digest)
		}
		ms, _ := strconv.ParseInt(c.Nonce, 10, 64)
		h := s.Sign(c.Method, c.Path, c.Params, []byte(c.Body), time.UnixMilli(ms))
		if h.Get("Biz-Api-Signature") != c.Signature || h.Get("Biz-Api-Nonce") != c.Nonce || h.Get("Biz-Api-Key") != vec.Ed25519.Public {
			t.Errorf("%s %s: headers %v, want signature %s", c.Method, c.Path, h, c.Signature)
		}
	}
}

func TestSignedRequests(t *testing.T) {
	kw, srv, ctx := setup(t)
	defer rescue(t)
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer := keyward.NewSigner(priv)
	key := must(kw.Keys.Create(ctx, keyward.CreateKey{Name: name(t), PublicKey: signer.PublicKeyHex(), Algorithm: "ed25519", Permissions: []string{"wallets.read"}}))
	if key.Kind != "public" || key.PublicKey != signer.PublicKeyHex() || key.Secret != "" {
		t.Fatalf("registered: %+v", key)
	}

	// A request the way a client sends it: SignRequest signs method, path, raw query, body.
	body := []byte(`{"name":"café ☕"}`)
	req, _ := http.NewRequest("POST", "https://api.example.com/v2/wallets?limit=10&x=%20y", bytes.NewReader(body))
	if err := signer.SignRequest(req); err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(req.Body); !bytes.Equal(b, body) {
		t.Fatal("body not put back")
	}
	sr := keyward.SignedRequestFrom(req, body)
	if sr.Path != "/v2/wallets" || sr.Query != "limit=10&x=%20y" {
		t.Fatalf("signed request: %+v", sr)
	}
	sr.Permissions = "wallets.read"
	anon := keyward.New(srv.URL)
	v := must(anon.VerifySigned(ctx, sr))
	if !v.Valid || v.KeyID != key.ID {
		t.Fatalf("signed: %+v", v)
	}
	// The same request again is a replay.
	if v := must(anon.VerifySigned(ctx, sr)); v.Valid || v.Code != keyward.CodeReplayed {
		t.Fatalf("replay: %+v", v)
	}
	// A changed body does not match the signature.
	h := signer.Sign("POST", "/v2/wallets", "", body, time.Now())
	sr2 := keyward.SignedRequest{Method: "POST", Path: "/v2/wallets", Body: `{"name":"other"}`, Headers: map[string]string{}}
	for k := range h {
		sr2.Headers[k] = h.Get(k)
	}
	if v := must(anon.VerifySigned(ctx, sr2)); v.Valid || v.Code != keyward.CodeInvalidSignature {
		t.Fatalf("tampered: %+v", v)
	}
	// Permissions are checked as for secret keys.
	h = signer.Sign("GET", "/v2/wallets", "", nil, time.Now())
	sr3 := keyward.SignedRequest{Method: "GET", Path: "/v2/wallets", Permissions: "wallets.write", Headers: map[string]string{}}
	for k := range h {
		sr3.Headers[k] = h.Get(k)
	}
	if v := must(anon.VerifySigned(ctx, sr3)); v.Valid || v.Code != keyward.CodeInsufficientPermissions {
		t.Fatalf("permissions: %+v", v)
	}
	// An old nonce is refused.
	h = signer.Sign("GET", "/v2/wallets", "", nil, time.Now().Add(-10*time.Minute))
	sr4 := keyward.SignedRequest{Method: "GET", Path: "/v2/wallets", Headers: map[string]string{}}
	for k := range h {
		sr4.Headers[k] = h.Get(k)
	}
	if v := must(anon.VerifySigned(ctx, sr4)); v.Code != keyward.CodeNonceExpired {
		t.Fatalf("old nonce: %+v", v)
	}
	if v := must(anon.VerifySigned(ctx, keyward.SignedRequest{Method: "GET", Path: "/"})); v.Code != keyward.CodeMalformed {
		t.Fatalf("no headers: %+v", v)
	}
}

// receiver is a local HTTP listener collecting webhook deliveries.
type receiver struct {
	mu    sync.Mutex
	got   []delivery
	url   string
	close func()
}

type delivery struct {
	header http.Header
	body   []byte
}

func newReceiver(t *testing.T) *receiver {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{url: "http://" + ln.Addr().String() + "/hooks"}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, delivery{req.Header.Clone(), b})
		r.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})}
	go func() { _ = hs.Serve(ln) }()
	r.close = func() { _ = hs.Close() }
	t.Cleanup(r.close)
	return r
}

// wait returns the first delivery whose body holds `contains`.
func (r *receiver) wait(t *testing.T, contains string) delivery {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		for _, d := range r.got {
			if strings.Contains(string(d.body), contains) {
				r.mu.Unlock()
				return d
			}
		}
		r.mu.Unlock()
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no delivery holding %q within 20s", contains)
	return delivery{}
}

func TestWebhookDelivery(t *testing.T) {
	kw, _, ctx := setup(t)
	defer rescue(t)
	rcv := newReceiver(t)
	hook := must(kw.Webhooks.Create(ctx, keyward.CreateWebhook{URL: rcv.url, Events: []string{"key.*"}, Description: "go sdk test"}))
	if !strings.HasPrefix(hook.Secret, "whsec_") || hook.ID == "" {
		t.Fatalf("webhook: %+v", hook)
	}
	defer func() { _ = kw.Webhooks.Delete(context.Background(), hook.ID) }()
	if got := must(kw.Webhooks.Get(ctx, hook.ID)); got.Secret != "" || got.URL != rcv.url {
		t.Fatalf("get webhook: %+v", got)
	}

	key := must(kw.Keys.Create(ctx, keyward.CreateKey{Name: name(t)}))
	d := rcv.wait(t, key.ID)
	if err := keyward.VerifyWebhook(d.body, d.header, hook.Secret); err != nil {
		t.Fatalf("a real delivery does not verify: %v (headers %v)", err, d.header)
	}
	ev, err := keyward.ParseWebhook(d.body, d.header, hook.Secret)
	if err != nil || ev.Type != "key.created" || ev.Data.KeyID != key.ID || ev.ID == "" || ev.Timestamp.IsZero() {
		t.Fatalf("event: %+v %v", ev, err)
	}
	if strings.Contains(string(d.body), key.Secret) {
		t.Fatal("a delivery holds the key's secret")
	}
	// Tampering, another secret, a stale timestamp, missing headers.
	if err := keyward.VerifyWebhook(append([]byte(nil), append(d.body[:len(d.body)-1], ' ', '}')...), d.header, hook.Secret); !errors.Is(err, keyward.ErrWebhookSignature) {
		t.Fatalf("tampered body: %v", err)
	}
	if err := keyward.VerifyWebhook(d.body, d.header, "whsec_"+strings.Repeat("A", 32)); !errors.Is(err, keyward.ErrWebhookSignature) {
		t.Fatalf("other secret: %v", err)
	}
	stale := d.header.Clone()
	stale.Set("webhook-timestamp", strconv.FormatInt(time.Now().Add(-time.Hour).Unix(), 10))
	if err := keyward.VerifyWebhook(d.body, stale, hook.Secret); !errors.Is(err, keyward.ErrWebhookTimestamp) {
		t.Fatalf("stale: %v", err)
	}
	if err := keyward.VerifyWebhook(d.body, http.Header{}, hook.Secret); !errors.Is(err, keyward.ErrWebhookHeaders) {
		t.Fatalf("no headers: %v", err)
	}

	// During a rotation both secrets sign; the new one verifies.
	rotated := must(kw.Webhooks.RotateSecret(ctx, hook.ID, "1h"))
	if rotated.Secret == "" || rotated.Secret == hook.Secret || rotated.PreviousSecretUntil == nil {
		t.Fatalf("rotate secret: %+v", rotated)
	}
	must(kw.Keys.Revoke(ctx, key.ID))
	d = rcv.wait(t, "key.revoked")
	if err := keyward.VerifyWebhook(d.body, d.header, rotated.Secret); err != nil {
		t.Fatalf("new secret: %v", err)
	}
	if err := keyward.VerifyWebhook(d.body, d.header, hook.Secret); err != nil {
		t.Fatalf("old secret during the overlap: %v", err)
	}
	deliveries := must(kw.Webhooks.Deliveries(ctx, hook.ID, 10))
	if len(deliveries) < 2 || deliveries[0].MessageID == "" {
		t.Fatalf("deliveries: %+v", deliveries)
	}
	if ws := must(kw.Webhooks.List(ctx)); len(ws) == 0 {
		t.Fatal("no webhooks listed")
	}
	up := must(kw.Webhooks.Update(ctx, hook.ID, keyward.UpdateWebhook{Disabled: keyward.Bool(true)}))
	if !up.Disabled {
		t.Fatalf("disable: %+v", up)
	}
}

func TestKeyCallback(t *testing.T) {
	kw, _, ctx := setup(t)
	defer rescue(t)
	rcv := newReceiver(t)
	pub := must(kw.Webhooks.SigningKey(ctx))
	if !strings.HasPrefix(pub, "whpk_") {
		t.Fatalf("signing key %q", pub)
	}
	key := must(kw.Keys.Create(ctx, keyward.CreateKey{Name: name(t), CallbackURL: rcv.url}))
	must(kw.Keys.Update(ctx, key.ID, keyward.UpdateKey{Name: keyward.String(key.Name + "-x")}))
	d := rcv.wait(t, "key.updated")
	if !strings.Contains(d.header.Get("webhook-signature"), "v1a,") {
		t.Fatalf("callback signature %q", d.header.Get("webhook-signature"))
	}
	if err := keyward.VerifyWebhook(d.body, d.header, pub); err != nil {
		t.Fatalf("callback does not verify against %s: %v", pub, err)
	}
	if err := keyward.VerifyWebhook(d.body[1:], d.header, pub); !errors.Is(err, keyward.ErrWebhookSignature) {
		t.Fatalf("tampered callback: %v", err)
	}
}
