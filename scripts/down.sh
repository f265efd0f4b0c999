#!/usr/bin/env bash
# down.sh (`make down`): stop what `make up` started, by pid files only.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

RUN=$PWD/.run
[ -d "$RUN" ] || exit 0
stop_pidfile "$RUN/gateway.pid"
if [ -e "$RUN/cluster" ]; then
	CLUSTER=$(cd "$RUN/cluster" && pwd -P)
	stop_pidfile "$CLUSTER/redis.pid"
	pg_stop "$CLUSTER"
fi
log "stopped"
