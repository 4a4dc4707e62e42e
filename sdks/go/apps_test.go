package keyward_test

// TokenSource against a real server of its own, started from KEYWARD_BIN with --public-url
// (the token endpoint answers 503 without one) on a port chosen beforehand, so the public
// URL is the address it listens at. The server's first workspace develops an app; another,
// provisioned with the operator token, installs it with less than it asks for; the source
// buys, keeps, refreshes and re-buys that installation's tokens. ES256K is signed by a small
// secp256k1 of this file's own (the SDK leaves secp256k1 to an AppKey of the user's).

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"sync"
	"testing"
	"time"

	keyward "github.com/keyward/keyward-go"
	"github.com/keyward/keyward-go/internal/testserver"
)

const orgPassword = "correct horse battery staple"

type oauthFixture struct {
	srv    *testserver.Server
	org    string // a session token of the organisation's owner
	orgID  string
	failed error
}

var (
	oauthOnce sync.Once
	oauth     oauthFixture
)

func stopOAuthServer() {
	if oauth.srv != nil {
		oauth.srv.Close()
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// rawCall sends JSON with a bearer token (none when empty) and decodes the answer into out.
func rawCall(base, token, method, path string, body, out interface{}) error {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if out != nil && len(b) > 0 {
		return json.Unmarshal(b, out)
	}
	return nil
}

func oauthSetup(t *testing.T) *oauthFixture {
	t.Helper()
	bin := os.Getenv("KEYWARD_BIN")
	if bin == "" {
		if os.Getenv("KEYWARD_REQUIRE_SERVER") != "" {
			t.Fatal("KEYWARD_BIN is needed: these tests start a server with --public-url")
		}
		t.Skip("KEYWARD_BIN is not set")
	}
	oauthOnce.Do(func() {
		for i := 0; i < 3 && oauth.srv == nil; i++ { // the port chosen may be taken before the server binds it
			port, err := freePort()
			if err != nil {
				oauth.failed = err
				return
			}
			addr := fmt.Sprintf("127.0.0.1:%d", port)
			oauth.srv, oauth.failed = testserver.StartAt(bin, addr, "--public-url", "http://"+addr)
		}
		if oauth.failed != nil {
			return
		}
		if oauth.srv.OperatorToken == "" {
			oauth.failed = errors.New("serve printed no operator token")
			return
		}
		email := fmt.Sprintf("owner-%d@org.example", time.Now().UnixNano())
		var ws struct {
			ID    string `json:"id"`
			Owner struct {
				SetupToken string `json:"setup_token"`
			} `json:"owner"`
		}
		base := oauth.srv.URL
		if oauth.failed = rawCall(base, oauth.srv.OperatorToken, "POST", "/v1/workspaces", map[string]string{"name": "Org", "owner_email": email}, &ws); oauth.failed != nil {
			return
		}
		if oauth.failed = rawCall(base, "", "POST", "/v1/members/setup", map[string]string{"setup_token": ws.Owner.SetupToken, "password": orgPassword}, nil); oauth.failed != nil {
			return
		}
		var session struct {
			Token string `json:"token"`
		}
		oauth.failed = rawCall(base, "", "POST", "/v1/sessions", map[string]string{"email": email, "password": orgPassword, "workspace_id": ws.ID}, &session)
		oauth.org, oauth.orgID = session.Token, ws.ID
	})
	if oauth.failed != nil {
		t.Fatalf("the OAuth server: %v", oauth.failed)
	}
	return &oauth
}

type installed struct {
	appID, instID string
	key           keyward.AppKey
}

// install registers an app of the developer with a new APP pair and installs it in the
// organisation with less than it asks for.
func install(t *testing.T, f *oauthFixture, alg string) installed {
	t.Helper()
	var key keyward.AppKey
	var public string
	if alg == "ed25519" {
		pub, priv, _ := ed25519.GenerateKey(rand.Reader)
		key, public = keyward.NewEd25519AppKey(priv), hex.EncodeToString(pub)
	} else {
		k := newSecp256k1Key()
		key, public = k, k.publicHex()
	}
	var app, inst struct {
		ID          string `json:"id"`
		Status      string `json:"status"`
		WorkspaceID string `json:"workspace_id"`
	}
	if err := rawCall(f.srv.URL, f.srv.ManagementKey, "POST", "/v1/apps", map[string]interface{}{
		"name": fmt.Sprintf("ledger-%d", time.Now().UnixNano()), "public_key": public, "algorithm": alg,
		"permissions": []string{"ledger.read", "ledger.write"}, "scopes": []string{"ledger:*"},
	}, &app); err != nil {
		t.Fatal(err)
	}
	if err := rawCall(f.srv.URL, f.org, "POST", "/v1/installations", map[string]interface{}{
		"app_id": app.ID, "permissions": []string{"ledger.read"}, "scopes": []string{"ledger:l_1"},
	}, &inst); err != nil {
		t.Fatal(err)
	}
	if inst.Status != "active" || inst.WorkspaceID != f.orgID {
		t.Fatalf("installation: %+v", inst)
	}
	return installed{app.ID, inst.ID, key}
}

// recorder is a RoundTripper that notes the grant types asked for and the answers.
type recorder struct {
	mu      sync.Mutex
	grants  []string
	answers []map[string]interface{}
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	b, _ := io.ReadAll(req.Body)
	req.Body = io.NopCloser(bytes.NewReader(b))
	form, _ := url.ParseQuery(string(b))
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body = io.NopCloser(bytes.NewReader(body))
	var answer map[string]interface{}
	_ = json.Unmarshal(body, &answer)
	r.mu.Lock()
	r.grants = append(r.grants, form.Get("grant_type"))
	r.answers = append(r.answers, answer)
	r.mu.Unlock()
	return resp, nil
}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

func checkValid(t *testing.T, ctx context.Context, f *oauthFixture, token string, in installed) {
	t.Helper()
	kw := keyward.New(f.srv.URL)
	v, err := kw.Verify(ctx, keyward.VerifyRequest{Key: token, Permissions: "ledger.read"})
	if err != nil {
		t.Fatal(err)
	}
	if !v.Valid || v.Kind != "app_token" || v.AppID != in.appID || v.InstallationID != in.instID ||
		!reflect.DeepEqual(v.Permissions, []string{"ledger.read"}) || !reflect.DeepEqual(v.Scopes, []string{"ledger:l_1"}) {
		t.Fatalf("verify: %+v", v)
	}
	v, err = kw.Verify(ctx, keyward.VerifyRequest{Key: token, Permissions: "ledger.write"})
	if err != nil || v.Code != keyward.CodeInsufficientPermissions {
		t.Fatalf("verify ledger.write: %+v %v", v, err)
	}
}

func TestTokenSourceBuysKeepsRefreshesAndRebuys(t *testing.T) {
	f := oauthSetup(t)
	for _, alg := range []string{"ed25519", "secp256k1"} {
		t.Run(alg, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			in := install(t, f, alg)
			rec := &recorder{}
			clock := &fakeClock{now: time.Now()}
			kw := keyward.New(f.srv.URL, keyward.WithHTTPClient(&http.Client{Transport: rec}))
			tokens := kw.TokenSource(in.appID, in.instID, in.key, keyward.WithTokenClock(clock.Now))
			first, err := tokens.Token(ctx)
			if err != nil {
				t.Fatal(err)
			}
			checkValid(t, ctx, f, first, in)
			if again, _ := tokens.Authorization(ctx); again != "Bearer "+first {
				t.Fatalf("held token not kept: %q", again)
			}
			if !reflect.DeepEqual(rec.grants, []string{keyward.GrantJWTBearer}) {
				t.Fatalf("a held token is bought again: %v", rec.grants)
			}

			// A minute before its hour is up the token is replaced with the refresh token.
			clock.Advance((3600 - 61) * time.Second)
			if same, _ := tokens.Token(ctx); same != first {
				t.Fatal("replaced too early")
			}
			clock.Advance(2 * time.Second)
			second, err := tokens.Token(ctx)
			if err != nil || second == first || !reflect.DeepEqual(rec.grants, []string{keyward.GrantJWTBearer, "refresh_token"}) {
				t.Fatalf("refresh: %v %v", err, rec.grants)
			}
			checkValid(t, ctx, f, second, in)

			// The refresh token's family revoked: the refresh is refused, a new assertion buys one.
			refresh, _ := rec.answers[len(rec.answers)-1]["refresh_token"].(string)
			resp, err := http.PostForm(f.srv.URL+"/v1/oauth/revoke", url.Values{"token": {refresh}})
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("revoke: %v %v", resp, err)
			}
			resp.Body.Close()
			clock.Advance(time.Hour)
			third, err := tokens.Token(ctx)
			if err != nil || !reflect.DeepEqual(rec.grants, []string{keyward.GrantJWTBearer, "refresh_token", "refresh_token", keyward.GrantJWTBearer}) {
				t.Fatalf("fallback: %v %v", err, rec.grants)
			}
			if rec.answers[len(rec.answers)-2]["error"] != "invalid_grant" {
				t.Fatalf("refused refresh: %v", rec.answers[len(rec.answers)-2])
			}
			checkValid(t, ctx, f, third, in)

			// Forget: the next call signs a new assertion.
			tokens.Forget()
			fourth, err := tokens.Token(ctx)
			if err != nil || fourth == third || rec.grants[len(rec.grants)-1] != keyward.GrantJWTBearer {
				t.Fatalf("after Forget: %v %v", err, rec.grants)
			}
		})
	}
}

func TestTokenSourceConcurrentCallersShareOnePurchase(t *testing.T) {
	f := oauthSetup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	in := install(t, f, "ed25519")
	rec := &recorder{}
	tokens := keyward.NewTokenSource(f.srv.URL, in.appID, in.instID, in.key, keyward.WithTokenHTTPClient(&http.Client{Transport: rec}))
	got := make([]string, 8)
	errs := make([]error, 8)
	var wg sync.WaitGroup
	for i := range got {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			got[i], errs[i] = tokens.Token(ctx)
		}(i)
	}
	wg.Wait()
	for i := range got {
		if errs[i] != nil || got[i] != got[0] {
			t.Fatalf("caller %d: %q %v", i, got[i], errs[i])
		}
	}
	if !reflect.DeepEqual(rec.grants, []string{keyward.GrantJWTBearer}) {
		t.Fatalf("one purchase expected: %v", rec.grants)
	}
}

func TestTokenSourceTransportSendsTheToken(t *testing.T) {
	f := oauthSetup(t)
	in := install(t, f, "secp256k1")
	tokens := keyward.NewTokenSource(f.srv.URL, in.appID, in.instID, in.key)
	// GET /v1/auth is forward-auth: it answers 200 for a valid credential in Authorization.
	for _, c := range []struct {
		hc   *http.Client
		want int
	}{{http.DefaultClient, 401}, {&http.Client{Transport: tokens.Transport(nil)}, 200}} {
		resp, err := c.hc.Get(f.srv.URL + "/v1/auth?permissions=ledger.read")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Fatalf("forward auth: %d, want %d", resp.StatusCode, c.want)
		}
	}
}

func TestTokenSourceWrongKeyIsInvalidClient(t *testing.T) {
	f := oauthSetup(t)
	for _, alg := range []string{"ed25519", "secp256k1"} {
		t.Run(alg, func(t *testing.T) {
			in := install(t, f, alg)
			var stranger keyward.AppKey = newSecp256k1Key()
			if alg == "ed25519" {
				_, priv, _ := ed25519.GenerateKey(rand.Reader)
				stranger = keyward.NewEd25519AppKey(priv)
			}
			_, err := keyward.NewTokenSource(f.srv.URL, in.appID, in.instID, stranger).Token(context.Background())
			var e *keyward.Error
			if !errors.As(err, &e) || e.Status != 401 || e.Code != "invalid_client" || e.Message == "" || !errors.Is(err, keyward.ErrInvalidClient) {
				t.Fatalf("want invalid_client, got %v", err)
			}
		})
	}
}

func TestTokenSourceUninstalledIsInvalidGrant(t *testing.T) {
	f := oauthSetup(t)
	in := install(t, f, "ed25519")
	clock := &fakeClock{now: time.Now()}
	tokens := keyward.NewTokenSource(f.srv.URL, in.appID, in.instID, in.key, keyward.WithTokenClock(clock.Now))
	if _, err := tokens.Token(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := rawCall(f.srv.URL, f.org, "DELETE", "/v1/installations/"+in.instID, nil, nil); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Hour) // the refresh is refused, and so is the new assertion
	_, err := tokens.Token(context.Background())
	var e *keyward.Error
	if !errors.As(err, &e) || e.Status != 400 || !errors.Is(err, keyward.ErrInvalidGrant) {
		t.Fatalf("want invalid_grant, got %v", err)
	}
}

func TestAppKeyFromHex(t *testing.T) {
	seed := bytes.Repeat([]byte{7}, 32)
	k, err := keyward.AppKeyFromHex("ed25519", hex.EncodeToString(seed))
	if err != nil || k.JWSAlgorithm() != "EdDSA" {
		t.Fatalf("%v %v", k, err)
	}
	sig, _ := k.SignJWS([]byte("a.b"))
	if !ed25519.Verify(ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey), []byte("a.b"), sig) {
		t.Fatal("signature does not verify")
	}
	for _, bad := range [][2]string{{"ed25519", "zz"}, {"secp256k1", hex.EncodeToString(seed)}, {"rsa", ""}} {
		if _, err := keyward.AppKeyFromHex(bad[0], bad[1]); err == nil {
			t.Fatalf("%v accepted", bad)
		}
	}
}

// secp256k1Key signs ES256K for the tests: affine arithmetic over math/big, random nonces.
// Not constant-time, which is why the SDK does not ship it.
type secp256k1Key struct{ d *big.Int }

var (
	secpP, _  = new(big.Int).SetString("fffffffffffffffffffffffffffffffffffffffffffffffffffffffefffffc2f", 16)
	secpN, _  = new(big.Int).SetString("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141", 16)
	secpGx, _ = new(big.Int).SetString("79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798", 16)
	secpGy, _ = new(big.Int).SetString("483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8", 16)
)

type point struct{ x, y *big.Int } // nil x: the point at infinity

func (p point) add(q point) point {
	if p.x == nil {
		return q
	}
	if q.x == nil {
		return p
	}
	var m *big.Int
	if p.x.Cmp(q.x) == 0 {
		if new(big.Int).Add(p.y, q.y).Mod(new(big.Int).Add(p.y, q.y), secpP).Sign() == 0 {
			return point{}
		}
		// Doubling: m = 3x² / 2y (a = 0).
		num := new(big.Int).Mul(big.NewInt(3), new(big.Int).Mul(p.x, p.x))
		den := new(big.Int).ModInverse(new(big.Int).Lsh(p.y, 1), secpP)
		m = num.Mul(num, den)
	} else {
		num := new(big.Int).Sub(q.y, p.y)
		den := new(big.Int).ModInverse(new(big.Int).Mod(new(big.Int).Sub(q.x, p.x), secpP), secpP)
		m = num.Mul(num, den)
	}
	m.Mod(m, secpP)
	x := new(big.Int).Mul(m, m)
	x.Sub(x, p.x).Sub(x, q.x).Mod(x, secpP)
	y := new(big.Int).Sub(p.x, x)
	y.Mul(y, m).Sub(y, p.y).Mod(y, secpP)
	return point{x, y}
}

func scalarBase(k *big.Int) point {
	acc, g := point{}, point{secpGx, secpGy}
	for i := k.BitLen() - 1; i >= 0; i-- {
		acc = acc.add(acc)
		if k.Bit(i) == 1 {
			acc = acc.add(g)
		}
	}
	return acc
}

func randomScalar() *big.Int {
	for {
		k, err := rand.Int(rand.Reader, secpN)
		if err == nil && k.Sign() > 0 {
			return k
		}
	}
}

func newSecp256k1Key() *secp256k1Key { return &secp256k1Key{randomScalar()} }

func (k *secp256k1Key) publicHex() string {
	p := scalarBase(k.d)
	prefix := byte(2)
	if p.y.Bit(0) == 1 {
		prefix = 3
	}
	return hex.EncodeToString(append([]byte{prefix}, p.x.FillBytes(make([]byte, 32))...))
}

func (k *secp256k1Key) JWSAlgorithm() string { return "ES256K" }

func (k *secp256k1Key) SignJWS(in []byte) ([]byte, error) {
	h := sha256.Sum256(in)
	z := new(big.Int).SetBytes(h[:])
	for {
		nonce := randomScalar()
		r := new(big.Int).Mod(scalarBase(nonce).x, secpN)
		if r.Sign() == 0 {
			continue
		}
		s := new(big.Int).Mul(r, k.d)
		s.Add(s, z).Mul(s, new(big.Int).ModInverse(nonce, secpN)).Mod(s, secpN)
		if s.Sign() == 0 {
			continue
		}
		if s.Cmp(new(big.Int).Rsh(secpN, 1)) > 0 {
			s.Sub(secpN, s) // low-S
		}
		return append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...), nil
	}
}
