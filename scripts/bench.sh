#!/usr/bin/env bash
# bench.sh (`make bench`): runs every bench/*.sh in turn.  Each benchmark
# starts its own servers, runs its baseline in the same invocation and prints
# ratios against it.  Benchmarks never run as part of `make test`.  Says how
# long each took and the whole: issue 9 wants `make bench` in 10 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
for b in bench/*.sh; do
	[ "$b" != bench/lib.sh ] || continue	# sourced by the others
	echo "== $b"
	t0=$(date +%s)
	bash "$b"
	echo "== $b: $(($(date +%s) - t0)) s"
done
echo "== make bench: $(($(date +%s) - start)) s"
