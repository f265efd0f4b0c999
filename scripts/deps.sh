#!/usr/bin/env bash
# deps.sh: make sure every Debian package the build, `make up` and `make test`
# need is installed.  As root it installs what is missing with apt-get (running
# `apt-get update` once first); otherwise it prints the exact command and stops.
# Nothing is fetched from anywhere but the Debian archive (and, for the
# OpenAPI validator, the npm registry: see openapi_validator.sh).
set -euo pipefail

packages=(
	# build
	gcc make pkg-config
	postgresql-server-dev-15 libpq-dev
	libmicrohttpd-dev libhiredis-dev libjansson-dev libssl-dev libargon2-dev libcrypt-dev
	# servers
	postgresql-15 postgresql-contrib postgresql-15-cron redis-server
	# tests
	postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl perl
	curl jq openssl procps
	python3		# the sign-in tests compute TOTP codes, bcrypt hashes and JWKs with it
)
# the OpenAPI validator of `make test` is an npm package; a Node.js that is
# already installed (Debian's or another) is used as it is
command -v npm >/dev/null 2>&1 || packages+=(nodejs npm)

missing=()
for p in "${packages[@]}"; do
	if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
		missing+=("$p")
	fi
done

[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "pg_iam: these Debian packages are missing: ${missing[*]}" >&2
	echo "pg_iam: install them with:" >&2
	echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
	exit 1
fi

echo "pg_iam: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
