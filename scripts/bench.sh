#!/usr/bin/env bash
# bench.sh (`make bench`): runs every bench/*.sh in turn.  Each benchmark
# starts its own servers, runs its baseline in the same invocation and prints
# ratios against it.  Benchmarks never run as part of `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
for b in bench/*.sh; do
	[ "$b" != bench/lib.sh ] || continue	# sourced by the others
	echo "== $b"
	bash "$b"
done
