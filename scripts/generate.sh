#!/usr/bin/env bash
# Regenerates gen/ from proto/ with buf and local plugins at pinned versions.
# Needs only Go: buf comes from tools/go.mod, the plugins from go.mod's tool
# directives, and the third-party protos from the Go module cache.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=.build/bin
deps=.build/protodeps
mkdir -p "$bin"

go build -modfile=tools/go.mod -o "$bin/buf" github.com/bufbuild/buf/cmd/buf
for plugin in \
  google.golang.org/protobuf/cmd/protoc-gen-go \
  google.golang.org/grpc/cmd/protoc-gen-go-grpc \
  github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway \
  github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2; do
  go build -o "$bin/" "$plugin"
done

# google/api/{annotations,http}.proto ship in grpc-gateway v1's module; the
# openapiv2 options ship in the v2 module we already depend on.
module_dir() { (cd "$(mktemp -d)" && go mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p'); }
googleapis="$(module_dir github.com/grpc-ecosystem/grpc-gateway@v1.16.0)/third_party/googleapis"
gateway_v2="$(go list -m -f '{{.Dir}}' github.com/grpc-ecosystem/grpc-gateway/v2)"
rm -rf "$deps"
mkdir -p "$deps/google/api" "$deps/protoc-gen-openapiv2/options"
cp "$googleapis"/google/api/{annotations,http}.proto "$deps/google/api/"
cp "$gateway_v2"/protoc-gen-openapiv2/options/{annotations,openapiv2}.proto "$deps/protoc-gen-openapiv2/options/"
chmod -R u+w "$deps"

rm -rf gen/users
rm -f gen/openapi/*.json
PATH="$PWD/$bin:$PATH" "$bin/buf" generate
# What the openapiv2 plugin cannot be told through annotations (see the
# command's doc comment); it reads the descriptors generated just above.
go run ./scripts/openapi-fix gen/openapi/users.swagger.json
