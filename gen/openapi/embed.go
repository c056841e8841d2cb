// Package openapi embeds the OpenAPI document generated from proto/ (by
// scripts/generate.sh), so the binary can serve it. Hand-written: the
// generator only replaces the JSON file beside it.
package openapi

import _ "embed"

// Spec is the OpenAPI (Swagger 2.0) document of the REST API.
//
//go:embed users.swagger.json
var Spec []byte
