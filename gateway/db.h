/*
 * db.h
 *		A fixed-size pool of libpq connections to the primary.
 */
#ifndef DB_H
#define DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

typedef struct DbPool DbPool;

/*
 * What is prepared on one pooled connection.  It belongs to the slot, is
 * reset when the slot reconnects, and is used only by the thread that holds
 * the connection (api.c).  handler_prepared[i] tells whether the handler
 * statement of route i of table generation routes_generation is prepared;
 * the array is the pool's (grown with db_state_reserve, freed by the pool).
 */
typedef struct DbConnState
{
	bool		common_prepared;	/* the context statement */
	uint64_t	routes_generation;	/* 0: no handler statement prepared */
	unsigned char *handler_prepared;
	size_t		n_handlers;
} DbConnState;

/*
 * db_pool_create makes a pool of size slots for conninfo (a URI or key=value
 * string, copied).  No connection is opened yet: each slot connects on first
 * use, with connect_timeout=2, application_name=iam-gateway and TCP
 * keepalives unless conninfo says otherwise.  Returns a pool the caller
 * destroys with db_pool_destroy, or NULL when out of memory or when libpq is
 * not thread-safe.
 */
extern DbPool *db_pool_create(const char *conninfo, int size);

/*
 * db_pool_destroy closes every connection and frees the pool.  No
 * connection may still be acquired.  pool may be NULL.
 */
extern void db_pool_destroy(DbPool *pool);

/*
 * db_pool_acquire lends a connection that is open and idle, waiting up to
 * timeout_ms for a free slot and (re)connecting when the slot's connection is
 * missing or was closed by the server, which may add up to connect_timeout.
 * The caller must give it back with db_pool_release and never PQfinish it.
 * Returns NULL on timeout or when the server cannot be reached (logged once
 * per outage).
 */
extern PGconn *db_pool_acquire(DbPool *pool, int timeout_ms);

/*
 * db_pool_acquire_state is db_pool_acquire that also sets *state to the
 * connection's DbConnState (reset after a reconnection).
 */
extern PGconn *db_pool_acquire_state(DbPool *pool, int timeout_ms,
									 DbConnState **state);

/*
 * db_state_reserve makes state->handler_prepared hold n entries, all zero
 * (nothing prepared).  Returns 0, or -1 when out of memory.
 */
extern int	db_state_reserve(DbConnState *state, size_t n);

/*
 * db_pool_set_max_waiters bounds the requests waiting for a free slot (0:
 * no bound); past it db_pool_acquire(_state) fails at once with errno
 * EAGAIN (load shedding), while a wait that times out sets ETIMEDOUT.
 */
extern void db_pool_set_max_waiters(DbPool *pool, int max_waiters);

/* db_pool_shed returns how many acquisitions were refused by the bound. */
extern uint64_t db_pool_shed(DbPool *pool);

/* db_pool_waits returns how many acquisitions had to wait for a free slot. */
extern uint64_t db_pool_waits(DbPool *pool);

/*
 * db_open opens one connection outside the pool, with the pool's defaults
 * and application_name app.  Returns it (the caller PQfinish'es it) or NULL
 * (libpq's reason is logged, never the conninfo).
 */
extern PGconn *db_open(const char *conninfo, const char *app);

/*
 * db_pool_release gives conn back.  Pass broken = true after a
 * connection-level failure (or an abandoned query); the connection is also
 * treated as broken when PQstatus is not CONNECTION_OK or a transaction is
 * left open.  A broken connection is closed and reopened on next use.
 */
extern void db_pool_release(DbPool *pool, PGconn *conn, bool broken);

/*
 * db_ping runs SELECT 1 on a pooled connection, giving up after timeout_ms
 * (plus connect_timeout when it has to connect), and retries once on a fresh
 * connection when the first one turns out dead.  Returns 0 when PostgreSQL
 * answered, -1 otherwise.  Nothing to free.
 */
extern int	db_ping(DbPool *pool, int timeout_ms);

#endif							/* DB_H */
