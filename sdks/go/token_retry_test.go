package keyward_test

// TokenSource's retries against a fake token endpoint (httptest): it answers each request as
// a test's script says and notes what was asked.

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	keyward "github.com/keyward/keyward-go"
)

// fakeTokenEndpoint answers request n (0-based) with script(n, w); the form of each is kept.
type fakeTokenEndpoint struct {
	*httptest.Server
	mu     sync.Mutex
	forms  []url.Values
	script func(n int, w http.ResponseWriter)
}

func newFakeTokenEndpoint(t *testing.T, script func(n int, w http.ResponseWriter)) *fakeTokenEndpoint {
	t.Helper()
	f := &fakeTokenEndpoint{script: script}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != keyward.TokenPath || r.ParseForm() != nil {
			http.NotFound(w, r)
			return
		}
		f.mu.Lock()
		n := len(f.forms)
		f.forms = append(f.forms, r.PostForm)
		f.mu.Unlock()
		f.script(n, w)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeTokenEndpoint) grants() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var g []string
	for _, form := range f.forms {
		g = append(g, form.Get("grant_type"))
	}
	return g
}

// values returns the form field name of every request.
func (f *fakeTokenEndpoint) values(name string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var v []string
	for _, form := range f.forms {
		v = append(v, form.Get(name))
	}
	return v
}

func answerToken(w http.ResponseWriter, n int) {
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"access_token":"at-%d","token_type":"Bearer","expires_in":3600,"refresh_token":"rt-%d"}`, n, n)
}

func answerOAuthError(w http.ResponseWriter, status int, code, retryAfter string) {
	w.Header().Set("Content-Type", "application/json")
	if retryAfter != "" {
		w.Header().Set("Retry-After", retryAfter)
	}
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"error":%q,"error_description":"scripted"}`, code)
}

// dropConnection closes the connection without an answer.
func dropConnection(w http.ResponseWriter) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err != nil {
		panic(err)
	}
	conn.Close()
}

func testAppKey() keyward.AppKey {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	return keyward.NewEd25519AppKey(priv)
}

// fastSource is a TokenSource of the fake endpoint that waits a millisecond between retries.
func fastSource(f *fakeTokenEndpoint, opts ...keyward.TokenSourceOption) *keyward.TokenSource {
	opts = append([]keyward.TokenSourceOption{keyward.WithTokenRetryBackoff(time.Millisecond)}, opts...)
	return keyward.NewTokenSource(f.URL, "app_1", "inst_1", testAppKey(), opts...)
}

func jti(t *testing.T, assertion string) string {
	t.Helper()
	parts := strings.Split(assertion, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS: %q", assertion)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	var claims struct {
		JTI string `json:"jti"`
	}
	if err != nil || json.Unmarshal(payload, &claims) != nil || claims.JTI == "" {
		t.Fatalf("no jti in %q", assertion)
	}
	return claims.JTI
}

// refreshDue buys a token (request 0 must answer one) and moves the clock past its refresh
// point, so that the next Token refreshes.
func refreshDue(t *testing.T, tokens *keyward.TokenSource, clock *fakeClock) {
	t.Helper()
	if tok, err := tokens.Token(context.Background()); err != nil || tok != "at-0" {
		t.Fatalf("first purchase: %q %v", tok, err)
	}
	clock.Advance(time.Hour)
}

func TestTokenSourceRetriesUnavailableWithNewAssertions(t *testing.T) {
	f := newFakeTokenEndpoint(t, func(n int, w http.ResponseWriter) {
		if n < 2 {
			answerOAuthError(w, http.StatusServiceUnavailable, "server_error", "0")
			return
		}
		answerToken(w, n)
	})
	tok, err := fastSource(f).Token(context.Background())
	if err != nil || tok != "at-2" {
		t.Fatalf("Token: %q %v", tok, err)
	}
	if g := f.grants(); !reflect.DeepEqual(g, []string{keyward.GrantJWTBearer, keyward.GrantJWTBearer, keyward.GrantJWTBearer}) {
		t.Fatalf("requests: %v", g)
	}
	seen := map[string]bool{}
	for _, a := range f.values("assertion") {
		seen[jti(t, a)] = true
	}
	if len(seen) != 3 {
		t.Fatalf("an assertion was sent twice: %d distinct jti in 3 requests", len(seen))
	}
}

func TestTokenSourceRetriesRunOut(t *testing.T) {
	for _, c := range []struct {
		name   string
		source func(url string) *keyward.TokenSource
		want   int // requests
	}{
		{"default", func(u string) *keyward.TokenSource {
			return keyward.NewTokenSource(u, "app_1", "inst_1", testAppKey(), keyward.WithTokenRetryBackoff(time.Millisecond))
		}, 3},
		{"the client's", func(u string) *keyward.TokenSource {
			kw := keyward.New(u, keyward.WithMaxRetries(4), keyward.WithRetryBackoff(time.Millisecond))
			return kw.TokenSource("app_1", "inst_1", testAppKey())
		}, 5},
		{"WithTokenMaxRetries wins", func(u string) *keyward.TokenSource {
			kw := keyward.New(u, keyward.WithMaxRetries(4), keyward.WithRetryBackoff(time.Millisecond))
			return kw.TokenSource("app_1", "inst_1", testAppKey(), keyward.WithTokenMaxRetries(1))
		}, 2},
		{"none", func(u string) *keyward.TokenSource {
			return keyward.NewTokenSource(u, "app_1", "inst_1", testAppKey(), keyward.WithTokenMaxRetries(0))
		}, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFakeTokenEndpoint(t, func(n int, w http.ResponseWriter) {
				answerOAuthError(w, http.StatusTooManyRequests, "slow_down", "")
			})
			_, err := c.source(f.URL).Token(context.Background())
			var e *keyward.Error
			if !errors.As(err, &e) || e.Status != 429 || e.Code != "slow_down" {
				t.Fatalf("want the 429, got %v", err)
			}
			if n := len(f.grants()); n != c.want {
				t.Fatalf("%d requests, want %d", n, c.want)
			}
		})
	}
}

func TestTokenSourceDoesNotWaitForALongRetryAfter(t *testing.T) {
	f := newFakeTokenEndpoint(t, func(n int, w http.ResponseWriter) {
		answerOAuthError(w, http.StatusTooManyRequests, "slow_down", "60")
	})
	start := time.Now()
	_, err := fastSource(f).Token(context.Background())
	var e *keyward.Error
	if !errors.As(err, &e) || e.Status != 429 || e.RetryAfter != time.Minute {
		t.Fatalf("want the 429 with its Retry-After, got %v", err)
	}
	if n := len(f.grants()); n != 1 || time.Since(start) > 5*time.Second {
		t.Fatalf("%d requests in %v: a Retry-After past 10s is the caller's to wait", n, time.Since(start))
	}
}

func TestTokenSourceNeverResendsAnUnansweredRefreshToken(t *testing.T) {
	f := newFakeTokenEndpoint(t, func(n int, w http.ResponseWriter) {
		if n == 1 {
			dropConnection(w) // the refresh: did the server spend it? The client cannot know.
			return
		}
		answerToken(w, n)
	})
	clock := &fakeClock{now: time.Now()}
	tokens := fastSource(f, keyward.WithTokenClock(clock.Now))
	refreshDue(t, tokens, clock)
	tok, err := tokens.Token(context.Background())
	if err != nil || tok != "at-2" {
		t.Fatalf("Token: %q %v", tok, err)
	}
	if g := f.grants(); !reflect.DeepEqual(g, []string{keyward.GrantJWTBearer, "refresh_token", keyward.GrantJWTBearer}) {
		t.Fatalf("requests: %v", g)
	}
	if r := f.values("refresh_token"); !reflect.DeepEqual(r, []string{"", "rt-0", ""}) {
		t.Fatalf("refresh tokens sent: %v", r)
	}
}

func TestTokenSourceForgetsAnUnansweredRefreshTokenEvenWhenTheAssertionFails(t *testing.T) {
	f := newFakeTokenEndpoint(t, func(n int, w http.ResponseWriter) {
		switch {
		case n == 0 || n >= 5:
			answerToken(w, n)
		default:
			dropConnection(w) // the refresh, then the assertion and its two retries
		}
	})
	clock := &fakeClock{now: time.Now()}
	tokens := fastSource(f, keyward.WithTokenClock(clock.Now))
	refreshDue(t, tokens, clock)
	if _, err := tokens.Token(context.Background()); err == nil {
		t.Fatal("no answer, yet a token")
	}
	if tok, err := tokens.Token(context.Background()); err != nil || tok != "at-5" {
		t.Fatalf("Token: %q %v", tok, err)
	}
	want := []string{keyward.GrantJWTBearer, "refresh_token", keyward.GrantJWTBearer, keyward.GrantJWTBearer, keyward.GrantJWTBearer, keyward.GrantJWTBearer}
	if g := f.grants(); !reflect.DeepEqual(g, want) {
		t.Fatalf("requests: %v, want %v", g, want)
	}
}

func TestTokenSourceRetriesARefreshAnsweredUnavailable(t *testing.T) {
	f := newFakeTokenEndpoint(t, func(n int, w http.ResponseWriter) {
		if n == 1 {
			answerOAuthError(w, http.StatusServiceUnavailable, "server_error", "0")
			return
		}
		answerToken(w, n)
	})
	clock := &fakeClock{now: time.Now()}
	tokens := fastSource(f, keyward.WithTokenClock(clock.Now))
	refreshDue(t, tokens, clock)
	tok, err := tokens.Token(context.Background())
	if err != nil || tok != "at-2" {
		t.Fatalf("Token: %q %v", tok, err)
	}
	if g := f.grants(); !reflect.DeepEqual(g, []string{keyward.GrantJWTBearer, "refresh_token", "refresh_token"}) {
		t.Fatalf("requests: %v", g)
	}
	if r := f.values("refresh_token"); !reflect.DeepEqual(r, []string{"", "rt-0", "rt-0"}) {
		t.Fatalf("refresh tokens sent: %v", r)
	}
}

func TestTokenSourceDoesNotResendARefreshAProxyAnswered502(t *testing.T) {
	f := newFakeTokenEndpoint(t, func(n int, w http.ResponseWriter) {
		if n == 1 {
			answerOAuthError(w, http.StatusBadGateway, "bad_gateway", "")
			return
		}
		answerToken(w, n)
	})
	clock := &fakeClock{now: time.Now()}
	tokens := fastSource(f, keyward.WithTokenClock(clock.Now))
	refreshDue(t, tokens, clock)
	tok, err := tokens.Token(context.Background())
	if err != nil || tok != "at-2" {
		t.Fatalf("Token: %q %v", tok, err)
	}
	if g := f.grants(); !reflect.DeepEqual(g, []string{keyward.GrantJWTBearer, "refresh_token", keyward.GrantJWTBearer}) {
		t.Fatalf("requests: %v", g)
	}
}

func TestTokenSourceKeepsARefreshTokenAnsweredUnavailable(t *testing.T) {
	var down atomic.Bool
	down.Store(true)
	f := newFakeTokenEndpoint(t, func(n int, w http.ResponseWriter) {
		if n > 0 && down.Load() {
			answerOAuthError(w, http.StatusServiceUnavailable, "server_error", "")
			return
		}
		answerToken(w, n)
	})
	clock := &fakeClock{now: time.Now()}
	tokens := fastSource(f, keyward.WithTokenClock(clock.Now))
	refreshDue(t, tokens, clock)
	// The retries run out: the 503, and no assertion (it would meet the same server).
	var e *keyward.Error
	if _, err := tokens.Token(context.Background()); !errors.As(err, &e) || e.Status != 503 {
		t.Fatalf("want the 503, got %v", err)
	}
	down.Store(false)
	// The server did not spend the refresh token: the next call sends it again.
	if tok, err := tokens.Token(context.Background()); err != nil || tok != "at-4" {
		t.Fatalf("Token: %q %v", tok, err)
	}
	if r := f.values("refresh_token"); !reflect.DeepEqual(r, []string{"", "rt-0", "rt-0", "rt-0", "rt-0"}) {
		t.Fatalf("refresh tokens sent: %v", r)
	}
}

func TestTokenSourceDoesNotRetryARefusal(t *testing.T) {
	t.Run("assertion", func(t *testing.T) {
		f := newFakeTokenEndpoint(t, func(n int, w http.ResponseWriter) {
			answerOAuthError(w, http.StatusBadRequest, "invalid_grant", "")
		})
		_, err := fastSource(f).Token(context.Background())
		if !errors.Is(err, keyward.ErrInvalidGrant) {
			t.Fatalf("want invalid_grant, got %v", err)
		}
		if n := len(f.grants()); n != 1 {
			t.Fatalf("%d requests, want 1", n)
		}
	})
	t.Run("refresh", func(t *testing.T) {
		f := newFakeTokenEndpoint(t, func(n int, w http.ResponseWriter) {
			if n == 1 {
				answerOAuthError(w, http.StatusBadRequest, "invalid_grant", "")
				return
			}
			answerToken(w, n)
		})
		clock := &fakeClock{now: time.Now()}
		tokens := fastSource(f, keyward.WithTokenClock(clock.Now))
		refreshDue(t, tokens, clock)
		// Refused: not retried, a new assertion buys the token.
		if tok, err := tokens.Token(context.Background()); err != nil || tok != "at-2" {
			t.Fatalf("Token: %q %v", tok, err)
		}
		if g := f.grants(); !reflect.DeepEqual(g, []string{keyward.GrantJWTBearer, "refresh_token", keyward.GrantJWTBearer}) {
			t.Fatalf("requests: %v", g)
		}
	})
}

func TestTokenSourceWaitEndsWithTheContext(t *testing.T) {
	answered := make(chan struct{}, 1)
	f := newFakeTokenEndpoint(t, func(n int, w http.ResponseWriter) {
		answerOAuthError(w, http.StatusServiceUnavailable, "server_error", "5")
		select {
		case answered <- struct{}{}:
		default:
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-answered
		time.Sleep(50 * time.Millisecond) // into the five seconds' wait
		cancel()
	}()
	start := time.Now()
	_, err := fastSource(f).Token(ctx)
	if err != context.Canceled {
		t.Fatalf("want context.Canceled, got %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("returned after %v", d)
	}
	if n := len(f.grants()); n != 1 {
		t.Fatalf("%d requests, want 1", n)
	}
}

func TestTokenSourceCallersWaitThroughRetries(t *testing.T) {
	f := newFakeTokenEndpoint(t, func(n int, w http.ResponseWriter) {
		if n == 0 {
			answerOAuthError(w, http.StatusServiceUnavailable, "server_error", "")
			return
		}
		answerToken(w, n)
	})
	tokens := keyward.NewTokenSource(f.URL, "app_1", "inst_1", testAppKey(), keyward.WithTokenRetryBackoff(100*time.Millisecond))
	got := make([]string, 4)
	errs := make([]error, 4)
	var wg sync.WaitGroup
	for i := range got {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			got[i], errs[i] = tokens.Token(context.Background())
		}(i)
	}
	wg.Wait()
	for i := range got {
		if errs[i] != nil || got[i] != "at-1" {
			t.Fatalf("caller %d: %q %v", i, got[i], errs[i])
		}
	}
	if n := len(f.grants()); n != 2 {
		t.Fatalf("%d requests, want 2 (one 503, one token)", n)
	}
}
