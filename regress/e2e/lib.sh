# lib.sh: TAP helpers for the end-to-end tests, and control of the real
# gateway binary and of the throwaway servers that scripts/test.sh started
# (IAM_TEST_* variables).  Every wait is bounded.

. "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

: "${IAM_TEST_GATEWAY:?run through make test}"
E2E_TMP=$(mktemp -d /tmp/pg_iam-e2e.XXXXXX)
trap 'gateway_stop >/dev/null 2>&1; rm -rf "$E2E_TMP"' EXIT

_tap_n=0
_tap_failed=0
_tap_planned=0
plan() { echo "1..$1"; _tap_planned=1; }
ok() {		# ok COND-EXIT-STATUS NAME
	_tap_n=$((_tap_n + 1))
	if [ "$1" -eq 0 ]; then
		echo "ok $_tap_n - $2"
	else
		echo "not ok $_tap_n - $2"
		_tap_failed=$((_tap_failed + 1))
	fi
}
is() {		# is GOT WANT NAME
	local got=$1 want=$2
	[ "$got" = "$want" ]
	ok $? "$3"
	[ "$got" = "$want" ] || echo "#   got: '$got'"$'\n'"#   want: '$want'"
}
like() {	# like GOT REGEX NAME
	[[ "$1" =~ $2 ]]
	ok $? "$3"
	[[ "$1" =~ $2 ]] || echo "#   got: '$1'"$'\n'"#   want match: '$2'"
}
unlike() {	# unlike GOT REGEX NAME
	! [[ "$1" =~ $2 ]]
	ok $? "$3"
}
# done_testing: print the plan when none was given up front, and exit.
done_testing() {
	[ "$_tap_planned" -eq 1 ] || echo "1..$_tap_n"
	exit $((_tap_failed > 0))
}

# request METHOD PATH [curl args...]: sets STATUS, BODY and HEADERS.
request() {
	local method=$1 path=$2
	shift 2
	STATUS=$(curl -s -m 10 -X "$method" -D "$E2E_TMP/headers" -o "$E2E_TMP/body" \
		-w '%{http_code}' "$@" "http://$GATEWAY_LISTEN$path")
	BODY=$(cat "$E2E_TMP/body")
	HEADERS=$(tr -d '\r' <"$E2E_TMP/headers")
}
# header NAME: value of a response header of the last request.
header() { printf '%s\n' "$HEADERS" | awk -v h="$1" 'BEGIN { IGNORECASE = 1 } tolower($0) ~ "^" tolower(h) ":" { sub(/^[^:]*:[ ]*/, ""); print; exit }'; }

# gateway_start [VAR=value...]: start the gateway on a free port with the
# test servers' settings (overridable); waits for its /healthz, on another
# port if the one chosen was taken meanwhile (3 tries).
gateway_start() {
	for _ in 1 2 3; do
		GATEWAY_LISTEN=127.0.0.1:$(free_port $((18080 + RANDOM % 100)))
		env IAM_DATABASE_URL="$IAM_TEST_DATABASE_URL" IAM_REDIS_URL="$IAM_TEST_REDIS_URL" \
			IAM_LISTEN="$GATEWAY_LISTEN" IAM_THREADS=2 "$@" \
			"$IAM_TEST_GATEWAY" >"$E2E_TMP/gateway.out" 2>"$E2E_TMP/gateway.log" &
		GATEWAY_PID=$!
		wait_gateway "http://$GATEWAY_LISTEN/healthz" "$GATEWAY_PID" "$E2E_TMP/gateway.log" && return 0
		kill -0 "$GATEWAY_PID" 2>/dev/null && return 1	# up, but not answering
	done
	return 1
}

# gateway_stop: SIGTERM, then gateway_wait.
gateway_stop() {
	[ -n "${GATEWAY_PID:-}" ] || return 0
	kill -TERM "$GATEWAY_PID" 2>/dev/null
	gateway_wait
}

# gateway_wait: wait (15 s at most, then SIGKILL) for the gateway to exit;
# sets GATEWAY_EXIT.
gateway_wait() {
	for _ in $(seq 1 150); do
		kill -0 "$GATEWAY_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$GATEWAY_PID" 2>/dev/null
	wait "$GATEWAY_PID"
	GATEWAY_EXIT=$?
	GATEWAY_PID=
}

# gateway_run_config [VAR=value...]: run the gateway expecting it to refuse
# its configuration; sets RUN_EXIT and RUN_ERR.
gateway_run_config() {
	env -i PATH="$PATH" "$@" timeout 10 "$IAM_TEST_GATEWAY" >/dev/null 2>"$E2E_TMP/config.err"
	RUN_EXIT=$?
	RUN_ERR=$(cat "$E2E_TMP/config.err")
}

# poll_status PATH WANT: retry a GET (at most 10 s) until it answers WANT.
poll_status() {
	for _ in $(seq 1 50); do
		request GET "$1"
		[ "$STATUS" = "$2" ] && return 0
		sleep 0.2
	done
	return 1
}

# ---- the REST API (api_*.t) ----

# sql QUERY: run QUERY as superuser in database iam; unaligned tuples only.
sql() { pg_psql "$IAM_TEST_DIR" "$IAM_TEST_PG_PORT" -d iam -tA -c "$1"; }

# api_fixtures: two organisations, A and B, each with an admin and a
# member, under fresh names (the suites share one database).  Sets ORG_A,
# ORG_B, ADMIN_A, MEMBER_A, ADMIN_B, MEMBER_B and SUFFIX.
api_fixtures() {
	SUFFIX=$(openssl rand -hex 4)
	ORG_A=$(sql "SELECT iam.create_organization('Org A $SUFFIX', 'a-$SUFFIX')")
	ORG_B=$(sql "SELECT iam.create_organization('Org B $SUFFIX', 'b-$SUFFIX')")
	ADMIN_A=$(sql "SELECT iam.create_user('$ORG_A', 'admin-$SUFFIX@a.example', 'Admin A', 'admin', NULL)")
	MEMBER_A=$(sql "SELECT iam.create_user('$ORG_A', 'member-$SUFFIX@a.example', 'Member A', 'member', NULL)")
	ADMIN_B=$(sql "SELECT iam.create_user('$ORG_B', 'admin-$SUFFIX@b.example', 'Admin B', 'admin', NULL)")
	MEMBER_B=$(sql "SELECT iam.create_user('$ORG_B', 'secret-$SUFFIX@b.example', 'Bea Secret', 'member', NULL)")
}

# api_gateway_start [VAR=value...]: an ES256 key in $JWT_KEY and a gateway
# that verifies with it.
api_gateway_start() {
	JWT_KEY=$E2E_TMP/jwt-es256.pem
	[ -s "$JWT_KEY" ] || openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$JWT_KEY" 2>/dev/null
	gateway_start IAM_JWT_KEY_FILE="$JWT_KEY" "$@"
}

# mint SUB ORG: an access token from `iam-gateway token` with $JWT_KEY.
mint() { env -i PATH="$PATH" IAM_JWT_KEY_FILE="$JWT_KEY" "$IAM_TEST_GATEWAY" token --sub "$1" --org "$2"; }

# api METHOD PATH TOKEN [curl args...]: a request under /api/v1 with a bearer
# token (none when TOKEN is "-"); sets STATUS, BODY and HEADERS.
api() {
	local method=$1 path=$2 token=$3
	shift 3
	if [ "$token" = - ]; then
		request "$method" "/api/v1$path" "$@"
	else
		request "$method" "/api/v1$path" -H "Authorization: Bearer $token" "$@"
	fi
}

# api_json METHOD PATH TOKEN BODY [curl args...]: the same with a JSON body.
api_json() {
	local method=$1 path=$2 token=$3 body=$4
	shift 4
	api "$method" "$path" "$token" -H 'Content-Type: application/json' --data-binary "$body" "$@"
}

# jqr FILTER: jq -r on the last response body ("" when it is not JSON).
jqr() { jq -r "$1" <<<"$BODY" 2>/dev/null; }

# is_problem STATUS CODE NAME: the last response is a problem+json of STATUS
# whose code is CODE (a regex), with no SQL or internal names in it.
is_problem() {
	local want=$1 code=$2 name=$3
	[ "$STATUS" = "$want" ] &&
		[[ "$(header Content-Type)" == application/problem+json* ]] &&
		[ "$(jqr .status)" = "$want" ] &&
		[[ "$(jqr .code)" =~ ^($code)$ ]] &&
		[ "$(jqr .request_id)" = "$(header X-Request-Id)" ] &&
		! [[ "$BODY" =~ (SELECT|INSERT|UPDATE|DELETE|syntax|relation|constraint|iam\.|pg_|CONTEXT|PL/pgSQL|violates) ]]
	ok $? "$name"
	if [ "$STATUS" != "$want" ] || ! [[ "$(jqr .code)" =~ ^($code)$ ]]; then
		echo "#   got: $STATUS $BODY"
	fi
}
