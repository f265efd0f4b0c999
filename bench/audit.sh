#!/usr/bin/env bash
# bench/audit.sh (`make bench`): the cost of the audit trail on writes.  On a
# throwaway cluster (durable commits: fsync and synchronous_commit on), one
# organisation of 10,000 users, pgbench with 8 clients updating random users
# (one UPDATE of last_login per transaction, with a request id),
# IAM_BENCH_AUDIT_SECONDS (5) per configuration in IAM_BENCH_AUDIT_ROUNDS
# (2) interleaved rounds (medians reported):
#   - unaudited: the audit_capture trigger of iam.users disabled;
#   - audited: iam.audit_capture (C) appending, the sealer worker chaining;
#     meanwhile the sealing lag (age of the oldest unsealed row, from
#     iam.audit_status) is sampled every 0.1 s;
#   - PL/pgSQL: the same capture and chain written in PL/pgSQL with a
#     chain-head row lock (bench/audit_plpgsql.sql), the usual approach.
# Then iam.audit_verify over one chain of 1,000,000 sealed rows.
# Prints the throughputs and ratios, also to bench/results/audit.md.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

DURATION=${IAM_BENCH_AUDIT_SECONDS:-5}
ROUNDS=${IAM_BENCH_AUDIT_ROUNDS:-2}
# shared_buffers: a quarter of this 24 GiB machine would be the usual
# setting; 2 GB holds the verified chain (about 800 MB with its indexes at
# 1,000,000 rows), so verification measures hashing, not the page cache.
bench_cluster bench-audit 54389 <<'CONF'
autovacuum = off
shared_buffers = '2GB'
max_wal_size = '4GB'
CONF

log "generating data (10,000 users) ..."
PGOPTIONS='-c client_min_messages=warning' psql_bench >/dev/null <<'SQL'
CREATE EXTENSION iam CASCADE;
INSERT INTO iam.organizations (id, name, slug) VALUES (md5('org1')::uuid, 'Bench', 'bench');
INSERT INTO iam.users (id, org_id, email, name, role)
SELECT md5('user' || i)::uuid, md5('org1')::uuid, 'user' || i || '@bench.example', 'User ' || i, 'member'
FROM generate_series(1, 10000) AS i;
\i bench/audit_plpgsql.sql
INSERT INTO bench.chain_heads VALUES (md5('org1')::uuid, 0, '\x0000000000000000000000000000000000000000000000000000000000000000');
SELECT iam.audit_seal();
VACUUM ANALYZE;
SQL

cat >"$BENCH_DIR/update.sql" <<'SQL'
\set i random(1, 10000)
BEGIN;
SELECT set_config('iam.request_id', 'bench-' || :client_id, true);
UPDATE iam.users SET last_login = clock_timestamp() WHERE id = md5('user' || :i)::uuid;
COMMIT;
SQL
chmod 644 "$BENCH_DIR/update.sql"

# run_pgbench NAME: prints the tps of one run
run_pgbench() {
	"$PG_BIN/pgbench" -n -h "$BENCH_DIR/sock" -p "$BENCH_PORT" -U postgres -d iam \
		-c 8 -j 2 -T "$DURATION" -f "$BENCH_DIR/update.sql" >"$BENCH_DIR/$1.log" 2>&1 \
		|| { cat "$BENCH_DIR/$1.log" >&2; die "pgbench failed ($1)"; }
	sed -nE 's/^tps = ([0-9.]+) \(without initial connection time\)/\1/p' "$BENCH_DIR/$1.log"
}

# set_trigger NAME: only the named capture trigger of iam.users enabled
# (none: neither), then a checkpoint, so that every run starts alike
set_trigger() {
	psql_bench -c 'ALTER TABLE iam.users DISABLE TRIGGER audit_capture' \
		-c 'ALTER TABLE iam.users DISABLE TRIGGER audit_plpgsql' >/dev/null
	[ "$1" = none ] || psql_bench -c "ALTER TABLE iam.users ENABLE TRIGGER $1" >/dev/null
	psql_bench -c 'CHECKPOINT' >/dev/null
}
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# the three configurations in ROUNDS interleaved rounds, so that a change of
# the machine's load falls on all of them; medians are reported
NONE=() C=() PL=()
: >"$BENCH_DIR/lag"
for round in $(seq 1 "$ROUNDS"); do
	log "round $round of $ROUNDS: unaudited, audited, PL/pgSQL, ${DURATION} s each ..."
	set_trigger none
	NONE+=("$(run_pgbench "none-$round")")
	set_trigger audit_capture
	rm -f "$BENCH_DIR/stop"
	(
		while [ ! -f "$BENCH_DIR/stop" ]; do
			psql_bench -At -c 'SELECT extract(epoch FROM lag) FROM iam.audit_status' >>"$BENCH_DIR/lag" 2>/dev/null || true
			sleep 0.1
		done
	) &
	SAMPLER=$!
	C+=("$(run_pgbench "c-$round")")
	touch "$BENCH_DIR/stop"
	wait "$SAMPLER"
	set_trigger audit_plpgsql
	PL+=("$(run_pgbench "plpgsql-$round")")
done
set_trigger audit_capture
TPS_NONE=$(median "${NONE[@]}") TPS_C=$(median "${C[@]}") TPS_PL=$(median "${PL[@]}")

LAG=$(sort -g "$BENCH_DIR/lag" | awk '{ v[NR] = $1 } END {
	if (NR == 0) { print "n/a n/a n/a 0"; exit }
	p50 = v[int((NR - 1) * 0.50) + 1]; p99 = v[int((NR - 1) * 0.99) + 1];
	printf "%.3f %.3f %.3f %d\n", p50, p99, v[NR], NR }')
read -r LAG_P50 LAG_P99 LAG_MAX LAG_N <<<"$LAG"

log "verification: growing the chain to 1,000,000 rows ..."
PGOPTIONS='-c client_min_messages=warning' psql_bench >/dev/null <<'SQL'
SELECT iam.audit_seal();
-- the chain grown to 1,000,000 rows: rows such as the capture trigger
-- appends for an update of last_login, written to the inbox in bulk (its
-- guard, which lets only the extension's C code append, off for this
-- transaction), then chained and hashed by the sealer like any others.
-- Updating the users 100 times over made the same rows in a minute more.
BEGIN;
SET LOCAL session_replication_role = replica;
INSERT INTO iam.audit_inbox (org_id, action, entity_type, entity_id, changes, request_id, db_role, created_at)
SELECT md5('org1')::uuid, 'user.updated', 'user', md5('user' || (1 + g % 10000))::uuid,
	   jsonb_build_object('last_login', jsonb_build_object(
		   'old', timestamptz '2030-01-01' + (g - 1) * interval '1 second',
		   'new', timestamptz '2030-01-01' + g * interval '1 second')),
	   'bench-verify', 'postgres', clock_timestamp()
FROM generate_series(1, greatest(0, 1000000 - (SELECT count(*) FROM iam.audit_logs
												WHERE org_id = md5('org1')::uuid))) AS g;
COMMIT;
SELECT iam.audit_seal();
VACUUM ANALYZE iam.audit_logs;
SQL
VERIFY=$(psql_bench -At <<'SQL'
SELECT sealed FROM iam.audit_verify(md5('org1')::uuid);	-- warm the cache
SELECT clock_timestamp() AS t0 \gset
SELECT format('%s %s %s', ok, sealed, round(extract(epoch FROM clock_timestamp() - :'t0'::timestamptz)::numeric, 2))
FROM iam.audit_verify(md5('org1')::uuid);
SQL
)
read -r VERIFY_OK VERIFY_ROWS VERIFY_S <<<"$(echo "$VERIFY" | tail -n 1)"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
TABLE="| measure | result | target |
|---|---|---|
| unaudited (audit trigger disabled) | $TPS_NONE tps | |
| audited: C capture trigger, sealer worker chaining | $TPS_C tps | |
| PL/pgSQL capture + chain under a chain-head lock | $TPS_PL tps | |
| audited ÷ unaudited | $(ratio "$TPS_C" "$TPS_NONE")× | ≥ 0.8× |
| audited ÷ PL/pgSQL | $(ratio "$TPS_C" "$TPS_PL")× | ≥ 3× |
| PL/pgSQL ÷ unaudited | $(ratio "$TPS_PL" "$TPS_NONE")× | |
| sealing lag during the audited run (age of the oldest unsealed row, $LAG_N samples every 0.1 s): p50 / p99 / max | $LAG_P50 / $LAG_P99 / $LAG_MAX s | p99 ≤ 1 s |
| \`iam.audit_verify\` over one chain of $VERIFY_ROWS sealed rows (ok: $VERIFY_OK) | $VERIFY_S s | ≤ 2 s |"

HEADER="## audit: cost of the audit trail on writes ($(date -u +%Y-%m-%d), $(nproc) cores, $("$PG_BIN/postgres" --version | sed 's/^postgres (PostgreSQL) /PostgreSQL /'))

pgbench, 8 clients, ${DURATION} s per configuration and round, medians of $ROUNDS interleaved rounds
(each run after a CHECKPOINT), one organisation of 10,000 users, one
UPDATE of last_login per transaction (with iam.request_id set), durable commits (fsync and
synchronous_commit on), iam.audit_seal_interval at its default (200 ms); bench/audit.sh.
The PL/pgSQL baseline is bench/audit_plpgsql.sql."
mkdir -p bench/results
printf '%s\n\n%s\n' "$HEADER" "$TABLE" | tee bench/results/audit.md
