package keyward

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	mrand "math/rand"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Version is the SDK's version, sent in the User-Agent.
const Version = "0.1.0"

const (
	defaultTimeout      = 30 * time.Second
	defaultMaxRetries   = 2
	defaultRetryBackoff = 250 * time.Millisecond
	maxRetryWait        = 10 * time.Second
)

// Client talks to one Keyward server. It is safe for concurrent use.
//
// Verification (Verify, VerifySigned, Middleware) needs no management key; the management
// services (Keys, Roles, ServiceAccounts, Usage, VerifyTokens, Webhooks) do.
type Client struct {
	// Keys manages API keys: create, list, get, update, rotate, revoke, usage.
	Keys *KeysService
	// Roles manages the workspace's roles.
	Roles *RolesService
	// ServiceAccounts manages service accounts and the keys they own.
	ServiceAccounts *ServiceAccountsService
	// Usage reads verification counts of the workspace and of single keys.
	Usage *UsageService
	// VerifyTokens manages the workspace's verify tokens (Keyward-Verify-Token).
	VerifyTokens *VerifyTokensService
	// Webhooks manages webhook endpoints and their deliveries.
	Webhooks *WebhooksService

	baseURL       string
	managementKey string
	verifyToken   string
	httpClient    *http.Client
	timeout       time.Duration
	maxRetries    int
	retryBase     time.Duration
	userAgent     string
}

// Option configures a Client (see New).
type Option func(*Client)

// WithManagementKey sets the management credential (a kw_mk_… management key or a session
// token) sent as "Authorization: Bearer" on management calls.
func WithManagementKey(key string) Option { return func(c *Client) { c.managementKey = key } }

// WithVerifyToken sets the Keyward-Verify-Token sent on verification calls. A workspace's
// verify token also binds verification to that workspace.
func WithVerifyToken(token string) Option { return func(c *Client) { c.verifyToken = token } }

// WithTimeout bounds each attempt of a call (default 30s). The call's context bounds the
// whole call, retries included.
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// WithHTTPClient sets the *http.Client used for every call (default: a client of its own
// using http.DefaultTransport). Its own Timeout, if any, applies too.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.httpClient = hc } }

// WithMaxRetries sets how many times an idempotent call is retried after a network error or
// a 408, 429, 500, 502, 503 or 504 answer (default 2; 0 disables retries). Calls that are not
// idempotent (and carry no Idempotency-Key) are never retried.
func WithMaxRetries(n int) Option {
	return func(c *Client) {
		if n < 0 {
			n = 0
		}
		c.maxRetries = n
	}
}

// WithRetryBackoff sets the first wait between retries (default 250ms; it doubles each time,
// with jitter, and a longer Retry-After up to 10s wins).
func WithRetryBackoff(d time.Duration) Option { return func(c *Client) { c.retryBase = d } }

// WithUserAgent replaces the User-Agent header's value.
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// New returns a client of the Keyward server at baseURL (e.g. "https://keys.example.com").
func New(baseURL string, opts ...Option) *Client {
	c := &Client{
		baseURL:    strings.TrimRight(baseURL, "/"),
		timeout:    defaultTimeout,
		maxRetries: defaultMaxRetries,
		retryBase:  defaultRetryBackoff,
		userAgent:  "keyward-go/" + Version,
	}
	for _, o := range opts {
		o(c)
	}
	if c.httpClient == nil {
		c.httpClient = &http.Client{}
	}
	c.Keys = &KeysService{c}
	c.Roles = &RolesService{c}
	c.ServiceAccounts = &ServiceAccountsService{c}
	c.Usage = &UsageService{c}
	c.VerifyTokens = &VerifyTokensService{c}
	c.Webhooks = &WebhooksService{c}
	return c
}

// RequestOption changes one call (see WithIdempotencyKey, WithHeader).
type RequestOption func(*requestConfig)

type requestConfig struct {
	idempotencyKey string
	header         http.Header
}

// WithIdempotencyKey sends an Idempotency-Key (1–255 ASCII characters) with a call that
// takes one (Keys.Create, Keys.Rotate, ServiceAccounts.CreateKey): a retry within 24 hours
// returns the first answer, with the same secret. Without it those calls get a random key
// of their own, so they too are retried safely.
func WithIdempotencyKey(key string) RequestOption {
	return func(r *requestConfig) { r.idempotencyKey = key }
}

// WithHeader adds a header to one call (e.g. X-Request-Id).
func WithHeader(name, value string) RequestOption {
	return func(r *requestConfig) {
		if r.header == nil {
			r.header = http.Header{}
		}
		r.header.Add(name, value)
	}
}

type auth int

const (
	authManagement auth = iota
	authVerify
	authNone
)

// call describes one API call.
type call struct {
	method     string
	path       string
	query      url.Values
	body       interface{}
	auth       auth
	idempotent bool // safe to retry as is
	// takesIdempotencyKey: the route accepts Idempotency-Key (one is generated when absent).
	takesIdempotencyKey bool
	opts                []RequestOption
}

func (c *Client) do(ctx context.Context, cl call, out interface{}) error {
	if ctx == nil {
		ctx = context.Background()
	}
	cfg := requestConfig{}
	for _, o := range cl.opts {
		o(&cfg)
	}
	var payload []byte
	if cl.body != nil {
		b, err := json.Marshal(cl.body)
		if err != nil {
			return fmt.Errorf("keyward: encoding the request: %w", err)
		}
		payload = b
	}
	u := c.baseURL + cl.path
	if len(cl.query) > 0 {
		u += "?" + cl.query.Encode()
	}
	idem := cfg.idempotencyKey
	if idem == "" && cl.takesIdempotencyKey {
		idem = newIdempotencyKey()
	}
	retryable := cl.idempotent || idem != ""

	for attempt := 0; ; attempt++ {
		resp, body, err := c.attempt(ctx, cl, u, payload, idem, &cfg)
		if err == nil && resp.StatusCode < 300 {
			if out != nil && len(body) > 0 && resp.StatusCode != http.StatusNoContent {
				if err := json.Unmarshal(body, out); err != nil {
					return fmt.Errorf("keyward: decoding the answer of %s %s: %w", cl.method, cl.path, err)
				}
			}
			return nil
		}
		var apiErr error
		if err == nil {
			apiErr = newError(resp, body)
		}
		if ctx.Err() != nil {
			if err != nil {
				return err
			}
			return apiErr
		}
		wait, again := c.shouldRetry(resp, err, attempt)
		if !retryable || !again {
			if err != nil {
				return err
			}
			return apiErr
		}
		if sleep(ctx, wait) != nil {
			if err != nil {
				return err
			}
			return apiErr
		}
	}
}

func (c *Client) attempt(ctx context.Context, cl call, u string, payload []byte, idem string, cfg *requestConfig) (*http.Response, []byte, error) {
	actx := ctx
	if c.timeout > 0 {
		var cancel context.CancelFunc
		actx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(actx, cl.method, u, rd)
	if err != nil {
		return nil, nil, fmt.Errorf("keyward: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	switch cl.auth {
	case authManagement:
		if c.managementKey != "" {
			req.Header.Set("Authorization", "Bearer "+c.managementKey)
		}
	case authVerify:
		if c.verifyToken != "" {
			req.Header.Set("Keyward-Verify-Token", c.verifyToken)
		}
	}
	if idem != "" {
		req.Header.Set("Idempotency-Key", idem)
	}
	for k, vs := range cfg.header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := c.httpClient.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("keyward: %s %s: %w", cl.method, cl.path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return nil, nil, fmt.Errorf("keyward: reading the answer of %s %s: %w", cl.method, cl.path, err)
	}
	return resp, body, nil
}

// shouldRetry says whether (and after how long) a failed attempt is worth another one.
func (c *Client) shouldRetry(resp *http.Response, err error, attempt int) (time.Duration, bool) {
	if attempt >= c.maxRetries {
		return 0, false
	}
	wait := backoff(c.retryBase, attempt)
	if err != nil {
		return wait, true
	}
	switch resp.StatusCode {
	case http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
		http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
	default:
		return 0, false
	}
	return answerWait(resp.Header, wait)
}

// backoff is the wait before retry attempt+1: base doubled attempt times, less up to half
// of it at random (jitter, so that clients failed together do not retry together).
func backoff(base time.Duration, attempt int) time.Duration {
	d := time.Duration(float64(base) * math.Pow(2, float64(attempt)))
	return d/2 + time.Duration(mrand.Int63n(int64(d/2)+1))
}

// answerWait is the wait before retrying an answer: its Retry-After when longer than the
// backoff d; false when that is past maxRetryWait (the caller is better told than kept waiting).
func answerWait(h http.Header, d time.Duration) (time.Duration, bool) {
	if ra := retryAfter(h); ra > 0 {
		if ra > maxRetryWait {
			return 0, false
		}
		if ra > d {
			return ra, true
		}
	}
	return d, true
}

// sleep waits d, or until ctx is done (then its error).
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func retryAfter(h http.Header) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return time.Until(t)
	}
	return 0
}

func newIdempotencyKey() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return ""
	}
	return "kwgo_" + hex.EncodeToString(b[:])
}

func pathEscape(s string) string { return url.PathEscape(s) }
