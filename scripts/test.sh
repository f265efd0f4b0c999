#!/usr/bin/env bash
# test.sh (`make test`): everything, on a throwaway PostgreSQL cluster and
# Redis that it starts and stops itself.
#   build      extension and gateway with -Wall -Wextra -Werror
#   regress    pg_regress: sql/ against expected/
#   pgtap      pg_prove: regress/tap/*.sql
#   unit       gateway unit tests under AddressSanitizer + UBSan
#   e2e        regress/e2e/*.t: the real gateway (ASan build) over HTTP,
#              its /openapi.json checked by scripts/openapi_validator.sh
#   concurrency regress/concurrency/*.sh: concurrent writers (pgbench)
# Ends with one line "N passed, N failed"; exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
# first, so that lib.sh finds pg_config on a fresh machine
scripts/deps.sh || { echo "0 passed, 1 failed"; exit 1; }
. scripts/lib.sh

passed=0
failed=0
LOGS=$(mktemp -d /tmp/pg_iam-test-logs.XXXXXX)

# count_tap FILE STATUS: add a TAP log's ok / not ok lines to the totals; a
# stage that exits non-zero without a failing test line still counts as one
# failure (a crash, a bad plan).
count_tap() {
	local file=$1 status=$2 ok notok
	ok=$(grep -cE '^[[:space:]]*ok [0-9]+' "$file")
	notok=$(grep -cE '^[[:space:]]*not ok [0-9]+' "$file")
	if [ "$status" -ne 0 ] && [ "$notok" -eq 0 ]; then
		notok=1
	fi
	passed=$((passed + ok))
	failed=$((failed + notok))
	echo "== $(basename "$file" .log): $ok passed, $notok failed"
	if [ "$notok" -gt 0 ]; then
		grep -E '^[[:space:]]*not ok|^#|Dubious|Bad plan|ERROR|runtime error|AddressSanitizer' "$file" | head -n 40
	fi
}

# stage NAME CMD...: run one check that is a single pass/fail.
stage() {
	local name=$1
	shift
	if "$@" >"$LOGS/$name.log" 2>&1; then
		echo "ok 1 - $name" >>"$LOGS/$name.log"
		count_tap "$LOGS/$name.log" 0
	else
		echo "not ok 1 - $name" >>"$LOGS/$name.log"
		count_tap "$LOGS/$name.log" 1
		tail -n 30 "$LOGS/$name.log"
	fi
}

summary() {
	echo
	if [ "$failed" -eq 0 ]; then
		rm -rf "$LOGS"
	else
		echo "logs: $LOGS"
	fi
	echo "$passed passed, $failed failed"
	[ "$failed" -eq 0 ]
}

stage build make -s
stage build-asan make -s -C gateway iam-gateway-asan
# the OpenAPI 3.1 validator (npm, cached under .cache/) the e2e tests use
stage openapi-validator scripts/openapi_validator.sh --install
if [ "$(id -u)" -eq 0 ]; then
	stage install make -s install
else
	log "not root: the extension must already be installed ('sudo make install')"
fi
[ "$failed" -eq 0 ] || { summary; exit 1; }

# throwaway servers
TEST_DIR=$(scratch_dir test)
TEST_PG_PORT=$(free_port "${IAM_TEST_PG_PORT:-54339}")
TEST_REDIS_PORT=$(free_port "${IAM_TEST_REDIS_PORT:-6399}")
cleanup() {
	stop_pidfile "$TEST_DIR/redis.pid"
	pg_stop "$TEST_DIR"
	rm -rf "$TEST_DIR"
}
trap cleanup EXIT
pg_init "$TEST_DIR" "$TEST_PG_PORT"
# a throwaway cluster need not survive a crash
echo "fsync = off" | as_run_user tee -a "$TEST_DIR/pgdata/postgresql.conf" >/dev/null
pg_start "$TEST_DIR"
redis_start "$TEST_DIR" "$TEST_REDIS_PORT"

export PGHOST=$TEST_DIR/sock PGPORT=$TEST_PG_PORT PGUSER=postgres

# pg_regress: one line per test file ending in "ok" or "FAILED"
make -s installcheck >"$LOGS/regress.log" 2>&1
status=$?
sed -nE 's/^(test |     )?[[:space:]]*([a-z_0-9]+)[[:space:]]+\.\.\. ok.*/ok - \2/p; s/^(test |     )?[[:space:]]*([a-z_0-9]+)[[:space:]]+\.\.\. FAILED.*/not ok - \2/p' \
	"$LOGS/regress.log" | awk '{ sub(/ok -/, "ok " NR " -"); print }' >"$LOGS/regress"
count_tap "$LOGS/regress" "$status"
[ "$status" -eq 0 ] || { cat "$LOGS/regress.log"; head -n 80 regression.diffs 2>/dev/null; }

# the database the pgTAP suites and the gateway use
GATEWAY_PASSWORD=$(openssl rand -hex 16)
pg_psql "$TEST_DIR" "$TEST_PG_PORT" -d postgres -c "CREATE DATABASE iam" >/dev/null
PGOPTIONS='-c client_min_messages=warning' \
	pg_psql "$TEST_DIR" "$TEST_PG_PORT" -d iam -v pw="$GATEWAY_PASSWORD" >/dev/null <<'SQL'
CREATE EXTENSION iam CASCADE;
CREATE EXTENSION pgtap;
CREATE EXTENSION pg_cron;
ALTER ROLE iam_gateway PASSWORD :'pw';
SQL

pg_prove -v -d iam regress/tap/*.sql >"$LOGS/pgtap.log" 2>&1
count_tap "$LOGS/pgtap.log" $?

make -s -C gateway check >"$LOGS/unit.log" 2>&1
count_tap "$LOGS/unit.log" $?

export IAM_TEST_DIR=$TEST_DIR IAM_TEST_PG_PORT=$TEST_PG_PORT IAM_TEST_REDIS_PORT=$TEST_REDIS_PORT
export IAM_TEST_DATABASE_URL="postgresql://iam_gateway:$GATEWAY_PASSWORD@127.0.0.1:$TEST_PG_PORT/iam"
export IAM_TEST_REDIS_URL="redis://127.0.0.1:$TEST_REDIS_PORT"
export IAM_TEST_GATEWAY=$PWD/gateway/iam-gateway-asan
prove -v regress/e2e/*.t >"$LOGS/e2e.log" 2>&1
count_tap "$LOGS/e2e.log" $?

# concurrent audited writers (pgbench) against the sealer worker
regress/concurrency/audit.sh >"$LOGS/audit-concurrency.log" 2>&1
count_tap "$LOGS/audit-concurrency.log" $?

summary
