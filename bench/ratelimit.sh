#!/usr/bin/env bash
# bench/ratelimit.sh (`make bench`): what rate limiting and the response
# cache (#7) cost or save the gateway.  On a throwaway cluster and Redis, the
# release gateway (its default threads and pool) serves an authorised GET, driven by wrk
# (2 threads, 16 connections, IAM_BENCH_RL_SECONDS each, default 5):
#   - GET /users/{id} (not cached): limiter off, in process (no Redis),
#     in Redis with leases (the default: a busy caller's tokens are taken
#     from Redis several at a time) and without (a round trip for every
#     request); the class is made wide enough never to refuse;
#   - the same, limiter off and in Redis, with 1,000 callers in turn
#     (about 6 requests per second each: a lease rarely lasts more than a
#     few requests, the case leases help least);
#   - GET /users/me: the response cache off (every request reads
#     PostgreSQL) and on (every request but the first is an L1 hit).
# The gateways run at once; the configurations are measured in
# IAM_BENCH_RL_ROUNDS interleaved rounds (default 2).  Prints throughput and
# p99 latency with the ratios the issue sets targets for (Redis limiter
# <= 15 % of throughput; cache hit >= 2x uncached), also to
# bench/results/ratelimit.md.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

SECONDS_EACH=${IAM_BENCH_RL_SECONDS:-5}
ROUNDS=${IAM_BENCH_RL_ROUNDS:-2}
make -s -C gateway iam-gateway >/dev/null
bench_cluster bench-ratelimit 54399 <<'CONF'
max_connections = 100
CONF
REDIS_PORT=$(free_port 6479)
redis_start "$BENCH_DIR" "$REDIS_PORT"

PW=$(openssl rand -hex 12)
PGOPTIONS='-c client_min_messages=warning' psql_bench -v pw="$PW" >/dev/null <<'SQL'
CREATE EXTENSION iam CASCADE;
ALTER ROLE iam_gateway PASSWORD :'pw';
-- wide enough never to refuse: the limiter's cost, not its refusals
UPDATE iam.rate_limit_classes SET requests = 2000000000, per_seconds = 1 WHERE name = 'read';
SQL
ORG=$(psql_bench -tA -c "SELECT iam.create_organization('Bench', 'bench')")
ADMIN=$(psql_bench -tA -c "SELECT iam.create_user('$ORG', 'admin@bench.example', 'Admin', 'admin', NULL)")
OTHER=$(psql_bench -tA -c "SELECT iam.create_user('$ORG', 'other@bench.example', 'Other', 'member', NULL)")
KEY=$BENCH_DIR/jwt.pem
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$KEY" 2>/dev/null
TOKEN=$(env -i PATH="$PATH" IAM_JWT_KEY_FILE="$KEY" gateway/iam-gateway token --sub "$ADMIN" --org "$ORG" --ttl 3600)
# 1,000 callers, and a wrk script that sends each request as the next one.
# Their tokens are signed with the gateway's key in one Node process (the
# gateway's token command is a process per token: 200 took 5.9 s).
psql_bench -tA -c "SELECT iam.create_user('$ORG', 'caller' || i || '@bench.example', 'Caller', 'admin', NULL)
                   FROM generate_series(1, 1000) i" |
	KEY="$KEY" ORG="$ORG" node -e '
const crypto = require("crypto"), fs = require("fs");
const key = fs.readFileSync(process.env.KEY), now = Math.floor(Date.now() / 1000);
const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
for (const sub of fs.readFileSync(0, "utf8").split("\n").filter(Boolean)) {
	const input = b64({alg: "ES256", typ: "JWT"}) + "." +
		b64({sub, org: process.env.ORG, iat: now, exp: now + 3600, jti: crypto.randomBytes(16).toString("hex")});
	const sig = crypto.sign("sha256", Buffer.from(input), {key, dsaEncoding: "ieee-p1363"});
	console.log(input + "." + sig.toString("base64url"));
}' >"$BENCH_DIR/tokens"
[ "$(wc -l <"$BENCH_DIR/tokens")" = 1000 ] || die "the 1,000 callers' tokens were not minted"
cat >"$BENCH_DIR/callers.lua" <<LUA
local tokens = {}
for line in io.lines("$BENCH_DIR/tokens") do tokens[#tokens + 1] = line end
local i = math.random(#tokens)
request = function()
	i = i % #tokens + 1
	return wrk.format(nil, nil, {["Authorization"] = "Bearer " .. tokens[i]})
end
LUA
DB_URL="postgresql://iam_gateway:$PW@127.0.0.1:$BENCH_PORT/iam"

# start NAME PATH [VAR=value...]: a gateway so configured, on a port of its
# own (all run at once; only one is driven at a time).  A NAME ending in
# _many is driven as the 1,000 callers.
CONFIGS=()
GW_PIDS=()
start() {
	local name=$1 path=$2 listen pid
	shift 2
	listen=127.0.0.1:$(free_port $((18480 + ${#CONFIGS[@]} * 10)))
	env -i PATH="$PATH" IAM_DATABASE_URL="$DB_URL" IAM_LISTEN="$listen" \
		IAM_JWT_KEY_FILE="$KEY" "$@" gateway/iam-gateway >/dev/null 2>"$BENCH_DIR/gw-$name.log" &
	pid=$!
	GW_PIDS+=("$pid")
	wait_http "http://$listen/healthz" || die "the gateway did not start ($name)"
	[ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "http://$listen/api/v1$path")" = 200 ] \
		|| die "GET $path is not 200 ($name)"
	printf -v "URL_$name" '%s' "http://$listen/api/v1$path"
	CONFIGS+=("$name")
}

# measure NAME: one wrk run; appends "req/s/p99-ms" to RUNS_<NAME>.
measure() {
	local name=$1 url out rps p99 v prev
	v="URL_$name"; url=${!v}
	wrk_caller "$name"
	out=$(wrk -t2 -c16 -d"${SECONDS_EACH}s" --latency "${CALLER[@]}" "$url")
	grep -q 'Non-2xx' <<<"$out" && die "non-2xx answers in $name: $(grep Non-2xx <<<"$out")"
	rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
	p99=$(awk '$1 == "99%" { v = $2; if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 } else if (v ~ /ms$/) { sub(/ms$/, "", v) } else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 } printf "%.2f", v }' <<<"$out")
	v="RUNS_$name"; prev=${!v:-}
	printf -v "RUNS_$name" '%s %s/%s' "$prev" "$rps" "$p99"
	log "$name: $rps req/s, p99 $p99 ms"
}

# wrk_caller NAME: sets CALLER to wrk's arguments naming the caller(s) of
# configuration NAME
wrk_caller() {
	case $1 in
		*_many) CALLER=(-s "$BENCH_DIR/callers.lua") ;;
		*) CALLER=(-H "Authorization: Bearer $TOKEN") ;;
	esac
}

# median NAME FIELD (1: req/s, 2: p99): the median over the rounds.
median() {
	local v="RUNS_$1"
	tr ' ' '\n' <<<"${!v}" | grep . | cut -d/ -f"$2" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'
}

# ratio_median A B: the median over the rounds of A's req/s / B's (each
# round's configurations ran back to back, so the machine's drift cancels)
ratio_median() {
	local a="RUNS_$1" b="RUNS_$2"
	paste -d' ' <(tr ' ' '\n' <<<"${!a}" | grep . | cut -d/ -f1) <(tr ' ' '\n' <<<"${!b}" | grep . | cut -d/ -f1) |
		awk '{ print $1 / $2 }' | sort -g | awk '{ a[NR] = $1 } END { printf "%.3f", a[int((NR + 1) / 2)] }'
}
cost() { awk -v r="$1" 'BEGIN { printf "%.1f", (1 - r) * 100 }'; }

trap 'for p in "${GW_PIDS[@]}"; do kill "$p" 2>/dev/null; done; stop_pidfile "$BENCH_DIR/redis.pid"; pg_stop "$BENCH_DIR"; rm -rf "$BENCH_DIR"' EXIT
REDIS_URL=redis://127.0.0.1:$REDIS_PORT
start off "/users/$OTHER" IAM_RATE_LIMIT=off IAM_CACHE=off
start local "/users/$OTHER" IAM_CACHE=off
start redis "/users/$OTHER" IAM_CACHE=off IAM_REDIS_URL="$REDIS_URL"
start nolease "/users/$OTHER" IAM_CACHE=off IAM_REDIS_URL="$REDIS_URL" IAM_RATE_LIMIT_LEASE_MS=0
start off_many "/users/$OTHER" IAM_RATE_LIMIT=off IAM_CACHE=off
start redis_many "/users/$OTHER" IAM_CACHE=off IAM_REDIS_URL="$REDIS_URL"
start uncached /users/me IAM_CACHE=off IAM_REDIS_URL="$REDIS_URL"
start cached /users/me IAM_REDIS_URL="$REDIS_URL"
for name in "${CONFIGS[@]}"; do	# warm-up
	v="URL_$name"; wrk_caller "$name"; wrk -t2 -c16 -d2s "${CALLER[@]}" "${!v}" >/dev/null
done
for round in $(seq 1 "$ROUNDS"); do
	log "round $round of $ROUNDS, ${SECONDS_EACH}s per configuration ..."
	for name in "${CONFIGS[@]}"; do measure "$name"; done
done
for name in "${CONFIGS[@]}"; do
	printf -v "RPS_$name" '%s' "$(median "$name" 1)"
	printf -v "P99_$name" '%s' "$(median "$name" 2)"
done
R_LOCAL=$(ratio_median local off)
R_REDIS=$(ratio_median redis off)
R_NOLEASE=$(ratio_median nolease off)
R_MANY=$(ratio_median redis_many off_many)
R_CACHE=$(ratio_median cached uncached)

mkdir -p bench/results
tee bench/results/ratelimit.md <<EOF2
# Rate limiting and response cache (bench/ratelimit.sh)

wrk, 2 threads, 16 connections, ${SECONDS_EACH} s per configuration, $ROUNDS interleaved rounds;
release gateway with its default IAM_THREADS (4 per core) and pool; PostgreSQL, Redis and wrk
on the same $(nproc)-core machine.

| configuration | req/s | p99 (ms) | |
|---|---|---|---|
| GET /users/{id}, limiter off | $RPS_off | $P99_off | baseline |
| GET /users/{id}, limiter in process | $RPS_local | $P99_local | costs $(cost "$R_LOCAL") % of throughput |
| GET /users/{id}, limiter in Redis (leases) | $RPS_redis | $P99_redis | costs $(cost "$R_REDIS") % of throughput (target <= 15 %) |
| GET /users/{id}, limiter in Redis, no leases | $RPS_nolease | $P99_nolease | costs $(cost "$R_NOLEASE") % of throughput |
| GET /users/{id}, 1,000 callers in turn, limiter off | $RPS_off_many | $P99_off_many | baseline |
| GET /users/{id}, 1,000 callers in turn, limiter in Redis (leases) | $RPS_redis_many | $P99_redis_many | costs $(cost "$R_MANY") % of throughput |
| GET /users/me, not cached | $RPS_uncached | $P99_uncached | baseline |
| GET /users/me, cache hit (L1) | $RPS_cached | $P99_cached | ${R_CACHE}x the uncached throughput (target >= 2x) |

req/s and p99 are medians over the rounds; the costs and the ratio are medians of the
per-round ratios.  "No leases" is \`IAM_RATE_LIMIT_LEASE_MS=0\`: one Redis round trip per
request.  With leases (the default) a caller's tokens come from Redis up to 64 at a time
and are spent in process; the single caller above is their best case, the 1,000 callers
(about $(awk -v r="$RPS_redis_many" 'BEGIN { printf "%.0f", r / 1000 }') requests per second each, leases of 1 s) a hard one.
EOF2
