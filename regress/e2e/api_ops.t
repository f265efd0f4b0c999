#!/usr/bin/env bash
# api_ops.t: operations around the API: /openapi.json (valid OpenAPI 3.1),
# /metrics, CORS, request ids, the access log, route reloads on NOTIFY
# without a restart, and the idle-connection timeout.
. "$(dirname "$0")/lib.sh"

api_fixtures
api_gateway_start IAM_CORS_ORIGINS="https://admin.example.com,http://localhost:3000" IAM_CONNECTION_TIMEOUT=2
TA=$(mint "$ADMIN_A" "$ORG_A")

# ---- /openapi.json ----
request GET /openapi.json
is "$STATUS" 200 "GET /openapi.json: 200"
like "$(jqr .openapi)" '^3\.1\.' "it is an OpenAPI 3.1 document"
printf '%s' "$BODY" >"$E2E_TMP/openapi.json"
"$(dirname "$0")/../../scripts/openapi_validator.sh" "$E2E_TMP/openapi.json" >"$E2E_TMP/validator.out" 2>&1
ok $? "the OpenAPI validator accepts it"
[ $? -eq 0 ] || head -n 20 "$E2E_TMP/validator.out" | sed 's/^/# /'
routes=$(sql "SELECT count(*) FROM iam.routes")
is "$(jqr '[.paths | to_entries[] | select(.key | startswith("/api/v1/")) | .value | keys[] | select(test("^(get|post|put|patch|delete)$"))] | length')" "$routes" \
	"one operation per row of iam.routes"
[ "$(jqr '[.paths | to_entries[] | select(.key | startswith("/api/v1/")) | .value | keys[] | select(test("^(get|post|put|patch|delete)$"))] | length')" = "$routes" ] ||
	jqr '.paths | to_entries[] | .key + " " + (.value | keys | join(","))' | sed 's/^/# /' 
printf '%s' '{"openapi":"3.1.0","info":{"title":"x"},"paths":{}}' >"$E2E_TMP/bad.json"
"$(dirname "$0")/../../scripts/openapi_validator.sh" "$E2E_TMP/bad.json" >/dev/null 2>&1
ok $((! $?)) "(the validator does refuse an invalid document)"

# ---- request ids ----
api GET /users/me "$TA" -H 'X-Request-Id: ops-trace.42'
is "$(header X-Request-Id)" ops-trace.42 "a well-formed X-Request-Id is kept on API responses"
api GET /users/me - -H 'X-Request-Id: ops-trace.43'
[ "$(header X-Request-Id)" = ops-trace.43 ] && [ "$(jqr .request_id)" = ops-trace.43 ]
ok $? "... and it is the problem's request_id"
api GET /users/me "$TA" -H 'X-Request-Id: <script>'
like "$(header X-Request-Id)" '^[0-9a-f]{32}$' "a malformed one is replaced"
[ "$(header X-Content-Type-Options)" = nosniff ]
ok $? "nosniff on API responses"

# ---- /metrics ----
metric() {	# metric LINE-PREFIX: the value, 0 when absent
	request GET /metrics
	local v
	v=$(grep -F "$1" <<<"$BODY" | awk '{ print $NF }' | head -n 1)
	echo "${v:-0}"
}
m200=$(metric 'iam_http_requests_total{route="GET /users/me",status="200"}')
mia=$(metric 'iam_db_errors_total{sqlstate_class="IA"}')
for _ in 1 2 3; do api GET /users/me "$TA"; done
api GET /users/00000000-0000-4000-8000-000000000000 "$TA"
is "$(metric 'iam_http_requests_total{route="GET /users/me",status="200"}')" "$((m200 + 3))" \
	"/metrics: requests counted by route template and status"
is "$(metric 'iam_db_errors_total{sqlstate_class="IA"}')" "$((mia + 1))" "/metrics: database errors by SQLSTATE class"
[ "$(metric 'iam_http_requests_total{route="GET /users/{id}",status="404"}')" -ge 1 ]
ok $? "/metrics: labels are templates, never concrete ids"
request GET /metrics
like "$(header Content-Type)" '^text/plain; version=0.0.4' "/metrics is Prometheus text"
[ "$(grep -F 'iam_http_request_duration_seconds_count{route="GET /users/me"}' <<<"$BODY" | awk '{ print $NF }')" -ge 3 ] &&
	grep -q 'iam_http_request_duration_seconds_bucket{route="GET /users/me",le="+Inf"}' <<<"$BODY"
ok $? "/metrics: a latency histogram per route"
grep -qE '^iam_http_in_flight [0-9]+$' <<<"$BODY" && grep -qE '^iam_db_pool_waits_total [0-9]+$' <<<"$BODY"
ok $? "/metrics: in-flight gauge and pool waits"
! grep -q "$ADMIN_A" <<<"$BODY"
ok $? "/metrics: no ids"

# ---- CORS ----
request OPTIONS /api/v1/users -H 'Origin: https://admin.example.com' \
	-H 'Access-Control-Request-Method: POST' -H 'Access-Control-Request-Headers: authorization, content-type'
[ "$STATUS" = 204 ] && [ "$(header Access-Control-Allow-Origin)" = https://admin.example.com ] &&
	[[ "$(header Access-Control-Allow-Methods)" == *POST* ]] &&
	[[ "$(header Access-Control-Allow-Headers)" == *Authorization* ]] &&
	[[ "$(header Access-Control-Allow-Headers)" == *Content-Type* ]] &&
	[ -n "$(header Access-Control-Max-Age)" ] && [ "$(header Vary)" = Origin ]
ok $? "preflight from an allowed origin: 204 with the CORS headers"
request OPTIONS /api/v1/users -H 'Origin: https://evil.example.com' -H 'Access-Control-Request-Method: POST'
[ -z "$(header Access-Control-Allow-Origin)" ] && [ -z "$(header Access-Control-Allow-Methods)" ]
ok $? "preflight from another origin: no CORS headers"
request OPTIONS /api/v1/nope -H 'Origin: https://admin.example.com'
is "$STATUS" 404 "preflight of an unknown path: 404"
api GET /users/me "$TA" -H 'Origin: http://localhost:3000'
[ "$(header Access-Control-Allow-Origin)" = http://localhost:3000 ] && [ "$(header Vary)" = Origin ]
ok $? "a request from an allowed origin carries Access-Control-Allow-Origin"
api GET /users/me "$TA" -H 'Origin: http://localhost:3001'
[ -z "$(header Access-Control-Allow-Origin)" ]
ok $? "a request from another origin carries none"
api GET /users/me - -H 'Origin: https://admin.example.com'
[ "$STATUS" = 401 ] && [ "$(header Access-Control-Allow-Origin)" = https://admin.example.com ]
ok $? "errors carry CORS headers too (the browser can read the problem)"

# ---- access log ----
api GET /users/me "$TA" -H 'X-Request-Id: ops-log-1'
request GET "/api/v1/users/jane.doe@example.com?token=sekrit" -H "Authorization: Bearer $TA" -H 'X-Request-Id: ops-log-2'
sleep 0.3
line=$(grep '"request_id":"ops-log-1"' "$E2E_TMP/gateway.log" | grep '"msg":"request"')
is "$(jq -r '[.route, .status, .user_id] | join(" ")' <<<"$line")" "GET /users/me 200 $ADMIN_A" \
	"access log: route template, status and user id"
jq -e '.duration_ms >= 0' >/dev/null <<<"$line"
ok $? "access log: duration"
line=$(grep '"request_id":"ops-log-2"' "$E2E_TMP/gateway.log" | grep '"msg":"request"')
[[ "$line" == *'j***@example.com'* ]] && [[ "$line" != *jane.doe* ]]
ok $? "access log: an email in the path is masked"
! grep -qF "${TA%%.*}" "$E2E_TMP/gateway.log" && ! grep -q sekrit "$E2E_TMP/gateway.log"
ok $? "access log: no token, no query string"

# ---- routes reload on NOTIFY, without a restart ----
P=/e2e-ping-$SUFFIX
api GET "$P" "$TA"
is "$STATUS" 404 "a route not yet declared: 404"
sql "INSERT INTO iam.routes (method, path, handler, permission, read_only, summary)
     VALUES ('GET', '$P', 'iam.api_permissions_list(jsonb,jsonb)', 'roles.read', true, 'e2e')" >/dev/null
found=1
for _ in $(seq 1 50); do api GET "$P" "$TA"; [ "$STATUS" = 200 ] && { found=0; break; }; sleep 0.1; done
ok $found "INSERT INTO iam.routes: the gateway serves it within 5 s"
[[ "$BODY" == *users.read_pii* ]]
ok $? "... with the declared handler"
request GET /openapi.json
[ "$(jqr ".paths[\"/api/v1$P\"] | has(\"get\")")" = true ]
ok $? "/openapi.json follows the reload"
sql "UPDATE iam.routes SET path = '$P-v2' WHERE path = '$P'" >/dev/null
found=1
for _ in $(seq 1 50); do api GET "$P-v2" "$TA"; [ "$STATUS" = 200 ] && { found=0; break; }; sleep 0.1; done
ok $found "UPDATE iam.routes: the new path answers within 5 s"
api GET "$P" "$TA"
is "$STATUS" 404 "... and the old one is gone"
sql "UPDATE iam.routes SET method = 'POST' WHERE path = '$P-v2'" >/dev/null
found=1
for _ in $(seq 1 50); do api GET "$P-v2" "$TA"; [ "$STATUS" = 405 ] && { found=0; break; }; sleep 0.1; done
ok $found "UPDATE of the method: GET becomes 405"
like "$(header Allow)" '^POST$' "... with Allow: POST"
sql "DELETE FROM iam.routes WHERE path = '$P-v2'" >/dev/null
found=1
for _ in $(seq 1 50); do api POST "$P-v2" "$TA"; [ "$STATUS" = 404 ] && { found=0; break; }; sleep 0.1; done
ok $found "DELETE FROM iam.routes: 404 again"
api GET /users/me "$TA"
is "$STATUS" 200 "the other routes kept working through the reloads"
grep -q '"msg":"routes loaded"' "$E2E_TMP/gateway.log" &&
	[ "$(grep -c '"msg":"routes loaded"' "$E2E_TMP/gateway.log")" -ge 5 ]
ok $? "every reload is logged"

# ---- the routes loader survives a PostgreSQL restart ----
pg_stop "$IAM_TEST_DIR"
api GET /users/me "$TA"
[ "$STATUS" = 503 ] && [ -n "$(header Retry-After)" ] && [ "$(jqr .code)" = database_unavailable ]
ok $? "PostgreSQL down: 503 with Retry-After"
pg_start "$IAM_TEST_DIR"
found=1
for _ in $(seq 1 50); do api GET /users/me "$TA"; [ "$STATUS" = 200 ] && { found=0; break; }; sleep 0.2; done
ok $found "PostgreSQL back: 200 again without a restart"
# a restart while the pool holds open connections: each was told FATAL and
# closed, and must be replaced, not used for a request that then fails
curls=()
for _ in 1 2 3 4 5 6; do
	curl -s -o /dev/null -m 10 -H "Authorization: Bearer $TA" "http://$GATEWAY_LISTEN/api/v1/users?limit=1" &
	curls+=($!)
done
wait "${curls[@]}"
pg_stop "$IAM_TEST_DIR"
pg_start "$IAM_TEST_DIR"
statuses=""
for _ in 1 2 3 4 5 6 7 8; do api GET '/users?limit=1' "$TA"; statuses="$statuses $STATUS"; done
is "$statuses" " 200 200 200 200 200 200 200 200" "after a PostgreSQL restart, no request fails on a pooled connection that the server closed"
sql "INSERT INTO iam.routes (method, path, handler, permission, read_only, summary)
     VALUES ('GET', '$P-v3', 'iam.api_permissions_list(jsonb,jsonb)', 'roles.read', true, 'e2e')" >/dev/null
found=1
for _ in $(seq 1 50); do api GET "$P-v3" "$TA"; [ "$STATUS" = 200 ] && { found=0; break; }; sleep 0.2; done
ok $found "after the restart the loader listens again (a new route is served)"
sql "DELETE FROM iam.routes WHERE path = '$P-v3'" >/dev/null

# ---- idle clients are cut off (IAM_CONNECTION_TIMEOUT=2) ----
start=$(date +%s)
timeout 10 bash -c "exec 3<>/dev/tcp/${GATEWAY_LISTEN%:*}/${GATEWAY_LISTEN#*:}; cat <&3 >/dev/null"
elapsed=$(($(date +%s) - start))
[ "$elapsed" -ge 1 ] && [ "$elapsed" -le 6 ]
ok $? "an idle connection is closed by the gateway after the timeout (${elapsed}s)"

grep -v '^{' "$E2E_TMP/gateway.log" | grep -c . | grep -qx 0
ok $? "every gateway log line is JSON (no sanitizer report)"
grep -v '^{' "$E2E_TMP/gateway.log" | head -n 20 | sed 's/^/# /' 
gateway_stop
is "$GATEWAY_EXIT" 0 "the gateway stops cleanly"
done_testing
