package keyward

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Error is every refusal of the Keyward API: the HTTP status and the body
// {"error": {"code", "message", "field", "verification_code"}}. Use errors.As to get it, or
// errors.Is with the sentinels (ErrNotFound, ErrConflict, …) to test the code.
type Error struct {
	// Status is the HTTP status (400, 401, 403, 404, 409, 429, 503, …).
	Status int `json:"-"`
	// Code is Keyward's error code: invalid_request, unauthenticated, forbidden,
	// workspace_suspended, not_found, conflict, mfa_required, rate_limited,
	// payload_too_large, unavailable, internal, …
	Code string `json:"code"`
	// Message is a human-readable explanation.
	Message string `json:"message"`
	// Field names the input at fault, when there is one (e.g. "name", "keys[2].hash").
	Field string `json:"field,omitempty"`
	// VerificationCode is set on verification refusals (e.g. "REVOKED").
	VerificationCode string `json:"verification_code,omitempty"`
	// RequestID is the answer's X-Request-Id.
	RequestID string `json:"-"`
	// RetryAfter is the answer's Retry-After (429, 503, 507), zero when absent.
	RetryAfter time.Duration `json:"-"`
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "keyward: %d %s", e.Status, e.Code)
	if e.Field != "" {
		fmt.Fprintf(&b, " (field %s)", e.Field)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	return b.String()
}

// Is reports whether target is an *Error with the same Code (and the same Status when
// target's is set), so errors.Is(err, keyward.ErrNotFound) works.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	if !ok {
		return false
	}
	return t.Code == e.Code && (t.Status == 0 || t.Status == e.Status)
}

// Sentinels for errors.Is; they match any *Error with the same code.
var (
	ErrInvalidRequest  = &Error{Code: "invalid_request"}
	ErrUnauthenticated = &Error{Code: "unauthenticated"}
	ErrForbidden       = &Error{Code: "forbidden"}
	ErrNotFound        = &Error{Code: "not_found"}
	ErrConflict        = &Error{Code: "conflict"}
	ErrMFARequired     = &Error{Code: "mfa_required"}
	ErrRateLimited     = &Error{Code: "rate_limited"}
	ErrUnavailable     = &Error{Code: "unavailable"}
)

func newError(resp *http.Response, body []byte) *Error {
	e := &Error{Status: resp.StatusCode, RequestID: resp.Header.Get("X-Request-Id"), RetryAfter: retryAfter(resp.Header)}
	var wire struct {
		Error *Error `json:"error"`
	}
	if json.Unmarshal(body, &wire) == nil && wire.Error != nil && wire.Error.Code != "" {
		e.Code, e.Message, e.Field, e.VerificationCode = wire.Error.Code, wire.Error.Message, wire.Error.Field, wire.Error.VerificationCode
		return e
	}
	// Not Keyward's shape (a proxy in between): keep what there is.
	e.Code = strings.ToLower(strings.ReplaceAll(http.StatusText(resp.StatusCode), " ", "_"))
	if e.Code == "" {
		e.Code = "http_" + fmt.Sprint(resp.StatusCode)
	}
	msg := strings.TrimSpace(string(body))
	if len(msg) > 200 {
		msg = msg[:200]
	}
	e.Message = msg
	return e
}
