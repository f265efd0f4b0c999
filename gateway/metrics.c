/*
 * metrics.c
 *		Request counters by route and status, a latency histogram by route,
 *		database errors by SQLSTATE class, rendered as Prometheus text.
 *
 * One mutex guards the series; it is held for a few hundred nanoseconds per
 * request (a lookup and some additions), which is nothing next to the
 * database round trip every API request makes.  Labels are route templates
 * (never concrete paths), so the number of series stays bounded.
 */
#include "metrics.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LABEL_MAX		128
#define N_BUCKETS		12
#define MAX_STATUSES	16		/* distinct statuses per route */
#define MAX_CLASSES		64

static const double buckets[N_BUCKETS] = {
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5
};

typedef struct Series
{
	char		route[LABEL_MAX];
	unsigned int statuses[MAX_STATUSES];
	uint64_t	counts[MAX_STATUSES];
	int			n_statuses;
	uint64_t	bucket_counts[N_BUCKETS];	/* not cumulative */
	uint64_t	observations;
	double		sum;
} Series;

struct Metrics
{
	pthread_mutex_t lock;		/* guards everything below */
	Series	   *series;
	int			n_series;
	char		classes[MAX_CLASSES][16];
	uint64_t	class_counts[MAX_CLASSES];
	int			n_classes;
};

Metrics *
metrics_create(void)
{
	Metrics    *m = calloc(1, sizeof(Metrics));

	if (m == NULL)
		return NULL;
	/* +1: the "other" series when the table is full */
	if ((m->series = calloc(METRICS_MAX_SERIES + 1, sizeof(Series))) == NULL)
	{
		free(m);
		return NULL;
	}
	pthread_mutex_init(&m->lock, NULL);
	return m;
}

void
metrics_free(Metrics *m)
{
	if (m == NULL)
		return;
	pthread_mutex_destroy(&m->lock);
	free(m->series);
	free(m);
}

/* find_series returns route's series, adding it; call with the lock held. */
static Series *
find_series(Metrics *m, const char *route)
{
	Series	   *s;

	for (int i = 0; i < m->n_series; i++)
		if (strcmp(m->series[i].route, route) == 0)
			return &m->series[i];
	if (m->n_series < METRICS_MAX_SERIES)
	{
		s = &m->series[m->n_series++];
		snprintf(s->route, sizeof(s->route), "%s", route);
	}
	else
	{
		/* the overflow series, after the last regular one */
		s = &m->series[METRICS_MAX_SERIES];
		if (s->route[0] == '\0')
			strcpy(s->route, "other");
	}
	return s;
}

void
metrics_request(Metrics *m, const char *route, unsigned int status, double seconds)
{
	Series	   *s;
	int			i;

	pthread_mutex_lock(&m->lock);
	s = find_series(m, route != NULL ? route : "unmatched");
	for (i = 0; i < s->n_statuses; i++)
		if (s->statuses[i] == status)
			break;
	if (i == s->n_statuses && s->n_statuses < MAX_STATUSES)
		s->statuses[s->n_statuses++] = status;
	if (i < MAX_STATUSES)
		s->counts[i]++;
	for (int b = 0; b < N_BUCKETS; b++)
		if (seconds <= buckets[b])
		{
			s->bucket_counts[b]++;
			break;
		}
	s->observations++;
	s->sum += seconds;
	pthread_mutex_unlock(&m->lock);
}

void
metrics_db_error(Metrics *m, const char *sqlstate_class)
{
	int			i;

	pthread_mutex_lock(&m->lock);
	for (i = 0; i < m->n_classes; i++)
		if (strcmp(m->classes[i], sqlstate_class) == 0)
			break;
	if (i == m->n_classes && i < MAX_CLASSES)
		snprintf(m->classes[m->n_classes++], sizeof(m->classes[0]), "%s", sqlstate_class);
	if (i < MAX_CLASSES)
		m->class_counts[i]++;
	pthread_mutex_unlock(&m->lock);
}

/* A growing text buffer; on allocation failure it turns NULL and stays so. */
typedef struct Buf
{
	char	   *data;
	size_t		len;
	size_t		cap;
} Buf;

static void buf_printf(Buf *b, const char *fmt,...) __attribute__((format(printf, 2, 3)));

static void
buf_printf(Buf *b, const char *fmt,...)
{
	va_list		ap;
	int			n;

	if (b->data == NULL)
		return;
	for (;;)
	{
		va_start(ap, fmt);
		n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if ((size_t) n < b->cap - b->len)
		{
			b->len += (size_t) n;
			return;
		}
		{
			char	   *grown = realloc(b->data, b->cap * 2 + (size_t) n);

			if (grown == NULL)
			{
				free(b->data);
				b->data = NULL;
				return;
			}
			b->data = grown;
			b->cap = b->cap * 2 + (size_t) n;
		}
	}
}

/* escape_label escapes \, " and newline for a label value (text format). */
static const char *
escape_label(const char *s, char *out, size_t size)
{
	size_t		o = 0;

	for (; *s != '\0' && o + 3 < size; s++)
	{
		if (*s == '\\' || *s == '"')
		{
			out[o++] = '\\';
			out[o++] = *s;
		}
		else if (*s == '\n')
		{
			out[o++] = '\\';
			out[o++] = 'n';
		}
		else
			out[o++] = *s;
	}
	out[o] = '\0';
	return out;
}

char *
metrics_render(Metrics *m, const MetricsGauges *g)
{
	Buf			b = {malloc(4096), 0, 4096};
	char		esc[2 * LABEL_MAX + 4];
	int			n;

	pthread_mutex_lock(&m->lock);
	n = m->n_series < METRICS_MAX_SERIES ? m->n_series : METRICS_MAX_SERIES;
	if (m->series[METRICS_MAX_SERIES].route[0] != '\0')
		n = METRICS_MAX_SERIES + 1;

	buf_printf(&b, "# HELP iam_http_requests_total HTTP requests by route template and status.\n"
			   "# TYPE iam_http_requests_total counter\n");
	for (int i = 0; i < n; i++)
	{
		Series	   *s = &m->series[i];

		escape_label(s->route, esc, sizeof(esc));
		for (int k = 0; k < s->n_statuses; k++)
			buf_printf(&b, "iam_http_requests_total{route=\"%s\",status=\"%u\"} %llu\n",
					   esc, s->statuses[k], (unsigned long long) s->counts[k]);
	}

	buf_printf(&b, "# HELP iam_http_request_duration_seconds Time from the request's first byte to its completion.\n"
			   "# TYPE iam_http_request_duration_seconds histogram\n");
	for (int i = 0; i < n; i++)
	{
		Series	   *s = &m->series[i];
		uint64_t	cum = 0;

		escape_label(s->route, esc, sizeof(esc));
		for (int k = 0; k < N_BUCKETS; k++)
		{
			cum += s->bucket_counts[k];
			buf_printf(&b, "iam_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
					   esc, buckets[k], (unsigned long long) cum);
		}
		buf_printf(&b, "iam_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n"
				   "iam_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n"
				   "iam_http_request_duration_seconds_count{route=\"%s\"} %llu\n",
				   esc, (unsigned long long) s->observations, esc, s->sum,
				   esc, (unsigned long long) s->observations);
	}

	buf_printf(&b, "# HELP iam_http_in_flight Requests being processed now.\n"
			   "# TYPE iam_http_in_flight gauge\n"
			   "iam_http_in_flight %d\n"
			   "# HELP iam_db_pool_waits_total Times a request waited for a free database connection.\n"
			   "# TYPE iam_db_pool_waits_total counter\n"
			   "iam_db_pool_waits_total %llu\n"
			   "# HELP iam_db_errors_total Database errors by SQLSTATE class.\n"
			   "# TYPE iam_db_errors_total counter\n",
			   g->in_flight, (unsigned long long) g->pool_waits);
	for (int i = 0; i < m->n_classes; i++)
		buf_printf(&b, "iam_db_errors_total{sqlstate_class=\"%s\"} %llu\n",
				   escape_label(m->classes[i], esc, sizeof(esc)),
				   (unsigned long long) m->class_counts[i]);
	pthread_mutex_unlock(&m->lock);
	return b.data;
}
