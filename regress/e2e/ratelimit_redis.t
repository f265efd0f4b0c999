#!/usr/bin/env bash
# ratelimit_redis.t (#7): two gateways sharing one Redis enforce one limit
# together; Redis stopped during the test: fail-open keeps answering (in
# process), fail-closed answers 503, each logs the outage once and counts
# it in /metrics; Redis back: shared limiting resumes without a restart.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ratelimit_lib.sh"

# a Redis of our own, to stop and start again
F_REDIS_DIR=$(scratch_dir e2e-redis)
F_REDIS_PORT=$(free_port $((16400 + RANDOM % 500)))
redis_start "$F_REDIS_DIR" "$F_REDIS_PORT"
IAM_TEST_REDIS_URL=redis://127.0.0.1:$F_REDIS_PORT

api_fixtures
CLS=e2e_shared_$SUFFIX
rl_class "$CLS" 4 3600
rl_route GET '/users/{id:uuid}' "$CLS"
gw_start open IAM_RATE_LIMIT_FAIL=open
gw_start closed IAM_RATE_LIMIT_FAIL=closed
probe=$(mint "$ADMIN_A" "$ORG_A")
user() { mint "$(sql "SELECT iam.create_user('$ORG_A', '$1-$SUFFIX@a.example', 'U', 'admin', NULL)")" "$ORG_A"; }
for g in open closed; do gw_use $g; wait_limit "/users/$MEMBER_A" "$probe" 4; done
ok $? "both gateways have loaded the test class (4 an hour)"

# one limit across two gateways
t=$(user shared1)
got=""
for g in open closed open closed open closed; do
	gw_use $g; api GET "/users/$MEMBER_A" "$t"; got+="$STATUS/$(header RateLimit-Remaining) "
done
is "$got" "200/3 200/2 200/1 200/0 429/0 429/0 " "two gateways, one Redis: 4 requests in all pass, then both refuse"
calls=$(gw_metric open iam_ratelimit_redis_calls_total)
runs=$(gw_metric open iam_ratelimit_redis_script_runs_total)
[ "$runs" -ge 3 ] && [ "$calls" -ge "$runs" ]
ok $? "Redis decisions and the script runs that answered them are counted in /metrics ($calls, $runs)"

# Redis stops
stop_pidfile "$F_REDIS_DIR/redis.pid"
t=$(user down1)
gw_use open
got=""
for i in 1 2 3 4 5; do api GET "/users/$MEMBER_A" "$t"; got+="$STATUS "; done
is "$got" "200 200 200 200 429 " "Redis down, fail-open: the in-process limiter answers with the same limit"
gw_use closed
api GET "/users/$MEMBER_A" "$t"
is_problem 503 rate_limiter_unavailable "Redis down, fail-closed: 503 problem+json"
[[ "$(header Retry-After)" =~ ^[1-9][0-9]*$ ]]
ok $? "... with Retry-After"
api GET "/users/$MEMBER_A" "$t"
is "$STATUS" 503 "... and again (no hang, no crash)"
[ "$(gw_metric open iam_ratelimit_redis_fallbacks_total)" -ge 5 ] && [ "$(gw_metric open iam_redis_up)" = 0 ]
ok $? "fail-open: fallbacks counted in /metrics, iam_redis_up 0"
[ "$(gw_metric closed iam_ratelimit_redis_refusals_total)" -ge 2 ] && [ "$(gw_metric closed iam_redis_failures_total)" -ge 1 ]
ok $? "fail-closed: refusals and Redis failures counted in /metrics"
is "$(grep -c '"msg":"redis unavailable' "$E2E_TMP/gw-open.log")" 1 "the outage is logged once (fail-open gateway)"
is "$(grep -c '"msg":"redis unavailable' "$E2E_TMP/gw-closed.log")" 1 "the outage is logged once (fail-closed gateway)"

# Redis comes back (empty: the script must be loaded again)
redis_start "$F_REDIS_DIR" "$F_REDIS_PORT"
gw_use closed
back=1
for _ in $(seq 1 50); do
	api GET /users/me "$probe"
	[ "$STATUS" = 200 ] && { back=0; break; }
	sleep 0.2
done
ok $back "Redis back: the fail-closed gateway answers again, without a restart"
# the fail-open gateway reconnects on its next request after its backoff
gw_use open
back=1
for _ in $(seq 1 50); do
	api GET /users/me "$probe"
	[ "$(gw_metric open iam_redis_up)" = 1 ] && { back=0; break; }
	sleep 0.2
done
ok $back "Redis back: the fail-open gateway uses it again, without a restart"
t=$(user back1)
got=""
for g in open open closed closed open closed; do
	gw_use $g; api GET "/users/$MEMBER_A" "$t"; got+="$STATUS "
done
is "$got" "200 200 200 200 429 429 " "Redis back: the two gateways share one limit again"
is "$(grep -c '"msg":"redis available again' "$E2E_TMP/gw-closed.log")" 1 "the recovery is logged once"
[ "$(gw_metric open iam_redis_up)" = 1 ]
ok $? "iam_redis_up is 1 again"

for g in open closed; do
	gw_log_clean $g
	ok $? "$g: the gateway log is all JSON"
	gw_stop $g
	is "$GW_EXIT" 0 "$g: the gateway stops cleanly"
done
done_testing
