#!/usr/bin/env bash
# reports_api.t: the report routes over HTTP: JSON with refreshed_at, CSV
# with Accept: text/csv, reports.read required, a malformed date refused
# before any SQL, and each organisation sees only its own figures.
. "$(dirname "$0")/lib.sh"

api_fixtures
api_gateway_start
TA=$(mint "$ADMIN_A" "$ORG_A")
TB=$(mint "$ADMIN_B" "$ORG_B")
TM=$(mint "$MEMBER_A" "$ORG_A")

REPORTS=(/reports/user-statistics /reports/role-analytics /reports/audit-summary /reports/activity-trends)
declared=$(sql "SELECT method || ' ' || path FROM iam.routes WHERE path ~ '^/reports/'" | LC_ALL=C sort | paste -sd, -)
listed=$(printf 'GET %s\n' "${REPORTS[@]}" | LC_ALL=C sort | paste -sd, -)
is "$listed" "$declared" "the test covers exactly the report routes of iam.routes"

# organisation A gets a third user and a login; the trail is sealed and the
# reports refreshed, as the worker would
sql "SELECT iam.create_user('$ORG_A', 'third-$SUFFIX@a.example', 'Third A', 'member', NULL)" >/dev/null
sql "INSERT INTO iam.activity_logs (org_id, user_id, type) VALUES ('$ORG_A', '$ADMIN_A', 'login')" >/dev/null
sql "SELECT iam.audit_seal()" >/dev/null
sql "SELECT count(*) FROM iam.refresh_views()" >/dev/null

api GET /reports/user-statistics "$TA"
[ "$STATUS" = 200 ] && [ "$(jqr .data.total_users)" = 3 ] && [ -n "$(jqr '.refreshed_at // empty')" ]
ok $? "user-statistics: organisation A's total, with refreshed_at"
[ "$STATUS" = 200 ] || echo "#   got: $STATUS $BODY"
api GET /reports/user-statistics "$TB"
[ "$STATUS" = 200 ] && [ "$(jqr .data.total_users)" = 2 ]
ok $? "user-statistics: organisation B sees its own total"

api GET /reports/user-statistics "$TA" -H 'Accept: text/csv'
first=$(printf '%s\n' "$BODY" | head -n 1)
second=$(printf '%s\n' "$BODY" | sed -n 2p)
[ "$STATUS" = 200 ] && [[ "$(header Content-Type)" == text/csv* ]] &&
	[[ "$first" == total_users,active_users,* ]] && [[ "$first" == *,refreshed_at* ]] && [[ "$second" == 3,* ]]
ok $? "user-statistics as CSV: a header line and organisation A's row"
[[ "$(header Content-Type)" == text/csv* ]] || echo "#   got: $STATUS $(header Content-Type) $BODY"

api GET /reports/role-analytics "$TA"
[ "$STATUS" = 200 ] && [ "$(jqr '[.data[] | select(.role == "admin")][0].direct_members')" = 1 ]
ok $? "role-analytics: A's one admin"

api GET /reports/audit-summary "$TA"
[ "$STATUS" = 200 ] && [ "$(jqr '[.data[] | select(.action == "user.created") | .events] | add')" = 3 ]
ok $? "audit-summary: A's three user.created events"
api GET /reports/audit-summary "$TB"
[ "$STATUS" = 200 ] && [ "$(jqr '[.data[] | select(.action == "user.created") | .events] | add')" = 2 ]
ok $? "audit-summary: B's two, none of A's"

api GET /reports/activity-trends "$TA"
[ "$STATUS" = 200 ] && [ "$(jqr '[.data[] | select(.type == "login") | .events] | add')" = 1 ]
ok $? "activity-trends: A's login"
api GET /reports/activity-trends "$TB"
[ "$STATUS" = 200 ] && [ "$(jqr '[.data[] | select(.type == "login")] | length')" = 0 ]
ok $? "activity-trends: nothing of A's for B"

for r in "${REPORTS[@]}"; do
	api GET "$r" "$TM"
	is_problem 403 forbidden "$r: a member without reports.read gets 403"
	api GET "$r" -
	is_problem 401 unauthorized "$r: no token, 401"
done
for r in /reports/user-statistics /reports/audit-summary /reports/activity-trends; do
	api GET "$r?since=yesterday" "$TA"
	is_problem 400 bad_query "$r: a malformed since is refused before any SQL"
done
api GET "/reports/audit-summary?since=2000-01-01T00:00:00Z&until=2000-01-02T00:00:00Z" "$TA"
[ "$STATUS" = 200 ] && [ "$(jqr '.data | length')" = 0 ]
ok $? "audit-summary: a date range without events is empty"

gateway_stop
done_testing
