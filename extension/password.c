/*-------------------------------------------------------------------------
 *
 * password.c
 *		Password policy and hashing.  Hashes are argon2id (libargon2) in PHC
 *		string form, with costs from the iam.argon2_* settings (defaults at
 *		least OWASP's: m = 19 MiB, t = 2, p = 1).  Plain-text passwords only
 *		ever live in the caller's memory context for the duration of a call.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <argon2.h>

#include "catalog/pg_collation.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "port.h"
#include "utils/builtins.h"
#include "utils/formatting.h"
#include "utils/guc.h"

#include "password.h"

#define PASSWORD_MAX_BYTES	1024
#define SALT_BYTES			16
#define HASH_BYTES			32

static int	argon2_memory_kib = 19456;
static int	argon2_iterations = 2;
static int	argon2_parallelism = 1;
static int	password_min_length = 12;

PG_FUNCTION_INFO_V1(iam_password_hash);
PG_FUNCTION_INFO_V1(iam_password_verify);

/* Case-insensitive equality under the database's default collation. */
static bool
equal_ignoring_case(const char *a, const char *b)
{
	char	   *la = str_tolower(a, strlen(a), DEFAULT_COLLATION_OID);
	char	   *lb = str_tolower(b, strlen(b), DEFAULT_COLLATION_OID);

	return strcmp(la, lb) == 0;
}

/*
 * check_password_policy raises 22023 naming the first rule the password
 * breaks.  The password itself never appears in a message.
 */
static void
check_password_policy(const char *password, int len, const char *email, const char *name)
{
	if (len > PASSWORD_MAX_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("password is too long"),
				 errdetail("A password is at most %d bytes long.", PASSWORD_MAX_BYTES),
				 errhint("Choose a shorter passphrase.")));
	if (pg_mbstrlen_with_len(password, len) < password_min_length)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("password is too short"),
				 errdetail("A password needs at least %d characters.", password_min_length),
				 errhint("Choose a longer passphrase.")));
	if ((email && equal_ignoring_case(password, email)) ||
		(name && equal_ignoring_case(password, name)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("password must not be the account's email or name"),
				 errhint("Choose a password that is not the email address or name.")));
}

/*
 * PasswordHashArgon2id returns the argon2id PHC string (palloc'd) of
 * password[0..len) with a fresh random salt and the configured costs; it
 * checks no policy (iam.password_hash does, before calling it).
 */
char *
PasswordHashArgon2id(const char *password, int len)
{
	uint8		salt[SALT_BYTES];
	size_t		encoded_len;
	char	   *encoded;
	int			rc;

	if (!pg_strong_random(salt, sizeof(salt)))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a random salt")));

	encoded_len = argon2_encodedlen(argon2_iterations, argon2_memory_kib,
									argon2_parallelism, SALT_BYTES, HASH_BYTES,
									Argon2_id);
	encoded = palloc(encoded_len);
	rc = argon2id_hash_encoded(argon2_iterations, argon2_memory_kib, argon2_parallelism,
							   password, len, salt, sizeof(salt), HASH_BYTES,
							   encoded, encoded_len);
	if (rc != ARGON2_OK)
		ereport(ERROR,
				(errcode(rc == ARGON2_MEMORY_ALLOCATION_ERROR ?
						 ERRCODE_OUT_OF_MEMORY : ERRCODE_INTERNAL_ERROR),
				 errmsg("argon2id hashing failed: %s", argon2_error_message(rc)),
				 errhint("Check the iam.argon2_* settings.")));

	return encoded;
}

/* PasswordArgon2Costs reports the configured costs of new hashes. */
void
PasswordArgon2Costs(int *memory_kib, int *iterations, int *parallelism)
{
	*memory_kib = argon2_memory_kib;
	*iterations = argon2_iterations;
	*parallelism = argon2_parallelism;
}

/*
 * iam.password_hash(password, email, name) checks the policy and returns the
 * argon2id PHC string of password with a fresh random salt.
 */
Datum
iam_password_hash(PG_FUNCTION_ARGS)
{
	text	   *password_text;
	char	   *password;
	int			len;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("password must not be NULL"),
				 errhint("Pass the password to hash.")));

	password_text = PG_GETARG_TEXT_PP(0);
	password = VARDATA_ANY(password_text);
	len = VARSIZE_ANY_EXHDR(password_text);
	check_password_policy(text_to_cstring(password_text), len,
						  PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1)),
						  PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2)));

	PG_RETURN_TEXT_P(cstring_to_text(PasswordHashArgon2id(password, len)));
}

/*
 * iam.password_verify(hash, password) is true when password matches an
 * argon2id PHC hash.  libargon2 recomputes the hash and compares it in
 * constant time; anything that is not an argon2id hash is simply false.
 */
Datum
iam_password_verify(PG_FUNCTION_ARGS)
{
	char	   *hash = text_to_cstring(PG_GETARG_TEXT_PP(0));
	text	   *password = PG_GETARG_TEXT_PP(1);
	int			rc;

	if (strncmp(hash, "$argon2id$", 10) != 0)
		PG_RETURN_BOOL(false);
	rc = argon2id_verify(hash, VARDATA_ANY(password), VARSIZE_ANY_EXHDR(password));
	if (rc == ARGON2_MEMORY_ALLOCATION_ERROR)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("argon2id verification could not allocate its working memory")));
	PG_RETURN_BOOL(rc == ARGON2_OK);
}

/*
 * PasswordInit defines the cost settings.  Raising them makes new hashes
 * slower; existing hashes keep the costs recorded in their PHC string.
 */
void
PasswordInit(void)
{
	DefineCustomIntVariable("iam.argon2_memory_kib",
							"argon2id memory cost of new password hashes, in KiB.",
							NULL, &argon2_memory_kib, 19456, 8192, 1048576,
							PGC_SUSET, GUC_UNIT_KB, NULL, NULL, NULL);
	DefineCustomIntVariable("iam.argon2_iterations",
							"argon2id time cost (passes) of new password hashes.",
							NULL, &argon2_iterations, 2, 1, 64,
							PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("iam.argon2_parallelism",
							"argon2id lanes of new password hashes.",
							NULL, &argon2_parallelism, 1, 1, 16,
							PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("iam.password_min_length",
							"Fewest characters a new password may have.",
							NULL, &password_min_length, 12, 8, PASSWORD_MAX_BYTES,
							PGC_SUSET, 0, NULL, NULL, NULL);
}
