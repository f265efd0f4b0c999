/*
 * tap.h
 *		A tiny Test Anything Protocol helper for the gateway's unit tests.
 *
 * Each test file includes this once, calls tap_ok for every check and ends
 * main with "return tap_done();", which prints the plan (1..N, after the
 * tests, which TAP allows) and returns non-zero if any check failed.
 */
#ifndef TAP_H
#define TAP_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

static int	tap_count;
static int	tap_failed;

/* tap_ok reports one check; returns ok so callers may chain diagnostics. */
static bool tap_ok(bool ok, const char *fmt,...) __attribute__((format(printf, 2, 3)));

static bool
tap_ok(bool ok, const char *fmt,...)
{
	va_list		ap;

	tap_count++;
	if (!ok)
		tap_failed++;
	printf("%s %d - ", ok ? "ok" : "not ok", tap_count);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	return ok;
}

/* tap_diag prints a "# ..." diagnostic line. */
static void tap_diag(const char *fmt,...) __attribute__((format(printf, 1, 2), unused));

static void
tap_diag(const char *fmt,...)
{
	va_list		ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

/* tap_done prints the plan and returns the exit status for main. */
static int
tap_done(void)
{
	printf("1..%d\n", tap_count);
	if (tap_failed > 0)
		printf("# %d of %d failed\n", tap_failed, tap_count);
	return tap_failed > 0 ? 1 : 0;
}

#endif							/* TAP_H */
