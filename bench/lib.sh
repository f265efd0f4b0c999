# bench/lib.sh: what every benchmark does first.  Sourced by bench/*.sh
# from the top of the repository.
. scripts/lib.sh

# what the benchmarks need beyond scripts/deps.sh (wrk, gnuplot, Node for the
# baseline): installed as root when missing, whichever benchmark runs first
bench_packages=(gcc make libmicrohttpd-dev postgresql-15 postgresql-contrib redis-server
	wrk gnuplot-nox curl jq openssl)
command -v npm >/dev/null 2>&1 || bench_packages+=(nodejs npm)
_bench_missing=()
for _bench_pkg in "${bench_packages[@]}"; do
	dpkg-query -W -f='${Status}\n' "$_bench_pkg" 2>/dev/null | grep -q '^install ok installed$' || _bench_missing+=("$_bench_pkg")
done
if [ ${#_bench_missing[@]} -gt 0 ]; then
	[ "$(id -u)" -eq 0 ] || { echo "pg_iam: the benchmarks need: sudo apt-get install -y ${_bench_missing[*]}" >&2; exit 1; }
	echo "pg_iam: installing ${_bench_missing[*]}" >&2
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${_bench_missing[@]}" >/dev/null
fi

# bench_cluster NAME DEFAULT_PORT: install the current build, then start a
# throwaway cluster (stopped and removed at exit) with database iam and the
# postgresql.conf lines given on stdin; sets BENCH_DIR and BENCH_PORT
# (IAM_BENCH_PG_PORT overrides the port to start looking from).
bench_cluster() {
	if [ "$(id -u)" -eq 0 ]; then
		make -s -o gateway install >/dev/null
	fi
	BENCH_DIR=$(scratch_dir "$1")
	BENCH_PORT=$(free_port "${IAM_BENCH_PG_PORT:-$2}")
	trap 'pg_stop "$BENCH_DIR"; rm -rf "$BENCH_DIR"' EXIT
	pg_init "$BENCH_DIR" "$BENCH_PORT"
	as_run_user tee -a "$BENCH_DIR/pgdata/postgresql.conf" >/dev/null
	pg_start "$BENCH_DIR"
	pg_psql "$BENCH_DIR" "$BENCH_PORT" -d postgres -c "CREATE DATABASE iam" >/dev/null
}

# psql_bench [psql args...]: psql into the benchmark's database iam.
psql_bench() { pg_psql "$BENCH_DIR" "$BENCH_PORT" -d iam "$@"; }
