#!/usr/bin/env bash
# ratelimit_limits.t (#7): exact enforcement of a class, its headers, the
# 429, reset after the window, per user and per client IP, X-Forwarded-For
# only from trusted proxies, per account for anonymous calls -- with the
# limiter in Redis and in process (no IAM_REDIS_URL).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ratelimit_lib.sh"

api_fixtures
CLS=e2e_rl_$SUFFIX
SHORT=e2e_short_$SUFFIX
ANON=e2e_anon_$SUFFIX
rl_class "$CLS" 3 3600
rl_class "$SHORT" 3 2
rl_class "$ANON" 2 3600
rl_route GET '/users/{id:uuid}' "$CLS"
rl_route GET /roles "$SHORT"
anon=$(sql "SELECT method || ' ' || path FROM iam.routes WHERE NOT authenticated AND method = 'POST'
			ORDER BY path = '/auth/login' DESC, path LIMIT 1")
ANON_M=${anon%% *}; ANON_P=${anon#* }
rl_route "$ANON_M" "$ANON_P" "$ANON"

# mode NAME [VAR=value...]: the whole sequence on a gateway started so
for mode in redis local; do
	if [ $mode = redis ]; then gw_start $mode; else gw_start $mode IAM_REDIS_URL=; fi
	gw_use $mode
	# fresh users per mode: the limiter's keys are per user
	u1=$(sql "SELECT iam.create_user('$ORG_A', 'rl1-$mode-$SUFFIX@a.example', 'R1', 'admin', NULL)")
	u2=$(sql "SELECT iam.create_user('$ORG_A', 'rl2-$mode-$SUFFIX@a.example', 'R2', 'admin', NULL)")
	u3=$(sql "SELECT iam.create_user('$ORG_A', 'rl3-$mode-$SUFFIX@a.example', 'R3', 'admin', NULL)")
	t1=$(mint "$u1" "$ORG_A"); t2=$(mint "$u2" "$ORG_A"); t3=$(mint "$u3" "$ORG_A")
	probe=$(mint "$ADMIN_A" "$ORG_A")

	wait_limit "/users/$MEMBER_A" "$probe" 3
	ok $? "$mode: the test class (3 an hour) is loaded from iam.rate_limit_classes"

	got=""
	for i in 1 2 3; do
		api GET "/users/$MEMBER_A" "$t1"
		got+="$STATUS/$(header RateLimit-Limit)/$(header RateLimit-Remaining) "
	done
	is "$got" "200/3/2 200/3/1 200/3/0 " "$mode: 3 requests pass, RateLimit-Limit 3, Remaining 2, 1, 0"
	reset=$(header RateLimit-Reset)
	[[ "$reset" =~ ^[0-9]+$ ]] && [ "$reset" -ge 3500 ] && [ "$reset" -le 3600 ]
	ok $? "$mode: RateLimit-Reset is the seconds until the quota is whole again ($reset)"
	api GET "/users/$MEMBER_A" "$t1"
	is_problem 429 rate_limited "$mode: the 4th is 429 problem+json"
	ra=$(header Retry-After)
	[[ "$ra" =~ ^[0-9]+$ ]] && [ "$ra" -ge 1100 ] && [ "$ra" -le 1200 ]
	ok $? "$mode: Retry-After says when the next one passes (one request every 1200 s: $ra)"
	is "$(header RateLimit-Limit)/$(header RateLimit-Remaining)" "3/0" "$mode: the 429 carries RateLimit-Limit and Remaining 0"
	api GET "/users/$MEMBER_A" "$t1"
	is "$STATUS" 429 "$mode: and stays refused"
	api GET "/users/$MEMBER_A" "$t2"
	is "$STATUS/$(header RateLimit-Remaining)" "200/2" "$mode: another user has a quota of its own"
	api GET /users/me "$t1"
	is "$STATUS" 200 "$mode: the limited user may still use a route of another class"

	# reset after the window: 3 per 2 s
	wait_limit /roles "$probe" 3
	got=""
	for i in 1 2 3 4; do api GET /roles "$t3"; got+="$STATUS "; done
	is "$got" "200 200 200 429 " "$mode: short class: 3 pass, the 4th is refused"
	sleep 2.1
	got=""
	for i in 1 2 3 4; do api GET /roles "$t3"; got+="$STATUS "; done
	is "$got" "200 200 200 429 " "$mode: a window later, 3 pass again and the 4th is refused"

	# anonymous: per client IP; X-Forwarded-For from an untrusted peer is ignored
	wait_limit /users/me "$probe" 1200
	got=""
	for i in 1 2 3; do
		api "$ANON_M" "$ANON_P" - -H "X-Forwarded-For: 203.0.113.$i" -H 'Content-Type: application/json' \
			--data-binary "{\"email\":\"nobody$i-$mode-$SUFFIX@a.example\",\"password\":\"x\"}"
		got+="$([ "$STATUS" = 429 ] && echo 429 || echo pass) "
	done
	is "$got" "pass pass 429 " "$mode: anonymous $ANON_P: 2 per client IP; X-Forwarded-For from an untrusted peer changes nothing"
	is "$(header RateLimit-Limit)" 2 "$mode: ... with the RateLimit headers"
	gw_log_clean $mode
	ok $? "$mode: the gateway log is all JSON"
	gw_stop $mode
	is "$GW_EXIT" 0 "$mode: the gateway stops cleanly"
done

# trusted proxy: the client is the right-most untrusted X-Forwarded-For address
gw_start proxy IAM_TRUSTED_PROXIES=127.0.0.1,10.0.0.0/8
gw_use proxy
anon_try() {	# anon_try XFF EMAIL: prints pass or 429
	api "$ANON_M" "$ANON_P" - -H "X-Forwarded-For: $1" -H 'Content-Type: application/json' \
		--data-binary "{\"email\":\"$2\",\"password\":\"x\"}"
	[ "$STATUS" = 429 ] && echo 429 || echo pass
}
got="$(anon_try 198.51.100.1 p1-$SUFFIX@x.example) $(anon_try 198.51.100.1 p2-$SUFFIX@x.example) $(anon_try 198.51.100.1 p3-$SUFFIX@x.example)"
is "$got" "pass pass 429" "trusted proxy: the X-Forwarded-For client is limited"
is "$(anon_try 198.51.100.2 p4-$SUFFIX@x.example)" pass "trusted proxy: another forwarded client has its own quota"
is "$(anon_try '198.51.100.1, 10.1.2.3' p5-$SUFFIX@x.example)" 429 "trusted proxy: trusted hops on the right are skipped"
is "$(anon_try '198.51.100.3, 198.51.100.1' p6-$SUFFIX@x.example)" 429 "trusted proxy: a client cannot pick its address by prepending one"
# per account: the same email from fresh addresses
got="$(anon_try 192.0.2.1 acct-$SUFFIX@x.example) $(anon_try 192.0.2.2 ACCT-$SUFFIX@x.example) $(anon_try 192.0.2.3 acct-$SUFFIX@x.example)"
is "$got" "pass pass 429" "anonymous calls are limited per account too (the body's email, any case)"
gw_log_clean proxy
ok $? "proxy: the gateway log is all JSON"
gw_stop proxy
is "$GW_EXIT" 0 "proxy: the gateway stops cleanly"
done_testing
