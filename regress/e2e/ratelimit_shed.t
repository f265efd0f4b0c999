#!/usr/bin/env bash
# ratelimit_shed.t (#7): load shedding.  One pooled connection
# (IAM_DB_POOL_SIZE=1) and at most one request waiting for it
# (IAM_MAX_DB_WAITERS=1): a PATCH blocked on a row lock held in psql keeps
# the connection, a second request waits, a third is refused at once with
# 503 + Retry-After; when the lock goes, the first two complete.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ratelimit_lib.sh"

api_fixtures
gw_start shed IAM_THREADS=4 IAM_DB_POOL_SIZE=1 IAM_MAX_DB_WAITERS=1
gw_use shed
TA=$(mint "$ADMIN_A" "$ORG_A")
api GET "/users/$MEMBER_A" "$TA"
is "$STATUS" 200 "the gateway answers"

# hold a lock on the member's row for a while, in the background
sql "SELECT 1" >/dev/null
pg_psql "$IAM_TEST_DIR" "$IAM_TEST_PG_PORT" -d iam -tA >/dev/null 2>&1 <<SQL &
BEGIN;
SELECT 1 FROM iam.users WHERE id = '$MEMBER_A' FOR UPDATE;
SELECT pg_sleep(3);
COMMIT;
SQL
LOCKER=$!
held=1
for _ in $(seq 1 50); do
	[ "$(sql "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(3)%' AND state = 'active' AND pid <> pg_backend_pid()")" = 1 ] && { held=0; break; }
	sleep 0.1
done
ok $held "psql holds the row lock"

# 1: blocked on the lock, holding the only pooled connection
curl -s -m 20 -o "$E2E_TMP/patch.body" -w '%{http_code}' -X PATCH -H "Authorization: Bearer $TA" \
	-H 'Content-Type: application/json' --data-binary '{"department":"Shed"}' \
	"http://$GATEWAY_LISTEN/api/v1/users/$MEMBER_A" >"$E2E_TMP/patch.status" &
P1=$!
blocked=1
for _ in $(seq 1 50); do
	[ "$(sql "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'iam-gateway' AND wait_event_type = 'Lock'")" -ge 1 ] && { blocked=0; break; }
	sleep 0.1
done
ok $blocked "the PATCH waits for the lock on the pool's only connection"
# 2: waits for the connection
waits0=$(gw_metric shed iam_db_pool_waits_total)
curl -s -m 20 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TA" \
	"http://$GATEWAY_LISTEN/api/v1/users/$ADMIN_A" >"$E2E_TMP/wait.status" &
P2=$!
waiting=1
for _ in $(seq 1 50); do
	[ "$(gw_metric shed iam_db_pool_waits_total)" -gt "$waits0" ] && { waiting=0; break; }
	sleep 0.1
done
ok $waiting "a second request waits for the connection"
# 3: one too many
api GET "/users/$ADMIN_A" "$TA"
is_problem 503 overloaded "a third request is refused at once: 503 problem+json"
[[ "$(header Retry-After)" =~ ^[1-9][0-9]*$ ]]
ok $? "... with Retry-After"
[ "$(gw_metric shed iam_db_shed_total)" -ge 1 ]
ok $? "the refusal is counted in /metrics (iam_db_shed_total)"

wait "$LOCKER"
wait "$P1"; wait "$P2"
is "$(cat "$E2E_TMP/patch.status")" 200 "when the lock goes, the blocked PATCH completes"
is "$(cat "$E2E_TMP/wait.status")" 200 "and the waiting request is served"
gw_log_clean shed
ok $? "the gateway log is all JSON"
gw_stop shed
is "$GW_EXIT" 0 "the gateway stops cleanly"
done_testing
