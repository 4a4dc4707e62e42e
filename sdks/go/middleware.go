package keyward

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// MiddlewareOption configures Middleware.
type MiddlewareOption func(*guard)

// Require adds a permission query the key must satisfy ("orders.read", or "wallet.read AND
// (tx.create OR tx.approve)"); several Require options must all hold.
func Require(query string) MiddlewareOption {
	return func(g *guard) {
		if strings.TrimSpace(query) != "" {
			g.permissions = append(g.permissions, query)
		}
	}
}

// Scope sets the resource scope every request is checked in (e.g. "wallet:*").
func Scope(scope string) MiddlewareOption {
	return func(g *guard) { g.scope = func(*http.Request) string { return scope } }
}

// ScopeFunc derives the scope from the request (e.g. "wallet:" + the wallet id in its path).
func ScopeFunc(f func(*http.Request) string) MiddlewareOption {
	return func(g *guard) { g.scope = f }
}

// Workspace binds verification to a workspace: another workspace's key is refused as
// unknown.
func Workspace(id string) MiddlewareOption { return func(g *guard) { g.workspace = id } }

// Environment binds verification to "test" or "live": another environment's key is refused
// with 403.
func Environment(env string) MiddlewareOption { return func(g *guard) { g.environment = env } }

// Cost is what each request spends of the key's rate limits and credits (default 1).
func Cost(n int) MiddlewareOption { return func(g *guard) { g.cost = &n } }

// Tags count each verification under these tags in the key's usage.
func Tags(tags ...string) MiddlewareOption { return func(g *guard) { g.tags = tags } }

// ClientIP says which address the caller has, checked against a key's IP allowlist (default:
// the host of r.RemoteAddr; behind a proxy, read your proxy's header instead). Return "" to
// send none.
func ClientIP(f func(*http.Request) string) MiddlewareOption { return func(g *guard) { g.ip = f } }

// MaxSignedBody bounds the body read to verify a signed request (default 1 MiB; a larger
// one is refused with 413).
func MaxSignedBody(n int64) MiddlewareOption { return func(g *guard) { g.maxBody = n } }

// OnRefusal replaces how a refused request is answered. err carries the status, the code and
// (for a refused key) the verification code; v is the verification when Keyward answered.
func OnRefusal(f func(w http.ResponseWriter, r *http.Request, err *Error, v *Verification)) MiddlewareOption {
	return func(g *guard) { g.refuse = f }
}

type guard struct {
	c           *Client
	permissions []string
	scope       func(*http.Request) string
	workspace   string
	environment string
	cost        *int
	tags        []string
	ip          func(*http.Request) string
	maxBody     int64
	refuse      func(http.ResponseWriter, *http.Request, *Error, *Verification)
}

type ctxKey struct{}

// FromContext returns the verification of the request's key, put there by Middleware.
func FromContext(ctx context.Context) (*Verification, bool) {
	v, ok := ctx.Value(ctxKey{}).(*Verification)
	return v, ok
}

// NewContext returns ctx carrying v (what Middleware does; useful in tests of handlers).
func NewContext(ctx context.Context, v *Verification) context.Context {
	return context.WithValue(ctx, ctxKey{}, v)
}

// Middleware protects an http.Handler with Keyward: a request passes only with a valid key
// in X-API-Key or "Authorization: Bearer" (or a request signed with the Biz-Api-* headers)
// that satisfies the options; the handler finds the verification with FromContext.
// Refusals are answered in Keyward's error shape, {"error": {"code", "message",
// "verification_code"}}, with X-Keyward-Code: 401 unauthenticated (no key, unknown,
// revoked, expired, disabled, bad signature), 403 forbidden (permissions, IP, environment,
// a suspended workspace),
// 429 rate_limited (rate limit or credits, with Retry-After), and 503 unavailable when
// Keyward cannot be reached (it fails closed).
//
//	protect := keyward.Middleware(kw, keyward.Require("orders.read"))
//	mux.Handle("/orders", protect(orders))
func Middleware(c *Client, opts ...MiddlewareOption) func(http.Handler) http.Handler {
	g := &guard{c: c, maxBody: 1 << 20, ip: remoteIP, refuse: writeRefusal}
	for _, o := range opts {
		o(g)
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			v, refusal := g.check(r)
			if refusal != nil {
				g.refuse(w, r, refusal, v)
				return
			}
			next.ServeHTTP(w, r.WithContext(NewContext(r.Context(), v)))
		})
	}
}

// credential reads the key from X-API-Key or Authorization: Bearer.
func credential(r *http.Request) string {
	if k := strings.TrimSpace(r.Header.Get("X-API-Key")); k != "" {
		return k
	}
	a := strings.TrimSpace(r.Header.Get("Authorization"))
	if len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
		return strings.TrimSpace(a[7:])
	}
	return ""
}

func (g *guard) check(r *http.Request) (*Verification, *Error) {
	perms := ""
	switch len(g.permissions) {
	case 0:
	case 1:
		perms = g.permissions[0]
	default:
		perms = "(" + strings.Join(g.permissions, ") AND (") + ")"
	}
	scope := ""
	if g.scope != nil {
		scope = g.scope(r)
	}
	ip := ""
	if g.ip != nil {
		ip = g.ip(r)
	}
	var (
		v   *Verification
		err error
	)
	if key := credential(r); key != "" {
		v, err = g.c.Verify(r.Context(), VerifyRequest{
			Key: key, Permissions: perms, Scope: scope, IP: ip,
			WorkspaceID: g.workspace, Environment: g.environment, Cost: g.cost, Tags: g.tags,
		})
	} else if r.Header.Get(HeaderSignatureKey) != "" {
		var body []byte
		if r.Body != nil {
			body, err = io.ReadAll(io.LimitReader(r.Body, g.maxBody+1))
			r.Body.Close()
			if err != nil {
				return nil, &Error{Status: http.StatusBadRequest, Code: "invalid_request", Message: "could not read the request body"}
			}
			if int64(len(body)) > g.maxBody {
				return nil, &Error{Status: http.StatusRequestEntityTooLarge, Code: "payload_too_large", Message: "request body too large to verify its signature"}
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		sr := SignedRequestFrom(r, body)
		sr.Permissions, sr.Scope, sr.IP, sr.WorkspaceID, sr.Environment, sr.Cost = perms, scope, ip, g.workspace, g.environment, g.cost
		v, err = g.c.VerifySigned(r.Context(), sr)
	} else {
		return nil, refusalFor(&Verification{Code: CodeMalformed})
	}
	if err != nil {
		var ke *Error
		if errors.As(err, &ke) && ke.Status < 500 {
			// Keyward refused the verification call itself (a misconfigured option): not the
			// caller's fault, and nothing to tell them.
			return nil, &Error{Status: http.StatusInternalServerError, Code: "internal", Message: "key verification failed"}
		}
		return nil, &Error{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: "key verification is unavailable"}
	}
	if !v.Valid {
		return v, refusalFor(v)
	}
	return v, nil
}

var refusalMessages = map[string]string{
	CodeMalformed:               "missing or malformed API key",
	CodeNotFound:                "unknown API key",
	CodeRevoked:                 "API key revoked",
	CodeExpired:                 "API key expired",
	CodePending:                 "API key awaits approval",
	CodeIPNotAllowed:            "request IP not allowed for this key",
	CodeInsufficientPermissions: "API key lacks the required permissions",
	CodeInvalidSignature:        "request signature does not match",
	CodeNonceExpired:            "Biz-Api-Nonce is outside the accepted time window",
	CodeReplayed:                "this signed request was already used",
	CodeDisabled:                "API key is disabled (or its service account is)",
	CodeWrongEnvironment:        "API key belongs to another environment",
	CodeSuspended:               "API key's workspace is suspended",
	CodeRateLimited:             "API key's rate limit reached; see Retry-After",
	CodeUsageExceeded:           "API key's credits are spent",
}

// refusalFor is the answer forward-auth gives for a refused verification.
func refusalFor(v *Verification) *Error {
	e := &Error{VerificationCode: v.Code, Message: refusalMessages[v.Code]}
	if e.Message == "" {
		e.Message = "request refused"
	}
	switch v.Code {
	case CodeRateLimited, CodeUsageExceeded:
		e.Status, e.Code = http.StatusTooManyRequests, "rate_limited"
		e.RetryAfter = time.Second
		if v.Ratelimit != nil && v.Code == CodeRateLimited {
			if d := time.Until(v.Ratelimit.ResetTime()); d > time.Second {
				e.RetryAfter = d
			}
		}
	case CodeIPNotAllowed, CodeInsufficientPermissions, CodeWrongEnvironment, CodeSuspended:
		e.Status, e.Code = http.StatusForbidden, "forbidden"
	default:
		e.Status, e.Code = http.StatusUnauthorized, "unauthenticated"
	}
	return e
}

func writeRefusal(w http.ResponseWriter, _ *http.Request, e *Error, _ *Verification) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	if e.VerificationCode != "" {
		h.Set("X-Keyward-Code", e.VerificationCode)
	}
	if e.Status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Bearer realm="api"`)
	}
	if e.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(int(math.Ceil(e.RetryAfter.Seconds()))))
	}
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(errorBody{Error: e})
}

// WriteError answers w with err in Keyward's error shape (for handlers that refuse
// requests themselves).
func WriteError(w http.ResponseWriter, err *Error) { writeRefusal(w, nil, err, nil) }

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if net.ParseIP(host) == nil {
		return ""
	}
	return host
}
