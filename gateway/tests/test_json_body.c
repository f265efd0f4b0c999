/*
 * test_json_body.c
 *		Unit tests for json_body_check: duplicates, depth, string size,
 *		UTF-8, shape.
 */
#include <stdlib.h>
#include <string.h>

#include "json_body.h"
#include "tap.h"

static bool
accepted(const char *s, size_t len)
{
	const char *detail = NULL;

	return json_body_check(s, len, &detail) == 0 && detail == NULL;
}

/* refused checks that s is refused with a detail containing want. */
static void
refused(const char *s, size_t len, const char *want, const char *label)
{
	const char *detail = NULL;
	int			rc = json_body_check(s, len, &detail);

	tap_ok(rc == -1 && detail != NULL && strstr(detail, want) != NULL,
		   "refused: %s", label);
	if (detail != NULL && strstr(detail, want) == NULL)
		tap_diag("detail: %s", detail);
}

/* nested returns a malloc'd body of depth levels of [ ... ]. */
static char *
nested(int depth, const char *open, const char *close, const char *inner)
{
	size_t		n = (size_t) depth * (strlen(open) + strlen(close)) + strlen(inner) + 1;
	char	   *s = malloc(n);

	s[0] = '\0';
	for (int i = 0; i < depth; i++)
		strcat(s, open);
	strcat(s, inner);
	for (int i = 0; i < depth; i++)
		strcat(s, close);
	return s;
}

#define S(x)	x, sizeof(x) - 1

int
main(void)
{
	char	   *s;
	size_t		big = JSON_BODY_MAX_STRING;

	tap_ok(accepted(S("{\"a\":1,\"b\":[true,null,\"x\"]}")), "a plain object is accepted");
	tap_ok(accepted(S("[1,2,3]")), "an array is accepted");
	tap_ok(accepted(S("{\"name\":\"J\xc3\xbcrgen \xe2\x82\xac \xf0\x9f\x98\x80\"}")), "multi-byte UTF-8 is accepted");
	tap_ok(accepted(S("  {\"a\" : {\"a\": 1}}  ")), "the same key in different objects is fine");

	refused(S("{\"a\":1,\"a\":2}"), "duplicate", "duplicate key at the top");
	refused(S("{\"x\":{\"role\":\"member\",\"role\":\"admin\"}}"), "duplicate", "duplicate key nested");
	refused(S("[{\"k\":1},{\"k\":1,\"k\":1}]"), "duplicate", "duplicate key inside an array");
	refused(S("{\"a\":1"), "not valid JSON", "truncated JSON");
	refused(S("{'a':1}"), "not valid JSON", "single quotes");
	refused(S("{\"a\":1} x"), "not valid JSON", "trailing garbage");
	refused(S(""), "not valid JSON", "empty body");
	refused(S("\"just a string\""), "object or array", "a bare string");
	refused(S("42"), "object or array", "a bare number");
	refused(S("null"), "object or array", "null");
	refused(S("{\"a\":\"\\u0000\"}"), "not valid JSON", "\\u0000 in a string");
	refused(S("{\"a\":\"\xff\"}"), "UTF-8", "an invalid byte");
	refused(S("{\"a\":\"\xc0\xaf\"}"), "UTF-8", "an overlong form");
	refused(S("{\"a\":\"\xed\xa0\x80\"}"), "UTF-8", "an encoded surrogate");
	refused(S("{\"a\":\"\xf4\x90\x80\x80\"}"), "UTF-8", "beyond U+10FFFF");
	refused(S("{\"a\":\"\xe2\x82\"}"), "UTF-8", "a truncated sequence");
	refused("{\"a\":1}\0", 8, "not valid JSON", "an embedded NUL byte");

	s = nested(32, "[", "]", "1");
	tap_ok(accepted(s, strlen(s)), "32 levels of arrays are accepted");
	free(s);
	s = nested(33, "[", "]", "1");
	refused(s, strlen(s), "nested", "33 levels of arrays");
	free(s);
	s = nested(33, "{\"a\":", "}", "1");
	refused(s, strlen(s), "nested", "33 levels of objects");
	free(s);
	s = nested(5000, "[", "]", "");
	refused(s, strlen(s), "nested", "5000 levels (beyond jansson's own limit)");
	free(s);

	/* a string of exactly 64 KiB passes, one byte more does not */
	s = malloc(big + 16);
	memcpy(s, "{\"a\":\"", 6);
	memset(s + 6, 'x', big);
	memcpy(s + 6 + big, "\"}", 3);
	tap_ok(accepted(s, strlen(s)), "a 64 KiB string is accepted");
	free(s);
	s = malloc(big + 16);
	memcpy(s, "{\"a\":\"", 6);
	memset(s + 6, 'x', big + 1);
	memcpy(s + 7 + big, "\"}", 3);
	refused(s, strlen(s), "longer than 64 KiB", "a 64 KiB + 1 string");
	free(s);
	s = malloc(big + 16);
	memcpy(s, "{\"", 2);
	memset(s + 2, 'k', big + 1);
	memcpy(s + 3 + big, "\":1}", 5);
	refused(s, strlen(s), "key", "a 64 KiB + 1 key");
	free(s);
	/* escapes count after decoding: 64 KiB of \u00e9 is 128 KiB decoded */
	s = malloc(6 * (big / 2 + 1) + 16);
	strcpy(s, "{\"a\":\"");
	for (size_t i = 0; i < big / 2 + 1; i++)
		memcpy(s + 6 + 6 * i, "\\u00e9", 6);
	strcpy(s + 6 + 6 * (big / 2 + 1), "\"}");
	refused(s, strlen(s), "longer than 64 KiB", "decoded length counts (\\u00e9 is 2 bytes)");
	free(s);

	s = malloc(JSON_BODY_MAX_BYTES + 2);
	memset(s, ' ', JSON_BODY_MAX_BYTES + 1);
	s[0] = '[';
	s[JSON_BODY_MAX_BYTES] = ']';
	refused(s, JSON_BODY_MAX_BYTES + 1, "1 MiB", "1 MiB + 1 byte");
	tap_ok(accepted(s, JSON_BODY_MAX_BYTES - 0) == false, "(sanity) an unterminated array is refused");
	s[JSON_BODY_MAX_BYTES - 1] = ']';
	tap_ok(accepted(s, JSON_BODY_MAX_BYTES), "exactly 1 MiB is accepted");
	free(s);

	tap_ok(json_body_utf8_valid(S("plain")) && !json_body_utf8_valid(S("\x80")),
		   "json_body_utf8_valid spots a lone continuation byte");
	return tap_done();
}
