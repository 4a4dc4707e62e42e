// Package keyward is the Go SDK for Keyward, the self-hosted API key service.
//
// Protect a net/http route in three lines:
//
//	kw := keyward.New("http://127.0.0.1:5399")
//	protect := keyward.Middleware(kw, keyward.Require("orders.read"))
//	http.Handle("/orders", protect(ordersHandler)) // keyward.FromContext(r.Context()) in the handler
//
// Manage keys with a management key:
//
//	kw := keyward.New(baseURL, keyward.WithManagementKey(os.Getenv("KEYWARD_MANAGEMENT_KEY")))
//	key, err := kw.Keys.Create(ctx, keyward.CreateKey{Name: "billing", Permissions: []string{"orders.read"}})
//	v, err := kw.Verify(ctx, keyward.VerifyRequest{Key: key.Secret, Permissions: "orders.read"})
//
// Every refusal of the API is a *keyward.Error (use errors.As) carrying the HTTP status and
// Keyward's error code. The package uses the standard library only.
package keyward
