/*
 * db.c
 *		A fixed-size libpq connection pool.
 *
 * Slots are lent out under one mutex; a condition variable wakes waiters
 * when a slot comes back.  Connections are opened lazily, outside the lock,
 * by the thread that acquired the slot, so a slow or unreachable server
 * never blocks threads that only give connections back.  A connection the
 * server closed (PostgreSQL restarted, backend terminated) is noticed either
 * when it is lent out (a pending EOF on an idle socket) or when a query on
 * it fails; it is then closed and the slot reconnects on next use, so the
 * gateway rides out a PostgreSQL restart without being restarted itself.
 *
 * Ownership (libpq): every PGresult is PQclear'ed where it is read; a
 * PGconn belongs to its slot and is PQfinish'ed only here.
 */
#include "db.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "accesslog.h"

typedef struct DbSlot
{
	PGconn	   *conn;			/* NULL until opened, or after closing */
	bool		in_use;
	DbConnState state;			/* only the holder touches it */
} DbSlot;

struct DbPool
{
	pthread_mutex_t lock;		/* guards slots[*] */
	pthread_cond_t freed;		/* signalled when a slot is released */
	char	   *conninfo;		/* secret: may hold a password */
	int			size;
	atomic_bool down;			/* last connection attempt failed */
	atomic_uint_least64_t waits;	/* acquisitions that found no free slot */
	atomic_uint_least64_t shed;	/* acquisitions refused: too many waiting */
	int			max_waiters;	/* 0: no bound; set before use */
	int			n_waiting;		/* guarded by lock */
	DbSlot	   *slots;
};

DbPool *
db_pool_create(const char *conninfo, int size)
{
	DbPool	   *pool;
	pthread_condattr_t attr;

	if (!PQisthreadsafe() || size < 1)
		return NULL;
	if ((pool = calloc(1, sizeof(DbPool))) == NULL)
		return NULL;
	pool->size = size;
	pool->slots = calloc((size_t) size, sizeof(DbSlot));
	pool->conninfo = strdup(conninfo);
	if (pool->slots == NULL || pool->conninfo == NULL)
	{
		free(pool->slots);
		free(pool->conninfo);
		free(pool);
		return NULL;
	}
	atomic_init(&pool->down, false);
	atomic_init(&pool->waits, 0);
	pthread_mutex_init(&pool->lock, NULL);
	/* deadlines are on the monotonic clock, immune to clock changes */
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&pool->freed, &attr);
	pthread_condattr_destroy(&attr);
	return pool;
}

void
db_pool_destroy(DbPool *pool)
{
	if (pool == NULL)
		return;
	for (int i = 0; i < pool->size; i++)
	{
		if (pool->slots[i].conn != NULL)
			PQfinish(pool->slots[i].conn);
		free(pool->slots[i].state.handler_prepared);
	}
	pthread_cond_destroy(&pool->freed);
	pthread_mutex_destroy(&pool->lock);
	OPENSSL_cleanse(pool->conninfo, strlen(pool->conninfo));
	free(pool->conninfo);
	free(pool->slots);
	free(pool);
}

static struct timespec
deadline_after(int timeout_ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long) (timeout_ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L)
	{
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

/* ms_until returns the milliseconds left before deadline (0 when past). */
static int
ms_until(const struct timespec *deadline)
{
	struct timespec now;
	long long	ms;

	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (long long) (deadline->tv_sec - now.tv_sec) * 1000 +
		(deadline->tv_nsec - now.tv_nsec) / 1000000;
	return ms > 0 ? (int) ms : 0;
}

/* db_log_error logs libpq's message (never the conninfo) on one line. */
static void
db_log_error(const char *msg, PGconn *conn)
{
	char		detail[512];
	size_t		len;

	strncpy(detail, conn != NULL ? PQerrorMessage(conn) : "out of memory",
			sizeof(detail) - 1);
	detail[sizeof(detail) - 1] = '\0';
	len = strlen(detail);
	while (len > 0 && (detail[len - 1] == '\n' || detail[len - 1] == ' '))
		detail[--len] = '\0';
	accesslog_event("warn", msg, "detail", detail, NULL);
}

/*
 * db_notice logs what libpq would print on stderr (notices, and the FATAL
 * a server sends when it shuts down) as a JSON line.
 */
static void
db_notice(void *arg, const char *message)
{
	char		detail[512];
	size_t		len;

	(void) arg;
	snprintf(detail, sizeof(detail), "%s", message);
	len = strlen(detail);
	while (len > 0 && (detail[len - 1] == '\n' || detail[len - 1] == ' '))
		detail[--len] = '\0';
	accesslog_event("info", "database notice", "detail", detail, NULL);
}

/*
 * db_open_quiet opens a connection.  Our defaults come before the expanded
 * conninfo in the arrays, so settings in IAM_DATABASE_URL override them.
 * Returns the connection (even a failed one, for its message) or NULL.
 */
static PGconn *
db_open_quiet(const char *conninfo, const char *app)
{
	static const char *const keywords[] = {
		"connect_timeout", "application_name",
		"keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count",
		"dbname", NULL
	};
	const char *values[] = {
		"2", app,
		"1", "30", "10", "3",
		conninfo, NULL
	};

	PGconn	   *conn = PQconnectdbParams(keywords, values, 1);

	if (conn != NULL)
		PQsetNoticeProcessor(conn, db_notice, NULL);
	return conn;
}

PGconn *
db_open(const char *conninfo, const char *app)
{
	PGconn	   *conn = db_open_quiet(conninfo, app);

	if (conn == NULL || PQstatus(conn) != CONNECTION_OK)
	{
		db_log_error("database connection failed", conn);
		if (conn != NULL)
			PQfinish(conn);
		return NULL;
	}
	return conn;
}

/* db_connect opens a pool connection, logging the first failure of an outage. */
static PGconn *
db_connect(DbPool *pool)
{
	PGconn	   *conn = db_open_quiet(pool->conninfo, "iam-gateway");

	if (conn == NULL || PQstatus(conn) != CONNECTION_OK)
	{
		/* log the first failure of an outage, not every retry */
		if (!atomic_exchange(&pool->down, true))
			db_log_error("database connection failed", conn);
		if (conn != NULL)
			PQfinish(conn);
		return NULL;
	}
	if (atomic_exchange(&pool->down, false))
		accesslog_event("info", "database connection restored", NULL);
	return conn;
}

/*
 * db_idle_conn_alive tells whether an idle pooled connection is still open.
 * A server that shut down or terminated the backend sent a FATAL message
 * and closed the socket: POLLRDHUP says the peer closed.  PQconsumeInput
 * alone is not enough: it reads the FATAL message, hands it to the notice
 * processor and leaves the connection CONNECTION_OK until a later read
 * meets the EOF, which was the first request's, answered 503 (every pooled
 * connection failed one request after a PostgreSQL restart).  Costs one
 * poll.
 */
static bool
db_idle_conn_alive(PGconn *conn)
{
	struct pollfd pfd = {.fd = PQsocket(conn),.events = POLLIN | POLLRDHUP};

	if (PQstatus(conn) != CONNECTION_OK || pfd.fd < 0)
		return false;
	if (poll(&pfd, 1, 0) > 0)
	{
		if (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))
			return false;
		if (!PQconsumeInput(conn))
			return false;
	}
	return PQstatus(conn) == CONNECTION_OK;
}

PGconn *
db_pool_acquire(DbPool *pool, int timeout_ms)
{
	return db_pool_acquire_state(pool, timeout_ms, NULL);
}

void
db_pool_set_max_waiters(DbPool *pool, int max_waiters)
{
	pool->max_waiters = max_waiters;
}

uint64_t
db_pool_shed(DbPool *pool)
{
	return atomic_load(&pool->shed);
}

uint64_t
db_pool_waits(DbPool *pool)
{
	return atomic_load(&pool->waits);
}

int
db_state_reserve(DbConnState *state, size_t n)
{
	if (n > state->n_handlers)
	{
		unsigned char *grown = realloc(state->handler_prepared, n);

		if (grown == NULL)
			return -1;
		state->handler_prepared = grown;
		state->n_handlers = n;
	}
	if (state->n_handlers > 0)
		memset(state->handler_prepared, 0, state->n_handlers);
	return 0;
}

/* db_state_reset forgets what was prepared on a slot's old connection. */
static void
db_state_reset(DbConnState *state)
{
	state->common_prepared = false;
	state->routes_generation = 0;
	if (state->n_handlers > 0)
		memset(state->handler_prepared, 0, state->n_handlers);
}

PGconn *
db_pool_acquire_state(DbPool *pool, int timeout_ms, DbConnState **state)
{
	struct timespec deadline = deadline_after(timeout_ms);
	DbSlot	   *slot = NULL;
	PGconn	   *conn;
	bool		waited = false;

	pthread_mutex_lock(&pool->lock);
	for (;;)
	{
		/* prefer a slot that is already connected */
		for (int i = 0; i < pool->size; i++)
		{
			if (pool->slots[i].in_use)
				continue;
			if (slot == NULL || (slot->conn == NULL && pool->slots[i].conn != NULL))
				slot = &pool->slots[i];
		}
		if (slot != NULL)
			break;
		if (!waited)
		{
			/* shed load instead of queueing without limit */
			if (pool->max_waiters > 0 && pool->n_waiting >= pool->max_waiters)
			{
				pthread_mutex_unlock(&pool->lock);
				atomic_fetch_add(&pool->shed, 1);
				errno = EAGAIN;
				return NULL;
			}
			waited = true;
			pool->n_waiting++;
			atomic_fetch_add(&pool->waits, 1);
		}
		if (pthread_cond_timedwait(&pool->freed, &pool->lock, &deadline) == ETIMEDOUT)
		{
			pool->n_waiting--;
			pthread_mutex_unlock(&pool->lock);
			errno = ETIMEDOUT;
			return NULL;
		}
	}
	if (waited)
		pool->n_waiting--;
	slot->in_use = true;
	conn = slot->conn;
	pthread_mutex_unlock(&pool->lock);

	if (state != NULL)
		*state = &slot->state;
	if (conn != NULL && db_idle_conn_alive(conn))
		return conn;

	/* (re)connect outside the lock; only this thread uses the slot now */
	if (conn != NULL)
		PQfinish(conn);
	db_state_reset(&slot->state);
	conn = db_connect(pool);

	pthread_mutex_lock(&pool->lock);
	slot->conn = conn;
	if (conn == NULL)
	{
		slot->in_use = false;
		pthread_cond_signal(&pool->freed);
	}
	pthread_mutex_unlock(&pool->lock);
	if (conn == NULL)
		errno = ECONNREFUSED;
	return conn;
}

void
db_pool_release(DbPool *pool, PGconn *conn, bool broken)
{
	PGconn	   *to_close = NULL;

	if (conn == NULL)
		return;
	if (PQstatus(conn) != CONNECTION_OK ||
		PQtransactionStatus(conn) != PQTRANS_IDLE)
		broken = true;

	pthread_mutex_lock(&pool->lock);
	for (int i = 0; i < pool->size; i++)
	{
		if (pool->slots[i].conn != conn)
			continue;
		if (broken)
		{
			to_close = conn;
			pool->slots[i].conn = NULL;
			db_state_reset(&pool->slots[i].state);
		}
		pool->slots[i].in_use = false;
		pthread_cond_signal(&pool->freed);
		break;
	}
	pthread_mutex_unlock(&pool->lock);
	if (to_close != NULL)
		PQfinish(to_close);
}

/*
 * db_select_one runs SELECT 1 on conn, waiting on the socket with poll() so
 * the wait ends at deadline even when the server stops answering.  Returns
 * 0 on success, -1 on failure, -2 on timeout (conn is then mid-query and
 * must be released as broken).
 */
static int
db_select_one(PGconn *conn, const struct timespec *deadline)
{
	PGresult   *res;
	int			rc = -1;

	if (!PQsendQueryParams(conn, "SELECT 1", 0, NULL, NULL, NULL, NULL, 0))
		return -1;
	for (;;)
	{
		while (PQisBusy(conn))
		{
			struct pollfd pfd = {.fd = PQsocket(conn),.events = POLLIN};
			int			n = poll(&pfd, 1, ms_until(deadline));

			if (n < 0 && errno == EINTR)
				continue;
			if (n == 0)
				return -2;
			if (n < 0 || !PQconsumeInput(conn))
				return -1;
		}
		if ((res = PQgetResult(conn)) == NULL)
			break;
		if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
			rc = 0;
		PQclear(res);
	}
	return rc;
}

int
db_ping(DbPool *pool, int timeout_ms)
{
	struct timespec deadline = deadline_after(timeout_ms);

	for (int attempt = 0; attempt < 2; attempt++)
	{
		PGconn	   *conn = db_pool_acquire(pool, ms_until(&deadline));
		int			rc;
		bool		dead;

		if (conn == NULL)
			return -1;
		rc = db_select_one(conn, &deadline);
		dead = PQstatus(conn) != CONNECTION_OK;
		/* conn may be closed by the release: do not touch it afterwards */
		db_pool_release(pool, conn, rc == -2);
		if (rc == 0)
			return 0;
		/* the server dropped this connection: retry once on a fresh one */
		if (rc == -2 || !dead)
			return -1;
	}
	return -1;
}
