#!/usr/bin/env bash
# cache_responses.t (#7): the response cache of cacheable GET routes.  A
# write (through the API or straight in SQL) makes the next GET fresh for
# users, roles and permissions; ETag and If-None-Match -> 304; a response
# cached for one caller or organisation is never served to another; hits
# and misses in /metrics; L1 alone without Redis.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ratelimit_lib.sh"

api_fixtures
gw_start main
gw_use main
TA=$(mint "$ADMIN_A" "$ORG_A"); TM=$(mint "$MEMBER_A" "$ORG_A"); TB=$(mint "$ADMIN_B" "$ORG_B")

# poll_body PATH TOKEN REGEX: GET until the body matches (10 s at most);
# a freshness check that does not depend on the cache's TTL (60 s).
poll_body() {
	for _ in $(seq 1 50); do
		api GET "$1" "$2"
		[[ "$BODY" =~ $3 ]] && return 0
		sleep 0.2
	done
	return 1
}

# ---- hits, ETag, 304 ----
hits0=$(gw_metric main 'iam_cache_requests_total{outcome="hit_l1"}')
api GET /users/me "$TA"
body1=$BODY; etag=$(header ETag)
like "$etag" '^"[0-9a-f]{32}"$' "GET /users/me: a strong ETag"
api GET /users/me "$TA"
[ "$STATUS" = 200 ] && [ "$BODY" = "$body1" ] && [ "$(header ETag)" = "$etag" ]
ok $? "the same GET again: the same body and ETag"
[ "$(gw_metric main 'iam_cache_requests_total{outcome="hit_l1"}')" -gt "${hits0:-0}" ]
ok $? "... served from the cache (hit counted in /metrics)"
[ "$(gw_metric main 'iam_cache_requests_total{outcome="miss"}')" -ge 1 ]
ok $? "misses are counted in /metrics"
api GET /users/me "$TA" -H "If-None-Match: $etag"
[ "$STATUS" = 304 ] && [ "$(header Content-Length)" = 0 ] && [ "$(header ETag)" = "$etag" ]
ok $? "If-None-Match with the ETag: 304 without a body, with the ETag"
api GET /users/me "$TA" -H "If-None-Match: \"nope\", W/$etag"
is "$STATUS" 304 "If-None-Match: a list, weak comparison"
api GET /users/me "$TA" -H 'If-None-Match: "nope"'
[ "$STATUS" = 200 ] && [ "$BODY" = "$body1" ]
ok $? "If-None-Match with another ETag: 200 with the body"
[ "$(gw_metric main iam_cache_not_modified_total)" -ge 2 ]
ok $? "304s are counted in /metrics"
[ -n "$(redis-cli -h 127.0.0.1 -p "$IAM_TEST_REDIS_PORT" --scan --pattern 'iam:c:*' | head -n 1)" ]
ok $? "the response is in Redis too (L2)"

# ---- callers and organisations never share an entry ----
api GET /users/me "$TM"
is "$(jqr .id)" "$MEMBER_A" "another caller of the same organisation gets its own /users/me"
api GET /users/me "$TB"
is "$(jqr .id)" "$ADMIN_B" "a caller of another organisation gets its own /users/me"
api GET /users/me "$(mint "$ADMIN_A" "$ORG_B")"
is_problem 401 unauthorized "a token of user A naming organisation B is 401, not A's cached response"
api_json POST /roles "$TA" "{\"name\":\"cached_$SUFFIX\",\"permissions\":[\"users.read\"]}"
is "$STATUS" 201 "a role of organisation A"
ROLE=$(jqr .id)
api GET /roles "$TA"; api GET /roles "$TA"
[[ "$BODY" == *"cached_$SUFFIX"* ]]
ok $? "GET /roles (A, twice): lists it"
api GET /roles "$TB"; api GET /roles "$TB"
[ "$STATUS" = 200 ] && ! [[ "$BODY" == *"cached_$SUFFIX"* ]]
ok $? "GET /roles (B, twice): never A's list"
api GET "/roles/$ROLE" "$TB"
is_problem 404 not_found "GET /roles/{A's role} as B: 404, not A's cached role"
api_json POST /roles "$TA" "{\"name\":\"noread_$SUFFIX\",\"permissions\":[]}"
NOREAD=$(mint "$(sql "SELECT iam.create_user('$ORG_A', 'noread-$SUFFIX@a.example', 'No Read', 'noread_$SUFFIX', NULL)")" "$ORG_A")
api GET /permissions "$TA"; api GET /permissions "$TA"
is "$STATUS" 200 "GET /permissions (admin, twice): the catalogue"
api GET /permissions "$NOREAD"
is_problem 403 forbidden "GET /permissions as a user without roles.read: 403, not the admin's cached catalogue"
api GET /users/me "$TA"
is "$(jqr .id)" "$ADMIN_A" "and the first caller still gets its own"

# ---- writes make the next GET fresh ----
api GET /users/me "$TA"
api_json PATCH "/users/$ADMIN_A" "$TA" "{\"name\":\"Renamed $SUFFIX\"}"
is "$STATUS" 200 "PATCH /users/{me} through the API"
api GET /users/me "$TA"
is "$(jqr .name)" "Renamed $SUFFIX" "users: the next GET /users/me has the new name"
[ "$(header ETag)" != "$etag" ]
ok $? "... and a new ETag"
api GET /users/me "$TA" -H "If-None-Match: $etag"
is "$STATUS" 200 "... so the old ETag gets 200, not 304"
sql "UPDATE iam.users SET name = 'Psql $SUFFIX' WHERE id = '$ADMIN_A'" >/dev/null
poll_body /users/me "$TA" "Psql $SUFFIX"
ok $? "users: a write in SQL (not through the gateway) reaches the cached /users/me (NOTIFY)"

api GET /users/me "$TM"; api GET /users/me "$TM"
! [[ "$BODY" == *audit.read* ]]
ok $? "permissions: the member's cached /users/me lacks audit.read"
api_json POST "/users/$MEMBER_A/roles" "$TA" '{"role":"auditor"}'
is "$STATUS" 201 "the admin grants the member the auditor role"
api GET /users/me "$TM"
[[ "$BODY" == *audit.read* ]]
ok $? "permissions: the member's next GET /users/me has audit.read"
api GET /permissions "$TA"; api GET /permissions "$TA"
! [[ "$BODY" == *"e2e.p$SUFFIX"* ]]
ok $? "permissions: the catalogue is cached"
sql "INSERT INTO iam.permissions (name, display_name, description, category)
	 VALUES ('e2e.p$SUFFIX', 'E2E', 'cache test', 'users')" >/dev/null
poll_body /permissions "$TA" "e2e.p$SUFFIX"
ok $? "permissions: a new catalogue entry (every organisation's) reaches the cached catalogue"
sql "DELETE FROM iam.permissions WHERE name = 'e2e.p$SUFFIX'" >/dev/null

api GET "/roles/$ROLE" "$TA"; api GET "/roles/$ROLE" "$TA"
api_json PUT "/roles/$ROLE/permissions" "$TA" '{"permissions":["users.read","roles.read"]}'
is "$STATUS" 200 "roles: PUT /roles/{id}/permissions"
api GET "/roles/$ROLE" "$TA"
[[ "$BODY" == *roles.read* ]]
ok $? "roles: the next GET /roles/{id} has the new permissions"
api GET /roles "$TA"
[[ "$BODY" == *roles.read* ]]
ok $? "roles: and so has the next GET /roles"
api DELETE "/roles/$ROLE" "$TA"
api GET /roles "$TA"
! [[ "$BODY" == *"cached_$SUFFIX"* ]]
ok $? "roles: a deleted role is gone from the next GET /roles"

sql "UPDATE iam.users SET is_active = false WHERE id = '$MEMBER_A'" >/dev/null
gone=1
for _ in $(seq 1 50); do
	api GET /users/me "$TM"
	[ "$STATUS" = 401 ] && { gone=0; break; }
	sleep 0.2
done
ok $gone "a user deactivated in SQL gets 401, not its cached /users/me"
sql "UPDATE iam.users SET is_active = true WHERE id = '$MEMBER_A'" >/dev/null

# ---- a read-only POST: /authz/check, keyed by its body too ----
# poll_check BODY TOKEN REGEX: POST /authz/check until the answer matches
poll_check() {
	for _ in $(seq 1 50); do
		api_json POST /authz/check "$2" "$1"
		[[ "$BODY" =~ $3 ]] && return 0
		sleep 0.2
	done
	return 1
}
Q_DEL='{"permissions":["users.delete"]}'
Q_USERS='{"permissions":["users.read"]}'
api_json POST /authz/check "$TM" "$Q_DEL"
is "$(jqr '.results["users.delete"]')" false "authz/check: the member (an auditor now) does not hold users.delete"
# the re-activation above moves A's version when the gateway's next poll
# sees it, which may fall between two questions: ask in pairs until one pair
# is answered from the cache
cached=1
for _ in $(seq 1 20); do
	api_json POST /authz/check "$TM" "$Q_DEL"
	hits1=$(gw_metric main 'iam_cache_requests_total{outcome="hit_l1"}')
	api_json POST /authz/check "$TM" "$Q_DEL"
	[ "$(jqr '.results["users.delete"]')" = false ] &&
		[ "$(gw_metric main 'iam_cache_requests_total{outcome="hit_l1"}')" -gt "${hits1:-0}" ] &&
		{ cached=0; break; }
	sleep 0.2
done
ok $cached "... the same question again is answered from the cache"
api_json POST /authz/check "$TM" "$Q_USERS"
is "$(jqr '.results | keys | join(",")')" "users.read" "another body is another question, not the cached answer"
api_json POST /authz/check "$TA" "$Q_DEL"
is "$(jqr '.results["users.delete"]')" true "another caller with the same body gets its own answer"
sql "INSERT INTO iam.user_permissions (user_id, permission_id, org_id)
     SELECT '$MEMBER_A', id, '$ORG_A' FROM iam.permissions WHERE name = 'users.delete'" >/dev/null
poll_check "$Q_DEL" "$TM" '"users.delete" *: *true'
ok $? "a grant made in SQL makes the next check fresh"
sql "DELETE FROM iam.user_permissions WHERE user_id = '$MEMBER_A'" >/dev/null
poll_check "$Q_DEL" "$TM" '"users.delete" *: *false'
ok $? "... and so does its revocation"

# ---- reports: fresh after each refresh ----
sql "SELECT count(*) FROM iam.refresh_views()" >/dev/null
total=$(sql "SELECT count(*) FROM iam.users WHERE org_id = '$ORG_A' AND deleted_at IS NULL")
poll_body /reports/user-statistics "$TA" "\"total_users\" *: *$total[,}]"
ok $? "GET /reports/user-statistics: A's total after a refresh"
report1=$BODY
hits2=$(gw_metric main 'iam_cache_requests_total{outcome="hit_l1"}')
api GET /reports/user-statistics "$TA"
[ "$BODY" = "$report1" ] && [ "$(gw_metric main 'iam_cache_requests_total{outcome="hit_l1"}')" -gt "${hits2:-0}" ]
ok $? "... the same report again is answered from the cache"
api GET /reports/user-statistics "$TA" -H 'Accept: text/csv'
[ "$STATUS" = 200 ] && [[ "$(header Content-Type)" == text/csv* ]] && [[ "$BODY" == total_users,* ]]
ok $? "... the CSV of the same report is not the cached JSON"
api GET /reports/user-statistics "$TB"
[ "$STATUS" = 200 ] && [ "$BODY" != "$report1" ]
ok $? "... nor is A's report served to organisation B"
sql "SELECT iam.create_user('$ORG_A', 'report-$SUFFIX@a.example', 'Report A', 'member', NULL)" >/dev/null
api GET /reports/user-statistics "$TA"
is "$BODY" "$report1" "a new user does not change the report before a refresh"
sql "SELECT iam.refresh_view('user_statistics')" >/dev/null
poll_body /reports/user-statistics "$TA" "\"total_users\" *: *$((total + 1))[,}]"
ok $? "a refresh makes the next report request fresh"

gw_log_clean main
ok $? "the gateway log is all JSON"
gw_stop main
is "$GW_EXIT" 0 "the gateway stops cleanly"

# ---- without Redis: L1 alone ----
gw_start l1 IAM_REDIS_URL=
gw_use l1
api GET /users/me "$TA"; e1=$(header ETag)
api GET /users/me "$TA" -H "If-None-Match: $e1"
is "$STATUS" 304 "without Redis: ETag and 304"
[ "$(gw_metric l1 'iam_cache_requests_total{outcome="hit_l1"}')" -ge 1 ]
ok $? "without Redis: hits from the in-process cache"
api_json PATCH "/users/$ADMIN_A" "$TA" "{\"name\":\"L1 $SUFFIX\"}"
api GET /users/me "$TA"
is "$(jqr .name)" "L1 $SUFFIX" "without Redis: a write makes the next GET fresh"
gw_stop l1
is "$GW_EXIT" 0 "without Redis: the gateway stops cleanly"

# ---- IAM_CACHE=off ----
gw_start off IAM_CACHE=off
gw_use off
api GET /users/me "$TA"; api GET /users/me "$TA"
[ "$STATUS" = 200 ] && [ "$(gw_metric off 'iam_cache_requests_total{outcome="hit_l1"}')" = 0 ]
ok $? "IAM_CACHE=off: nothing is served from the cache"
gw_stop off
done_testing
