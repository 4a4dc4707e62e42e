// A net/http program protecting a route with Keyward: GET /orders needs a key holding
// "orders.read" (X-API-Key or Authorization: Bearer); /healthz is open.
//
//	KEYWARD_URL=http://127.0.0.1:5399 LISTEN=127.0.0.1:8080 go run ./examples/nethttp
package main

import (
	"encoding/json"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"

	keyward "github.com/keyward/keyward-go"
)

func main() {
	kw := keyward.New(os.Getenv("KEYWARD_URL"))
	protect := keyward.Middleware(kw, keyward.Require("orders.read"))
	http.Handle("/orders", protect(http.HandlerFunc(orders)))

	http.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	addr := os.Getenv("LISTEN")
	if addr == "" {
		addr = "127.0.0.1:8080"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	log.Fatal(http.Serve(ln, nil))
}

func orders(w http.ResponseWriter, r *http.Request) {
	v, _ := keyward.FromContext(r.Context())
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]interface{}{
		"orders": []string{"o_1", "o_2"},
		"key_id": v.KeyID,
		"name":   v.Name,
	})
}
