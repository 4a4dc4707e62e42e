package keyward

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Apps' organisation access tokens (docs/APPS.md): an app installed in other workspaces buys
// short-lived access tokens for each installation by signing an assertion (RFC 7523) with its
// APP private key, and sends them as "Authorization: Bearer …" wherever a Keyward key goes.

const (
	// GrantJWTBearer is the assertion grant's grant_type (RFC 7523).
	GrantJWTBearer = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	// TokenPath is the token endpoint's path.
	TokenPath = "/v1/oauth/token"
	// How far ahead an assertion's exp is set (the server takes at most five minutes).
	assertionLifetime = 2 * time.Minute
)

// Sentinels of the token endpoint's refusals (RFC 6749 §5.2), for errors.Is.
var (
	// ErrInvalidClient (401): no such app, or the assertion is not signed by its key.
	ErrInvalidClient = &Error{Code: "invalid_client"}
	// ErrInvalidGrant (400): claims wrong or expired, jti used before, not installed or
	// pending, a refresh token unknown, ended or reused.
	ErrInvalidGrant = &Error{Code: "invalid_grant"}
)

// AppKey signs an app's assertions. NewEd25519AppKey and AppKeyFromHex give Ed25519 keys;
// for secp256k1 (ES256K), which Go's standard library lacks, implement AppKey with the
// secp256k1 library of your choice.
type AppKey interface {
	// JWSAlgorithm is the assertion's "alg": "EdDSA" (Ed25519) or "ES256K" (secp256k1).
	JWSAlgorithm() string
	// SignJWS signs a JWS signing input ("header.payload"): EdDSA over the bytes; ES256K:
	// ECDSA over their SHA-256, as r‖s (64 bytes, RFC 8812).
	SignJWS(signingInput []byte) ([]byte, error)
}

type ed25519AppKey struct{ key ed25519.PrivateKey }

func (k ed25519AppKey) JWSAlgorithm() string { return "EdDSA" }
func (k ed25519AppKey) SignJWS(in []byte) ([]byte, error) {
	return ed25519.Sign(k.key, in), nil
}

// NewEd25519AppKey is an AppKey of an Ed25519 private key.
func NewEd25519AppKey(key ed25519.PrivateKey) AppKey { return ed25519AppKey{key} }

// AppKeyFromHex reads an APP private key as `keyward keys generate --key-type APP` writes it:
// app_secret (hex) and app_alg ("ed25519"; "" means ed25519). A "secp256k1" key needs an
// AppKey of your own (see AppKey).
func AppKeyFromHex(algorithm, secretHex string) (AppKey, error) {
	switch algorithm {
	case "", "ed25519":
		seed, err := hex.DecodeString(strings.TrimSpace(secretHex))
		if err != nil || len(seed) != ed25519.SeedSize {
			return nil, errors.New("keyward: an Ed25519 APP secret is 64 hex characters")
		}
		return ed25519AppKey{ed25519.NewKeyFromSeed(seed)}, nil
	case "secp256k1":
		return nil, errors.New("keyward: Go's standard library has no secp256k1: implement keyward.AppKey (ES256K) with a secp256k1 library")
	default:
		return nil, fmt.Errorf("keyward: unknown algorithm %q (ed25519 or secp256k1)", algorithm)
	}
}

// TokenSource keeps one installation's access token fresh: it signs the assertion, replaces
// the token a minute before it expires — with the refresh token first, with a new assertion
// when the refresh is refused — and lets one caller at a time do so (two refreshing at once
// would spend one refresh token twice, which revokes its family). It is safe for concurrent
// use. Refusals are *Error with Code the RFC 6749 error (errors.Is(err, ErrInvalidGrant)).
//
// A 429, 502, 503 or 504 answer is retried as the Client retries (WithTokenMaxRetries), an
// assertion grant also after no answer, with a new assertion each time. A refresh that got
// no answer, or a proxy's 502 or 504, is never sent again: the server may have spent the
// refresh token, and a second use would revoke its family; a new assertion is bought instead.
type TokenSource struct {
	endpoint       string
	audience       string
	appID          string
	installationID string
	key            AppKey
	httpClient     *http.Client
	timeout        time.Duration
	maxRetries     int
	retryBase      time.Duration
	refreshAhead   time.Duration
	now            func() time.Time
	userAgent      string

	// turn is held (a token in it) by the one caller buying or refreshing; a channel so that
	// waiting for it respects the caller's context.
	turn chan struct{}
	mu   sync.Mutex // guards held
	held *heldToken
}

type heldToken struct {
	access, refresh string
	expiresAt       time.Time
}

// TokenSourceOption configures a TokenSource.
type TokenSourceOption func(*TokenSource)

// WithAudience sets the assertions' "aud": the token endpoint's URL under the server's
// --public-url, when that is not the URL used to reach it (a proxy, an internal address).
func WithAudience(tokenURL string) TokenSourceOption {
	return func(s *TokenSource) { s.audience = tokenURL }
}

// WithRefreshAhead sets how long before its end a token is replaced (default 1 minute).
func WithRefreshAhead(d time.Duration) TokenSourceOption {
	return func(s *TokenSource) { s.refreshAhead = d }
}

// WithTokenHTTPClient sets the *http.Client used for the token endpoint.
func WithTokenHTTPClient(hc *http.Client) TokenSourceOption {
	return func(s *TokenSource) { s.httpClient = hc }
}

// WithTokenTimeout bounds each call of the token endpoint (default 30s).
func WithTokenTimeout(d time.Duration) TokenSourceOption {
	return func(s *TokenSource) { s.timeout = d }
}

// WithTokenMaxRetries sets how many times a call of the token endpoint is retried after a
// 429, 502, 503 or 504 answer, or (an assertion grant) no answer (default 2, or the Client's
// WithMaxRetries; 0 disables retries).
func WithTokenMaxRetries(n int) TokenSourceOption {
	return func(s *TokenSource) {
		if n < 0 {
			n = 0
		}
		s.maxRetries = n
	}
}

// WithTokenRetryBackoff sets the first wait between retries (default 250ms, or the Client's
// WithRetryBackoff; it doubles each time, with jitter, and a longer Retry-After up to 10s
// wins).
func WithTokenRetryBackoff(d time.Duration) TokenSourceOption {
	return func(s *TokenSource) { s.retryBase = d }
}

// WithTokenClock sets the clock that decides when the held token is due (tests); assertions
// always carry the real time, which the server checks.
func WithTokenClock(now func() time.Time) TokenSourceOption {
	return func(s *TokenSource) { s.now = now }
}

// NewTokenSource returns a source of installationID's tokens, bought from the server at
// baseURL by appID with key.
func NewTokenSource(baseURL, appID, installationID string, key AppKey, opts ...TokenSourceOption) *TokenSource {
	endpoint := strings.TrimRight(baseURL, "/") + TokenPath
	s := &TokenSource{
		endpoint:       endpoint,
		audience:       endpoint,
		appID:          appID,
		installationID: installationID,
		key:            key,
		httpClient:     &http.Client{},
		timeout:        defaultTimeout,
		maxRetries:     defaultMaxRetries,
		retryBase:      defaultRetryBackoff,
		refreshAhead:   time.Minute,
		now:            time.Now,
		userAgent:      "keyward-go/" + Version,
		turn:           make(chan struct{}, 1),
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// TokenSource returns a source of tokens bought from the client's server, with its HTTP
// client, timeout, retries and User-Agent (options given win).
func (c *Client) TokenSource(appID, installationID string, key AppKey, opts ...TokenSourceOption) *TokenSource {
	base := []TokenSourceOption{
		WithTokenHTTPClient(c.httpClient), WithTokenTimeout(c.timeout),
		WithTokenMaxRetries(c.maxRetries), WithTokenRetryBackoff(c.retryBase),
		func(s *TokenSource) { s.userAgent = c.userAgent },
	}
	return NewTokenSource(c.baseURL, appID, installationID, key, append(base, opts...)...)
}

// Assertion returns a new signed assertion: iss the app, sub the installation, aud the token
// endpoint, two minutes to live, a jti never used before.
func (s *TokenSource) Assertion() (string, error) {
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", fmt.Errorf("keyward: a jti: %w", err)
	}
	now := time.Now().Unix() // the server checks iat and exp against its own clock
	header, err := json.Marshal(map[string]string{"alg": s.key.JWSAlgorithm(), "typ": "JWT"})
	if err != nil {
		return "", err
	}
	claims, err := json.Marshal(map[string]interface{}{
		"iss": s.appID, "sub": s.installationID, "aud": s.audience,
		"iat": now, "exp": now + int64(assertionLifetime/time.Second), "jti": hex.EncodeToString(jti[:]),
	})
	if err != nil {
		return "", err
	}
	b64 := base64.RawURLEncoding
	input := b64.EncodeToString(header) + "." + b64.EncodeToString(claims)
	sig, err := s.key.SignJWS([]byte(input))
	if err != nil {
		return "", fmt.Errorf("keyward: signing the assertion: %w", err)
	}
	return input + "." + b64.EncodeToString(sig), nil
}

// Token returns a fresh access token: the one held while it has more than a minute left,
// else a refreshed one, else one bought with a new assertion.
func (s *TokenSource) Token(ctx context.Context) (string, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	select {
	case s.turn <- struct{}{}:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	defer func() { <-s.turn }()

	now := s.now()
	s.mu.Lock()
	h := s.held
	s.mu.Unlock()
	if h != nil && h.expiresAt.Add(-s.refreshAhead).After(now) {
		return h.access, nil
	}
	if h != nil && h.refresh != "" {
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {h.refresh}}
		t, status, err := s.grant(ctx, now, func() (url.Values, error) { return form, nil }, false)
		if err == nil {
			return t, nil
		}
		if refreshRetryable(status) {
			return "", err // the server did not spend the refresh token: the next call tries it again
		}
		// Refused (ended, reused, revoked), or perhaps spent (no answer, which a second use
		// would turn into reuse): never sent again. A new assertion starts a new family.
		s.mu.Lock()
		if s.held == h {
			s.held = nil
		}
		s.mu.Unlock()
		if ctx.Err() != nil {
			return "", err
		}
	}
	t, _, err := s.grant(ctx, now, func() (url.Values, error) {
		assertion, err := s.Assertion() // a new jti each attempt: the server takes each once
		if err != nil {
			return nil, err
		}
		return url.Values{"grant_type": {GrantJWTBearer}, "assertion": {assertion}}, nil
	}, true)
	return t, err
}

// Authorization returns the Authorization header's value: "Bearer <access token>".
func (s *TokenSource) Authorization(ctx context.Context) (string, error) {
	t, err := s.Token(ctx)
	if err != nil {
		return "", err
	}
	return "Bearer " + t, nil
}

// Forget drops the held tokens: the next call buys new ones with an assertion.
func (s *TokenSource) Forget() {
	s.mu.Lock()
	s.held = nil
	s.mu.Unlock()
}

// Transport returns an http.RoundTripper that sends each request through base (nil:
// http.DefaultTransport) with "Authorization: Bearer <access token>".
func (s *TokenSource) Transport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return bearerTransport{s, base}
}

type bearerTransport struct {
	s    *TokenSource
	base http.RoundTripper
}

func (t bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	auth, err := t.s.Authorization(r.Context())
	if err != nil {
		if r.Body != nil {
			r.Body.Close()
		}
		return nil, err
	}
	r2 := r.Clone(r.Context()) // a RoundTripper must not change the caller's request
	r2.Header.Set("Authorization", auth)
	return t.base.RoundTrip(r2)
}

// transient says whether an answer's status is worth another try: a rate limit, or a server
// (or a proxy before it) that did not act on the request.
func transient(status int) bool {
	switch status {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// refreshRetryable says whether a refresh may be sent again with the same refresh token:
// after Keyward's own 429 or 503, given before it spends one. A proxy's 502 or 504 may come
// after the server spent it, and a second use would revoke its family.
func refreshRetryable(status int) bool {
	return status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable
}

// grant calls the token endpoint until it answers a token or a refusal, or the retries run
// out, and returns the last answer's status (0: none came back). form makes each attempt's
// request; resend says whether one that got no answer may be sent again.
func (s *TokenSource) grant(ctx context.Context, now time.Time, form func() (url.Values, error), resend bool) (string, int, error) {
	status := 0
	for attempt := 0; ; attempt++ {
		values, err := form()
		if err != nil {
			return "", status, err
		}
		t, resp, err := s.exchange(ctx, values, now)
		status = 0
		if resp != nil {
			status = resp.StatusCode
		}
		if err == nil || attempt >= s.maxRetries || ctx.Err() != nil {
			return t, status, err
		}
		wait := backoff(s.retryBase, attempt)
		switch {
		case resp == nil && !resend:
			return "", status, err
		case resp == nil:
		case transient(status) && (resend || refreshRetryable(status)):
			var ok bool
			if wait, ok = answerWait(resp.Header, wait); !ok {
				return "", status, err
			}
		default:
			return "", status, err
		}
		if err := sleep(ctx, wait); err != nil {
			return "", status, err
		}
	}
}

// exchange makes one call of the token endpoint. resp is its answer (the body read and
// closed), nil when none came back complete: the server may have acted on the request.
func (s *TokenSource) exchange(ctx context.Context, form url.Values, now time.Time) (string, *http.Response, error) {
	actx := ctx
	if s.timeout > 0 {
		var cancel context.CancelFunc
		actx, cancel = context.WithTimeout(ctx, s.timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(actx, http.MethodPost, s.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return "", nil, fmt.Errorf("keyward: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", s.userAgent)
	resp, err := s.httpClient.Do(req)
	if err != nil {
		return "", nil, fmt.Errorf("keyward: POST %s: %w", TokenPath, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", nil, fmt.Errorf("keyward: reading the answer of POST %s: %w", TokenPath, err)
	}
	if resp.StatusCode >= 300 {
		return "", resp, newOAuthError(resp, body)
	}
	var t struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
		ExpiresIn    int64  `json:"expires_in"`
	}
	if err := json.Unmarshal(body, &t); err != nil || t.AccessToken == "" {
		return "", resp, fmt.Errorf("keyward: the answer of POST %s is not a token (%v)", TokenPath, err)
	}
	s.mu.Lock()
	s.held = &heldToken{access: t.AccessToken, refresh: t.RefreshToken, expiresAt: now.Add(time.Duration(t.ExpiresIn) * time.Second)}
	s.mu.Unlock()
	return t.AccessToken, resp, nil
}

// newOAuthError reads RFC 6749's {"error", "error_description"} into an *Error.
func newOAuthError(resp *http.Response, body []byte) *Error {
	var wire struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if json.Unmarshal(body, &wire) != nil || wire.Error == "" {
		return newError(resp, body) // not the token endpoint's shape (a proxy in between)
	}
	return &Error{
		Status: resp.StatusCode, Code: wire.Error, Message: wire.Description,
		RequestID: resp.Header.Get("X-Request-Id"), RetryAfter: retryAfter(resp.Header),
	}
}
