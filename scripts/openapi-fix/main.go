// Command openapi-fix corrects, in the OpenAPI document protoc-gen-openapiv2
// generated, what the plugin cannot be told through annotations.
// scripts/generate.sh runs it on gen/openapi/users.swagger.json:
//
//   - Body parameters are optional: an empty body reads as {}. The plugin
//     marks every body parameter required.
//   - No updateMask query parameter: the gateway derives the mask from the
//     keys of a PUT body and ignores the query. The plugin's
//     allow_patch_feature hides it for PATCH only.
//   - A response declared without a schema has no body (204). The plugin
//     writes "schema": {}, which means any body.
//   - Operations keep the headers of the file-level responses
//     (openapiv2_swagger), such as Retry-After on 503. The plugin copies
//     those responses into every operation without their headers.
//   - Definitions nothing refers to are dropped: the gRPC response wrappers
//     whose REST body is only their user field, google.protobuf.NullValue.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2/options"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: openapi-fix FILE.swagger.json")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "openapi-fix:", err)
		os.Exit(1)
	}
}

func run(path string) error {
	in, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	out, err := fix(in, responseHeaders(usersv1.File_users_v1_users_proto))
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.WriteFile(path, out, 0o644)
}

// object is a JSON object of the document; nil for anything else, so the
// fixes skip shapes they do not expect.
func object(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

// fix applies the corrections to a Swagger 2.0 document. headers are the
// file-level response headers by status code.
func fix(in []byte, headers map[string]map[string]any) ([]byte, error) {
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(in))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	for _, item := range object(doc["paths"]) {
		for _, op := range object(item) {
			fixOperation(object(op), headers)
		}
	}
	pruneDefinitions(doc)
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

func fixOperation(op map[string]any, headers map[string]map[string]any) {
	params, _ := op["parameters"].([]any)
	kept := params[:0]
	for _, p := range params {
		param := object(p)
		switch {
		case param["in"] == "query" && param["name"] == "updateMask":
			continue
		case param["in"] == "body":
			param["required"] = false
		}
		kept = append(kept, p)
	}
	if params != nil {
		op["parameters"] = kept
	}
	for code, r := range object(op["responses"]) {
		resp := object(r)
		if schema, ok := resp["schema"].(map[string]any); ok && len(schema) == 0 {
			delete(resp, "schema")
		}
		if _, ok := resp["headers"]; !ok && headers[code] != nil {
			resp["headers"] = headers[code]
		}
	}
}

// pruneDefinitions drops the definitions that no $ref outside them, nor
// one of a definition so referred to, names.
func pruneDefinitions(doc map[string]any) {
	defs := object(doc["definitions"])
	used := map[string]bool{}
	var pending []string
	mark := func(ref string) {
		if name, ok := strings.CutPrefix(ref, "#/definitions/"); ok && !used[name] {
			used[name] = true
			pending = append(pending, name)
		}
	}
	for key, v := range doc {
		if key != "definitions" {
			refs(v, mark)
		}
	}
	for len(pending) > 0 {
		name := pending[len(pending)-1]
		pending = pending[:len(pending)-1]
		refs(defs[name], mark)
	}
	for name := range defs {
		if !used[name] {
			delete(defs, name)
		}
	}
}

// refs calls f with every $ref value in v.
func refs(v any, f func(string)) {
	switch v := v.(type) {
	case map[string]any:
		for key, child := range v {
			if ref, ok := child.(string); ok && key == "$ref" {
				f(ref)
			}
			refs(child, f)
		}
	case []any:
		for _, child := range v {
			refs(child, f)
		}
	}
}

// responseHeaders reads the headers of the file-level responses of fd's
// openapiv2_swagger option, as Swagger header objects by status code.
func responseHeaders(fd protoreflect.FileDescriptor) map[string]map[string]any {
	swagger, _ := proto.GetExtension(fd.Options(), options.E_Openapiv2Swagger).(*options.Swagger)
	out := map[string]map[string]any{}
	for code, resp := range swagger.GetResponses() {
		for name, h := range resp.GetHeaders() {
			header := map[string]any{"type": h.GetType()}
			for key, v := range map[string]string{"description": h.GetDescription(), "format": h.GetFormat(), "pattern": h.GetPattern()} {
				if v != "" {
					header[key] = v
				}
			}
			if out[code] == nil {
				out[code] = map[string]any{}
			}
			out[code][name] = header
		}
	}
	return out
}
