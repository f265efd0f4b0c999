# lib.sh: shared by up.sh, down.sh and test.sh.  Starts and stops a private
# PostgreSQL cluster and a Redis server on loopback ports, as an unprivileged
# OS user, tracking every process by its pid file.
#
# PostgreSQL refuses to run as root; when we are root the servers run as the
# Debian package's `postgres` user, in directories that user owns.

PG_CONFIG=${PG_CONFIG:-$( [ -x /usr/lib/postgresql/15/bin/pg_config ] && echo /usr/lib/postgresql/15/bin/pg_config || echo pg_config )}
PG_BIN=$("$PG_CONFIG" --bindir)
if [ "$(id -u)" -eq 0 ]; then
	RUN_USER=postgres
else
	RUN_USER=$(id -un)
fi

log() { echo "pg_iam: $*" >&2; }
die() { log "$*"; exit 1; }

# as_run_user CMD...: run a command as the servers' OS user.
as_run_user() {
	if [ "$(id -un)" = "$RUN_USER" ]; then
		"$@"
	else
		(cd / && runuser -u "$RUN_USER" -- "$@")
	fi
}

# state_dir_for WANTED: print a directory the run user can write, WANTED when
# it can reach it, else one under /var/tmp named after WANTED (a checkout
# under /root, say, is closed to the postgres user).
state_dir_for() {
	local wanted=$1 alt
	mkdir -p "$wanted"
	if [ "$(id -u)" -eq 0 ]; then
		chown "$RUN_USER" "$wanted"
		if ! as_run_user test -w "$wanted" 2>/dev/null; then
			alt=/var/tmp/pg_iam-$(printf '%s' "$(cd "$wanted" && pwd)" | sha256sum | cut -c1-12)
			mkdir -p "$alt"
			chown "$RUN_USER" "$alt"
			chmod 700 "$alt"
			# leave a link where the caller looked, for people and logs
			rmdir "$wanted" 2>/dev/null && ln -sfn "$alt" "$wanted"
			wanted=$alt
		fi
	fi
	echo "$wanted"
}

# scratch_dir NAME: a new directory /tmp/pg_iam-NAME.XXXXXX owned by the
# servers' user, for a throwaway cluster of a test run or a benchmark.
scratch_dir() {
	local dir
	dir=$(mktemp -d "/tmp/pg_iam-$1.XXXXXX")
	if [ "$(id -u)" -eq 0 ]; then
		chown "$RUN_USER" "$dir"
	fi
	echo "$dir"
}

# pg_init DIR PORT: create a cluster in DIR/pgdata listening on 127.0.0.1:PORT
# and on a socket in DIR/sock, with iam and pg_cron preloaded.  Superuser
# `postgres` may connect over the socket only; TCP needs a password.
pg_init() {
	local dir=$1 port=$2
	[ -f "$dir/pgdata/PG_VERSION" ] && return 0
	as_run_user mkdir -p "$dir/sock"
	as_run_user chmod 700 "$dir/sock"
	as_run_user "$PG_BIN/initdb" -D "$dir/pgdata" -U postgres -E UTF8 --locale=C.UTF-8 \
		--auth-local=trust --auth-host=scram-sha-256 >"$dir/initdb.log" 2>&1 \
		|| { cat "$dir/initdb.log" >&2; die "initdb failed in $dir/pgdata"; }
	as_run_user tee -a "$dir/pgdata/postgresql.conf" >/dev/null <<CONF

# pg_iam
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir/sock'
shared_preload_libraries = 'iam,pg_cron'
cron.database_name = 'iam'
password_encryption = 'scram-sha-256'
max_connections = 200
logging_collector = off
CONF
}

# pg_start DIR: start the cluster unless its postmaster.pid names a live
# process; waits until it accepts connections.
pg_start() {
	local dir=$1
	if as_run_user "$PG_BIN/pg_ctl" -D "$dir/pgdata" status >/dev/null 2>&1; then
		return 0
	fi
	as_run_user "$PG_BIN/pg_ctl" -D "$dir/pgdata" -l "$dir/postgres.log" -w -t 60 start >/dev/null \
		|| { tail -n 20 "$dir/postgres.log" >&2; die "PostgreSQL did not start (log: $dir/postgres.log)"; }
}

# pg_stop DIR: fast shutdown, by the cluster's own pid file.
pg_stop() {
	local dir=$1
	[ -f "$dir/pgdata/postmaster.pid" ] || return 0
	as_run_user "$PG_BIN/pg_ctl" -D "$dir/pgdata" -m fast -w -t 60 stop >/dev/null 2>&1 || true
}

# pg_psql DIR PORT [psql args...]: psql as superuser over the socket.
pg_psql() {
	local dir=$1 port=$2
	shift 2
	"$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir/sock" -p "$port" -U postgres "$@"
}

# redis_start DIR PORT: a Redis on 127.0.0.1:PORT without persistence.
redis_start() {
	local dir=$1 port=$2
	if [ -f "$dir/redis.pid" ] && kill -0 "$(cat "$dir/redis.pid")" 2>/dev/null; then
		return 0
	fi
	as_run_user redis-server --bind 127.0.0.1 --port "$port" --daemonize yes \
		--pidfile "$dir/redis.pid" --dir "$dir" --logfile "$dir/redis.log" \
		--save '' --appendonly no >/dev/null \
		|| die "Redis did not start on port $port (log: $dir/redis.log)"
	for _ in $(seq 1 50); do
		redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG && return 0
		sleep 0.1
	done
	die "Redis did not answer on port $port (log: $dir/redis.log)"
}

# stop_pidfile FILE: TERM the process named in FILE and wait (10 s) for it.
stop_pidfile() {
	local file=$1 pid
	[ -f "$file" ] || return 0
	pid=$(cat "$file")
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 1 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
	fi
	rm -f "$file"
}

# wait_http URL: wait up to 10 s for a 200.
wait_http() {
	for _ in $(seq 1 100); do
		[ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" = 200 ] && return 0
		sleep 0.1
	done
	return 1
}

# wait_gateway URL PID LOG: wait up to 10 s until the gateway PID, whose
# stderr is LOG, has logged that it listens and URL answers 200.  Fails at
# once when PID exits: when another server took the port between free_port
# and the gateway's bind, URL answers, but not from this gateway.
wait_gateway() {
	for _ in $(seq 1 100); do
		kill -0 "$2" 2>/dev/null || return 1
		grep -q '"listening"' "$3" 2>/dev/null &&
			[ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" = 200 ] && return 0
		sleep 0.1
	done
	return 1
}

# free_port FROM: the first port from FROM up on which nothing listens on
# loopback.
free_port() {
	local p=$1
	while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do
		p=$((p + 1))
	done
	echo "$p"
}
