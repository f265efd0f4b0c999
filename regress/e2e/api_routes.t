#!/usr/bin/env bash
# api_routes.t: every route of iam.routes over HTTP through the real gateway:
# the happy path, and its 400/401/403/404/405/409/412/413/415/422 paths.
. "$(dirname "$0")/lib.sh"

api_fixtures
api_gateway_start
TA=$(mint "$ADMIN_A" "$ORG_A")
TM=$(mint "$MEMBER_A" "$ORG_A")
NOPE=00000000-0000-4000-8000-000000000000

# Every route of the admin API, with its path filled in (ids of org A), for
# the table-driven checks.  The list must match iam.routes outside /auth/
# (auth_flows.t) and /reports/ (reports_api.t): checked first.
declare -A FILL=([id]=$MEMBER_A [role]=auditor)
ROUTES=(
	"GET /users/me" "GET /users" "POST /users" "GET /users/{id}" "PATCH /users/{id}"
	"DELETE /users/{id}" "POST /users/{id}/restore" "GET /users/{id}/permissions"
	"POST /users/{id}/roles" "DELETE /users/{id}/roles/{role}" "GET /roles" "POST /roles"
	"GET /roles/{id}" "PATCH /roles/{id}" "DELETE /roles/{id}" "PUT /roles/{id}/permissions"
	"GET /permissions" "POST /authz/check" "GET /audit-logs" "GET /audit-logs/verify"
	"GET /activity-logs"
)
fill() { local p=$1; p=${p//\{id\}/${FILL[id]}}; echo "${p//\{role\}/${FILL[role]}}"; }

declared=$(sql "SELECT method || ' ' || regexp_replace(path, ':[a-z]+}', '}', 'g') FROM iam.routes
				WHERE path !~ '^/(auth|reports)/'" | LC_ALL=C sort | paste -sd, -)
listed=$(printf '%s\n' "${ROUTES[@]}" | LC_ALL=C sort | paste -sd, -)
is "$listed" "$declared" "the test covers exactly the admin routes of iam.routes"

# ---- 401 on every route: no token, a malformed one, another scheme ----
bad=0
for r in "${ROUTES[@]}"; do
	m=${r%% *}; p=$(fill "${r#* }")
	api "$m" "$p" - -H 'Content-Type: application/json' --data-binary '{}'
	[ "$STATUS" = 401 ] && [ "$(header WWW-Authenticate)" = Bearer ] && [ "$(jqr .code)" = unauthorized ] || { bad=1; echo "# no token: $r -> $STATUS"; }
	api "$m" "$p" not.a.token
	[ "$STATUS" = 401 ] && [ "$(header WWW-Authenticate)" = 'Bearer error="invalid_token"' ] || { bad=1; echo "# bad token: $r -> $STATUS"; }
	request "$m" "/api/v1$p" -H "Authorization: Basic $(printf 'a:b' | base64)"
	[ "$STATUS" = 401 ] && [ "$(header WWW-Authenticate)" = Bearer ] || { bad=1; echo "# basic: $r -> $STATUS"; }
done
ok $bad "every route: 401 + WWW-Authenticate without a token, with a bad token, with Basic"

# ---- 405 + Allow on every path, for a method it lacks ----
bad=0
declare -A METHODS=()
for r in "${ROUTES[@]}"; do METHODS[${r#* }]+="${r%% *} "; done
for p in "${!METHODS[@]}"; do
	for m in GET POST PUT PATCH DELETE; do
		[[ " ${METHODS[$p]}" == *" $m "* ]] && continue
		api "$m" "$(fill "$p")" "$TA"
		allow=$(header Allow)
		want=$(for x in ${METHODS[$p]}; do echo "$x"; done | sort | paste -sd' ')
		got=$(tr -d ',' <<<"$allow" | tr ' ' '\n' | grep -v HEAD | sort | paste -sd' ')
		[ "$STATUS" = 405 ] && [ "$got" = "$want" ] || { bad=1; echo "# $m $p -> $STATUS Allow: $allow (want $want)"; }
		break
	done
done
ok $bad "every path answers a missing method with 405 and the exact Allow list"

# ---- 404: unknown paths, malformed typed parameters ----
api GET /nope "$TA"
is_problem 404 not_found "an unknown API path is 404"
api GET /users/not-a-uuid "$TA"
is_problem 404 not_found "a malformed uuid in the path is 404 before any SQL"
api GET /users/$NOPE/ "$TA"
is_problem 404 not_found "a trailing slash matches nothing"
api GET "/users/$MEMBER_A/roles" "$TA"
is_problem 405 method_not_allowed "GET on a POST-only path is 405"

# ---- GET /users/me ----
api GET /users/me "$TA"
is "$STATUS" 200 "GET /users/me: 200"
is "$(jqr .id)" "$ADMIN_A" "GET /users/me: the caller"
[[ "$(jqr '.permissions | join(",")')" == *users.read* ]]
ok $? "GET /users/me: with its permissions"
is "$(header Cache-Control)" no-store "authenticated responses carry Cache-Control: no-store"
like "$(header Content-Type)" '^application/json' "responses are application/json"
request HEAD /api/v1/users/me -I -H "Authorization: Bearer $TA"
# with -I curl writes the headers where the body would go
[ "$STATUS" = 200 ] && ! [[ "$BODY" == *'{'* ]]
ok $? "HEAD /users/me: 200 without a body"
gone=$(sql "SELECT iam.create_user('$ORG_A', 'gone-$SUFFIX@a.example', 'Gone', 'member', NULL)")
tgone=$(mint "$gone" "$ORG_A")
sql "UPDATE iam.users SET is_active = false WHERE id = '$gone'" >/dev/null
api GET /users/me "$tgone"
is_problem 401 unauthorized "a valid token of a deactivated user is 401"
is "$(header WWW-Authenticate)" 'Bearer error="invalid_token"' "... with WWW-Authenticate"
api GET /users/me "$(mint "$ADMIN_A" "$ORG_B")"
is_problem 401 unauthorized "a token naming another organisation than the user's is 401"

# ---- POST /users ----
api_json POST /users "$TA" "{\"email\":\"new-$SUFFIX@a.example\",\"name\":\"New User\",\"phone\":\"+41 79 123 45 67\"}"
is "$STATUS" 201 "POST /users: 201"
NEW=$(jqr .id)
is "$(header Location)" "/api/v1/users/$NEW" "POST /users: Location of the new user"
like "$(header ETag)" '^"[^"]+"$' "POST /users: ETag"
api_json POST /users "$TA" "{\"email\":\"new-$SUFFIX@a.example\",\"name\":\"Again\"}"
is_problem 409 conflict "POST /users: the same email again is 409"
api_json POST /users "$TA" '{"name":"No Email"}'
is_problem 422 unprocessable "POST /users: a missing email is 422"
like "$(jqr .detail)" 'email' "... and the detail names the field"
api_json POST /users "$TA" '{"email":"x@a.example","name":"X","role":"nosuchrole"}'
is_problem 422 unprocessable "POST /users: an unknown role is 422"
api_json POST /users "$TA" '{"email":"x@a.example","name":"X","bogus":1}'
is_problem 422 unprocessable "POST /users: an unknown field is 422"
api_json POST /users "$TM" '{"email":"m@a.example","name":"M"}'
is_problem 403 forbidden "POST /users: a member is 403"
api POST /users "$TA" -H 'Content-Type: text/plain' --data-binary '{"email":"t@a.example","name":"T"}'
is_problem 415 unsupported_media_type "POST /users: a text/plain body is 415"
api POST /users "$TA" --data-binary '{"email":"t@a.example","name":"T"}'
is_problem 415 unsupported_media_type "POST /users: a form-encoded body is 415"
api_json POST /users "$TA" '{"email":"t@a.example","name":"T"'
is_problem 400 bad_body "POST /users: truncated JSON is 400"
api_json POST /users "$TA" '{"email":"t@a.example","name":"T","name":"U"}'
is_problem 400 bad_body "POST /users: a duplicate key is 400"
api_json POST /users "$TA" $'{"email":"t@a.example","name":"\xff"}'
is_problem 400 bad_body "POST /users: invalid UTF-8 is 400"
api_json POST /users "$TA" "$(printf '[%.0s' $(seq 1 40))$(printf ']%.0s' $(seq 1 40))"
is_problem 400 bad_body "POST /users: nesting deeper than 32 is 400"
head -c $((1024 * 1024 + 1)) /dev/zero | tr '\0' ' ' >"$E2E_TMP/big.json"
api POST /users "$TA" -H 'Content-Type: application/json' --data-binary @"$E2E_TMP/big.json"
is_problem 413 payload_too_large "POST /users: a 1 MiB + 1 byte body is 413"
api POST /users "$TA" -H 'Content-Type: application/json' -H 'Transfer-Encoding: chunked' --data-binary @"$E2E_TMP/big.json"
is_problem 413 payload_too_large "POST /users: a chunked 1 MiB + 1 byte body is 413"

# ---- GET /users ----
api GET /users "$TA"
is "$STATUS" 200 "GET /users: 200"
[ "$(jqr '.data | length')" -ge 3 ] && [ "$(jqr '.next_cursor')" = null ]
ok $? "GET /users: every user of the organisation on one page"
api GET '/users?limit=1&sort=email&order=asc' "$TA"
first=$(jqr '.data[0].id'); cursor=$(jqr .next_cursor)
[ "$STATUS" = 200 ] && [ "$(jqr '.data | length')" = 1 ] && [ "$cursor" != null ]
ok $? "GET /users?limit=1: one user and a next_cursor"
like "$(header Link)" 'rel="next"' "GET /users?limit=1: Link rel=next"
api GET "/users?limit=1&sort=email&order=asc&cursor=$cursor" "$TA"
[ "$STATUS" = 200 ] && [ "$(jqr '.data[0].id')" != "$first" ]
ok $? "GET /users: the cursor gives the next page"
api GET "/users?q=new-$SUFFIX" "$TA"
is "$(jqr '[.data[].id] | join(",")')" "$NEW" "GET /users?q=: search by email"
api GET '/users?is_active=true&created_after=2000-01-01T00:00:00Z&created_before=2999-01-01T00:00:00%2B02:00' "$TA"
is "$STATUS" 200 "GET /users: bool and timestamptz filters"
api GET '/users?limit=ten' "$TA"
is_problem 400 bad_query "GET /users?limit=ten: 400"
api GET '/users?limit=1&limit=2' "$TA"
is_problem 400 bad_query "GET /users: a repeated parameter is 400"
api GET '/users?colour=blue' "$TA"
is_problem 400 bad_query "GET /users: an unknown parameter is 400"
api GET '/users?sort=password_hash' "$TA"
is_problem 400 bad_query "GET /users: a sort outside the enum is 400"
api GET '/users?created_after=yesterday' "$TA"
is_problem 400 bad_query "GET /users: a malformed timestamp is 400"
api GET '/users?limit=500' "$TA"
is_problem 400 bad_request "GET /users?limit=500: 400 from the handler"
api GET '/users?cursor=bm90IGEgY3Vyc29y' "$TA"
is_problem 400 bad_request "GET /users: a forged cursor is 400"
api GET /users "$TM"
[ "$STATUS" = 200 ] && [ "$(jqr '.data | length')" -ge 3 ] &&
	[ -z "$(jqr ".data[] | select(.id != \"$MEMBER_A\") | .email" | grep -v '^.\*\*\*@')" ] &&
	! [[ "$BODY" == *"admin-$SUFFIX@"* ]]
ok $? "GET /users as a member (no users.read_pii): every other user's email masked"
[ -z "$(jqr '.data[].phone | select(. != null)' | grep -E '[0-9]{3}')" ]
ok $? "... and phones too"

# ---- GET /users/{id} ----
api GET "/users/$NEW" "$TA"
[ "$STATUS" = 200 ] && [ "$(jqr .email)" = "new-$SUFFIX@a.example" ]
ok $? "GET /users/{id}: 200 with the email (admin holds users.read_pii)"
ETAG=$(header ETag)
like "$ETAG" '^"[^"]+"$' "GET /users/{id}: ETag"
api GET "/users/${NEW^^}" "$TA"
is "$(jqr .id)" "$NEW" "GET /users/{id}: an upper-case uuid finds the same user"
api GET "/users/$NOPE" "$TA"
is_problem 404 not_found "GET /users/{id}: an absent id is 404"

# ---- PATCH /users/{id} ----
api_json PATCH "/users/$NEW" "$TA" '{"name":"Renamed"}' -H 'If-Match: "stale"'
is_problem 412 precondition_failed "PATCH /users/{id}: a stale If-Match is 412"
api_json PATCH "/users/$NEW" "$TA" '{"name":"Renamed","department":"Ops"}' -H "If-Match: $ETAG"
[ "$STATUS" = 200 ] && [ "$(jqr .name)" = Renamed ] && [ "$(jqr .department)" = Ops ]
ok $? "PATCH /users/{id}: 200 with the current ETag, changes applied"
[ "$(header ETag)" != "$ETAG" ]
ok $? "PATCH /users/{id}: a new ETag"
api_json PATCH "/users/$NEW" "$TA" '{"department":null}'
[ "$STATUS" = 200 ] && [ "$(jqr .department)" = null ] && [ "$(jqr .name)" = Renamed ]
ok $? "PATCH /users/{id}: merge-patch semantics (null removes, others kept)"
api_json PATCH "/users/$NEW" "$TA" '{"name":""}'
is_problem 422 unprocessable "PATCH /users/{id}: an empty name is 422"
api_json PATCH "/users/$NEW" "$TA" "{\"email\":\"admin-$SUFFIX@a.example\"}"
is_problem 409 conflict "PATCH /users/{id}: another user's email is 409"
api_json PATCH "/users/$NEW" "$TM" '{"name":"Mine"}'
is_problem 403 forbidden "PATCH /users/{id}: a member is 403"
api_json PATCH "/users/$NOPE" "$TA" '{"name":"X"}'
is_problem 404 not_found "PATCH /users/{id}: an absent id is 404"
api PATCH "/users/$NEW" "$TA" -H 'Content-Type: application/xml' --data-binary '<x/>'
is_problem 415 unsupported_media_type "PATCH /users/{id}: XML is 415"

# ---- roles of a user ----
api GET "/users/$NEW/permissions" "$TA"
[ "$STATUS" = 200 ] && [[ "$BODY" == *users.read* ]]
ok $? "GET /users/{id}/permissions: 200"
api GET "/users/$NOPE/permissions" "$TA"
is_problem 404 not_found "GET /users/{id}/permissions: an absent id is 404"
api_json POST "/users/$NEW/roles" "$TA" '{"role":"auditor"}'
[ "$STATUS" = 201 ] && [ "$(header Location)" = "/api/v1/users/$NEW/roles/auditor" ]
ok $? "POST /users/{id}/roles: 201 with Location"
api GET "/users/$NEW/permissions" "$TA"
[[ "$BODY" == *audit.read* ]]
ok $? "... the user now holds audit.read"
api_json POST "/users/$NEW/roles" "$TA" '{"role":"no_such_role"}'
is_problem 422 unprocessable "POST /users/{id}/roles: an unknown role is 422"
api_json POST "/users/$NEW/roles" "$TM" '{"role":"auditor"}'
is_problem 403 forbidden "POST /users/{id}/roles: a member is 403"
api DELETE "/users/$NEW/roles/auditor" "$TA"
is "$STATUS" 204 "DELETE /users/{id}/roles/{role}: 204"
api DELETE "/users/$NEW/roles/auditor" "$TA"
is_problem 404 not_found "DELETE /users/{id}/roles/{role}: not held any more is 404"

# ---- soft delete and restore ----
api DELETE "/users/$NEW" "$TM"
is_problem 403 forbidden "DELETE /users/{id}: a member is 403"
api DELETE "/users/$NEW" "$TA"
[ "$STATUS" = 204 ] && [ -z "$BODY" ]
ok $? "DELETE /users/{id}: 204 without a body"
api DELETE "/users/$NOPE" "$TA"
is_problem 404 not_found "DELETE /users/{id}: an absent id is 404"
api POST "/users/$NEW/restore" "$TA"
[ "$STATUS" = 200 ] && [ "$(jqr .deleted_at)" = null ]
ok $? "POST /users/{id}/restore: 200, no longer deleted"

# ---- roles ----
api GET /roles "$TM"
[ "$STATUS" = 200 ] && [[ "$(jqr '[.data[].name] | join(",")')" == *admin*member*auditor* || "$BODY" == *auditor* ]]
ok $? "GET /roles: 200 with the system roles"
api_json POST /roles "$TA" "{\"name\":\"editor_$SUFFIX\",\"permissions\":[\"users.read\"]}"
[ "$STATUS" = 201 ] && [ -n "$(header Location)" ]
ok $? "POST /roles: 201 with Location"
ROLE=$(jqr .id)
api_json POST /roles "$TA" "{\"name\":\"editor_$SUFFIX\"}"
is_problem 409 conflict "POST /roles: the same name again is 409"
api_json POST /roles "$TA" '{"name":"Bad Name"}'
is_problem 422 unprocessable "POST /roles: a bad name is 422"
api_json POST /roles "$TM" '{"name":"mine"}'
is_problem 403 forbidden "POST /roles: a member is 403"
api GET "/roles/$ROLE" "$TA"
[ "$STATUS" = 200 ] && [ "$(jqr .name)" = "editor_$SUFFIX" ]
ok $? "GET /roles/{id}: 200"
RETAG=$(header ETag)
api GET "/roles/$NOPE" "$TA"
is_problem 404 not_found "GET /roles/{id}: an absent id is 404"
api_json PATCH "/roles/$ROLE" "$TA" '{"display_name":"Editor"}' -H 'If-Match: "old"'
is_problem 412 precondition_failed "PATCH /roles/{id}: a stale If-Match is 412"
api_json PATCH "/roles/$ROLE" "$TA" '{"display_name":"Editor"}' -H "If-Match: $RETAG"
[ "$STATUS" = 200 ] && [ "$(jqr .display_name)" = Editor ]
ok $? "PATCH /roles/{id}: 200"
api_json PATCH "/roles/$ROLE" "$TA" '{"display_name":""}'
is_problem 422 unprocessable "PATCH /roles/{id}: an empty display_name is 422"
api_json PUT "/roles/$ROLE/permissions" "$TA" '{"permissions":["users.read","roles.read"]}'
[ "$STATUS" = 200 ] && [[ "$BODY" == *roles.read* ]]
ok $? "PUT /roles/{id}/permissions: 200"
api_json PUT "/roles/$ROLE/permissions" "$TA" '{"permissions":["no.such"]}'
is_problem 422 unprocessable "PUT /roles/{id}/permissions: an unknown permission is 422"
api_json PUT "/roles/$ROLE/permissions" "$TM" '{"permissions":[]}'
is_problem 403 forbidden "PUT /roles/{id}/permissions: a member is 403"
admin_role=$(sql "SELECT id FROM iam.roles WHERE name = 'admin' AND org_id IS NULL")
api DELETE "/roles/$admin_role" "$TA"
[ "$STATUS" = 409 ] || [ "$STATUS" = 403 ]
ok $? "DELETE /roles/{id}: a system role is refused ($STATUS)"
api DELETE "/roles/$ROLE" "$TA"
is "$STATUS" 204 "DELETE /roles/{id}: 204"
api GET "/roles/$ROLE" "$TA"
is_problem 404 not_found "... and it is gone"

# ---- catalogue, authz, logs ----
api GET /permissions "$TM"
[ "$STATUS" = 200 ] && [[ "$BODY" == *users.read_pii* ]]
ok $? "GET /permissions: 200 with the catalogue"
api_json POST /authz/check "$TM" '{"permissions":["users.read","users.delete"]}'
[ "$STATUS" = 200 ] && [ "$(jqr '.results["users.read"]')" = true ] && [ "$(jqr '.results["users.delete"]')" = false ]
ok $? "POST /authz/check: the caller's answers"
api_json POST /authz/check "$TM" '{"permissions":[]}'
is_problem 422 unprocessable "POST /authz/check: an empty list is 422"
api POST /authz/check "$TM"
[ "$STATUS" = 422 ] || [ "$STATUS" = 400 ]
ok $? "POST /authz/check: no body is refused ($STATUS)"
api GET '/audit-logs?limit=5' "$TA"
[ "$STATUS" = 200 ] && [ "$(jqr '.data | length')" -ge 1 ]
ok $? "GET /audit-logs: 200 with entries"
api GET "/audit-logs?entity_id=$NEW&action=user.created" "$TA"
is "$(jqr '.data[0].entity_id')" "$NEW" "GET /audit-logs: filters"
api GET '/audit-logs?since=last-week' "$TA"
is_problem 400 bad_query "GET /audit-logs: a malformed since is 400"
api GET /audit-logs "$TM"
is_problem 403 forbidden "GET /audit-logs: a member is 403"
api GET /audit-logs/verify "$TA"
[ "$STATUS" = 200 ] && [ "$(jqr .ok)" = true ]
ok $? "GET /audit-logs/verify: 200, the chain verifies"
api GET /audit-logs/verify "$TM"
is_problem 403 forbidden "GET /audit-logs/verify: a member is 403"
api GET /activity-logs "$TA"
is "$STATUS" 200 "GET /activity-logs: 200"
api GET /activity-logs "$TM"
is_problem 403 forbidden "GET /activity-logs: a member is 403"

grep -v '^{' "$E2E_TMP/gateway.log" | grep -c . | grep -qx 0
ok $? "every gateway log line is JSON (no sanitizer report)"
gateway_stop
is "$GATEWAY_EXIT" 0 "the gateway stops cleanly (ASan/LSan quiet)"
done_testing
