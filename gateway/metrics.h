/*
 * metrics.h
 *		Prometheus counters and the latency histogram behind GET /metrics.
 */
#ifndef METRICS_H
#define METRICS_H

#include <stdint.h>

typedef struct Metrics Metrics;

/* metrics_create returns an empty registry (NULL when out of memory). */
extern Metrics *metrics_create(void);

/* metrics_free frees m; m may be NULL. */
extern void metrics_free(Metrics *m);

/*
 * metrics_request counts one finished request: route is a label such as
 * "GET /users/{id}" (copied; "unmatched" for paths outside the table),
 * status its HTTP status, seconds its duration.  Thread-safe.  Past
 * METRICS_MAX_SERIES distinct labels, new ones count under route="other".
 */
#define METRICS_MAX_SERIES	512
extern void metrics_request(Metrics *m, const char *route, unsigned int status,
							double seconds);

/* metrics_db_error counts one database error of class sqlstate_class ("23", "connection"). */
extern void metrics_db_error(Metrics *m, const char *sqlstate_class);

/* Gauges sampled when rendering. */
typedef struct MetricsGauges
{
	int			in_flight;
	uint64_t	pool_waits;
} MetricsGauges;

/*
 * metrics_render returns the Prometheus text exposition (format 0.0.4) of m
 * and g as a malloc'd, NUL-terminated string the caller frees, or NULL
 * when out of memory.
 */
extern char *metrics_render(Metrics *m, const MetricsGauges *g);

#endif							/* METRICS_H */
