#!/usr/bin/env bash
# bench.sh (`make bench`): runs every bench/*.sh in turn.  Each benchmark
# starts its own servers, runs its baseline in the same invocation and prints
# ratios against it.  Benchmarks never run as part of `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
shopt -s nullglob
benches=(bench/*.sh)
if [ ${#benches[@]} -eq 0 ]; then
	echo "pg_iam: no benchmark yet (bench/ is filled by the RBAC, audit, gateway and bench issues)"
	exit 0
fi
for b in "${benches[@]}"; do
	echo "== $b"
	bash "$b"
done
