package keyward

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// WebhookTolerance is how far a delivery's webhook-timestamp may be from now.
const WebhookTolerance = 5 * time.Minute

// Webhook verification errors (VerifyWebhook wraps them; test with errors.Is).
var (
	ErrWebhookHeaders   = errors.New("keyward: webhook-id, webhook-timestamp or webhook-signature missing or malformed")
	ErrWebhookTimestamp = errors.New("keyward: webhook-timestamp is too old or too new")
	ErrWebhookSignature = errors.New("keyward: no webhook signature matches")
	ErrWebhookSecret    = errors.New("keyward: the webhook secret is neither whsec_… nor whpk_…")
)

// VerifyWebhook checks a delivery of Keyward's per the Standard Webhooks specification:
// payload is the raw body, headers the request's (webhook-id, webhook-timestamp,
// webhook-signature), secret the endpoint's "whsec_…" (HMAC-SHA256, "v1," signatures) or,
// for a key's callback_url, the workspace's "whpk_…" (Ed25519, "v1a," signatures; see
// WebhooksService.SigningKey). During a secret rotation either signature may match. The
// timestamp must be within WebhookTolerance of now. Drop duplicates by webhook-id.
func VerifyWebhook(payload []byte, headers http.Header, secret string) error {
	return verifyWebhookAt(payload, headers, secret, time.Now())
}

// ParseWebhook verifies a delivery (as VerifyWebhook) and decodes it.
func ParseWebhook(payload []byte, headers http.Header, secret string) (*WebhookEvent, error) {
	if err := VerifyWebhook(payload, headers, secret); err != nil {
		return nil, err
	}
	var ev WebhookEvent
	if err := json.Unmarshal(payload, &ev); err != nil {
		return nil, fmt.Errorf("keyward: decoding the webhook: %w", err)
	}
	ev.ID = headers.Get("webhook-id")
	return &ev, nil
}

// WebhookEvent is a delivery's body.
type WebhookEvent struct {
	// ID is the webhook-id header, the same on every retry of the delivery.
	ID string `json:"-"`
	// Type is key.created, key.updated, key.rotated, key.revoked, key.expiring, key.expired,
	// approval.*, member.*, webhook.disabled, usage.alert or webhook.test.
	Type      string           `json:"type"`
	Timestamp time.Time        `json:"timestamp"`
	Data      WebhookEventData `json:"data"`
}

// WebhookEventData is what happened: the audit event, who did it, to what, and the change.
type WebhookEventData struct {
	AuditID     json.RawMessage `json:"audit_id,omitempty"`
	WorkspaceID string          `json:"workspace_id,omitempty"`
	Actor       json.RawMessage `json:"actor,omitempty"`
	Target      json.RawMessage `json:"target,omitempty"`
	Changes     json.RawMessage `json:"changes,omitempty"`
	KeyID       string          `json:"key_id,omitempty"`
}

func verifyWebhookAt(payload []byte, headers http.Header, secret string, now time.Time) error {
	id := headers.Get("webhook-id")
	ts := headers.Get("webhook-timestamp")
	sigs := headers.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return ErrWebhookHeaders
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return ErrWebhookHeaders
	}
	if d := now.Sub(time.Unix(sec, 0)); d > WebhookTolerance || d < -WebhookTolerance {
		return ErrWebhookTimestamp
	}
	content := make([]byte, 0, len(id)+len(ts)+len(payload)+2)
	content = append(content, id...)
	content = append(content, '.')
	content = append(content, ts...)
	content = append(content, '.')
	content = append(content, payload...)

	switch {
	case strings.HasPrefix(secret, "whsec_"):
		key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
		if err != nil {
			return ErrWebhookSecret
		}
		mac := hmac.New(sha256.New, key)
		mac.Write(content)
		want := mac.Sum(nil)
		for _, s := range strings.Fields(sigs) {
			if !strings.HasPrefix(s, "v1,") {
				continue
			}
			got, err := base64.StdEncoding.DecodeString(s[3:])
			if err == nil && hmac.Equal(got, want) {
				return nil
			}
		}
	case strings.HasPrefix(secret, "whpk_"):
		pub, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whpk_"))
		if err != nil || len(pub) != ed25519.PublicKeySize {
			return ErrWebhookSecret
		}
		for _, s := range strings.Fields(sigs) {
			if !strings.HasPrefix(s, "v1a,") {
				continue
			}
			got, err := base64.StdEncoding.DecodeString(s[4:])
			if err == nil && ed25519.Verify(ed25519.PublicKey(pub), content, got) {
				return nil
			}
		}
	default:
		return ErrWebhookSecret
	}
	return ErrWebhookSignature
}
