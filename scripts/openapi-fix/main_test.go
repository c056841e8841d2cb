package main

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"

	"github.com/usersd/usersd/gen/openapi"
	usersv1 "github.com/usersd/usersd/gen/users/v1"
	"github.com/usersd/usersd/internal/rpcerr"
)

func decode(t *testing.T, data []byte) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	return doc
}

func TestFix(t *testing.T) {
	in := `{
	  "paths": {"/v1/things/{id}": {"put": {
	    "parameters": [
	      {"name": "id", "in": "path", "required": true, "type": "string"},
	      {"name": "thing", "in": "body", "required": true, "schema": {"$ref": "#/definitions/Thing"}},
	      {"name": "updateMask", "in": "query", "required": false, "type": "string"},
	      {"name": "limit", "in": "query", "required": false, "type": "integer"}
	    ],
	    "responses": {
	      "200": {"description": "ok", "schema": {"$ref": "#/definitions/Thing"}},
	      "204": {"description": "gone", "schema": {}},
	      "401": {"description": "no", "schema": {"$ref": "#/definitions/Error"}},
	      "503": {"description": "later", "schema": {"$ref": "#/definitions/Error"}, "headers": {"X-Own": {"type": "string"}}}
	    }
	  }}},
	  "definitions": {
	    "Thing": {"type": "object", "properties": {"part": {"$ref": "#/definitions/Part"}}},
	    "Part": {"type": "object"},
	    "Error": {"type": "object"},
	    "ThingResponse": {"type": "object", "properties": {"thing": {"$ref": "#/definitions/Thing"}}}
	  }
	}`
	want := `{
	  "paths": {"/v1/things/{id}": {"put": {
	    "parameters": [
	      {"name": "id", "in": "path", "required": true, "type": "string"},
	      {"name": "thing", "in": "body", "required": false, "schema": {"$ref": "#/definitions/Thing"}},
	      {"name": "limit", "in": "query", "required": false, "type": "integer"}
	    ],
	    "responses": {
	      "200": {"description": "ok", "schema": {"$ref": "#/definitions/Thing"}},
	      "204": {"description": "gone"},
	      "401": {"description": "no", "schema": {"$ref": "#/definitions/Error"}, "headers": {"WWW-Authenticate": {"type": "string"}}},
	      "503": {"description": "later", "schema": {"$ref": "#/definitions/Error"}, "headers": {"X-Own": {"type": "string"}}}
	    }
	  }}},
	  "definitions": {
	    "Thing": {"type": "object", "properties": {"part": {"$ref": "#/definitions/Part"}}},
	    "Part": {"type": "object"},
	    "Error": {"type": "object"}
	  }
	}`
	headers := map[string]map[string]any{
		"401": {"WWW-Authenticate": map[string]any{"type": "string"}},
		"503": {"Retry-After": map[string]any{"type": "integer"}},
	}
	out, err := fix([]byte(in), headers)
	if err != nil {
		t.Fatal(err)
	}
	if got := decode(t, out); !reflect.DeepEqual(got, decode(t, []byte(want))) {
		t.Fatalf("got\n%s", out)
	}
}

func TestResponseHeaders(t *testing.T) {
	got := responseHeaders(usersv1.File_users_v1_users_proto)
	for code, name := range map[string]string{"401": "WWW-Authenticate", "429": "Retry-After", "503": "Retry-After"} {
		h, _ := got[code][name].(map[string]any)
		if h["type"] == nil || h["description"] == nil {
			t.Errorf("%s %s: %v", code, name, got[code])
		}
	}
}

// The document the binary serves, as scripts/generate.sh left it.
func TestGeneratedDocument(t *testing.T) {
	var doc struct {
		SecurityDefinitions map[string]struct{ Type, In, Name string }
		Security            []map[string][]string
		Paths               map[string]map[string]struct {
			Security   *[]map[string][]string
			Parameters []struct {
				Name, In string
				Required bool
			}
			Responses map[string]struct {
				Schema *struct {
					Ref string `json:"$ref"`
				}
				Headers map[string]any
			}
		}
		Definitions map[string]struct {
			Properties map[string]struct{ Enum []string }
		}
	}
	if err := json.Unmarshal(openapi.Spec, &doc); err != nil {
		t.Fatal(err)
	}
	if s := doc.SecurityDefinitions["bearer"]; s.Type != "apiKey" || s.In != "header" || s.Name != "Authorization" {
		t.Fatalf("bearer scheme: %+v", doc.SecurityDefinitions)
	}
	if len(doc.Security) != 1 || doc.Security[0]["bearer"] == nil {
		t.Fatalf("document security: %v", doc.Security)
	}
	for path, item := range doc.Paths {
		for method, op := range item {
			name := method + " " + path
			if op.Security != nil {
				t.Errorf("%s overrides the document's security: %v", name, *op.Security)
			}
			for _, p := range op.Parameters {
				if p.Name == "updateMask" || p.In == "body" && p.Required {
					t.Errorf("%s: parameter %+v", name, p)
				}
			}
			for code, resp := range op.Responses {
				switch {
				case code == "204":
					if resp.Schema != nil {
						t.Errorf("%s: 204 with a body", name)
					}
				case code >= "400":
					if resp.Schema == nil || resp.Schema.Ref != "#/definitions/v1ErrorBody" {
						t.Errorf("%s: %s without the error body", name, code)
					}
				}
			}
			if r, ok := op.Responses["201"]; ok && r.Headers["Location"] == nil {
				t.Errorf("%s: 201 without Location", name)
			}
		}
	}
	// Versions: every response carrying a user has its ETag; PUT and
	// DELETE take If-Match and may fail 412; GET takes If-None-Match and
	// may answer 304, with the ETag and no body.
	user := doc.Paths["/v1/users/{id}"]
	for _, tc := range []struct {
		op      string
		header  string // the conditional request header it takes
		tagged  []string
		refusal string
	}{
		{"get", "If-None-Match", []string{"200", "304"}, ""},
		{"put", "If-Match", []string{"200"}, "412"},
		{"delete", "If-Match", nil, "412"},
	} {
		op := user[tc.op]
		takes := false
		for _, p := range op.Parameters {
			takes = takes || p.Name == tc.header && p.In == "header" && !p.Required
		}
		if !takes {
			t.Errorf("%s /v1/users/{id}: no optional %s header parameter: %+v", tc.op, tc.header, op.Parameters)
		}
		for _, code := range tc.tagged {
			if op.Responses[code].Headers["Etag"] == nil {
				t.Errorf("%s /v1/users/{id} %s: no ETag header", tc.op, code)
			}
		}
		if _, ok := op.Responses[tc.refusal]; tc.refusal != "" && !ok {
			t.Errorf("%s /v1/users/{id}: no %s response", tc.op, tc.refusal)
		}
	}
	if r := user["get"].Responses["304"]; r.Schema != nil {
		t.Errorf("GET /v1/users/{id} 304 with a body")
	}
	if doc.Paths["/v1/users"]["post"].Responses["201"].Headers["Etag"] == nil {
		t.Errorf("POST /v1/users 201: no ETag header")
	}
	var words []string
	for _, status := range []int{400, 401, 403, 404, 405, 409, 412, 413, 415, 429, 500, 503} {
		words = append(words, rpcerr.Word(status))
	}
	if got := doc.Definitions["v1ErrorBody"].Properties["code"].Enum; !slices.Equal(got, words) {
		t.Errorf("ErrorBody code enum %v, want the contract's words %v", got, words)
	}
	if got := doc.Definitions["v1ErrorDetail"].Properties["location"].Enum; !slices.Equal(got, []string{"params", "query", "body", "headers"}) {
		t.Errorf("ErrorDetail location enum %v", got)
	}
}
