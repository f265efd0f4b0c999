/*
 * test_metrics.c
 *		Unit tests for metrics_render: the Prometheus text of counters,
 *		histogram, gauges and database errors.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "tap.h"

/* has tells whether text contains line as a whole line. */
static bool
has(const char *text, const char *line)
{
	size_t		len = strlen(line);
	const char *p = text;

	while ((p = strstr(p, line)) != NULL)
	{
		if ((p == text || p[-1] == '\n') && p[len] == '\n')
			return true;
		p += len;
	}
	return false;
}

/* well_formed: every line is a comment or "name{labels} value" or "name value". */
static bool
well_formed(const char *text)
{
	const char *p = text;

	while (*p != '\0')
	{
		const char *nl = strchr(p, '\n');
		const char *sp;

		if (nl == NULL)
			return false;		/* ends with a newline */
		if (*p != '#')
		{
			sp = memrchr(p, ' ', (size_t) (nl - p));
			if (sp == NULL || sp == p || strncmp(p, "iam_", 4) != 0)
				return false;
			for (const char *v = sp + 1; v < nl; v++)
				if (!((*v >= '0' && *v <= '9') || *v == '.' || *v == 'e' || *v == '+' || *v == '-'))
					return false;
		}
		p = nl + 1;
	}
	return true;
}

int
main(void)
{
	Metrics    *m = metrics_create();
	MetricsGauges g = {.in_flight = 3,.pool_waits = 7};
	char	   *text;
	char		label[64];

	text = metrics_render(m, &g);
	tap_ok(text != NULL && well_formed(text), "an empty registry renders well-formed text");
	tap_ok(text != NULL && has(text, "iam_http_in_flight 3"), "in-flight gauge");
	tap_ok(text != NULL && has(text, "iam_db_pool_waits_total 7"), "pool waits counter");
	tap_ok(text != NULL && has(text, "# TYPE iam_http_requests_total counter") &&
		   has(text, "# TYPE iam_http_request_duration_seconds histogram") &&
		   has(text, "# TYPE iam_db_errors_total counter"), "TYPE lines for every metric");
	free(text);

	metrics_request(m, "GET /users/{id}", 200, 0.004);
	metrics_request(m, "GET /users/{id}", 200, 0.030);
	metrics_request(m, "GET /users/{id}", 404, 7.0);
	metrics_request(m, "POST /users", 201, 0.0005);
	metrics_request(m, NULL, 404, 0.0001);
	metrics_db_error(m, "23");
	metrics_db_error(m, "23");
	metrics_db_error(m, "connection");
	text = metrics_render(m, &g);
	tap_ok(text != NULL && well_formed(text), "rendered text is well-formed");
	tap_ok(has(text, "iam_http_requests_total{route=\"GET /users/{id}\",status=\"200\"} 2"),
		   "requests counted by route and status");
	tap_ok(has(text, "iam_http_requests_total{route=\"GET /users/{id}\",status=\"404\"} 1"),
		   "another status of the same route");
	tap_ok(has(text, "iam_http_requests_total{route=\"unmatched\",status=\"404\"} 1"),
		   "a request outside the table counts as unmatched");
	tap_ok(has(text, "iam_http_request_duration_seconds_bucket{route=\"GET /users/{id}\",le=\"0.005\"} 1"),
		   "0.004 s falls in the 5 ms bucket");
	tap_ok(has(text, "iam_http_request_duration_seconds_bucket{route=\"GET /users/{id}\",le=\"0.05\"} 2"),
		   "buckets are cumulative");
	tap_ok(has(text, "iam_http_request_duration_seconds_bucket{route=\"GET /users/{id}\",le=\"5\"} 2"),
		   "7 s is above the last finite bucket");
	tap_ok(has(text, "iam_http_request_duration_seconds_bucket{route=\"GET /users/{id}\",le=\"+Inf\"} 3"),
		   "+Inf bucket equals the count");
	tap_ok(has(text, "iam_http_request_duration_seconds_count{route=\"GET /users/{id}\"} 3"),
		   "histogram count");
	tap_ok(has(text, "iam_http_request_duration_seconds_sum{route=\"GET /users/{id}\"} 7.034000"),
		   "histogram sum");
	tap_ok(has(text, "iam_http_request_duration_seconds_bucket{route=\"POST /users\",le=\"0.001\"} 1"),
		   "the smallest bucket");
	tap_ok(has(text, "iam_db_errors_total{sqlstate_class=\"23\"} 2") &&
		   has(text, "iam_db_errors_total{sqlstate_class=\"connection\"} 1"),
		   "database errors by SQLSTATE class");
	free(text);

	/* label values are escaped */
	metrics_request(m, "GET /x\"y\\z", 200, 0.1);
	text = metrics_render(m, &g);
	tap_ok(has(text, "iam_http_requests_total{route=\"GET /x\\\"y\\\\z\",status=\"200\"} 1"),
		   "quotes and backslashes in a label are escaped");
	free(text);

	/* the number of series is bounded */
	for (int i = 0; i < METRICS_MAX_SERIES + 10; i++)
	{
		snprintf(label, sizeof(label), "GET /r%d", i);
		metrics_request(m, label, 200, 0.01);
	}
	text = metrics_render(m, &g);
	tap_ok(text != NULL && has(text, "iam_http_requests_total{route=\"other\",status=\"200\"} 14"),
		   "labels beyond the limit count as route=\"other\"");
	tap_ok(text != NULL && strstr(text, "route=\"GET /r600\"") == NULL, "no series past the limit");
	free(text);
	metrics_free(m);
	return tap_done();
}
