#!/usr/bin/env bash
# openapi_validator.sh [--install | FILE]: check that FILE is a valid OpenAPI 3.x document
# (the official JSON Schemas, e.g. OpenAPI 3.1's) with the npm package
# @seriousme/openapi-schema-validator.  The package is installed once, at a
# pinned version, into .cache/npm under the checkout (ignored by git); later
# runs reuse it.  Exits 0 when valid; prints the validator's findings and
# exits non-zero otherwise.  --install only installs.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 --install | FILE" >&2; exit 2; }
[ "$1" = --install ] || file=$(realpath "$1")
cd "$(dirname "$0")/.."
VERSION=2.11.0
DIR=$PWD/.cache/npm
PKG=$DIR/node_modules/@seriousme/openapi-schema-validator/package.json
BIN=$DIR/node_modules/.bin/validate-api

if ! [ -x "$BIN" ] || ! grep -q "\"version\": \"$VERSION\"" "$PKG" 2>/dev/null; then
	command -v npm >/dev/null || { echo "pg_iam: npm is missing (scripts/deps.sh installs it)" >&2; exit 1; }
	mkdir -p "$DIR"
	npm install --no-audit --no-fund --silent --prefix "$DIR" \
		"@seriousme/openapi-schema-validator@$VERSION" >&2
fi
[ "$1" = --install ] && exit 0
exec "$BIN" "$file"
