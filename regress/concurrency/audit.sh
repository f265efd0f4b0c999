#!/usr/bin/env bash
# regress/concurrency/audit.sh (run by `make test`): concurrent writers in two
# organisations (pgbench, 8 clients, 2,000 transactions, some transactions
# sealing with iam.audit_seal() while the sealer worker seals too) leave one
# chain per organisation, seq gapless from 1, that iam.audit_verify accepts.
# Uses the server in PGHOST/PGPORT/PGUSER and database iam; prints TAP.
set -euo pipefail
cd "$(dirname "$0")/../.."
PG_BIN=$(${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config} --bindir)
psql_iam() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -d iam "$@"; }
WORK=$(mktemp -d /tmp/pg_iam-conc.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

psql_iam >/dev/null <<'SQL'
SET client_min_messages = warning;
DELETE FROM iam.organizations WHERE slug IN ('conc-0', 'conc-1');
SELECT iam.create_organization('Concurrent ' || o, 'conc-' || o) FROM generate_series(0, 1) AS o;
SELECT iam.create_user(org.id, 'c' || i || '@conc' || o || '.example', 'C ' || i, 'member', NULL)
FROM generate_series(0, 1) AS o JOIN iam.organizations org ON org.slug = 'conc-' || o,
	 generate_series(1, 50) AS i;
SQL

cat >"$WORK/update.sql" <<'SQL'
\set o random(0, 1)
\set i random(1, 50)
BEGIN;
SELECT set_config('iam.request_id', 'conc-' || :client_id, true);
UPDATE iam.users SET last_login = clock_timestamp() WHERE email = 'c' || :i || '@conc' || :o || '.example';
UPDATE iam.users SET department = 'D' || :client_id WHERE email = 'c' || (51 - :i) || '@conc' || (1 - :o) || '.example';
COMMIT;
SQL
echo 'SELECT iam.audit_seal();' >"$WORK/seal.sql"

"$PG_BIN/pgbench" -n -d iam -c 8 -j 2 -t 250 -f "$WORK/update.sql@20" -f "$WORK/seal.sql@1" \
	>"$WORK/pgbench.log" 2>&1 || { cat "$WORK/pgbench.log" >&2; echo "not ok 1 - pgbench ran"; exit 1; }
echo "ok 1 - pgbench ran 8 clients x 250 transactions"

psql_iam -At >"$WORK/result" <<'SQL'
SELECT iam.audit_seal() >= 0;
SELECT count(*) FROM iam.audit_logs l JOIN iam.organizations o ON o.id = l.org_id
WHERE o.slug IN ('conc-0', 'conc-1') AND l.seq IS NULL;
SELECT string_agg(format('%s:%s:%s:%s:%s', slug, rows, max_seq, distinct_seq,
						 (SELECT ok FROM iam.audit_verify(id))), ' ' ORDER BY slug)
FROM (SELECT o.id, o.slug, count(*) AS rows, max(l.seq) AS max_seq, count(DISTINCT l.seq) AS distinct_seq
	  FROM iam.audit_logs l JOIN iam.organizations o ON o.id = l.org_id
	  WHERE o.slug IN ('conc-0', 'conc-1') GROUP BY o.id, o.slug) AS chains;
SQL
mapfile -t r <"$WORK/result"
n=2
[ "${r[1]}" = 0 ] && echo "ok $n - nothing left unsealed" || echo "not ok $n - ${r[1]} rows left unsealed"
for chain in ${r[2]}; do
	IFS=: read -r slug rows maxseq distinct ok <<<"$chain"
	n=$((n + 1))
	if [ "$rows" = "$maxseq" ] && [ "$rows" = "$distinct" ] && [ "$rows" -gt 1000 ]; then
		echo "ok $n - $slug: $rows rows, seq 1..$maxseq gapless, no duplicate"
	else
		echo "not ok $n - $slug: $rows rows, max seq $maxseq, $distinct distinct seq"
	fi
	n=$((n + 1))
	[ "$ok" = t ] && echo "ok $n - $slug: audit_verify passes" || echo "not ok $n - $slug: audit_verify fails"
done
echo "1..$n"
