package keyward

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// KeysService manages API keys (Client.Keys).
type KeysService struct{ c *Client }

// Create makes a secret key (Secret is set in the answer, and only there) or, with
// PublicKey, registers a public key. It sends an Idempotency-Key (WithIdempotencyKey, or a
// random one), so it is retried safely.
func (s *KeysService) Create(ctx context.Context, params CreateKey, opts ...RequestOption) (*Key, error) {
	var k Key
	err := s.c.do(ctx, call{method: http.MethodPost, path: "/v1/keys", body: params, takesIdempotencyKey: true, opts: opts}, &k)
	if err != nil {
		return nil, err
	}
	return &k, nil
}

// List returns a page of keys; params may be nil. Use Iter to walk every page.
func (s *KeysService) List(ctx context.Context, params *ListKeys, opts ...RequestOption) (*KeyList, error) {
	q := url.Values{}
	if params != nil {
		set(q, "status", params.Status)
		set(q, "environment", params.Environment)
		set(q, "kind", params.Kind)
		set(q, "q", params.Query)
		set(q, "cursor", params.Cursor)
		if params.Limit > 0 {
			q.Set("limit", strconv.Itoa(params.Limit))
		}
	}
	var l KeyList
	if err := s.c.do(ctx, call{method: http.MethodGet, path: "/v1/keys", query: q, idempotent: true, opts: opts}, &l); err != nil {
		return nil, err
	}
	return &l, nil
}

// Iter walks every key matching params, page by page:
//
//	it := kw.Keys.Iter(ctx, nil)
//	for it.Next() {
//		fmt.Println(it.Key().ID)
//	}
//	if err := it.Err(); err != nil { … }
func (s *KeysService) Iter(ctx context.Context, params *ListKeys) *KeyIter {
	p := ListKeys{}
	if params != nil {
		p = *params
	}
	return &KeyIter{ctx: ctx, s: s, params: p}
}

// KeyIter walks the pages of Keys.List (see KeysService.Iter).
type KeyIter struct {
	ctx    context.Context
	s      *KeysService
	params ListKeys
	page   []Key
	cur    *Key
	done   bool
	err    error
}

// Next advances to the next key; false at the end or on an error (see Err).
func (it *KeyIter) Next() bool {
	for len(it.page) == 0 {
		if it.done || it.err != nil {
			return false
		}
		l, err := it.s.List(it.ctx, &it.params)
		if err != nil {
			it.err = err
			return false
		}
		it.page = l.Items
		if l.NextCursor == "" {
			it.done = true
		}
		it.params.Cursor = l.NextCursor
	}
	it.cur = &it.page[0]
	it.page = it.page[1:]
	return true
}

// Key is the current key.
func (it *KeyIter) Key() *Key { return it.cur }

// Err is the error that stopped the walk, if any.
func (it *KeyIter) Err() error { return it.err }

// Get returns one key.
func (s *KeysService) Get(ctx context.Context, id string, opts ...RequestOption) (*Key, error) {
	var k Key
	if err := s.c.do(ctx, call{method: http.MethodGet, path: "/v1/keys/" + pathEscape(id), idempotent: true, opts: opts}, &k); err != nil {
		return nil, err
	}
	return &k, nil
}

// Update changes a key's settings (see UpdateKey). Under an approval rule the answer is the
// key in status pending_update, the old settings still in force.
func (s *KeysService) Update(ctx context.Context, id string, params UpdateKey, opts ...RequestOption) (*Key, error) {
	var k Key
	if err := s.c.do(ctx, call{method: http.MethodPatch, path: "/v1/keys/" + pathEscape(id), body: params, opts: opts}, &k); err != nil {
		return nil, err
	}
	return &k, nil
}

// Rotate makes a successor with the same settings and a new Secret; the old key keeps
// working for params.GracePeriod. It sends an Idempotency-Key, so it is retried safely.
func (s *KeysService) Rotate(ctx context.Context, id string, params RotateKey, opts ...RequestOption) (*Key, error) {
	var k Key
	err := s.c.do(ctx, call{method: http.MethodPost, path: "/v1/keys/" + pathEscape(id) + "/rotate", body: params, takesIdempotencyKey: true, opts: opts}, &k)
	if err != nil {
		return nil, err
	}
	return &k, nil
}

// Revoke revokes a key at once (idempotent: a revoked key is returned unchanged).
func (s *KeysService) Revoke(ctx context.Context, id string, opts ...RequestOption) (*Key, error) {
	var k Key
	if err := s.c.do(ctx, call{method: http.MethodPost, path: "/v1/keys/" + pathEscape(id) + "/revoke", idempotent: true, opts: opts}, &k); err != nil {
		return nil, err
	}
	return &k, nil
}

// Usage returns one key's verification counts; params may be nil.
func (s *KeysService) Usage(ctx context.Context, id string, params *UsageParams, opts ...RequestOption) (*KeyUsage, error) {
	var u KeyUsage
	if err := s.c.do(ctx, call{method: http.MethodGet, path: "/v1/keys/" + pathEscape(id) + "/usage", query: usageQuery(params), idempotent: true, opts: opts}, &u); err != nil {
		return nil, err
	}
	return &u, nil
}

// ---------------------------------------------------------------------------------------

// RolesService manages the workspace's roles (Client.Roles).
type RolesService struct{ c *Client }

// List returns the six member roles (by rank), then the workspace's roles.
func (s *RolesService) List(ctx context.Context, opts ...RequestOption) ([]Role, error) {
	var l struct {
		Items []Role `json:"items"`
	}
	if err := s.c.do(ctx, call{method: http.MethodGet, path: "/v1/roles", idempotent: true, opts: opts}, &l); err != nil {
		return nil, err
	}
	return l.Items, nil
}

// Create makes a role.
func (s *RolesService) Create(ctx context.Context, params CreateRole, opts ...RequestOption) (*Role, error) {
	if params.Permissions == nil {
		params.Permissions = []string{}
	}
	var r Role
	if err := s.c.do(ctx, call{method: http.MethodPost, path: "/v1/roles", body: params, opts: opts}, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Get returns one role.
func (s *RolesService) Get(ctx context.Context, name string, opts ...RequestOption) (*Role, error) {
	var r Role
	if err := s.c.do(ctx, call{method: http.MethodGet, path: "/v1/roles/" + pathEscape(name), idempotent: true, opts: opts}, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Update changes a role; every key holding it changes on every node.
func (s *RolesService) Update(ctx context.Context, name string, params UpdateRole, opts ...RequestOption) (*Role, error) {
	var r Role
	if err := s.c.do(ctx, call{method: http.MethodPatch, path: "/v1/roles/" + pathEscape(name), body: params, opts: opts}, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Delete deletes a role; 409 while keys hold it unless force takes it off them.
func (s *RolesService) Delete(ctx context.Context, name string, force bool, opts ...RequestOption) error {
	q := url.Values{}
	if force {
		q.Set("force", "true")
	}
	return s.c.do(ctx, call{method: http.MethodDelete, path: "/v1/roles/" + pathEscape(name), query: q, idempotent: true, opts: opts}, nil)
}

// ---------------------------------------------------------------------------------------

// ServiceAccountsService manages service accounts (Client.ServiceAccounts).
type ServiceAccountsService struct{ c *Client }

// List returns the workspace's service accounts.
func (s *ServiceAccountsService) List(ctx context.Context, opts ...RequestOption) ([]ServiceAccount, error) {
	var l struct {
		Items []ServiceAccount `json:"items"`
	}
	if err := s.c.do(ctx, call{method: http.MethodGet, path: "/v1/service-accounts", idempotent: true, opts: opts}, &l); err != nil {
		return nil, err
	}
	return l.Items, nil
}

// Create makes a service account.
func (s *ServiceAccountsService) Create(ctx context.Context, params CreateServiceAccount, opts ...RequestOption) (*ServiceAccount, error) {
	var a ServiceAccount
	if err := s.c.do(ctx, call{method: http.MethodPost, path: "/v1/service-accounts", body: params, opts: opts}, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// Get returns one service account.
func (s *ServiceAccountsService) Get(ctx context.Context, id string, opts ...RequestOption) (*ServiceAccount, error) {
	var a ServiceAccount
	if err := s.c.do(ctx, call{method: http.MethodGet, path: "/v1/service-accounts/" + pathEscape(id), idempotent: true, opts: opts}, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// Update changes a service account; Disabled true makes all its keys answer DISABLED.
func (s *ServiceAccountsService) Update(ctx context.Context, id string, params UpdateServiceAccount, opts ...RequestOption) (*ServiceAccount, error) {
	var a ServiceAccount
	if err := s.c.do(ctx, call{method: http.MethodPatch, path: "/v1/service-accounts/" + pathEscape(id), body: params, opts: opts}, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// Delete deletes a service account and revokes its keys.
func (s *ServiceAccountsService) Delete(ctx context.Context, id string, opts ...RequestOption) error {
	return s.c.do(ctx, call{method: http.MethodDelete, path: "/v1/service-accounts/" + pathEscape(id), idempotent: true, opts: opts}, nil)
}

// CreateKey makes a key owned by the account, holding its role.
func (s *ServiceAccountsService) CreateKey(ctx context.Context, id string, params CreateKey, opts ...RequestOption) (*Key, error) {
	var k Key
	err := s.c.do(ctx, call{method: http.MethodPost, path: "/v1/service-accounts/" + pathEscape(id) + "/keys", body: params, takesIdempotencyKey: true, opts: opts}, &k)
	if err != nil {
		return nil, err
	}
	return &k, nil
}

// ---------------------------------------------------------------------------------------

// UsageService reads verification counts (Client.Usage).
type UsageService struct{ c *Client }

// Workspace returns the workspace's counts; params may be nil.
func (s *UsageService) Workspace(ctx context.Context, params *UsageParams, opts ...RequestOption) (*WorkspaceUsage, error) {
	var u WorkspaceUsage
	if err := s.c.do(ctx, call{method: http.MethodGet, path: "/v1/usage", query: usageQuery(params), idempotent: true, opts: opts}, &u); err != nil {
		return nil, err
	}
	return &u, nil
}

// Key returns one key's counts; params may be nil (the same as Keys.Usage).
func (s *UsageService) Key(ctx context.Context, keyID string, params *UsageParams, opts ...RequestOption) (*KeyUsage, error) {
	return s.c.Keys.Usage(ctx, keyID, params, opts...)
}

func usageQuery(p *UsageParams) url.Values {
	q := url.Values{}
	if p == nil {
		return q
	}
	if !p.From.IsZero() {
		q.Set("from", p.From.UTC().Format(time.RFC3339))
	}
	if !p.To.IsZero() {
		q.Set("to", p.To.UTC().Format(time.RFC3339))
	}
	set(q, "granularity", p.Granularity)
	set(q, "tag", p.Tag)
	return q
}

// ---------------------------------------------------------------------------------------

// VerifyTokensService manages verify tokens (Client.VerifyTokens).
type VerifyTokensService struct{ c *Client }

// Create makes a verify token; Token (kw_vt_…) is in this answer only.
func (s *VerifyTokensService) Create(ctx context.Context, name string, opts ...RequestOption) (*VerifyToken, error) {
	var t VerifyToken
	body := map[string]string{"name": name}
	if err := s.c.do(ctx, call{method: http.MethodPost, path: "/v1/verify-tokens", body: body, opts: opts}, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// List returns the workspace's verify tokens.
func (s *VerifyTokensService) List(ctx context.Context, opts ...RequestOption) ([]VerifyToken, error) {
	var l struct {
		Items []VerifyToken `json:"items"`
	}
	if err := s.c.do(ctx, call{method: http.MethodGet, path: "/v1/verify-tokens", idempotent: true, opts: opts}, &l); err != nil {
		return nil, err
	}
	return l.Items, nil
}

// Revoke revokes a verify token at once.
func (s *VerifyTokensService) Revoke(ctx context.Context, id string, opts ...RequestOption) (*VerifyToken, error) {
	var t VerifyToken
	if err := s.c.do(ctx, call{method: http.MethodDelete, path: "/v1/verify-tokens/" + pathEscape(id), idempotent: true, opts: opts}, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// ---------------------------------------------------------------------------------------

// WebhooksService manages webhook endpoints (Client.Webhooks).
type WebhooksService struct{ c *Client }

// Create registers an endpoint; Secret (whsec_…) is in this answer only.
func (s *WebhooksService) Create(ctx context.Context, params CreateWebhook, opts ...RequestOption) (*Webhook, error) {
	var w Webhook
	if err := s.c.do(ctx, call{method: http.MethodPost, path: "/v1/webhooks", body: params, opts: opts}, &w); err != nil {
		return nil, err
	}
	return &w, nil
}

// List returns the workspace's endpoints.
func (s *WebhooksService) List(ctx context.Context, opts ...RequestOption) ([]Webhook, error) {
	var l struct {
		Items []Webhook `json:"items"`
	}
	if err := s.c.do(ctx, call{method: http.MethodGet, path: "/v1/webhooks", idempotent: true, opts: opts}, &l); err != nil {
		return nil, err
	}
	return l.Items, nil
}

// Get returns one endpoint.
func (s *WebhooksService) Get(ctx context.Context, id string, opts ...RequestOption) (*Webhook, error) {
	var w Webhook
	if err := s.c.do(ctx, call{method: http.MethodGet, path: "/v1/webhooks/" + pathEscape(id), idempotent: true, opts: opts}, &w); err != nil {
		return nil, err
	}
	return &w, nil
}

// Update changes an endpoint (Disabled false re-enables it).
func (s *WebhooksService) Update(ctx context.Context, id string, params UpdateWebhook, opts ...RequestOption) (*Webhook, error) {
	var w Webhook
	if err := s.c.do(ctx, call{method: http.MethodPatch, path: "/v1/webhooks/" + pathEscape(id), body: params, opts: opts}, &w); err != nil {
		return nil, err
	}
	return &w, nil
}

// Delete deletes an endpoint, cancelling its pending deliveries.
func (s *WebhooksService) Delete(ctx context.Context, id string, opts ...RequestOption) error {
	return s.c.do(ctx, call{method: http.MethodDelete, path: "/v1/webhooks/" + pathEscape(id), idempotent: true, opts: opts}, nil)
}

// RotateSecret makes a new secret; the old one keeps signing for overlap ("24h" when
// empty; "0s" ends it at once).
func (s *WebhooksService) RotateSecret(ctx context.Context, id string, overlap string, opts ...RequestOption) (*Webhook, error) {
	body := map[string]string{}
	if overlap != "" {
		body["overlap"] = overlap
	}
	var w Webhook
	if err := s.c.do(ctx, call{method: http.MethodPost, path: "/v1/webhooks/" + pathEscape(id) + "/rotate-secret", body: body, opts: opts}, &w); err != nil {
		return nil, err
	}
	return &w, nil
}

// Test queues a webhook.test delivery to the endpoint.
func (s *WebhooksService) Test(ctx context.Context, id string, opts ...RequestOption) (*Delivery, error) {
	var d Delivery
	if err := s.c.do(ctx, call{method: http.MethodPost, path: "/v1/webhooks/" + pathEscape(id) + "/test", opts: opts}, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// Deliveries returns the endpoint's deliveries, newest first (limit 0: the server's 50).
func (s *WebhooksService) Deliveries(ctx context.Context, id string, limit int, opts ...RequestOption) ([]Delivery, error) {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var l struct {
		Items []Delivery `json:"items"`
	}
	if err := s.c.do(ctx, call{method: http.MethodGet, path: "/v1/webhooks/" + pathEscape(id) + "/deliveries", query: q, idempotent: true, opts: opts}, &l); err != nil {
		return nil, err
	}
	return l.Items, nil
}

// RetryDelivery makes a delivery due now (same webhook-id).
func (s *WebhooksService) RetryDelivery(ctx context.Context, id, deliveryID string, opts ...RequestOption) error {
	return s.c.do(ctx, call{method: http.MethodPost, path: "/v1/webhooks/" + pathEscape(id) + "/deliveries/" + pathEscape(deliveryID) + "/retry", idempotent: true, opts: opts}, nil)
}

// SigningKey returns the workspace's public key for per-key callbacks (whpk_…), the secret
// to give VerifyWebhook for a key's callback_url deliveries.
func (s *WebhooksService) SigningKey(ctx context.Context, opts ...RequestOption) (string, error) {
	var k struct {
		PublicKey string `json:"public_key"`
	}
	if err := s.c.do(ctx, call{method: http.MethodGet, path: "/v1/webhooks/signing-key", idempotent: true, opts: opts}, &k); err != nil {
		return "", err
	}
	return k.PublicKey, nil
}

func set(q url.Values, k, v string) {
	if v != "" {
		q.Set(k, v)
	}
}
