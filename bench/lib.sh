# bench/lib.sh: what every benchmark does first.  Sourced by bench/*.sh
# from the top of the repository.
. scripts/lib.sh

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
