#!/usr/bin/env bash
# bench/auth.sh (`make bench`): what sign-in costs.
#   - logins per second through the gateway (POST /api/v1/auth/login, wrk
#     with a Lua script over 32 users, IAM_RATE_LIMIT=off, an ES256 signing
#     key) at the default argon2id costs (m = 19 MiB, t = 2, p = 1);
#   - against the hash-only ceiling: argon2id verifications per second on
#     the same cores with the same costs (pgbench, one client per core,
#     SELECT iam.auth_password_verify(...), the very function a login runs;
#     iam.password_hash(...) for comparison); target: logins >= 85 % of it;
#   - token verifications per second for HS256, ES256 and RS256 through
#     gateway/jwt.c, without and with the verified-token cache
#     (bench/jwt_verify.c, built here against gateway/build/release).
# Prints a markdown table, also to bench/results/auth.md.
# Settings: IAM_BENCH_AUTH_SECONDS (per measure, 6), BENCH_SKIP_BUILD.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

DURATION=${IAM_BENCH_AUTH_SECONDS:-6}
CORES=$(nproc)
USERS=32
# two database connections per core: while one waits for its commit to be
# flushed, the other hashes
POOL=${BENCH_AUTH_POOL:-$((2 * CORES))}
[ -n "${BENCH_SKIP_BUILD:-}" ] || make -s >/dev/null
GATEWAY=gateway/iam-gateway

bench_cluster bench-auth 54399 <<'CONF'
shared_buffers = '512MB'
CONF

log "users ($USERS, argon2id at the default costs) ..."
DB_PASSWORD=$(openssl rand -hex 16)
PGOPTIONS='-c client_min_messages=warning' psql_bench -v pw="$DB_PASSWORD" -v n="$USERS" >/dev/null <<'SQL'
CREATE EXTENSION iam CASCADE;
ALTER ROLE iam_gateway PASSWORD :'pw';
SELECT iam.create_organization('Bench', 'bench') AS org \gset
SELECT iam.create_user(:'org', 'user' || i || '@bench.example', 'User ' || i, 'member', 'bench password ' || i)
FROM generate_series(1, :n) AS i;
VACUUM ANALYZE;
SQL
COSTS=$(psql_bench -At -c "SELECT substring(password_hash FROM 'm=[0-9]+,t=[0-9]+,p=[0-9]+') FROM iam.users LIMIT 1")

# run_pgbench NAME SQL: transactions per second of SQL, one client per core
run_pgbench() {
	printf '%s\n' "$2" >"$BENCH_DIR/$1.sql"
	chmod 644 "$BENCH_DIR/$1.sql"
	"$PG_BIN/pgbench" -n -h "$BENCH_DIR/sock" -p "$BENCH_PORT" -U postgres -d iam \
		-c "$CORES" -j "$CORES" -T "$DURATION" -f "$BENCH_DIR/$1.sql" >"$BENCH_DIR/$1.log" 2>&1 \
		|| { cat "$BENCH_DIR/$1.log" >&2; die "pgbench failed ($1)"; }
	sed -nE 's/^tps = ([0-9.]+) \(without initial connection time\)/\1/p' "$BENCH_DIR/$1.log" |
		awk '{ printf "%.1f\n", $1 }'
}

VERIFY_SQL="\\set i random(1, $USERS)
SELECT iam.auth_password_verify(password_hash, 'bench password ' || :i) FROM iam.users WHERE email = 'user' || :i || '@bench.example';"
# the ceiling is measured before and after the logins and averaged, so that
# a change in the machine's load between the runs shows rather than skews
log "hash-only ceiling: iam.auth_password_verify, $CORES clients, ${DURATION} s ..."
HASH_VERIFY1=$(run_pgbench verify "$VERIFY_SQL")
log "iam.password_hash, $CORES clients, ${DURATION} s ..."
HASH_NEW=$(run_pgbench hash "SELECT iam.password_hash('bench password 1');")

log "logins through the gateway: wrk, ${DURATION} s ..."
GW_PORT=$(free_port 18399)
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$BENCH_DIR/jwt.pem" 2>/dev/null
IAM_DATABASE_URL="postgresql://iam_gateway:$DB_PASSWORD@127.0.0.1:$BENCH_PORT/iam" \
IAM_LISTEN="127.0.0.1:$GW_PORT" IAM_JWT_KEY_FILE="$BENCH_DIR/jwt.pem" IAM_JWT_KID=bench \
IAM_RATE_LIMIT=off IAM_THREADS="$CORES" IAM_DB_POOL_SIZE="$POOL" \
	"$GATEWAY" >"$BENCH_DIR/gateway.out" 2>"$BENCH_DIR/gateway.log" &
GW_PID=$!
trap 'kill "$GW_PID" 2>/dev/null; wait "$GW_PID" 2>/dev/null; pg_stop "$BENCH_DIR"; rm -rf "$BENCH_DIR"' EXIT
wait_http "http://127.0.0.1:$GW_PORT/readyz" || { tail -n 5 "$BENCH_DIR/gateway.log" >&2; die "the gateway is not ready"; }
# one login by hand: the answer must be tokens
curl -s -H 'Content-Type: application/json' -d '{"email":"user1@bench.example","password":"bench password 1"}' \
	"http://127.0.0.1:$GW_PORT/api/v1/auth/login" | jq -e '.access_token and .refresh_token' >/dev/null \
	|| die "a login through the gateway did not return tokens"
cat >"$BENCH_DIR/login.lua" <<LUA
-- POST /api/v1/auth/login as one of $USERS users, at random
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
	local i = math.random(1, $USERS)
	return wrk.format(nil, "/api/v1/auth/login", nil,
		string.format('{"email":"user%d@bench.example","password":"bench password %d"}', i, i))
end
LUA
CONNS=$((2 * POOL))
wrk -t "$CORES" -c "$CONNS" -d "${DURATION}s" --latency -s "$BENCH_DIR/login.lua" \
	"http://127.0.0.1:$GW_PORT" >"$BENCH_DIR/wrk.log" 2>&1 || { cat "$BENCH_DIR/wrk.log" >&2; die "wrk failed"; }
LOGINS=$(sed -nE 's/^Requests\/sec: *([0-9.]+)/\1/p' "$BENCH_DIR/wrk.log")
NON2XX=$(sed -nE 's/^ *Non-2xx or 3xx responses: *([0-9]+)/\1/p' "$BENCH_DIR/wrk.log")
P50=$(awk '/Latency Distribution/ { f = 1 } f && $1 == "50%" { print $2; exit }' "$BENCH_DIR/wrk.log")
P99=$(awk '/Latency Distribution/ { f = 1 } f && $1 == "99%" { print $2; exit }' "$BENCH_DIR/wrk.log")
SESSIONS=$(psql_bench -At -c "SELECT count(*) FROM iam.user_sessions")
log "hash-only ceiling again, ${DURATION} s ..."
HASH_VERIFY2=$(run_pgbench verify "$VERIFY_SQL")
HASH_VERIFY=$(awk -v a="$HASH_VERIFY1" -v b="$HASH_VERIFY2" 'BEGIN { printf "%.1f", (a + b) / 2 }')
LOGINS=$(awk -v a="$LOGINS" 'BEGIN { printf "%.1f", a }')

log "token verification: bench/jwt_verify.c, 2 s per measure ..."
cc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -Igateway -o "$BENCH_DIR/jwt_verify" bench/jwt_verify.c \
	gateway/build/release/jwt.o gateway/build/release/jwtcache.o -lcrypto -ljansson -lpthread -lm
"$BENCH_DIR/jwt_verify" 2 >"$BENCH_DIR/verify.txt"
vrow() {	# vrow ALG: one table row
	local plain cached
	read -r _ _ plain plain_us <<<"$(grep "^$1 verify" "$BENCH_DIR/verify.txt")"
	read -r _ _ cached cached_us <<<"$(grep "^$1 cached" "$BENCH_DIR/verify.txt")"
	printf '| %s verifications, one thread: signature checked / from the verified-token cache | %s/s (%s µs) / %s/s (%s µs) | |\n' \
		"$1" "$plain" "$plain_us" "$cached" "$cached_us"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", 100 * a / b }'; }
TABLE="| measure | result | target |
|---|---|---|
| argon2id verifications per second, pgbench $CORES clients (\`iam.auth_password_verify\`, hash-only ceiling; before / after the logins: $HASH_VERIFY1 / $HASH_VERIFY2) | $HASH_VERIFY/s | |
| argon2id new hashes per second, pgbench $CORES clients (\`iam.password_hash\`) | $HASH_NEW/s | |
| logins per second through the gateway (wrk -c $CONNS, $USERS users; non-2xx: ${NON2XX:-0}; p50 $P50, p99 $P99) | $LOGINS/s | |
| logins ÷ hash-only ceiling | $(ratio "$LOGINS" "$HASH_VERIFY") % | ≥ 85 % |
$(vrow HS256)
$(vrow ES256)
$(vrow RS256)"

HEADER="## auth: sign-in and token verification ($(date -u +%Y-%m-%d), $CORES cores, $("$PG_BIN/postgres" --version | sed 's/^postgres (PostgreSQL) /PostgreSQL /'))

argon2id costs $COSTS (the defaults); ${DURATION} s per measure; gateway release build, IAM_THREADS=$CORES,
IAM_DB_POOL_SIZE=$POOL, IAM_RATE_LIMIT=off, ES256 signing; every login commits a session and an activity
row ($SESSIONS sessions at the end); bench/auth.sh.  Verification: a 2048-bit RSA key, P-256, a 32-byte
HS256 secret; the cached figure is a SHA-256 of the token and a lookup (gateway/jwtcache.c)."
mkdir -p bench/results
printf '%s\n\n%s\n' "$HEADER" "$TABLE" | tee bench/results/auth.md
