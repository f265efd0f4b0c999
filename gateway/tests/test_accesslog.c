/*
 * test_accesslog.c
 *		Unit tests for accesslog_mask_emails: what the access log shows of
 *		an email address in a request path.
 */
#include <string.h>

#include "accesslog.h"
#include "tap.h"

static void
expect(const char *in, const char *want)
{
	char		out[256];

	accesslog_mask_emails(in, out, sizeof(out));
	if (!tap_ok(strcmp(out, want) == 0, "%s -> %s", in, want))
		tap_diag("got %s", out);
}

int
main(void)
{
	char		small[8];

	expect("/api/v1/users/me", "/api/v1/users/me");
	expect("/api/v1/users/jane.doe@example.com", "/api/v1/users/j***@example.com");
	expect("/x/a@b.c/y/bob+tag@mail.example/z", "/x/a***@b.c/y/b***@mail.example/z");
	expect("/x/@nolocal", "/x/@nolocal");
	expect("", "");
	accesslog_mask_emails("/users/jane.doe@example.com", small, sizeof(small));
	tap_ok(strlen(small) < sizeof(small) && strstr(small, "jane") == NULL,
		   "a short buffer is cut, never overflowed, never unmasked (%s)", small);
	return tap_done();
}
