#!/usr/bin/env bash
# gateway_health.t: /healthz and /readyz of the real gateway, through a
# PostgreSQL and a Redis outage, request ids, error bodies, access log and
# graceful shutdown.
. "$(dirname "$0")/lib.sh"
plan 35

gateway_start
ok $? "gateway starts and answers /healthz"

request GET /healthz
is "$STATUS" 200 "/healthz is 200"
is "$(jq -r .status <<<"$BODY")" ok "/healthz says ok"
like "$(header Content-Type)" '^application/json' "/healthz is JSON"
like "$(header X-Request-Id)" '^[0-9a-f]{32}$' "a request id is generated"
first_id=$(header X-Request-Id)
request GET /healthz
[ "$(header X-Request-Id)" != "$first_id" ]
ok $? "each request gets its own id"
is "$(header X-Content-Type-Options)" nosniff "nosniff on every response"

request GET /healthz -H 'X-Request-Id: trace-42.a_b'
is "$(header X-Request-Id)" trace-42.a_b "a well-formed incoming request id is kept"
request GET /healthz -H 'X-Request-Id: bad id <script>'
like "$(header X-Request-Id)" '^[0-9a-f]{32}$' "a malformed incoming request id is replaced"

request GET /readyz
is "$STATUS" 200 "/readyz is 200 with PostgreSQL and Redis up"
is "$(jq -r '.database + " " + .redis' <<<"$BODY")" "ok ok" "/readyz reports both dependencies"

request GET /no/such/path
is "$STATUS" 404 "an unknown path is 404"
like "$(header Content-Type)" '^application/problem\+json' "errors are problem+json"
is "$(jq -r 'keys | sort | join(",")' <<<"$BODY")" "code,detail,request_id,status,title,type" \
	"a problem has exactly type, title, status, detail, code, request_id"
is "$(jq -r .request_id <<<"$BODY")" "$(header X-Request-Id)" "the problem's request_id matches the header"
is "$(jq -r .status <<<"$BODY")" 404 "the problem's status matches"

request POST /healthz
is "$STATUS" 405 "a known path with the wrong method is 405"
like "$(header Allow)" 'GET' "405 names the allowed methods"

# PostgreSQL goes away and comes back: no gateway restart
pg_stop "$IAM_TEST_DIR"
request GET /readyz
is "$STATUS" 503 "/readyz is 503 while PostgreSQL is down"
is "$(jq -r .code <<<"$BODY")" database_unavailable "the problem says the database is unavailable"
like "$(header Retry-After)" '^[0-9]+$' "503 carries Retry-After"
unlike "$BODY" 'could not|connection to server|5433|'"$IAM_TEST_PG_PORT"'|iam_gateway|password' \
	"the 503 body leaks no connection detail"
request GET /healthz
is "$STATUS" 200 "/healthz stays 200: the process is alive"
pg_start "$IAM_TEST_DIR"
poll_status /readyz 200
ok $? "/readyz is 200 again after PostgreSQL restarts, without restarting the gateway"

# Redis goes away and comes back
redis-cli -h 127.0.0.1 -p "$IAM_TEST_REDIS_PORT" shutdown nosave >/dev/null 2>&1
request GET /readyz
is "$STATUS" 503 "/readyz is 503 while Redis is down"
is "$(jq -r .code <<<"$BODY")" redis_unavailable "the problem says Redis is unavailable"
redis_start "$IAM_TEST_DIR" "$IAM_TEST_REDIS_PORT"
poll_status /readyz 200
ok $? "/readyz is 200 again after Redis restarts"

# one JSON access-log line per request, without the query string
request GET '/healthz?access_token=sekrit-value' -H 'Authorization: Bearer sekrit-token'
sleep 0.2
log_line=$(grep '"path":"/healthz"' "$E2E_TMP/gateway.log" | tail -n 1)
jq -e . >/dev/null <<<"$log_line"
ok $? "an access-log line is one JSON object"
is "$(jq -r '[.method, .status, .path] | join(" ")' <<<"$log_line")" "GET 200 /healthz" \
	"the line has method, status and path"
grep -q sekrit "$E2E_TMP/gateway.log"
ok $((! $?)) "no token or query string reaches the log"
nonjson=$(grep -v '^{' "$E2E_TMP/gateway.log" | grep -vc '^$')
is "$nonjson" 0 "every stderr line is JSON (and no sanitizer report)"

# graceful shutdown: a request in flight when SIGTERM arrives still completes
# (the client sends its body a second late, so it is in flight meanwhile)
( { printf 'POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\n'
	sleep 1; printf 'hello'; sleep 1; } |
	timeout 10 curl -s -m 8 telnet://"$GATEWAY_LISTEN" >"$E2E_TMP/inflight" 2>/dev/null ) &
client=$!
sleep 0.3
kill -TERM "$GATEWAY_PID"
wait "$client"
grep -q '^HTTP/1.1 405' "$E2E_TMP/inflight"
ok $? "a request in flight at SIGTERM is answered"
gateway_wait
is "$GATEWAY_EXIT" 0 "SIGTERM ends the gateway with status 0 (ASan/UBSan/LSan clean)"
grep -q '"msg":"stopped"' "$E2E_TMP/gateway.log"
ok $? "shutdown is logged"
(exec 3<>"/dev/tcp/${GATEWAY_LISTEN%:*}/${GATEWAY_LISTEN#*:}") 2>/dev/null
ok $((! $?)) "the port is closed after shutdown"

done_testing
