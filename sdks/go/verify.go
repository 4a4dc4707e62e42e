package keyward

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Verify checks a secret key (POST /v1/keys/verify). A refused key is not an error: the
// answer's Valid is false and Code says why. Errors are for bad input (*Error with status
// 400) and for a server that cannot be reached. Verification needs no management key; a
// client made WithVerifyToken sends it. Network errors and 5xx answers are retried.
func (c *Client) Verify(ctx context.Context, req VerifyRequest, opts ...RequestOption) (*Verification, error) {
	var v Verification
	if err := c.do(ctx, call{method: http.MethodPost, path: "/v1/keys/verify", body: req, auth: authVerify, idempotent: true, opts: opts}, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// VerifySigned checks a request signed with a registered public key's private half (POST
// /v1/requests/verify). SignedRequestFrom builds req from an incoming *http.Request.
func (c *Client) VerifySigned(ctx context.Context, req SignedRequest, opts ...RequestOption) (*Verification, error) {
	if req.Headers == nil {
		req.Headers = map[string]string{}
	}
	var v Verification
	if err := c.do(ctx, call{method: http.MethodPost, path: "/v1/requests/verify", body: req, auth: authVerify, idempotent: true, opts: opts}, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// The headers of a signed request.
const (
	HeaderSignatureKey   = "Biz-Api-Key"
	HeaderSignatureNonce = "Biz-Api-Nonce"
	HeaderSignature      = "Biz-Api-Signature"
)

// SignedRequestFrom describes an incoming request for VerifySigned: its method, path, raw
// query, the Biz-Api-* headers and body (the bytes the handler read; see also Middleware,
// which does this itself).
func SignedRequestFrom(r *http.Request, body []byte) SignedRequest {
	return SignedRequest{
		Method: r.Method,
		Path:   r.URL.EscapedPath(),
		Query:  r.URL.RawQuery,
		Body:   string(body),
		Headers: map[string]string{
			HeaderSignatureKey:   r.Header.Get(HeaderSignatureKey),
			HeaderSignatureNonce: r.Header.Get(HeaderSignatureNonce),
			HeaderSignature:      r.Header.Get(HeaderSignature),
		},
	}
}

// Signer signs requests with an Ed25519 private key whose public half is registered in
// Keyward (Keys.Create with PublicKey): the Biz-Api-Key, Biz-Api-Nonce and
// Biz-Api-Signature headers over METHOD|PATH|NONCE|QUERY|BODY.
type Signer struct {
	key       ed25519.PrivateKey
	publicHex string
	now       func() time.Time
}

// NewSigner returns a signer of the Ed25519 private key.
func NewSigner(key ed25519.PrivateKey) *Signer {
	pub := key.Public().(ed25519.PublicKey)
	return &Signer{key: key, publicHex: hex.EncodeToString(pub), now: time.Now}
}

// NewSignerFromHex returns a signer of a hex Ed25519 seed (32 bytes, as `keyward keys
// generate` stores api_secret).
func NewSignerFromHex(seedHex string) (*Signer, error) {
	seed, err := hex.DecodeString(strings.TrimSpace(seedHex))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, errors.New("keyward: an Ed25519 seed is 64 hex characters")
	}
	return NewSigner(ed25519.NewKeyFromSeed(seed)), nil
}

// PublicKeyHex is the public key to register (CreateKey.PublicKey).
func (s *Signer) PublicKeyHex() string { return s.publicHex }

// StringToSign is what is hashed and signed: METHOD|PATH|NONCE|QUERY|BODY, the method
// upper-cased and nothing re-encoded.
func StringToSign(method, path, nonce, query string, body []byte) []byte {
	var b bytes.Buffer
	b.WriteString(strings.ToUpper(method))
	for _, p := range [][]byte{[]byte(path), []byte(nonce), []byte(query), body} {
		b.WriteByte('|')
		b.Write(p)
	}
	return b.Bytes()
}

// SignatureDigest is SHA256(SHA256(string to sign)), what is signed.
func SignatureDigest(method, path, nonce, query string, body []byte) [32]byte {
	once := sha256.Sum256(StringToSign(method, path, nonce, query, body))
	return sha256.Sum256(once[:])
}

// Sign returns the three headers for a request: query is the raw query string as it will
// be sent (without "?"), body the raw body, nonce the time in Unix milliseconds.
func (s *Signer) Sign(method, path, query string, body []byte, at time.Time) http.Header {
	nonce := strconv.FormatInt(at.UnixMilli(), 10)
	d := SignatureDigest(method, path, nonce, query, body)
	h := http.Header{}
	h.Set(HeaderSignatureKey, s.publicHex)
	h.Set(HeaderSignatureNonce, nonce)
	h.Set(HeaderSignature, hex.EncodeToString(ed25519.Sign(s.key, d[:])))
	return h
}

// SignRequest sets the headers on req, signing its method, escaped path, raw query and body
// (which it reads and puts back).
func (s *Signer) SignRequest(req *http.Request) error {
	var body []byte
	if req.Body != nil && req.Body != http.NoBody {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return fmt.Errorf("keyward: reading the body to sign: %w", err)
		}
		body = b
		req.Body = io.NopCloser(bytes.NewReader(b))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	}
	for k, v := range s.Sign(req.Method, req.URL.EscapedPath(), req.URL.RawQuery, body, s.now()) {
		req.Header[k] = v
	}
	return nil
}
