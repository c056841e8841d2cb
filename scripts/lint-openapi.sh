#!/usr/bin/env bash
# Lints the generated OpenAPI document with Spectral (.spectral.yaml: the
# standard spectral:oas rules) and fails on any error or warning. Spectral
# comes from the npm registry at the version pinned in
# tools/spectral/package-lock.json, installed into .build/spectral; Node.js
# and npm come from Debian's packages when the machine lacks them.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v npm >/dev/null; then
  apt-get update
  apt-get install -y --no-install-recommends nodejs npm
fi

dir=.build/spectral
if ! cmp -s tools/spectral/package-lock.json "$dir/package-lock.json" || [ ! -x "$dir/node_modules/.bin/spectral" ]; then
  rm -rf "$dir"
  mkdir -p "$dir"
  cp tools/spectral/package.json tools/spectral/package-lock.json "$dir/"
  # No install scripts: Spectral needs none (one dependency's only
  # sends usage statistics).
  (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund)
fi
"$dir/node_modules/.bin/spectral" lint --ruleset .spectral.yaml --fail-severity warn gen/openapi/users.swagger.json
