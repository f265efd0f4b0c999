/*-------------------------------------------------------------------------
 *
 * context.c
 *		The request context: settings iam.user_id, iam.org_id,
 *		iam.request_id, iam.ip, iam.user_agent, iam.session_id and
 *		iam.external_sub, which the gateway (or any
 *		caller) sets per transaction with set_config(name, value, true).
 *		Row-level security, permission checks and audit rows read them.
 *
 *		Defining them as real settings lets a malformed value fail where it is
 *		set (22023, naming the setting) instead of deep inside a policy.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <arpa/inet.h>

#include "utils/guc.h"

#include "context.h"

#define REQUEST_ID_MAX_LEN	64
#define USER_AGENT_MAX_LEN	1024

static char *context_user_id = NULL;
static char *context_org_id = NULL;
static char *context_request_id = NULL;
static char *context_ip = NULL;
static char *context_user_agent = NULL;
static char *context_session_id = NULL;
static char *context_external_sub = NULL;

/* A canonical 8-4-4-4-12 hexadecimal uuid, as the gateway sends it. */
static bool
is_canonical_uuid(const char *s)
{
	for (int i = 0; i < 36; i++)
	{
		if (i == 8 || i == 13 || i == 18 || i == 23)
		{
			if (s[i] != '-')
				return false;
		}
		else if (!((s[i] >= '0' && s[i] <= '9') ||
				   (s[i] >= 'a' && s[i] <= 'f') ||
				   (s[i] >= 'A' && s[i] <= 'F')))
			return false;
	}
	return s[36] == '\0';
}

static bool
check_uuid_setting(char **newval, void **extra, GucSource source)
{
	if (*newval == NULL || **newval == '\0' || is_canonical_uuid(*newval))
		return true;
	GUC_check_errdetail("The value must be a uuid such as 00000000-0000-0000-0000-000000000000, or empty.");
	return false;
}

static bool
check_request_id(char **newval, void **extra, GucSource source)
{
	const char *p;

	if (*newval == NULL)
		return true;
	if (strlen(*newval) > REQUEST_ID_MAX_LEN)
	{
		GUC_check_errdetail("A request id is at most %d characters long.", REQUEST_ID_MAX_LEN);
		return false;
	}
	for (p = *newval; *p; p++)
	{
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
			  (*p >= 'A' && *p <= 'Z') || *p == '.' || *p == '_' ||
			  *p == ':' || *p == '-'))
		{
			GUC_check_errdetail("A request id may contain only letters, digits and . _ : -");
			return false;
		}
	}
	return true;
}

static bool
check_ip(char **newval, void **extra, GucSource source)
{
	unsigned char addr[sizeof(struct in6_addr)];

	if (*newval == NULL || **newval == '\0' ||
		inet_pton(AF_INET, *newval, addr) == 1 ||
		inet_pton(AF_INET6, *newval, addr) == 1)
		return true;
	GUC_check_errdetail("The value must be an IPv4 or IPv6 address, or empty.");
	return false;
}

static bool
check_user_agent(char **newval, void **extra, GucSource source)
{
	const unsigned char *p;

	if (*newval == NULL)
		return true;
	if (strlen(*newval) > USER_AGENT_MAX_LEN)
	{
		GUC_check_errdetail("A user agent is at most %d bytes long.", USER_AGENT_MAX_LEN);
		return false;
	}
	for (p = (const unsigned char *) *newval; *p; p++)
	{
		if (*p < 0x20 || *p == 0x7f)
		{
			GUC_check_errdetail("A user agent may not contain control characters.");
			return false;
		}
	}
	return true;
}

/* An external identity provider's subject: 1..255 bytes, no control characters. */
static bool
check_external_sub(char **newval, void **extra, GucSource source)
{
	const unsigned char *p;

	if (*newval == NULL)
		return true;
	if (strlen(*newval) > 255)
	{
		GUC_check_errdetail("A subject is at most 255 bytes long.");
		return false;
	}
	for (p = (const unsigned char *) *newval; *p; p++)
	{
		if (*p < 0x20 || *p == 0x7f)
		{
			GUC_check_errdetail("A subject may not contain control characters.");
			return false;
		}
	}
	return true;
}

static void
define_context_setting(const char *name, const char *description,
					   char **var, GucStringCheckHook check)
{
	DefineCustomStringVariable(name, description, NULL, var, "",
							   PGC_USERSET,
							   GUC_NOT_IN_SAMPLE | GUC_DISALLOW_IN_FILE,
							   check, NULL, NULL);
}

/*
 * ContextInit defines the request-context settings.
 */
void
ContextInit(void)
{
	define_context_setting("iam.user_id", "User acting in the current request.",
						   &context_user_id, check_uuid_setting);
	define_context_setting("iam.org_id", "Organisation of the current request; row-level security shows only its rows.",
						   &context_org_id, check_uuid_setting);
	define_context_setting("iam.request_id", "Id of the current request, recorded in audit rows.",
						   &context_request_id, check_request_id);
	define_context_setting("iam.ip", "Client address of the current request.",
						   &context_ip, check_ip);
	define_context_setting("iam.user_agent", "Client user agent of the current request.",
						   &context_user_agent, check_user_agent);
	define_context_setting("iam.session_id", "Session of the current request's access token; a revoked or expired session is refused.",
						   &context_session_id, check_uuid_setting);
	define_context_setting("iam.external_sub", "Subject of the current request's token from the external identity provider (users.stack_auth_id).",
						   &context_external_sub, check_external_sub);
}
