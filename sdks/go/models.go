package keyward

// The API's models, written by hand and checked against sdks/openapi.json by
// TestModelsMatchOpenAPI (sdks/go/generate.sh --check): every property of a schema listed
// in models_check_test.go has a field here with that json name, and no field names a
// property the schema lacks.

import (
	"encoding/json"
	"reflect"
	"strings"
	"time"
)

// Bool returns a pointer to b (for optional fields such as UpdateKey.Enabled).
func Bool(b bool) *bool { return &b }

// String returns a pointer to s (for optional fields such as UpdateKey.Name).
func String(s string) *string { return &s }

// Int returns a pointer to n (for optional fields such as VerifyRequest.Cost).
func Int(n int) *int { return &n }

// Time returns a pointer to t (for optional fields such as CreateKey.ExpiresAt).
func Time(t time.Time) *time.Time { return &t }

// ---------------------------------------------------------------------------------------
// Keys

// Key is the key object (schema KeyView). Secret is set only in the answers of Create and
// Rotate.
type Key struct {
	ID          string     `json:"id"`
	Name        string     `json:"name"`
	Kind        string     `json:"kind"` // "secret" or "public"
	Algorithm   string     `json:"algorithm,omitempty"`
	PublicKey   string     `json:"public_key,omitempty"`
	Type        string     `json:"type,omitempty"` // "temporary", "permanent" or empty
	Environment string     `json:"environment"`
	Status      string     `json:"status"` // active, revoked, expired, pending_create, …
	Enabled     bool       `json:"enabled"`
	DisabledAt  *time.Time `json:"disabled_at,omitempty"`
	// LeakedAt, LeakSource and LeakURL: the key's first leak report (GitHub's secret
	// scanning or POST /v1/leaks), absent for a key never reported.
	LeakedAt    *time.Time     `json:"leaked_at,omitempty"`
	LeakSource  *string        `json:"leak_source,omitempty"`
	LeakURL     *string        `json:"leak_url,omitempty"`
	Start       string         `json:"start"`
	Roles       []string       `json:"roles"`
	Permissions []string       `json:"permissions"`
	Scopes      []string       `json:"scopes"`
	Grants      []Grant        `json:"grants"`
	IPAllowlist []string       `json:"ip_allowlist"`
	Meta        map[string]any `json:"meta"`
	CallbackURL string         `json:"callback_url,omitempty"`
	ExpiresAt   *time.Time     `json:"expires_at,omitempty"`
	CreatedAt   time.Time      `json:"created_at"`
	UpdatedAt   time.Time      `json:"updated_at"`
	CreatedBy   string         `json:"created_by,omitempty"`
	LastUsedAt  *time.Time     `json:"last_used_at,omitempty"`
	LastUsedIP  string         `json:"last_used_ip,omitempty"`
	RevokedAt   *time.Time     `json:"revoked_at,omitempty"`
	Owner       *Owner         `json:"owner,omitempty"`
	// IdentityID and ExternalID name the identity (customer) the key belongs to, if any.
	IdentityID string      `json:"identity_id,omitempty"`
	ExternalID string      `json:"external_id,omitempty"`
	Ratelimits []RateLimit `json:"ratelimits"`
	Credits    *Credits    `json:"credits,omitempty"`
	// ApprovalID names the approval request the key waits on (pending_* statuses).
	ApprovalID string `json:"approval_id,omitempty"`
	// Requests24h is the key's verifications in the last 24 hours (in lists).
	Requests24h *int64 `json:"requests_24h,omitempty"`
	// RotatedTo names the key that replaced this one by a rotation (while this one is still
	// active it is in its grace period, until ExpiresAt); RotatedFrom the key this one replaced.
	RotatedTo   string `json:"rotated_to,omitempty"`
	RotatedFrom string `json:"rotated_from,omitempty"`
	// Secret is the full key, present only in the answer that created it.
	Secret string `json:"secret,omitempty"`
}

// Owner is who a key belongs to (schema KeyOwner).
type Owner struct {
	Type string `json:"type"` // "service_account" or "member"
	ID   string `json:"id"`
}

// Grant gives a role to a key in resource scopes of its own (schema KeyGrant).
type Grant struct {
	Role   string   `json:"role"`
	Scopes []string `json:"scopes"`
}

// RateLimit is a named rate limit: Limit uses per Duration ("1s", "1m", "1h", "1d"; schema
// RateLimitSpec).
type RateLimit struct {
	Name     string `json:"name,omitempty"`
	Limit    int    `json:"limit"`
	Duration string `json:"duration"`
	// AutoApply false checks the limit only when a verification names it (default true).
	AutoApply *bool `json:"auto_apply,omitempty"`
	// Mode is "exact" (the default) or "fast": with Redis, a fast limit is answered from
	// leases of its tokens on each node (never more than the limit; briefly fewer).
	Mode string `json:"mode,omitempty"`
}

// Credits are uses a key may spend, with an optional refill (schema CreditsSpec).
type Credits struct {
	Remaining int64   `json:"remaining"`
	Refill    *Refill `json:"refill,omitempty"`
}

// Refill refills credits to Amount every day (Interval "daily") or every month on Day
// (Interval "monthly"; schema Refill).
type Refill struct {
	Interval string `json:"interval"`
	Amount   int64  `json:"amount"`
	Day      int    `json:"day,omitempty"`
}

// CreateKey is the body of Keys.Create (schema CreateKeyRequest). Only Name is needed.
// With PublicKey (and Algorithm) it registers a public key instead of making a secret.
type CreateKey struct {
	Name        string `json:"name,omitempty"`
	Environment string `json:"environment,omitempty"` // "test" (default) or "live"
	Type        string `json:"type,omitempty"`        // "temporary" or "permanent"
	// ExpiresAt or ExpiresIn ("30d", "12h", "6mo", "1y"), not both.
	ExpiresAt   *time.Time     `json:"expires_at,omitempty"`
	ExpiresIn   string         `json:"expires_in,omitempty"`
	IPAllowlist []string       `json:"ip_allowlist,omitempty"`
	Roles       []string       `json:"roles,omitempty"`
	Permissions []string       `json:"permissions,omitempty"`
	Scopes      []string       `json:"scopes,omitempty"`
	Grants      []Grant        `json:"grants,omitempty"`
	Meta        map[string]any `json:"meta,omitempty"`
	CallbackURL string         `json:"callback_url,omitempty"`
	Ratelimits  []RateLimit    `json:"ratelimits,omitempty"`
	Credits     *Credits       `json:"credits,omitempty"`
	// ExternalID attaches the key to the identity with this external id (made if new).
	ExternalID string `json:"external_id,omitempty"`
	// Enabled false creates the key disabled.
	Enabled *bool `json:"enabled,omitempty"`
	// PublicKey (hex) registers a public key; Algorithm "ed25519" (default) or "secp256k1".
	PublicKey string `json:"public_key,omitempty"`
	Algorithm string `json:"algorithm,omitempty"`
	// OTP is the caller's one-time code, checked before the key is made when sent.
	OTP string `json:"otp,omitempty"`
}

// UpdateKey is the body of Keys.Update (schema UpdateKeyRequest). A nil field is left as it
// is; a non-nil slice or map (even empty) replaces the key's. The Clear* fields send null:
// no expiry, no callback URL, no credits.
type UpdateKey struct {
	Name        *string        `json:"name"`
	Roles       []string       `json:"roles"`
	Permissions []string       `json:"permissions"`
	Scopes      []string       `json:"scopes"`
	Grants      []Grant        `json:"grants"`
	IPAllowlist []string       `json:"ip_allowlist"`
	Meta        map[string]any `json:"meta"`
	ExpiresAt   *time.Time     `json:"expires_at"`
	CallbackURL *string        `json:"callback_url"`
	// Ratelimits replaces the key's limits; an empty, non-nil slice removes them.
	Ratelimits []RateLimit `json:"ratelimits"`
	// Credits sets the key's credits (remaining starts again).
	Credits *Credits `json:"credits"`
	// Enabled false disables the key, true enables it again.
	Enabled *bool `json:"enabled"`
	// ExternalID attaches the key to the identity with this external id (made if new).
	ExternalID *string `json:"external_id"`

	ClearExpiresAt   bool `json:"-" clear:"expires_at"`
	ClearCallbackURL bool `json:"-" clear:"callback_url"`
	ClearCredits     bool `json:"-" clear:"credits"`
	ClearExternalID  bool `json:"-" clear:"external_id"`
}

// MarshalJSON sends the fields that are set (see UpdateKey).
func (u UpdateKey) MarshalJSON() ([]byte, error) { return marshalPatch(u) }

// marshalPatch encodes a PATCH body: nil pointers, slices and maps are left out, set ones
// are sent (an empty slice as []), and a true bool field tagged clear:"name" sends null.
func marshalPatch(v interface{}) ([]byte, error) {
	rv := reflect.ValueOf(v)
	rt := rv.Type()
	m := map[string]interface{}{}
	for i := 0; i < rt.NumField(); i++ {
		f := rt.Field(i)
		if c := f.Tag.Get("clear"); c != "" {
			if rv.Field(i).Bool() {
				m[c] = nil
			}
			continue
		}
		name := strings.Split(f.Tag.Get("json"), ",")[0]
		if name == "" || name == "-" {
			continue
		}
		fv := rv.Field(i)
		switch fv.Kind() {
		case reflect.Ptr, reflect.Slice, reflect.Map, reflect.Interface:
			if fv.IsNil() {
				continue
			}
		}
		m[name] = fv.Interface()
	}
	return json.Marshal(m)
}

// ListKeys filters Keys.List (all optional).
type ListKeys struct {
	Status      string // active, revoked, expired, pending_create, …
	Environment string // test or live
	Kind        string // secret or public
	Query       string // q: the name or start anywhere, or the id exactly
	Limit       int    // 1–200, default 50
	Cursor      string
}

// KeyList is a page of keys (schema KeyList).
type KeyList struct {
	Items      []Key  `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}

// RotateKey is the body of Keys.Rotate (schema RotateRequest).
type RotateKey struct {
	// GracePeriod is how long the old key keeps working ("0s": it stops at once; "24h").
	GracePeriod string `json:"grace_period,omitempty"`
}

// ---------------------------------------------------------------------------------------
// Verification

// VerifyRequest is the body of Client.Verify (schema VerifyKeyRequest). Only Key is needed.
type VerifyRequest struct {
	Key string `json:"key"`
	// Permissions is a permission query: "wallet.read AND (tx.create OR tx.approve)".
	Permissions string `json:"permissions,omitempty"`
	// Scope is the resource the call is about, e.g. "wallet:w_123".
	Scope string `json:"scope,omitempty"`
	// IP is the caller's address, checked against the key's IP allowlist.
	IP string `json:"ip,omitempty"`
	// WorkspaceID binds verification: a key of another workspace answers NOT_FOUND.
	WorkspaceID string `json:"workspace_id,omitempty"`
	// Environment ("test" or "live") binds verification: another's key answers
	// WRONG_ENVIRONMENT.
	Environment string `json:"environment,omitempty"`
	// Cost is what the verification spends of the key's limits and credits (default 1; 0
	// checks without spending).
	Cost *int `json:"cost,omitempty"`
	// Tags (up to 10) count the verification per tag in usage.
	Tags []string `json:"tags,omitempty"`
	// Ratelimits names limits to check besides those applied automatically, each at its
	// own cost (a key's limit by name, else its identity's).
	Ratelimits []NamedLimit `json:"ratelimits,omitempty"`
}

// NamedLimit is a limit a verification names (schema VerifyRatelimit). With Limit and
// Duration (ms) it is made for this request when neither the key nor its identity has it.
type NamedLimit struct {
	Name     string `json:"name"`
	Cost     *int   `json:"cost,omitempty"`
	Limit    *int   `json:"limit,omitempty"`
	Duration *int64 `json:"duration,omitempty"`
}

// Verification is the answer of every verification (schema VerifyResponse). A refused key
// is not an error: Valid is false and Code says why.
type Verification struct {
	Valid bool `json:"valid"`
	// Code is VALID, MALFORMED, NOT_FOUND, REVOKED, EXPIRED, PENDING, DISABLED,
	// IP_NOT_ALLOWED, INSUFFICIENT_PERMISSIONS, RATE_LIMITED, USAGE_EXCEEDED,
	// WRONG_ENVIRONMENT, INVALID_SIGNATURE, NONCE_EXPIRED, REPLAYED or SUSPENDED.
	Code        string         `json:"code"`
	KeyID       string         `json:"key_id,omitempty"`
	WorkspaceID string         `json:"workspace_id,omitempty"`
	Name        string         `json:"name,omitempty"`
	Environment string         `json:"environment,omitempty"`
	Roles       []string       `json:"roles,omitempty"`
	Permissions []string       `json:"permissions,omitempty"`
	Grants      []Grant        `json:"grants,omitempty"`
	Scopes      []string       `json:"scopes,omitempty"`
	Meta        map[string]any `json:"meta,omitempty"`
	ExpiresAt   *time.Time     `json:"expires_at,omitempty"`
	// Ratelimit is the key's tightest limit after this verification (keys with limits).
	Ratelimit *RatelimitState `json:"ratelimit,omitempty"`
	// Credits is the key's credits after this verification (keys with credits).
	Credits *CreditsState `json:"credits,omitempty"`
	// Identity is the identity (customer) the key belongs to, if any.
	Identity *VerifiedIdentity `json:"identity,omitempty"`
	// Ratelimits lists every limit checked, when the request named limits or the key's
	// identity has limits.
	Ratelimits []CheckedLimit `json:"ratelimits,omitempty"`
	// Kind is "app_token" when the credential was an app's access token (empty for keys);
	// KeyID is then the installation's id and Name the app's.
	Kind string `json:"kind,omitempty"`
	// AppID is the app whose access token it was.
	AppID string `json:"app_id,omitempty"`
	// InstallationID is the installation the access token was issued for.
	InstallationID string `json:"installation_id,omitempty"`
}

// VerifiedIdentity is a verified key's identity (schema VerifyIdentity).
type VerifiedIdentity struct {
	ID         string         `json:"id"`
	ExternalID string         `json:"external_id"`
	Meta       map[string]any `json:"meta"`
}

// CheckedLimit is one limit a verification checked (schema RatelimitResult).
type CheckedLimit struct {
	Name      string `json:"name"`
	Limit     int    `json:"limit"`
	Duration  int64  `json:"duration"` // milliseconds
	Remaining int    `json:"remaining"`
	Reset     int64  `json:"reset"` // Unix milliseconds
	Exceeded  bool   `json:"exceeded"`
	AutoApply bool   `json:"auto_apply"`
	Source    string `json:"source"` // "key", "identity" or "request"
}

// Verification codes.
const (
	CodeValid                   = "VALID"
	CodeMalformed               = "MALFORMED"
	CodeNotFound                = "NOT_FOUND"
	CodeRevoked                 = "REVOKED"
	CodeExpired                 = "EXPIRED"
	CodePending                 = "PENDING"
	CodeDisabled                = "DISABLED"
	CodeIPNotAllowed            = "IP_NOT_ALLOWED"
	CodeInsufficientPermissions = "INSUFFICIENT_PERMISSIONS"
	CodeRateLimited             = "RATE_LIMITED"
	CodeUsageExceeded           = "USAGE_EXCEEDED"
	CodeWrongEnvironment        = "WRONG_ENVIRONMENT"
	CodeInvalidSignature        = "INVALID_SIGNATURE"
	CodeNonceExpired            = "NONCE_EXPIRED"
	CodeReplayed                = "REPLAYED"
	CodeSuspended               = "SUSPENDED"
)

// RatelimitState is a limit's state in a verification (schema RatelimitAnswer).
type RatelimitState struct {
	Name      string `json:"name"`
	Limit     int    `json:"limit"`
	Remaining int    `json:"remaining"`
	// Reset is when the limit is whole again, in Unix milliseconds (see ResetTime).
	Reset int64 `json:"reset"`
}

// ResetTime is Reset as a time.Time.
func (r RatelimitState) ResetTime() time.Time { return time.UnixMilli(r.Reset) }

// CreditsState is a key's credits after a verification (schema CreditsAnswer).
type CreditsState struct {
	Remaining int64 `json:"remaining"`
}

// SignedRequest is the body of Client.VerifySigned (schema VerifySignedRequest): a request
// signed with the Biz-Api-* headers, as the service received it.
type SignedRequest struct {
	Method string `json:"method"`
	// Path without host or query, as received (e.g. "/v2/wallets").
	Path string `json:"path"`
	// Query is the raw query string as received, without "?".
	Query string `json:"query"`
	// Body is the raw body as received ("" when none).
	Body string `json:"body"`
	// Headers holds Biz-Api-Key, Biz-Api-Nonce and Biz-Api-Signature.
	Headers     map[string]string `json:"headers"`
	IP          string            `json:"ip,omitempty"`
	Permissions string            `json:"permissions,omitempty"`
	Scope       string            `json:"scope,omitempty"`
	WorkspaceID string            `json:"workspace_id,omitempty"`
	Environment string            `json:"environment,omitempty"`
	Cost        *int              `json:"cost,omitempty"`
}

// ---------------------------------------------------------------------------------------
// Roles and service accounts

// Role is a role of the workspace (schema RoleView); the six member roles are listed too.
type Role struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	// Permissions is nil only for a member role never set.
	Permissions []string   `json:"permissions"`
	MemberRole  bool       `json:"member_role"`
	Keys        int64      `json:"keys"`
	ApprovalID  string     `json:"approval_id,omitempty"`
	CreatedAt   *time.Time `json:"created_at,omitempty"`
	UpdatedAt   *time.Time `json:"updated_at,omitempty"`
}

// CreateRole is the body of Roles.Create (schema CreateRoleRequest).
type CreateRole struct {
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	Permissions []string `json:"permissions"`
}

// UpdateRole is the body of Roles.Update (schema UpdateRoleRequest); nil fields are kept.
type UpdateRole struct {
	Description *string  `json:"description"`
	Permissions []string `json:"permissions"`
}

// MarshalJSON sends the fields that are set.
func (u UpdateRole) MarshalJSON() ([]byte, error) { return marshalPatch(u) }

// ServiceAccount is a member of kind "service" that owns keys (schema ServiceAccountView).
type ServiceAccount struct {
	ID          string    `json:"id"`
	Kind        string    `json:"kind"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	Role        string    `json:"role"`
	Disabled    bool      `json:"disabled"`
	Keys        int64     `json:"keys"`
	ApprovalID  string    `json:"approval_id,omitempty"`
	CreatedBy   string    `json:"created_by,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// CreateServiceAccount is the body of ServiceAccounts.Create (schema
// CreateServiceAccountRequest).
type CreateServiceAccount struct {
	Name        string `json:"name"`
	Role        string `json:"role"`
	Description string `json:"description,omitempty"`
}

// UpdateServiceAccount is the body of ServiceAccounts.Update (schema
// UpdateServiceAccountRequest); nil fields are kept. Disabled true stops all its keys.
type UpdateServiceAccount struct {
	Name        *string `json:"name,omitempty"`
	Role        *string `json:"role,omitempty"`
	Description *string `json:"description,omitempty"`
	Disabled    *bool   `json:"disabled,omitempty"`
}

// ---------------------------------------------------------------------------------------
// Usage

// UsageParams selects a usage range (all optional; default the last 24 hours by hour).
type UsageParams struct {
	From        time.Time
	To          time.Time
	Granularity string // minute, hour or day
	Tag         string // only verifications whose request named this tag
}

// UsageBucket is the verifications in one bucket (schema UsageBucket).
type UsageBucket struct {
	Start  time.Time        `json:"start"`
	Total  int64            `json:"total"`
	ByCode map[string]int64 `json:"by_code"`
}

// KeyUsage is one key's verifications over a range (schema KeyUsage).
type KeyUsage struct {
	KeyID       string           `json:"key_id"`
	Granularity string           `json:"granularity"`
	From        time.Time        `json:"from"`
	To          time.Time        `json:"to"`
	Total       int64            `json:"total"`
	ByCode      map[string]int64 `json:"by_code"`
	Buckets     []UsageBucket    `json:"buckets"`
}

// WorkspaceUsage is the workspace's verifications over a range (schema WorkspaceUsage).
type WorkspaceUsage struct {
	Granularity string           `json:"granularity"`
	From        time.Time        `json:"from"`
	To          time.Time        `json:"to"`
	Total       int64            `json:"total"`
	ByCode      map[string]int64 `json:"by_code"`
	UnknownKeys int64            `json:"unknown_keys"`
	Buckets     []UsageBucket    `json:"buckets"`
	TopKeys     []TopKey         `json:"top_keys"`
}

// TopKey is one of the busiest keys of a range (schema TopKey).
type TopKey struct {
	KeyID  string           `json:"key_id"`
	Name   string           `json:"name,omitempty"`
	Total  int64            `json:"total"`
	ByCode map[string]int64 `json:"by_code"`
}

// ---------------------------------------------------------------------------------------
// Verify tokens

// VerifyToken is a verify token (schema VerifyTokenView); Token is set only when created.
type VerifyToken struct {
	ID          string     `json:"id"`
	Name        string     `json:"name"`
	WorkspaceID string     `json:"workspace_id"`
	Start       string     `json:"start"`
	CreatedAt   time.Time  `json:"created_at"`
	RevokedAt   *time.Time `json:"revoked_at,omitempty"`
	// LeakedAt, LeakSource and LeakURL: the token's first leak report (docs/LEAKS.md).
	LeakedAt   *time.Time `json:"leaked_at,omitempty"`
	LeakSource *string    `json:"leak_source,omitempty"`
	LeakURL    *string    `json:"leak_url,omitempty"`
	Token      string     `json:"token,omitempty"`
}

// ---------------------------------------------------------------------------------------
// Webhooks

// Webhook is a webhook endpoint (schema WebhookView); Secret (whsec_…) is set only in the
// answers of Create and RotateSecret.
type Webhook struct {
	ID                  string     `json:"id"`
	URL                 string     `json:"url"`
	Events              []string   `json:"events"`
	Description         string     `json:"description,omitempty"`
	Disabled            bool       `json:"disabled"`
	DisabledReason      string     `json:"disabled_reason,omitempty"`
	PreviousSecretUntil *time.Time `json:"previous_secret_until,omitempty"`
	CreatedAt           time.Time  `json:"created_at"`
	UpdatedAt           time.Time  `json:"updated_at"`
	Secret              string     `json:"secret,omitempty"`
}

// CreateWebhook is the body of Webhooks.Create (schema NewWebhookRequest).
type CreateWebhook struct {
	URL         string   `json:"url"`
	Events      []string `json:"events"` // "key.created", "key.*", "*", …
	Description string   `json:"description,omitempty"`
}

// UpdateWebhook is the body of Webhooks.Update (schema WebhookPatch); nil fields are kept.
type UpdateWebhook struct {
	URL         *string  `json:"url"`
	Events      []string `json:"events"`
	Description *string  `json:"description"`
	Disabled    *bool    `json:"disabled"`
}

// MarshalJSON sends the fields that are set.
func (u UpdateWebhook) MarshalJSON() ([]byte, error) { return marshalPatch(u) }

// Delivery is one webhook delivery with its attempts (schema DeliveryView).
type Delivery struct {
	ID            string            `json:"id"`
	EndpointID    string            `json:"endpoint_id,omitempty"`
	KeyID         string            `json:"key_id,omitempty"`
	MessageID     string            `json:"message_id"`
	Type          string            `json:"type"`
	Status        string            `json:"status"` // pending, delivered, failed, cancelled
	Attempts      int               `json:"attempts"`
	NextAttemptAt *time.Time        `json:"next_attempt_at,omitempty"`
	LastStatus    *int              `json:"last_status,omitempty"`
	LastError     string            `json:"last_error,omitempty"`
	Payload       json.RawMessage   `json:"payload"`
	AttemptLog    []DeliveryAttempt `json:"attempt_log"`
	CreatedAt     time.Time         `json:"created_at"`
	FinishedAt    *time.Time        `json:"finished_at,omitempty"`
}

// DeliveryAttempt is one attempt of a delivery (schema AttemptView).
type DeliveryAttempt struct {
	Time       time.Time `json:"time"`
	Status     *int      `json:"status,omitempty"`
	Error      string    `json:"error,omitempty"`
	DurationMS int64     `json:"duration_ms"`
}

// ---------------------------------------------------------------------------------------
// Errors

// errorBody is the wire shape of every refusal (schema ErrorBody).
type errorBody struct {
	Error *Error `json:"error"`
}
