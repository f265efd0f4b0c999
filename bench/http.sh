#!/usr/bin/env bash
# bench/http.sh (`make bench`): the gateway side by side with the seed's own
# stack (bench/baseline/, Node.js + Express, see its app.js) and with the
# ceilings of this machine, over HTTP with wrk.
#
# One throwaway cluster (bench/lib.sh) with the iam extension and the
# deterministic dataset of bench/gen.sql, one Redis, and on loopback:
#   - gateway/iam-gateway (release build), IAM_THREADS = cores, HS256;
#   - the baseline: node cluster, one worker per core, NODE_ENV=production;
#   - the HTTP ceiling: bench/ceiling/hello.c (bare libmicrohttpd, fixed JSON);
#   - the database ceiling: pgbench -S -M prepared (same cluster, over TCP).
# Scenarios (the same wrk threads, connections, duration and warm-up for
# both, runs interleaved, median of BENCH_RUNS reported): GET /users/me,
# POST /authz/check, GET /users?limit=50 page 1 and page 1,000 (keyset
# cursor for the gateway, OFFSET 49,950 for the baseline), PATCH /users/{id}
# (1,000 users in turn) and POST /auth/login (the gateway's once
# iam.routes declares it).  Also GET /users/me on a second gateway with
# IAM_RATE_LIMIT=off, to show what the shared limiter costs a cached read.
# Writes bench/results/compare.md and compare.png.
#
# Settings (environment): BENCH_SCALE (small: 60,000 users, ~200,000 audit
# rows; large: 1,000,000 users, ~10,000,000 audit rows; or a number of
# users), BENCH_THREADS (wrk threads, 2), BENCH_CONNECTIONS (32),
# BENCH_DURATION (seconds per run, 3; 10 at the large scale, where one of the
# baseline's OFFSET pages takes seconds), BENCH_WARMUP (seconds, 1),
# BENCH_RUNS (3), BENCH_NODE_POOL (pg pool per Node worker, 10: pg's
# default), BENCH_GATEWAY_THREADS (IAM_THREADS, 4 per core), BENCH_GATEWAY_POOL
# (IAM_DB_POOL_SIZE, as many as threads), BENCH_SKIP_BUILD
# (set: do not run make), BENCH_GATEWAY (the gateway binary, gateway/iam-gateway).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

case ${BENCH_SCALE:-small} in
	small) USERS=60000 PASSES=2 ;;
	large) USERS=1000000 PASSES=9 DEFAULT_DURATION=10 ;;
	*[!0-9]* | '') die "BENCH_SCALE: small, large or a number of users" ;;
	*) USERS=$BENCH_SCALE PASSES=2 ;;
esac
[ "$USERS" -ge 56000 ] || die "BENCH_SCALE: at least 56,000 users (page 1,000 of 50 must exist in organisation 1)"
WRK_THREADS=${BENCH_THREADS:-2}
CONNS=${BENCH_CONNECTIONS:-32}
DURATION=${BENCH_DURATION:-${DEFAULT_DURATION:-3}}
WARMUP=${BENCH_WARMUP:-1}
RUNS=${BENCH_RUNS:-3}
CORES=$(nproc)
NODE_POOL=${BENCH_NODE_POOL:-10}
GW_THREADS=${BENCH_GATEWAY_THREADS:-$((CORES * 4))}	# the gateway's own default
GATEWAY_POOL=${BENCH_GATEWAY_POOL:-$GW_THREADS}
HUGE=1000000000		# rate limits high enough never to refuse during the run

if [ -z "${BENCH_SKIP_BUILD:-}" ]; then
	log "building (extension, gateway release build) ..."
	make -s >/dev/null
fi
GATEWAY=${BENCH_GATEWAY:-gateway/iam-gateway}
[ -x "$GATEWAY" ] || die "$GATEWAY was not built"
if ! [ -d bench/baseline/node_modules ] || ! cmp -s bench/baseline/package-lock.json bench/baseline/node_modules/.package-lock.json.src 2>/dev/null; then
	log "installing the baseline's npm packages (package-lock.json) ..."
	(cd bench/baseline && npm ci --no-audit --no-fund --silent --omit=dev >&2 &&
		cp package-lock.json node_modules/.package-lock.json.src)
fi

bench_cluster bench-http 54399 <<'CONF'
shared_buffers = '512MB'
max_wal_size = '4GB'
CONF
RESULTS=$BENCH_DIR/results
mkdir -p "$RESULTS"
gcc -O2 -o "$BENCH_DIR/hello" bench/ceiling/hello.c -lmicrohttpd -lpthread

PIDS=()
cleanup() {
	local rc=$?
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	[ -f "$BENCH_DIR/redis.pid" ] && stop_pidfile "$BENCH_DIR/redis.pid"
	pg_stop "$BENCH_DIR"
	if [ "$rc" -ne 0 ]; then	# keep the logs of a failed run
		rm -rf /tmp/pg_iam-bench-http-logs && mkdir -p /tmp/pg_iam-bench-http-logs
		cp "$BENCH_DIR"/*.log "$BENCH_DIR"/*.out /tmp/pg_iam-bench-http-logs/ 2>/dev/null || true
		log "logs of the failed run: /tmp/pg_iam-bench-http-logs"
	fi
	if [ -n "${BENCH_KEEP:-}" ]; then log "kept $BENCH_DIR"; else rm -rf "$BENCH_DIR"; fi
}
trap cleanup EXIT

# ---- data ---------------------------------------------------------------
PASSWORD=bench-password-0001
BCRYPT=$(cd bench/baseline && node -e "console.log(require('bcrypt').hashSync(process.argv[1], 10))" "$PASSWORD")
log "generating data ($USERS users, audit trail of $((PASSES + 1)) rows a user) ..."
t0=$(date +%s)
psql_bench -c 'CREATE EXTENSION iam CASCADE' >/dev/null 2>&1
psql_bench -v users="$USERS" -v audit_passes="$PASSES" -v bcrypt_hash="$BCRYPT" -f bench/gen.sql >/dev/null
DB_PASSWORD=$(openssl rand -hex 16)
psql_bench -v pw="$DB_PASSWORD" -v huge="$HUGE" >/dev/null <<'SQL'
ALTER ROLE iam_gateway PASSWORD :'pw';
ALTER ROLE postgres PASSWORD :'pw';
UPDATE iam.rate_limit_classes SET requests = :huge, per_seconds = 60;
-- the generator's dirty pages written now, not by a checkpoint during a run
CHECKPOINT;
SQL
read -r AUDIT_ROWS NODE_AUDIT_ROWS ORG_USERS <<<"$(psql_bench -At -F ' ' -c "SELECT (SELECT count(*) FROM iam.audit_logs), (SELECT count(*) FROM bench_node.audit_logs), (SELECT count(*) FROM iam.users WHERE org_id = md5('org1')::uuid)")"
log "data ready in $(($(date +%s) - t0)) s: $ORG_USERS users in the caller's organisation, $AUDIT_ROWS audit rows"
ORG=$(psql_bench -At -c "SELECT md5('org1')::uuid")
ME=$(psql_bench -At -c "SELECT md5('user1')::uuid")
# the cursor of page 1,000 (rows 49,951 to 50,000), built the way
# iam.api_users_list builds its next_cursor
CURSOR=$(psql_bench -At -c "SELECT iam.api_cursor_encode('users:created_at:asc', iam.api_ts(created_at), id)
	FROM iam.users WHERE org_id = md5('org1')::uuid AND deleted_at IS NULL ORDER BY created_at, id OFFSET 49949 LIMIT 1")
psql_bench -At -c "SELECT id FROM iam.users WHERE org_id = md5('org1')::uuid AND id <> md5('user1')::uuid
	ORDER BY created_at LIMIT 1000" >"$BENCH_DIR/patch_ids"
HAS_LOGIN=$(psql_bench -At -c "SELECT count(*) FROM iam.routes WHERE method = 'POST' AND path = '/auth/login'")

# ---- servers --------------------------------------------------------------
REDIS_PORT=$(free_port 6399)
redis_start "$BENCH_DIR" "$REDIS_PORT"
GW_PORT=$(free_port 18480)
NODE_PORT=$(free_port $((GW_PORT + 1)))
HELLO_PORT=$(free_port $((NODE_PORT + 1)))
JWT_KEY=$BENCH_DIR/jwt.key
openssl rand -hex 32 | tr -d '\n' >"$JWT_KEY"
NODE_SECRET=$(openssl rand -hex 32)

IAM_DATABASE_URL="postgresql://iam_gateway:$DB_PASSWORD@127.0.0.1:$BENCH_PORT/iam" \
IAM_REDIS_URL="redis://127.0.0.1:$REDIS_PORT" IAM_LISTEN="127.0.0.1:$GW_PORT" \
IAM_JWT_ALG=HS256 IAM_JWT_KEY_FILE="$JWT_KEY" IAM_THREADS="$GW_THREADS" IAM_DB_POOL_SIZE="$GATEWAY_POOL" \
	"$GATEWAY" >"$BENCH_DIR/gateway.out" 2>"$BENCH_DIR/gateway.log" &
PIDS+=($!)
# the same gateway without rate limiting: what the shared limiter costs on a
# cached read (reported below the table, not compared with the baseline)
GW_NOLIMIT_PORT=$(free_port $((HELLO_PORT + 1)))
IAM_DATABASE_URL="postgresql://iam_gateway:$DB_PASSWORD@127.0.0.1:$BENCH_PORT/iam" \
IAM_REDIS_URL="redis://127.0.0.1:$REDIS_PORT" IAM_LISTEN="127.0.0.1:$GW_NOLIMIT_PORT" IAM_RATE_LIMIT=off \
IAM_JWT_ALG=HS256 IAM_JWT_KEY_FILE="$JWT_KEY" IAM_THREADS="$GW_THREADS" IAM_DB_POOL_SIZE="$GATEWAY_POOL" \
	"$GATEWAY" >/dev/null 2>"$BENCH_DIR/gateway-nolimit.log" &
PIDS+=($!)
NODE_ENV=production PORT=$NODE_PORT WEB_CONCURRENCY=$CORES PG_POOL_MAX=$NODE_POOL \
DATABASE_URL="postgresql://postgres:$DB_PASSWORD@127.0.0.1:$BENCH_PORT/iam" \
PG_OPTIONS='-c session_replication_role=replica' REDIS_URL="redis://127.0.0.1:$REDIS_PORT" \
JWT_SECRET=$NODE_SECRET RATE_LIMIT=$HUGE \
	node bench/baseline/server.js >"$BENCH_DIR/node.log" 2>&1 &
PIDS+=($!)
"$BENCH_DIR/hello" "$HELLO_PORT" "$CORES" &
PIDS+=($!)
wait_http "http://127.0.0.1:$GW_PORT/readyz" || { tail -n 5 "$BENCH_DIR/gateway.log" >&2; die "the gateway is not ready"; }
wait_http "http://127.0.0.1:$NODE_PORT/healthz" || { tail -n 5 "$BENCH_DIR/node.log" >&2; die "the baseline is not ready"; }
wait_http "http://127.0.0.1:$HELLO_PORT/" || die "the ceiling server is not ready"
wait_http "http://127.0.0.1:$GW_NOLIMIT_PORT/readyz" || die "the second gateway is not ready"

GW_TOKEN=$(env -i PATH="$PATH" IAM_JWT_ALG=HS256 IAM_JWT_KEY_FILE="$JWT_KEY" "$GATEWAY" token --sub "$ME" --org "$ORG" --ttl 7200)
NODE_TOKEN=$(cd bench/baseline && JWT_SECRET=$NODE_SECRET node -e "console.log(require('jsonwebtoken').sign(
	{ sub: process.argv[1], org: process.argv[2], sid: require('crypto').randomUUID() }, process.env.JWT_SECRET,
	{ algorithm: 'HS256', expiresIn: 7200 }))" "$ME" "$ORG")

# ---- wrk scripts -----------------------------------------------------------
# every script ends with done(), which prints one line:
# RESULT requests_per_second p50_ms p99_ms requests non_2xx_or_socket_errors
DONE_LUA='
done = function(summary, latency, requests)
	local e = summary.errors
	io.write(string.format("RESULT %.1f %.3f %.3f %d %d\n", summary.requests / (summary.duration / 1e6),
		latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.requests,
		e.connect + e.read + e.write + e.status + e.timeout))
end'
# lua_request NAME METHOD TOKEN [BODY]: a script sending the same request
lua_request() {
	{
		echo "wrk.method = \"$2\""
		[ "$3" = - ] || echo "wrk.headers[\"Authorization\"] = \"Bearer $3\""
		if [ $# -ge 4 ]; then
			echo 'wrk.headers["Content-Type"] = "application/json"'
			printf 'wrk.body = [[%s]]\n' "$4"
		fi
		echo "$DONE_LUA"
	} >"$BENCH_DIR/$1.lua"
}
# lua_patch NAME TOKEN: PATCH /api/v1/users/{id} over the 1,000 users in turn,
# each thread starting elsewhere in the list
lua_patch() {
	{
		echo "local ids = {}"
		echo "for l in io.lines(\"$BENCH_DIR/patch_ids\") do ids[#ids + 1] = l end"
		cat <<LUA
local n = 0
local tid = 0
setup = function(thread) thread:set("tid", tid); tid = tid + 1 end
request = function()
	n = n + 1
	local id = ids[(n * 7 + tid * 331) % #ids + 1]
	return wrk.format("PATCH", "/api/v1/users/" .. id,
		{ ["Authorization"] = "Bearer $2", ["Content-Type"] = "application/json" },
		'{"department": "Department ' .. (n % 20) .. '"}')
end
LUA
		echo "$DONE_LUA"
	} >"$BENCH_DIR/$1.lua"
}
AUTHZ='{"permissions": ["users.read", "users.update", "roles.manage", "audit.read", "reports.read"]}'
LOGIN="{\"email\": \"user1@bench.example\", \"password\": \"$PASSWORD\"}"
lua_request gw_get GET "$GW_TOKEN"
lua_request node_get GET "$NODE_TOKEN"
lua_request gw_authz POST "$GW_TOKEN" "$AUTHZ"
lua_request node_authz POST "$NODE_TOKEN" "$AUTHZ"
lua_request login POST - "$LOGIN"
lua_request plain GET -
lua_patch gw_patch "$GW_TOKEN"
lua_patch node_patch "$NODE_TOKEN"

GW=http://127.0.0.1:$GW_PORT/api/v1
NODE=http://127.0.0.1:$NODE_PORT/api/v1
# scenario table: name | gateway script and URL | baseline script and URL
SCENARIOS=(
	"me|gw_get|$GW/users/me|node_get|$NODE/users/me"
	"authz|gw_authz|$GW/authz/check|node_authz|$NODE/authz/check"
	"list_p1|gw_get|$GW/users?limit=50|node_get|$NODE/users?limit=50"
	"list_p1000|gw_get|$GW/users?limit=50&cursor=$CURSOR|node_get|$NODE/users?limit=50&page=1000"
	"patch|gw_patch|$GW/users|node_patch|$NODE/users"
	"login|login|$GW/auth/login|login|$NODE/auth/login"
)
declare -A TITLE=(
	[me]='GET /users/me' [authz]='POST /authz/check (5 permissions)'
	[list_p1]='GET /users?limit=50, page 1' [list_p1000]='GET /users?limit=50, page 1,000'
	[patch]='PATCH /users/{id}' [login]='POST /auth/login'
)

# ---- smoke test: both answer 200 with the same rows -------------------------
# check NAME SCRIPT URL: one request as wrk would send it, must be 2xx
check() {
	local name=$1 script=$2 url=$3 method=GET body='' auth=''
	case $script in
		*authz) method=POST body=$AUTHZ ;; login) method=POST body=$LOGIN ;;
		*patch) method=PATCH body='{"department": "Department 1"}' url=$url/$(head -n 1 "$BENCH_DIR/patch_ids") ;;
	esac
	case $script in gw_*) auth=$GW_TOKEN ;; node_*) auth=$NODE_TOKEN ;; esac
	local args=(-s -o "$RESULTS/$name.body" -w '%{http_code}' -X "$method")
	[ -n "$auth" ] && args+=(-H "Authorization: Bearer $auth")
	[ -n "$body" ] && args+=(-H 'Content-Type: application/json' --data-binary "$body")
	local status
	status=$(curl "${args[@]}" "$url")
	[[ $status == 2?? ]] || { log "$name: $method $url answered $status: $(head -c 300 "$RESULTS/$name.body")"; return 1; }
}
for s in "${SCENARIOS[@]}"; do
	IFS='|' read -r name gs gu ns nu <<<"$s"
	if [ "$name" = login ] && [ "$HAS_LOGIN" = 0 ]; then
		check "node_$name" "$ns" "$nu"
		continue
	fi
	check "gw_$name" "$gs" "$gu"
	check "node_$name" "$ns" "$nu"
done
for p in p1 p1000; do
	a=$(jq -r '.data[0].id + " " + .data[-1].id + " " + (.data | length | tostring)' "$RESULTS/gw_list_$p.body")
	b=$(jq -r '.data[0].id + " " + .data[-1].id + " " + (.data | length | tostring)' "$RESULTS/node_list_$p.body")
	[ "$a" = "$b" ] || die "list $p: the gateway's page ($a) is not the baseline's ($b)"
done
# the same permissions, resolved by pg_iam's engine and by the baseline's joins
for f in "me:.permissions | sort" "authz:.results"; do
	a=$(jq -cS "${f#*:}" "$RESULTS/gw_${f%%:*}.body")
	b=$(jq -cS "${f#*:}" "$RESULTS/node_${f%%:*}.body")
	[ "$a" = "$b" ] || log "warning: ${f%%:*}: the gateway answers $a, the baseline $b"
done

# ---- runs -------------------------------------------------------------------
# run_wrk OUT SCRIPT URL SECONDS: one wrk run; appends its RESULT line to OUT
run_wrk() {
	wrk -t "$WRK_THREADS" -c "$CONNS" -d "${4}s" --timeout 10s --latency -s "$BENCH_DIR/$2.lua" "$3" >"$BENCH_DIR/wrk.out" 2>&1 \
		|| { cat "$BENCH_DIR/wrk.out" >&2; die "wrk failed: $3"; }
	grep '^RESULT' "$BENCH_DIR/wrk.out" | cut -d' ' -f2- >>"$1"
}
# median FILE COLUMN: the median of a column of numbers
median() { cut -d' ' -f"$2" "$1" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
# total_errors FILE: errors over all runs
total_errors() { awk '{ s += $5 } END { print s + 0 }' "$1"; }

log "wrk: $WRK_THREADS threads, $CONNS connections, ${WARMUP} s warm-up, $RUNS x ${DURATION} s per scenario and system"
run_wrk /dev/null plain "http://127.0.0.1:$HELLO_PORT/" "$WARMUP"
for i in $(seq 1 "$RUNS"); do run_wrk "$RESULTS/ceiling_http" plain "http://127.0.0.1:$HELLO_PORT/" "$DURATION"; done
for s in "${SCENARIOS[@]}"; do
	IFS='|' read -r name gs gu ns nu <<<"$s"
	log "  ${TITLE[$name]} ..."
	systems=(gw node)
	[ "$name" = login ] && [ "$HAS_LOGIN" = 0 ] && systems=(node)
	for sys in "${systems[@]}"; do
		if [ "$sys" = gw ]; then run_wrk /dev/null "$gs" "$gu" "$WARMUP"; else run_wrk /dev/null "$ns" "$nu" "$WARMUP"; fi
	done
	for i in $(seq 1 "$RUNS"); do	# interleaved, so that noise falls on both
		for sys in "${systems[@]}"; do
			if [ "$sys" = gw ]; then run_wrk "$RESULTS/gw_$name" "$gs" "$gu" "$DURATION"
			else run_wrk "$RESULTS/node_$name" "$ns" "$nu" "$DURATION"; fi
		done
	done
done

log "  GET /users/me, rate limiting off ..."
run_wrk /dev/null gw_get "http://127.0.0.1:$GW_NOLIMIT_PORT/api/v1/users/me" "$WARMUP"
for i in $(seq 1 "$RUNS"); do run_wrk "$RESULTS/gw_me_nolimit" gw_get "http://127.0.0.1:$GW_NOLIMIT_PORT/api/v1/users/me" "$DURATION"; done

log "pgbench -S -M prepared ($CONNS clients) ..."
pg_psql "$BENCH_DIR" "$BENCH_PORT" -d postgres -c "CREATE DATABASE pgbench" >/dev/null
"$PG_BIN/pgbench" -i -q -s 10 -h "$BENCH_DIR/sock" -p "$BENCH_PORT" -U postgres pgbench >/dev/null 2>&1
for i in $(seq 0 "$RUNS"); do
	PGPASSWORD=$DB_PASSWORD "$PG_BIN/pgbench" -n -S -M prepared -c "$CONNS" -j "$WRK_THREADS" \
		-T "$([ "$i" = 0 ] && echo "$WARMUP" || echo "$DURATION")" \
		-h 127.0.0.1 -p "$BENCH_PORT" -U postgres pgbench >"$BENCH_DIR/pgbench.out" 2>&1 \
		|| { cat "$BENCH_DIR/pgbench.out" >&2; die "pgbench failed"; }
	[ "$i" = 0 ] && continue
	tps=$(sed -nE 's/^tps = ([0-9.]+) \(without initial connection time\)/\1/p' "$BENCH_DIR/pgbench.out")
	lat=$(sed -nE 's/^latency average = ([0-9.]+) ms/\1/p' "$BENCH_DIR/pgbench.out")
	echo "$tps $lat" >>"$RESULTS/ceiling_db"
done

# ---- report -----------------------------------------------------------------
HTTP_CEIL=$(median "$RESULTS/ceiling_http" 1)
DB_CEIL=$(median "$RESULTS/ceiling_db" 1)
# the default scale's report is compare.*; another scale's is compare-SCALE.*
NAME=compare$([ "${BENCH_SCALE:-small}" = small ] || echo "-$BENCH_SCALE")
OUT=bench/results/$NAME.md
DATA=bench/results/$NAME.dat
MACHINE="$CORES cores ($(sed -nE 's/^model name\s*: (.*)/\1/p' /proc/cpuinfo | head -n 1)), $(free -g | awk '/^Mem:/ { print $2 }') GiB"
PGV=$(psql_bench -At -c 'SHOW server_version')
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
fmt() { awk -v v="$1" 'BEGIN { printf (v >= 100 ? "%.0f" : "%.1f"), v }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f×", a / b; else print "n/a" }'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.0f %%", 100 * a / b; else print "n/a" }'; }
{
	echo "## HTTP: pg_iam gateway vs the seed's Node/Express stack ($(date -u +%Y-%m-%d), $MACHINE, PostgreSQL $PGV)"
	echo
	echo "\`BENCH_SCALE=${BENCH_SCALE:-small} make bench\` (bench/http.sh): $ORG_USERS users in the caller's organisation"
	echo "($USERS in all), $AUDIT_ROWS audit rows (the baseline's own table: $NODE_AUDIT_ROWS). wrk $WRK_THREADS threads,"
	echo "$CONNS connections, ${WARMUP} s warm-up, median of $RUNS runs of ${DURATION} s, the two systems' runs interleaved."
	echo "Gateway: release build, IAM_THREADS=$GW_THREADS, IAM_DB_POOL_SIZE=$GATEWAY_POOL, HS256. Baseline: $CORES cluster workers,"
	echo "NODE_ENV=production, pg pool $NODE_POOL per worker, Redis caches (user:perms 10 min, user:profile 5 min)."
	echo "Both rate-limit every request through the same Redis (limits set to $HUGE/min). Load average at the end: $LOAD."
	echo
	echo "| scenario | pg_iam req/s | p50 ms | p99 ms | baseline req/s | p50 ms | p99 ms | throughput ÷ baseline | baseline p99 ÷ ours | of HTTP ceiling | of DB ceiling |"
	echo "|---|---|---|---|---|---|---|---|---|---|---|"
	: >"$DATA"
	for s in "${SCENARIOS[@]}"; do
		IFS='|' read -r name _ <<<"$s"
		nr=$(median "$RESULTS/node_$name" 1); n50=$(median "$RESULTS/node_$name" 2); n99=$(median "$RESULTS/node_$name" 3)
		ne=$(total_errors "$RESULTS/node_$name")
		if [ -f "$RESULTS/gw_$name" ]; then
			gr=$(median "$RESULTS/gw_$name" 1); g50=$(median "$RESULTS/gw_$name" 2); g99=$(median "$RESULTS/gw_$name" 3)
			ge=$(total_errors "$RESULTS/gw_$name")
			if [ "$(median "$RESULTS/node_$name" 4)" = 0 ]; then	# the median run had not one answer
				baseline="none within ${DURATION} s | > ${DURATION} s | | n/a | n/a"
			else
				baseline="$(fmt "$nr") | $(fmt "$n50") | $(fmt "$n99") | $(ratio "$gr" "$nr") | $(ratio "$n99" "$g99")"
			fi
			echo "| ${TITLE[$name]}$([ "$ge$ne" = 00 ] || echo " (errors: ours $ge, baseline $ne)") | $(fmt "$gr") | $(fmt "$g50") | $(fmt "$g99") | $baseline | $(pct "$gr" "$HTTP_CEIL") | $(pct "$gr" "$DB_CEIL") |"
		else
			gr=0 g99=0
			echo "| ${TITLE[$name]}$([ "$ne" = 0 ] || echo " (errors: baseline $ne)") | n/a (not yet) | | | $(fmt "$nr") | $(fmt "$n50") | $(fmt "$n99") | | | | |"
		fi
		echo "\"${TITLE[$name]}\" $gr $nr $g99 $n99" >>"$DATA"
	done
	echo "| ceiling: bare libmicrohttpd, fixed JSON | $(fmt "$HTTP_CEIL") | $(fmt "$(median "$RESULTS/ceiling_http" 2)") | $(fmt "$(median "$RESULTS/ceiling_http" 3)") | | | | | | 100 % | |"
	echo "| ceiling: pgbench -S -M prepared, $CONNS clients over TCP | $(fmt "$DB_CEIL") tps | $(fmt "$(median "$RESULTS/ceiling_db" 2)") (mean) | | | | | | | | 100 % |"
	echo
	NL=$(median "$RESULTS/gw_me_nolimit" 1)
	echo "Without rate limiting (\`IAM_RATE_LIMIT=off\`, same build and settings), pg_iam serves GET /users/me at"
	echo "$(fmt "$NL") req/s, p99 $(fmt "$(median "$RESULTS/gw_me_nolimit" 3)") ms: $(pct "$NL" "$HTTP_CEIL") of the HTTP ceiling; the difference is the shared Redis limiter."
	echo
	echo "Targets (issue 9): ≥ 10× the baseline's throughput at a lower p99 on every read, ≥ 3× on the write;"
	echo "≥ 50 % of the HTTP ceiling on GET /users/me; page 1,000 as fast as page 1 for pg_iam."
	echo "Errors count non-2xx answers and socket errors over all runs (none expected)."
	echo "wrk, both systems, Redis and PostgreSQL share the machine's cores (hence the load average): figures move by tens of percent between runs."
	echo
	others=
	for f in bench/results/*.md; do
		case ${f##*/} in compare*) ;; *) others="${others:+$others, }[${f##*/}](${f##*/})" ;; esac
	done
	[ -z "$others" ] || echo "In-database figures (the other bench/*.sh, latest runs): $others."
	echo
	echo "![throughput and p99 by scenario]($NAME.png)"
} >"$OUT"

gnuplot <<GP 2>"$BENCH_DIR/gnuplot.err" || { cat "$BENCH_DIR/gnuplot.err" >&2; log "gnuplot failed: no chart"; }
set terminal pngcairo size 1200,900 font ",10" noenhanced
set output "bench/results/$NAME.png"
set multiplot layout 2,1 title "pg_iam gateway vs Node/Express baseline ($MACHINE, wrk -t$WRK_THREADS -c$CONNS, median of $RUNS x ${DURATION}s)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set grid ytics
set xtics rotate by -15 scale 0
set key top right opaque
set logscale y
set ylabel "requests per second (log)"
set title "Throughput (higher is better); dashed: bare-HTTP ceiling $(fmt "$HTTP_CEIL") req/s"
plot "$DATA" using 2:xtic(1) title "pg_iam gateway" lc rgb "#1f77b4", \
	"" using 3 title "Node baseline" lc rgb "#ff7f0e", \
	$HTTP_CEIL with lines dt 2 lc rgb "#555555" title "HTTP ceiling"
set key top left
set title "p99 latency (lower is better)"
set ylabel "p99 ms (log)"
plot "$DATA" using 4:xtic(1) title "pg_iam gateway" lc rgb "#1f77b4", \
	"" using 5 title "Node baseline" lc rgb "#ff7f0e"
unset multiplot
GP
rm -f "$DATA"
# every run, for whoever wants more than the medians
{
	echo "# bench/http.sh $(date -u +%Y-%m-%dT%H:%M:%SZ): file run req/s p50_ms p99_ms requests errors"
	for f in "$RESULTS"/*; do
		case $f in *.body) continue ;; esac
		awk -v f="$(basename "$f")" '{ print f, NR, $0 }' "$f"
	done
} >"bench/results/$NAME-runs.txt"
cat "$OUT"
