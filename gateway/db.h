/*
 * db.h
 *		A fixed-size pool of libpq connections to the primary.
 */
#ifndef DB_H
#define DB_H

#include <stdbool.h>

#include <libpq-fe.h>

typedef struct DbPool DbPool;

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
