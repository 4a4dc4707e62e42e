package keyward

// TestModelsMatchOpenAPI is the Go SDK's drift check (sdks/go/generate.sh --check): the
// models are written by hand, and this test fails when a schema of sdks/openapi.json that
// the SDK models has a property its Go struct lacks (by json tag), when a struct has a json
// field its schema lacks, or when their kinds differ (string, integer, boolean, array,
// object).

import (
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

// modeled maps each schema the SDK models to its Go type.
var modeled = map[string]interface{}{
	"KeyView":                     Key{},
	"KeyOwner":                    Owner{},
	"KeyGrant":                    Grant{},
	"RateLimitSpec":               RateLimit{},
	"CreditsSpec":                 Credits{},
	"Refill":                      Refill{},
	"CreateKeyRequest":            CreateKey{},
	"UpdateKeyRequest":            UpdateKey{},
	"KeyList":                     KeyList{},
	"RotateRequest":               RotateKey{},
	"VerifyKeyRequest":            VerifyRequest{},
	"VerifyResponse":              Verification{},
	"RatelimitAnswer":             RatelimitState{},
	"CreditsAnswer":               CreditsState{},
	"VerifyIdentity":              VerifiedIdentity{},
	"RatelimitResult":             CheckedLimit{},
	"VerifyRatelimit":             NamedLimit{},
	"VerifySignedRequest":         SignedRequest{},
	"RoleView":                    Role{},
	"CreateRoleRequest":           CreateRole{},
	"UpdateRoleRequest":           UpdateRole{},
	"ServiceAccountView":          ServiceAccount{},
	"CreateServiceAccountRequest": CreateServiceAccount{},
	"UpdateServiceAccountRequest": UpdateServiceAccount{},
	"UsageBucket":                 UsageBucket{},
	"KeyUsage":                    KeyUsage{},
	"WorkspaceUsage":              WorkspaceUsage{},
	"TopKey":                      TopKey{},
	"VerifyTokenView":             VerifyToken{},
	"WebhookView":                 Webhook{},
	"NewWebhookRequest":           CreateWebhook{},
	"WebhookPatch":                UpdateWebhook{},
	"DeliveryView":                Delivery{},
	"AttemptView":                 DeliveryAttempt{},
	"ErrorDetail":                 Error{},
	"ErrorBody":                   errorBody{},
}

type schema struct {
	Type       interface{}        `json:"type"`
	Ref        string             `json:"$ref"`
	OneOf      []schema           `json:"oneOf"`
	AllOf      []schema           `json:"allOf"`
	Enum       []interface{}      `json:"enum"`
	Properties map[string]*schema `json:"properties"`
}

func TestModelsMatchOpenAPI(t *testing.T) {
	path := os.Getenv("KEYWARD_OPENAPI")
	if path == "" {
		path = "../openapi.json"
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	var doc struct {
		Components struct {
			Schemas map[string]*schema `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("parsing %s: %v", path, err)
	}
	schemas := doc.Components.Schemas
	var problems []string
	names := make([]string, 0, len(modeled))
	for n := range modeled {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		goType := reflect.TypeOf(modeled[name])
		s, ok := schemas[name]
		if !ok {
			problems = append(problems, fmt.Sprintf("- schema %s (modeled by %s) is gone from openapi.json", name, goType.Name()))
			continue
		}
		fields := jsonFields(goType)
		props := s.Properties
		for _, p := range sortedKeys(props) {
			f, ok := fields[p]
			if !ok {
				problems = append(problems, fmt.Sprintf("- %s.%s: in openapi.json, missing from %s", name, p, goType.Name()))
				continue
			}
			want := kindOf(props[p], schemas)
			got := goKind(f.Type)
			if want != "" && got != "any" && want != got {
				problems = append(problems, fmt.Sprintf("~ %s.%s: openapi.json says %s, %s.%s is %s (%s)", name, p, want, goType.Name(), f.Name, got, f.Type))
			}
		}
		for _, p := range sortedKeys(fields) {
			if _, ok := props[p]; !ok {
				problems = append(problems, fmt.Sprintf("+ %s.%s (json %q): not in schema %s", goType.Name(), fields[p].Name, p, name))
			}
		}
	}
	if len(problems) > 0 {
		t.Fatalf("the Go models differ from %s (fix models.go):\n%s", path, strings.Join(problems, "\n"))
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func jsonFields(t reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := strings.Split(f.Tag.Get("json"), ",")[0]
		if tag == "-" {
			continue
		}
		if tag == "" {
			tag = f.Name
		}
		out[tag] = f
	}
	return out
}

// kindOf is a schema's JSON kind, null left aside.
func kindOf(s *schema, all map[string]*schema) string {
	if s == nil {
		return ""
	}
	if s.Ref != "" {
		return kindOf(all[strings.TrimPrefix(s.Ref, "#/components/schemas/")], all)
	}
	for _, sub := range append(append([]schema{}, s.OneOf...), s.AllOf...) {
		sub := sub
		if k := kindOf(&sub, all); k != "" && k != "null" {
			return k
		}
	}
	switch ty := s.Type.(type) {
	case string:
		return normal(ty)
	case []interface{}:
		for _, x := range ty {
			if x != "null" {
				return normal(x.(string))
			}
		}
	}
	if len(s.Properties) > 0 {
		return "object"
	}
	return ""
}

func normal(k string) string {
	if k == "number" {
		return "integer"
	}
	return k
}

var (
	timeType = reflect.TypeOf(time.Time{})
	rawType  = reflect.TypeOf(json.RawMessage{})
)

func goKind(t reflect.Type) string {
	for t.Kind() == reflect.Ptr {
		t = t.Elem()
	}
	switch {
	case t == timeType:
		return "string"
	case t == rawType:
		return "any"
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return "integer"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Map, reflect.Struct:
		return "object"
	case reflect.Interface:
		return "any"
	}
	return t.Kind().String()
}
