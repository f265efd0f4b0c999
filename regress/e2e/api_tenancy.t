#!/usr/bin/env bash
# api_tenancy.t: an administrator of organisation A reaching every
# id-bearing route with an id of organisation B gets 404, exactly like an
# absent id, sees none of B's data, and changes nothing of B's.
. "$(dirname "$0")/lib.sh"

api_fixtures
api_gateway_start
TA=$(mint "$ADMIN_A" "$ORG_A")
ROLE_B=$(sql "INSERT INTO iam.roles (org_id, name, display_name) VALUES ('$ORG_B', 'b_role_$SUFFIX', 'B role') RETURNING id")
sql "INSERT INTO iam.role_permissions (role_id, permission_id, org_id) SELECT '$ROLE_B', id, '$ORG_B' FROM iam.permissions WHERE name = 'users.read'" >/dev/null
snapshot() {
	sql "SELECT u.name, u.email, u.is_active, u.deleted_at IS NULL, u.updated_at,
	            (SELECT count(*) FROM iam.user_roles WHERE user_id = u.id),
	            (SELECT string_agg(p.name, ',' ORDER BY p.name) FROM iam.role_permissions rp
	               JOIN iam.permissions p ON p.id = rp.permission_id WHERE rp.role_id = '$ROLE_B'),
	            (SELECT updated_at FROM iam.roles WHERE id = '$ROLE_B')
	     FROM iam.users u WHERE u.id = '$MEMBER_B'"
}
before=$(snapshot)
[ -n "$ROLE_B" ] && [ -n "$before" ]
ok $? "organisation B has a user and a role"

# no_leak: the body names nothing of B's
no_leak() {
	! [[ "$BODY" == *"$MEMBER_B"* || "$BODY" == *"$ROLE_B"* || "$BODY" == *"secret-$SUFFIX"* ||
		"$BODY" == *"Bea Secret"* || "$BODY" == *"b_role_$SUFFIX"* || "$BODY" == *"$ORG_B"* ]]
}
# cross METHOD PATH [BODY]: 404 with no data, and the same answer as for an absent id
cross() {
	local m=$1 p=$2 b=${3:-}
	if [ -n "$b" ]; then api_json "$m" "$p" "$TA" "$b" -H 'If-Match: "x"'; else api "$m" "$p" "$TA" -H 'If-Match: "x"'; fi
	[ "$STATUS" = 404 ] && [ "$(jqr .code)" = not_found ] && no_leak
	ok $? "$m ${p//$MEMBER_B/{B user}}: 404 and nothing of B's"
	[ "$STATUS" = 404 ] || echo "#   got: $STATUS $BODY"
	local detail=$(jqr .detail) np=${p//$MEMBER_B/00000000-0000-4000-8000-000000000001}
	np=${np//$ROLE_B/00000000-0000-4000-8000-000000000001}
	if [ -n "$b" ]; then api_json "$m" "$np" "$TA" "$b" -H 'If-Match: "x"'; else api "$m" "$np" "$TA" -H 'If-Match: "x"'; fi
	[ "$STATUS" = 404 ] && [ "$(jqr .detail)" = "$detail" ]
	ok $? "... indistinguishable from an absent id"
}

cross GET "/users/$MEMBER_B"
cross PATCH "/users/$MEMBER_B" '{"name":"Hijacked"}'
cross DELETE "/users/$MEMBER_B"
cross POST "/users/$MEMBER_B/restore"
cross GET "/users/$MEMBER_B/permissions"
cross POST "/users/$MEMBER_B/roles" '{"role":"auditor"}'
cross DELETE "/users/$MEMBER_B/roles/member"
cross GET "/roles/$ROLE_B"
cross PATCH "/roles/$ROLE_B" '{"display_name":"Hijacked"}'
cross DELETE "/roles/$ROLE_B"
cross PUT "/roles/$ROLE_B/permissions" '{"permissions":["users.read","users.delete"]}'

# lists and filters never show B
api GET "/users?q=secret-$SUFFIX" "$TA"
[ "$STATUS" = 200 ] && [ "$(jqr '.data | length')" = 0 ] && no_leak
ok $? "GET /users?q=<B's email>: nothing"
api GET '/users?limit=200' "$TA"
[ "$STATUS" = 200 ] && no_leak && ! [[ "$BODY" == *"$ADMIN_B"* ]]
ok $? "GET /users: none of B's users"
api GET '/roles' "$TA"
[ "$STATUS" = 200 ] && no_leak
ok $? "GET /roles: none of B's roles"
api GET "/audit-logs?entity_id=$MEMBER_B" "$TA"
[ "$STATUS" = 200 ] && [ "$(jqr '.data | length')" = 0 ]
ok $? "GET /audit-logs?entity_id=<B user>: nothing"
api GET "/audit-logs?limit=200" "$TA"
[ "$STATUS" = 200 ] && no_leak
ok $? "GET /audit-logs: nothing of B's"
api GET "/activity-logs?user=$MEMBER_B" "$TA"
[ "$STATUS" = 200 ] && [ "$(jqr '.data | length')" = 0 ]
ok $? "GET /activity-logs?user=<B user>: nothing"
api_json POST /authz/check "$TA" "{\"permissions\":[\"users.read\"],\"resource\":{\"type\":\"user\",\"id\":\"$MEMBER_B\"}}"
[ "$STATUS" = 200 ] || [ "$STATUS" = 404 ]
ok $? "POST /authz/check on a resource of B answers without error ($STATUS)"

is "$(snapshot)" "$before" "B's user and role are unchanged"
gateway_stop
is "$GATEWAY_EXIT" 0 "the gateway stops cleanly"
done_testing
