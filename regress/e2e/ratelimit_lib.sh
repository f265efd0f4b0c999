# ratelimit_lib.sh: helpers of ratelimit_*.t and cache_*.t (#7), on top of
# lib.sh: several gateways at once, each with its own log, and test classes
# of iam.rate_limit_classes that are put back when the test ends.

# gw_start NAME [VAR=value...]: a gateway verifying $JWT_KEY tokens, on a
# free port; sets GW_<NAME>=host:port and GW_PID_<NAME>.  Its log is
# $E2E_TMP/gw-NAME.log.
gw_start() {
	local name=$1 listen pid
	shift
	JWT_KEY=$E2E_TMP/jwt-es256.pem
	[ -s "$JWT_KEY" ] || openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$JWT_KEY" 2>/dev/null
	for _ in 1 2 3; do
		listen=127.0.0.1:$(free_port $((18180 + RANDOM % 500)))
		env IAM_DATABASE_URL="$IAM_TEST_DATABASE_URL" IAM_REDIS_URL="$IAM_TEST_REDIS_URL" \
			IAM_LISTEN="$listen" IAM_THREADS=2 IAM_JWT_KEY_FILE="$JWT_KEY" "$@" \
			"$IAM_TEST_GATEWAY" >/dev/null 2>"$E2E_TMP/gw-$name.log" &
		pid=$!
		printf -v "GW_$name" '%s' "$listen"
		printf -v "GW_PID_$name" '%s' "$pid"
		_gw_pids+=("$pid")
		# another server may have taken the port meanwhile: then another one
		wait_gateway "http://$listen/healthz" "$pid" "$E2E_TMP/gw-$name.log" && return 0
		kill -0 "$pid" 2>/dev/null && return 1
	done
	return 1
}

# gw_use NAME: later requests (api, request) go to gateway NAME.
gw_use() { local v="GW_$1"; GATEWAY_LISTEN=${!v}; }

# gw_stop NAME: SIGTERM, wait (15 s at most); sets GW_EXIT.
gw_stop() {
	local v="GW_PID_$1" pid
	pid=${!v}
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null
	for _ in $(seq 1 150); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null
	wait "$pid"
	GW_EXIT=$?
	printf -v "$v" '%s' ""
}

# gw_metric NAME SERIES: the value of one /metrics series of gateway NAME.
gw_metric() {
	local v="GW_$1"
	curl -s -m 10 "http://${!v}/metrics" | awk -v s="$2" '$1 == s { print $2; exit }'
}

# gw_log_clean NAME: the log is all JSON lines (no sanitizer report).
gw_log_clean() { ! grep -qv '^{' "$E2E_TMP/gw-$1.log"; }

# rl_class NAME REQUESTS PER_SECONDS: create (or change) a test class.
rl_class() {
	sql "INSERT INTO iam.rate_limit_classes VALUES ('$1', $2, $3)
		 ON CONFLICT (name) DO UPDATE SET requests = $2, per_seconds = $3" >/dev/null
	_rl_classes+=("$1")
}

# rl_route METHOD PATH CLASS: give a route a class until the test ends.
rl_route() {
	local old
	old=$(sql "SELECT rate_limit_class FROM iam.routes WHERE method = '$1' AND path = '$2'")
	_rl_restore+=("UPDATE iam.routes SET rate_limit_class = '$old' WHERE method = '$1' AND path = '$2'")
	sql "UPDATE iam.routes SET rate_limit_class = '$3' WHERE method = '$1' AND path = '$2'" >/dev/null
}

_rl_cleanup() {
	local s c
	for s in "${_rl_restore[@]}"; do sql "$s" >/dev/null; done
	for c in "${_rl_classes[@]}"; do sql "DELETE FROM iam.rate_limit_classes WHERE name = '$c'" >/dev/null; done
	for pid in "${_gw_pids[@]}"; do kill -KILL "$pid" 2>/dev/null; done
	[ -n "${F_REDIS_DIR:-}" ] && stop_pidfile "$F_REDIS_DIR/redis.pid"
	gateway_stop >/dev/null 2>&1
	rm -rf "$E2E_TMP" ${F_REDIS_DIR:+"$F_REDIS_DIR"}
}
_rl_restore=()
_rl_classes=()
_gw_pids=()
trap _rl_cleanup EXIT

# wait_limit PATH TOKEN N: poll (10 s at most) until PATH answers with
# RateLimit-Limit N, i.e. the gateway has reloaded the classes.  Use a
# token of a user the test does not count with.
wait_limit() {
	for _ in $(seq 1 50); do
		api GET "$1" "$2"
		[ "$(header RateLimit-Limit)" = "$3" ] && return 0
		sleep 0.2
	done
	return 1
}
