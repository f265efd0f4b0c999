#!/usr/bin/env bash
# gateway_config.t: a missing or malformed setting stops start-up with one
# line naming the setting, and a non-zero exit.
. "$(dirname "$0")/lib.sh"
plan 21

DB="IAM_DATABASE_URL=$IAM_TEST_DATABASE_URL"

# expect_refusal SETTING [VAR=value...]: the gateway exits non-zero, printing
# one line that names SETTING.
expect_refusal() {
	local setting=$1
	shift
	gateway_run_config "$@"
	[ "$RUN_EXIT" -ne 0 ] && [ "$RUN_EXIT" -ne 124 ]
	ok $? "$setting: refused with a non-zero exit ($*)"
	[ "$(printf '%s\n' "$RUN_ERR" | grep -c .)" -eq 1 ] && [[ "$RUN_ERR" == *"$setting"* ]]
	ok $? "$setting: one line naming the setting: $RUN_ERR"
}

expect_refusal IAM_DATABASE_URL
expect_refusal IAM_DATABASE_URL IAM_DATABASE_URL='host=127.0.0.1 port= = nonsense'
expect_refusal IAM_THREADS "$DB" IAM_THREADS=abc
expect_refusal IAM_THREADS "$DB" IAM_THREADS=0
expect_refusal IAM_LISTEN "$DB" IAM_LISTEN=localhost
expect_refusal IAM_ACCESS_TTL "$DB" IAM_ACCESS_TTL=-5
expect_refusal IAM_JWT_ALG "$DB" IAM_JWT_ALG=none
expect_refusal IAM_JWT_KEY_FILE "$DB" IAM_JWT_KEY_FILE=/nonexistent/key.pem
expect_refusal IAM_REDIS_URL "$DB" IAM_REDIS_URL=http://127.0.0.1:1

# a malformed database URL never echoes its password
gateway_run_config IAM_DATABASE_URL='postgresql://iam_gateway:hunter2-secret@127.0.0.1:notaport/iam'
[ "$RUN_EXIT" -ne 0 ] && [[ "$RUN_ERR" != *hunter2* ]]
ok $? "a bad IAM_DATABASE_URL is refused without printing its password"

# a port in use names the port and the setting to change
gateway_start
taken=$GATEWAY_LISTEN
gateway_run_config "$DB" IAM_LISTEN="$taken"
[ "$RUN_EXIT" -ne 0 ] && [[ "$RUN_ERR" == *"${taken#*:}"* ]] && [[ "$RUN_ERR" == *IAM_LISTEN* ]]
ok $? "a port in use is reported with the port and IAM_LISTEN: $RUN_ERR"
gateway_stop
is "$GATEWAY_EXIT" 0 "the first gateway was not disturbed and stops cleanly"

done_testing
