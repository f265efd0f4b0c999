#!/usr/bin/env bash
# up.sh (`make up`): install what is missing, build, and run pg_iam locally:
# a PostgreSQL cluster and a Redis under .run/, database `iam` with the
# extension and a demo organisation, and the gateway on 127.0.0.1:8080.
# Safe to run again: what exists is kept, the gateway is restarted on the
# fresh build.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh		# first, so that lib.sh finds pg_config on a fresh machine
. scripts/lib.sh

PG_PORT=${IAM_PG_PORT:-54329}
REDIS_PORT=${IAM_REDIS_PORT:-6389}
LISTEN=${IAM_LISTEN:-127.0.0.1:8080}
RUN=$PWD/.run

make -s
if [ "$(id -u)" -eq 0 ]; then
	make -s install >/dev/null
else
	die "installing the extension needs root: run 'sudo make install', then 'make up' again"
fi

mkdir -p "$RUN/secrets"
chmod 711 "$RUN"	# the servers' user may pass through, not list
chmod 700 "$RUN/secrets"
CLUSTER=$(state_dir_for "$RUN/cluster")
pg_init "$CLUSTER" "$PG_PORT"
pg_start "$CLUSTER"

secret() {	# secret NAME: a random value kept in .run/secrets/NAME
	local f=$RUN/secrets/$1
	[ -s "$f" ] || (umask 077 && openssl rand -base64 24 | tr -d '/+=\n' >"$f")
	cat "$f"
}
DB_PASSWORD=$(secret db_password)
ADMIN_PASSWORD=$(secret demo_admin_password)
JWT_KEY=$RUN/secrets/jwt-es256.pem
[ -s "$JWT_KEY" ] || (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$JWT_KEY")

pg_psql "$CLUSTER" "$PG_PORT" -d postgres -tA -c "SELECT 1 FROM pg_database WHERE datname = 'iam'" | grep -q 1 \
	|| pg_psql "$CLUSTER" "$PG_PORT" -d postgres -c "CREATE DATABASE iam"
PGOPTIONS="-c client_min_messages=warning" \
	pg_psql "$CLUSTER" "$PG_PORT" -d iam -v pw="$DB_PASSWORD" <<'SQL'
CREATE EXTENSION IF NOT EXISTS iam CASCADE;
ALTER EXTENSION iam UPDATE;
CREATE EXTENSION IF NOT EXISTS pg_cron;
ALTER ROLE iam_gateway PASSWORD :'pw';
SQL
pg_psql "$CLUSTER" "$PG_PORT" -d iam -v admin_password="$ADMIN_PASSWORD" -f scripts/demo.sql

redis_start "$CLUSTER" "$REDIS_PORT"

stop_pidfile "$RUN/gateway.pid"
IAM_DATABASE_URL="postgresql://iam_gateway:$DB_PASSWORD@127.0.0.1:$PG_PORT/iam" \
IAM_REDIS_URL="redis://127.0.0.1:$REDIS_PORT" \
IAM_LISTEN="$LISTEN" IAM_JWT_ALG=ES256 IAM_JWT_KEY_FILE="$JWT_KEY" \
	nohup gateway/iam-gateway >>"$RUN/gateway.log" 2>&1 </dev/null &
echo $! >"$RUN/gateway.pid"
if ! wait_http "http://$LISTEN/readyz"; then
	tail -n 5 "$RUN/gateway.log" >&2
	die "the gateway is not ready (log: $RUN/gateway.log)"
fi

cat <<MSG

pg_iam is up.
  API         http://$LISTEN   (try: curl http://$LISTEN/readyz)
  psql        psql -h $CLUSTER/sock -p $PG_PORT -U postgres iam
  demo login  admin@acme.example / $ADMIN_PASSWORD
  logs        $RUN/gateway.log, $CLUSTER/postgres.log
  stop        make down
MSG
