/*
 * accesslog.c
 *		Structured log lines on stderr.
 *
 * Each line is built in a stack buffer no larger than PIPE_BUF and written
 * with one write(2), so lines written by different threads never interleave
 * and no lock is needed.  Values are JSON-escaped here rather than with
 * jansson because request paths come from the client and need not be valid
 * UTF-8; such bytes are logged as U+FFFD instead of losing the line.
 */
#include "accesslog.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES		4096	/* == PIPE_BUF on Linux: atomic on pipes */
#define LINE_RESERVE		2		/* the closing "}\n" */
#define VALUE_MAX_BYTES		1024	/* longest escaped string value */

typedef struct Line
{
	char		buf[LINE_MAX_BYTES];
	size_t		len;
} Line;

static size_t
line_room(const Line *line)
{
	return sizeof(line->buf) - LINE_RESERVE - line->len;
}

/* line_raw appends s when it fits whole; callers size their input first. */
static void
line_raw(Line *line, const char *s)
{
	size_t		n = strlen(s);

	if (n <= line_room(line))
	{
		memcpy(line->buf + line->len, s, n);
		line->len += n;
	}
}

/*
 * utf8_sequence_length returns the length of the well-formed UTF-8 sequence
 * at s (at most avail bytes), or 0 when it is not one (RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF).
 */
static size_t
utf8_sequence_length(const unsigned char *s, size_t avail)
{
	unsigned char c = s[0];
	size_t		n;
	uint32_t	cp;
	size_t		i;

	if (c < 0x80)
		return 1;
	else if (c >= 0xC2 && c <= 0xDF)
	{
		n = 2;
		cp = c & 0x1F;
	}
	else if (c >= 0xE0 && c <= 0xEF)
	{
		n = 3;
		cp = c & 0x0F;
	}
	else if (c >= 0xF0 && c <= 0xF4)
	{
		n = 4;
		cp = c & 0x07;
	}
	else
		return 0;
	if (n > avail)
		return 0;
	for (i = 1; i < n; i++)
	{
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
		(cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
		return 0;
	return n;
}

/*
 * line_string appends s as a quoted JSON string of at most max_out bytes
 * (quotes included), cutting it at a character boundary when longer.  A
 * NULL s is written as null.
 */
static void
line_string(Line *line, const char *s, size_t max_out)
{
	const unsigned char *p = (const unsigned char *) s;
	size_t		remaining;
	size_t		budget;

	if (s == NULL)
	{
		line_raw(line, "null");
		return;
	}
	budget = line_room(line);
	if (budget < 2)
		return;
	if (max_out < budget)
		budget = max_out;
	budget -= 2;				/* the two quotes */

	line->buf[line->len++] = '"';
	remaining = strlen(s);
	while (remaining > 0)
	{
		char		esc[8];
		const char *out = esc;
		size_t		in_len = 1;
		size_t		out_len;

		if (*p == '"' || *p == '\\')
		{
			esc[0] = '\\';
			esc[1] = (char) *p;
			out_len = 2;
		}
		else if (*p == '\n' || *p == '\r' || *p == '\t')
		{
			esc[0] = '\\';
			esc[1] = *p == '\n' ? 'n' : *p == '\r' ? 'r' : 't';
			out_len = 2;
		}
		else if (*p < 0x20 || *p == 0x7F)
		{
			snprintf(esc, sizeof(esc), "\\u%04x", *p);
			out_len = 6;
		}
		else if (*p < 0x80)
		{
			out = (const char *) p;
			out_len = 1;
		}
		else if ((in_len = utf8_sequence_length(p, remaining)) > 0)
		{
			out = (const char *) p;
			out_len = in_len;
		}
		else
		{
			out = "\\ufffd";
			out_len = 6;
			in_len = 1;
		}
		if (out_len > budget)
			break;
		memcpy(line->buf + line->len, out, out_len);
		line->len += out_len;
		budget -= out_len;
		p += in_len;
		remaining -= in_len;
	}
	line->buf[line->len++] = '"';
}

/* line_key appends ,"key": (keys are ours, never client data). */
static void
line_key(Line *line, const char *key)
{
	line_raw(line, ",");
	line_string(line, key, 64);
	line_raw(line, ":");
}

/* put_u64 writes v in decimal at out (room for 20 digits); returns the length. */
static size_t
put_u64(char *out, uint64_t v)
{
	char		tmp[20];
	size_t		n = 0;

	do
		tmp[n++] = (char) ('0' + v % 10);
	while ((v /= 10) > 0);
	for (size_t i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	return n;
}

/* put_fixed writes v with `width` digits, zero-padded. */
static void
put_fixed(char *out, unsigned int v, int width)
{
	for (int i = width - 1; i >= 0; i--, v /= 10)
		out[i] = (char) ('0' + v % 10);
}

/*
 * line_begin starts a line with the timestamp, level and message.  The
 * date and time to the second are formatted once per second and thread:
 * a line is written per request, and strftime is not cheap.
 */
static void
line_begin(Line *line, const char *level, const char *msg)
{
	static _Thread_local time_t second = -1;
	static _Thread_local char ts[32];	/* "YYYY-MM-DDTHH:MM:SS" then ".mmmZ" */
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	if (now.tv_sec != second)
	{
		struct tm	tm;

		gmtime_r(&now.tv_sec, &tm);
		if (strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm) != 19)
			snprintf(ts, sizeof(ts), "1970-01-01T00:00:00");
		second = now.tv_sec;
	}
	ts[19] = '.';
	put_fixed(ts + 20, (unsigned int) (now.tv_nsec / 1000000L), 3);
	ts[23] = 'Z';
	ts[24] = '\0';

	line->len = 0;
	line_raw(line, "{\"ts\":");
	line_string(line, ts, sizeof(ts));
	line_key(line, "level");
	line_string(line, level, 16);
	line_key(line, "msg");
	line_string(line, msg, 128);
}

/* line_u64 appends v as a JSON number. */
static void
line_u64(Line *line, uint64_t v)
{
	char		num[24];

	num[put_u64(num, v)] = '\0';
	line_raw(line, num);
}

/* line_ms appends a duration in milliseconds with three decimals. */
static void
line_ms(Line *line, double ms)
{
	uint64_t	us = ms > 0 ? (uint64_t) (ms * 1000.0 + 0.5) : 0;
	char		num[32];
	size_t		n = put_u64(num, us / 1000);

	num[n++] = '.';
	put_fixed(num + n, (unsigned int) (us % 1000), 3);
	num[n + 3] = '\0';
	line_raw(line, num);
}

/* line_finish closes the object and writes it with one write(2). */
static void
line_finish(Line *line)
{
	ssize_t		rc;

	line->buf[line->len++] = '}';
	line->buf[line->len++] = '\n';
	do
		rc = write(STDERR_FILENO, line->buf, line->len);
	while (rc < 0 && errno == EINTR);
	/* nowhere left to report a failed write to stderr */
}

const char *
accesslog_mask_emails(const char *s, char *out, size_t size)
{
	size_t		o = 0;
	size_t		i = 0;
	size_t		len = strlen(s);

	if (size == 0)
		return out;
	while (i < len && o + 1 < size)
	{
		/* a local part: the run of non-separators before an '@' */
		size_t		run = strcspn(s + i, "/?&=;, @");

		if (s[i + run] == '@' && run > 0)
		{
			int			w = snprintf(out + o, size - o, "%c***@", s[i]);

			if (w < 0 || o + (size_t) w >= size)
				break;
			o += (size_t) w;
			i += run + 1;
			continue;
		}
		if (run == 0)
			run = 1;
		while (run-- > 0 && o + 1 < size)
			out[o++] = s[i++];
	}
	out[o] = '\0';
	return out;
}

void
accesslog_request(const AccessLogRequest *r)
{
	Line		line;
	char		path[VALUE_MAX_BYTES + 1];

	line_begin(&line, r->status == 0 || r->aborted ? "warn" : "info", "request");
	line_key(&line, "method");
	line_string(&line, r->method, 34);
	line_key(&line, "path");
	line_string(&line, accesslog_mask_emails(r->path, path, sizeof(path)), VALUE_MAX_BYTES);
	line_key(&line, "route");
	line_string(&line, r->route, 2 + 6 * 160);
	line_key(&line, "status");
	line_u64(&line, r->status);
	line_key(&line, "duration_ms");
	line_ms(&line, r->duration_ms);
	line_key(&line, "bytes");
	line_u64(&line, r->bytes);
	line_key(&line, "request_id");
	line_string(&line, r->request_id, 2 + 6 * 64);
	line_key(&line, "user_id");
	line_string(&line, r->user_id, 2 + 6 * 40);
	line_key(&line, "remote");
	line_string(&line, r->remote, 2 + 6 * 64);
	line_finish(&line);
}

void
accesslog_event(const char *level, const char *msg,...)
{
	Line		line;
	va_list		ap;
	const char *key;

	line_begin(&line, level, msg);
	va_start(ap, msg);
	while ((key = va_arg(ap, const char *)) != NULL)
	{
		const char *value = va_arg(ap, const char *);

		/* keep the line valid JSON: add a pair only when all of it fits */
		if (line_room(&line) < 1 + (2 + 6 * 64) + 1 + VALUE_MAX_BYTES)
			break;
		line_key(&line, key);
		line_string(&line, value, VALUE_MAX_BYTES);
	}
	va_end(ap);
	line_finish(&line);
}
