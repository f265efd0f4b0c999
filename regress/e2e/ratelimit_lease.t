#!/usr/bin/env bash
# ratelimit_lease.t (#7): leases of the shared limiter.  A gateway asks
# Redis for several tokens of a busy key at once and spends them without a
# round trip.  Across two gateways sharing one Redis the limit holds
# exactly (tokens one gateway holds are the other's refusals, never an
# excess), the headers count the tokens held, unspent tokens come back when
# a lease expires (with the key's next request, or swept when the key is
# idle), and IAM_RATE_LIMIT_LEASE_MS=0 asks Redis for every request.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ratelimit_lib.sh"

api_fixtures
CLS=e2e_lease_$SUFFIX
rl_class "$CLS" 640 3600	# leases of at most 640/32 = 20 tokens
rl_route GET '/users/{id:uuid}' "$CLS"
gw_start a IAM_RATE_LIMIT_LEASE_MS=60000
gw_start b IAM_RATE_LIMIT_LEASE_MS=60000
gw_start short IAM_RATE_LIMIT_LEASE_MS=300
gw_start none IAM_RATE_LIMIT_LEASE_MS=0
probe=$(mint "$ADMIN_A" "$ORG_A")
user() { mint "$(sql "SELECT iam.create_user('$ORG_A', '$1-$SUFFIX@a.example', 'U', 'admin', NULL)")" "$ORG_A"; }
for g in a b short none; do gw_use $g; wait_limit "/users/$MEMBER_A" "$probe" 640; done
ok $? "the gateways have loaded the test class (640 an hour)"

# burst GATEWAY TOKEN N: N requests on one connection; prints how many got
# each status ("200x620 429x80").  Not their order: a refill's tokens may
# land just after a request was refused, and the next one passes.
burst() {
	local v="GW_$1" url args=()
	url="http://${!v}/api/v1/users/$MEMBER_A"
	for _ in $(seq 1 "$3"); do args+=(-o /dev/null "$url"); done
	curl -s -m 60 -w '%{http_code}\n' -H "Authorization: Bearer $2" "${args[@]}" |
		sort | uniq -c | awk '{ printf "%s%sx%s", sep, $2, $1; sep = " " }'
}

# a lease is twice the key's demand (at most 20 here): a key seen once asks
# for one token, seen twice for 4
t=$(user one)
gw_use a
api GET "/users/$MEMBER_A" "$t"
is "$STATUS/$(header RateLimit-Remaining)" "200/639" "gateway a, first request: one token, no lease (639 left)"
api GET "/users/$MEMBER_A" "$t"
is "$STATUS/$(header RateLimit-Remaining)" "200/638" \
	"second request: a lease of 4 (1 spent, 3 held and counted: 638)"
is "$(burst b "$t" 700)" "200x635 429x65" \
	"gateway b: exactly the 635 neither spent nor held by a pass - one limit, no excess"
api GET "/users/$MEMBER_A" "$t"
is "$STATUS/$(header RateLimit-Remaining)" "200/637" \
	"gateway a spends its lease without Redis (remaining: Redis's 635 at the grant + 2 held, as of the grant)"
is "$(burst a "$t" 30)" "200x2 429x28" "... its last 2 tokens, then 429: 640 in all across the two"
leased=$(gw_metric b iam_ratelimit_lease_decisions_total)
calls=$(gw_metric b iam_ratelimit_redis_calls_total)
[ "$leased" -ge 500 ] && [ "$calls" -le 200 ]
ok $? "gateway b decided most requests from leases: $leased from leases, $calls Redis calls"

# an expired lease's tokens come back (with the key's next request, or by the
# sweep of idle keys that any request starts once per lease lifetime) ...
t=$(user two)
gw_use short
api GET "/users/$MEMBER_A" "$t"
api GET "/users/$MEMBER_A" "$t"
is "$STATUS/$(header RateLimit-Remaining)" "200/638" "short leases: the second request leases 4 (2 spent, 3 held)"
sleep 0.5
api GET "/users/$MEMBER_A" "$t"
is "$STATUS/$(header RateLimit-Remaining)" "200/637" \
	"after the lease expired its 3 tokens are back: 640 - 3 spent (as if never leased)"
passed() { sed -nE 's/^200x([0-9]+).*/\1/p'; }
on_b=$(burst b "$t" 700 | passed)
on_short=$(burst short "$t" 30 | passed)
is "$((on_b + ${on_short:-0}))" 637 \
	"... another gateway gets them all but what short holds, which short still spends ($on_b + ${on_short:-0})"

# ... without a request of the key: swept once idle
t=$(user three)
api GET "/users/$MEMBER_A" "$t"
api GET "/users/$MEMBER_A" "$t"	# short holds 3 for three
sleep 0.7
api GET "/users/$MEMBER_A" "$(user four)"	# any request sweeps the idle keys' leases
is "$(burst b "$t" 700)" "200x638 429x62" "an idle key's expired lease is refunded: 638 pass elsewhere"

# without leases every request asks Redis
t=$(user five)
before=$(gw_metric none iam_ratelimit_redis_calls_total)
is "$(burst none "$t" 50)" "200x50" "IAM_RATE_LIMIT_LEASE_MS=0: 50 requests pass"
after=$(gw_metric none iam_ratelimit_redis_calls_total)
is "$((after - before))" 50 "... each decided by Redis"
is "$(gw_metric none iam_ratelimit_lease_decisions_total)" 0 "... none from a lease"

gw_log_clean a && gw_log_clean b && gw_log_clean short && gw_log_clean none
ok $? "the gateways' logs are all JSON lines (no sanitizer report)"
done_testing
