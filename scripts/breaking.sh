#!/usr/bin/env bash
# Fails when proto/ breaks compatibility with the previous commit (or with
# the ref given as $1). Run scripts/generate.sh first: it builds buf and
# gathers the third-party protos both sides import.
set -euo pipefail
cd "$(dirname "$0")/.."
against=${1:-HEAD~1}

if ! git cat-file -e "$against:proto" 2>/dev/null; then
  echo "no proto/ at $against: nothing to compare"
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
git archive "$against" proto buf.yaml | tar -x -C "$tmp"
mkdir -p "$tmp/.build"
cp -R .build/protodeps "$tmp/.build/"
buf="$PWD/.build/bin/buf"
(cd "$tmp" && "$buf" build -o against.binpb)
"$buf" build -o "$tmp/current.binpb"
"$buf" breaking "$tmp/current.binpb" --against "$tmp/against.binpb"
