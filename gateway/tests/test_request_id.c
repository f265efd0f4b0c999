/*
 * test_request_id.c
 *		Unit tests for request_id.c: which incoming ids are kept, and what
 *		generated ones look like.
 */
#include <pthread.h>
#include <string.h>

#include "request_id.h"
#include "tap.h"

static bool
is_lower_hex(const char *s, size_t len)
{
	if (strlen(s) != len)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* another thread's first identifier */
static void *
generate_elsewhere(void *out)
{
	if (request_id_generate(out) != 0)
		((char *) out)[0] = '\0';
	return NULL;
}

int
main(void)
{
	static const char *const valid[] = {
		"a", "abc-123", "A.Z_a:z-0.9", "req:2024-01-01T00:00:00.000",
		"0123456789012345678901234567890123456789012345678901234567890123",
	};
	static const char *const invalid[] = {
		"", "a b", "a/b", "a\nb", "a\rb", "a;b", "a\"b", "{}", "caf\xc3\xa9",
		"01234567890123456789012345678901234567890123456789012345678901234",
	};
	char		out[REQUEST_ID_BUFSIZE];
	char		ids[64][REQUEST_ID_BUFSIZE];
	bool		distinct = true;
	bool		all_hex = true;

	for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++)
		tap_ok(request_id_is_valid(valid[i]), "valid: \"%s\"", valid[i]);
	for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++)
		tap_ok(!request_id_is_valid(invalid[i]), "invalid #%zu rejected", i);
	tap_ok(!request_id_is_valid(NULL), "NULL is not valid");
	tap_ok(strlen(invalid[sizeof(invalid) / sizeof(invalid[0]) - 1]) == 65,
		   "the too-long case is 65 characters");

	tap_ok(request_id_choose("client-id.42", out) == 0 &&
		   strcmp(out, "client-id.42") == 0, "well-formed incoming id is kept");
	tap_ok(request_id_choose(valid[4], out) == 0 && strcmp(out, valid[4]) == 0,
		   "64-character incoming id is kept");
	tap_ok(request_id_choose(NULL, out) == 0 &&
		   is_lower_hex(out, REQUEST_ID_GENERATED_LEN),
		   "missing id is replaced by 32 hex characters");
	tap_ok(request_id_choose("bad id\r\nX-Evil: 1", out) == 0 &&
		   is_lower_hex(out, REQUEST_ID_GENERATED_LEN),
		   "header-injection attempt is replaced");
	tap_ok(request_id_choose(invalid[9], out) == 0 &&
		   is_lower_hex(out, REQUEST_ID_GENERATED_LEN),
		   "65-character id is replaced");

	for (int i = 0; i < 64; i++)
	{
		if (request_id_generate(ids[i]) != 0 ||
			!is_lower_hex(ids[i], REQUEST_ID_GENERATED_LEN))
			all_hex = false;
		for (int j = 0; j < i; j++)
			if (strcmp(ids[i], ids[j]) == 0)
				distinct = false;
	}
	tap_ok(all_hex, "64 generated ids are 32 lower-case hex characters");
	tap_ok(distinct, "64 generated ids are all different");
	tap_ok(request_id_is_valid(ids[0]), "a generated id is itself valid");
	{
		pthread_t	th;
		char		other[REQUEST_ID_BUFSIZE] = "";

		pthread_create(&th, NULL, generate_elsewhere, other);
		pthread_join(th, NULL);
		tap_ok(is_lower_hex(other, REQUEST_ID_GENERATED_LEN) && strcmp(other, ids[0]) != 0 &&
			   memcmp(other, ids[0], REQUEST_ID_GENERATED_LEN / 2) != 0,
			   "another thread's ids have another (random) prefix");
	}
	return tap_done();
}
