/*-------------------------------------------------------------------------
 *
 * auth.c
 *		Sign-in primitives: password verification for logins (argon2id with
 *		a reused working area, bcrypt hashes left by earlier systems, and a
 *		dummy verification for unknown accounts), the rehash decision, opaque
 *		random tokens, and the lockout settings.  The flows themselves
 *		(login, refresh, sessions, 2FA, reset) are SQL in iam--0.3--0.4.sql.
 *
 *		argon2id's memory cost (19 MiB by default) dominates a login; libargon2
 *		would map and unmap that much memory per verification.  Each backend
 *		instead keeps one working area, grown to the largest cost it has met,
 *		and hands it to libargon2 through argon2_context's allocate/free
 *		callbacks.  It is plain malloc'd memory owned by the backend, never
 *		freed (like a cache); a backend verifies one password at a time.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <argon2.h>
#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "common/base64.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "auth.h"
#include "password.h"

#define PASSWORD_MAX_BYTES	1024
#define TOKEN_BYTES			32
#define PHC_MAX_SALT		64
#define PHC_MAX_HASH		64

static int	lockout_threshold = 5;
static int	lockout_window = 900;

/* The reusable argon2 working area of this backend. */
static uint8 *work_area = NULL;
static size_t work_area_size = 0;

/* The dummy hash for unknown accounts, with the costs it was made with. */
static char *dummy_hash = NULL;
static int	dummy_costs[3];

PG_FUNCTION_INFO_V1(iam_auth_password_verify);
PG_FUNCTION_INFO_V1(iam_auth_password_needs_rehash);
PG_FUNCTION_INFO_V1(iam_auth_password_rehash);
PG_FUNCTION_INFO_V1(iam_auth_random_token);

static int
work_area_allocate(uint8_t **memory, size_t bytes)
{
	if (bytes > work_area_size)
	{
		uint8	   *grown = realloc(work_area, bytes);

		if (grown == NULL)
			return ARGON2_MEMORY_ALLOCATION_ERROR;
		work_area = grown;
		work_area_size = bytes;
	}
	*memory = work_area;
	return ARGON2_OK;
}

static void
work_area_free(uint8_t *memory, size_t bytes)
{
	/* kept for the next verification */
}

/* b64_nopad_decode decodes unpadded standard base64 (PHC strings). */
static int
b64_nopad_decode(const char *in, size_t len, uint8 *out, size_t cap)
{
	char		padded[128];
	int			n;

	if (len == 0 || len + 3 >= sizeof(padded) || len % 4 == 1)
		return -1;
	memcpy(padded, in, len);
	while (len % 4 != 0)
		padded[len++] = '=';
	padded[len] = '\0';
	{
		uint8		tmp[sizeof(padded)];

		n = pg_b64_decode(padded, (int) len, (char *) tmp, sizeof(tmp));
		if (n < 0 || (size_t) n > cap)
			return -1;
		memcpy(out, tmp, n);
	}
	return n;
}

/* An argon2id PHC string, parsed. */
typedef struct Phc
{
	uint32		m,
				t,
				p;
	uint8		salt[PHC_MAX_SALT];
	size_t		salt_len;
	uint8		hash[PHC_MAX_HASH];
	size_t		hash_len;
} Phc;

/*
 * phc_parse parses $argon2id$v=19$m=M,t=T,p=P$SALT$HASH; false when hash is
 * anything else.
 */
static bool
phc_parse(const char *s, Phc *out)
{
	unsigned int m,
				t,
				p;
	int			consumed = 0;
	const char *salt;
	const char *dollar;
	int			n;

	if (sscanf(s, "$argon2id$v=19$m=%u,t=%u,p=%u$%n", &m, &t, &p, &consumed) != 3 ||
		consumed == 0)
		return false;
	if (m < 8 || m > 4194304 || t < 1 || t > 1024 || p < 1 || p > 64)
		return false;
	salt = s + consumed;
	if ((dollar = strchr(salt, '$')) == NULL)
		return false;
	if ((n = b64_nopad_decode(salt, dollar - salt, out->salt, sizeof(out->salt))) < 8)
		return false;
	out->salt_len = n;
	if ((n = b64_nopad_decode(dollar + 1, strlen(dollar + 1), out->hash, sizeof(out->hash))) < 4)
		return false;
	out->hash_len = n;
	out->m = m;
	out->t = t;
	out->p = p;
	return true;
}

/* argon2id_check verifies password against a parsed hash in the work area. */
static bool
argon2id_check(const Phc *phc, const char *password, size_t len)
{
	uint8		out[PHC_MAX_HASH];
	argon2_context ctx;
	int			rc;

	memset(&ctx, 0, sizeof(ctx));
	ctx.out = out;
	ctx.outlen = phc->hash_len;
	ctx.pwd = (uint8_t *) password;
	ctx.pwdlen = len;
	ctx.salt = (uint8_t *) phc->salt;
	ctx.saltlen = phc->salt_len;
	ctx.t_cost = phc->t;
	ctx.m_cost = phc->m;
	ctx.lanes = phc->p;
	ctx.threads = phc->p;
	ctx.version = ARGON2_VERSION_13;
	ctx.allocate_cbk = work_area_allocate;
	ctx.free_cbk = work_area_free;
	ctx.flags = ARGON2_DEFAULT_FLAGS;
	rc = argon2_ctx(&ctx, Argon2_id);
	if (rc == ARGON2_MEMORY_ALLOCATION_ERROR)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("argon2id verification could not allocate its working memory")));
	if (rc != ARGON2_OK)
		return false;
	return CRYPTO_memcmp(out, phc->hash, phc->hash_len) == 0;
}

/* bcrypt_check verifies a $2a$/$2b$/$2y$ hash with libxcrypt. */
static bool
bcrypt_check(const char *hash, const char *password)
{
	struct crypt_data *data = palloc0(sizeof(struct crypt_data));
	char	   *res;
	bool		ok;

	res = crypt_rn(password, hash, data, sizeof(*data));
	ok = res != NULL && res[0] != '*' && strlen(res) == strlen(hash) &&
		CRYPTO_memcmp(res, hash, strlen(hash)) == 0;
	explicit_bzero(data, sizeof(*data));
	pfree(data);
	return ok;
}

static bool
is_bcrypt(const char *hash)
{
	return strlen(hash) == 60 && hash[0] == '$' && hash[1] == '2' &&
		(hash[2] == 'a' || hash[2] == 'b' || hash[2] == 'y') && hash[3] == '$';
}

/*
 * dummy_verify spends the work of a verification at the configured costs
 * on a hash nobody's password matches, so an unknown account answers as
 * slowly as a known one.
 */
static void
dummy_verify(const char *password, size_t len)
{
	int			c[3];
	Phc			phc;

	PasswordArgon2Costs(&c[0], &c[1], &c[2]);
	if (dummy_hash == NULL || memcmp(c, dummy_costs, sizeof(c)) != 0)
	{
		char	   *h = PasswordHashArgon2id("pg_iam dummy password", 21);
		char	   *kept = strdup(h);

		pfree(h);
		if (kept == NULL)
			ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
		free(dummy_hash);
		dummy_hash = kept;
		memcpy(dummy_costs, c, sizeof(c));
	}
	if (phc_parse(dummy_hash, &phc))
		(void) argon2id_check(&phc, password, len);
}

/*
 * iam.auth_password_verify(hash, password) is true when password matches
 * hash: argon2id (PHC) or bcrypt ($2a$, $2b$, $2y$).  A NULL hash (unknown
 * account, or one without a password) costs a dummy verification and is
 * false; so is any other hash form.  Passwords over 1024 bytes are false.
 */
Datum
iam_auth_password_verify(PG_FUNCTION_ARGS)
{
	text	   *pw;
	char	   *password;
	size_t		len;
	char	   *hash;
	Phc			phc;
	bool		ok = false;

	if (PG_ARGISNULL(1))
		PG_RETURN_BOOL(false);
	pw = PG_GETARG_TEXT_PP(1);
	len = VARSIZE_ANY_EXHDR(pw);
	password = text_to_cstring(pw);
	if (len > PASSWORD_MAX_BYTES)
		len = PASSWORD_MAX_BYTES;	/* still spend the work, then fail */

	if (PG_ARGISNULL(0))
		dummy_verify(password, len);
	else
	{
		hash = text_to_cstring(PG_GETARG_TEXT_PP(0));
		if (phc_parse(hash, &phc))
			ok = argon2id_check(&phc, password, len);
		else if (is_bcrypt(hash))
			ok = bcrypt_check(hash, password);
		else
			dummy_verify(password, len);
	}
	if (VARSIZE_ANY_EXHDR(pw) > PASSWORD_MAX_BYTES)
		ok = false;
	explicit_bzero(password, strlen(password));
	PG_RETURN_BOOL(ok);
}

/*
 * iam.auth_password_needs_rehash(hash) is true when hash is not argon2id or
 * has a cost below the configured iam.argon2_* settings.
 */
Datum
iam_auth_password_needs_rehash(PG_FUNCTION_ARGS)
{
	char	   *hash = text_to_cstring(PG_GETARG_TEXT_PP(0));
	int			m,
				t,
				p;
	Phc			phc;

	PasswordArgon2Costs(&m, &t, &p);
	if (!phc_parse(hash, &phc))
		PG_RETURN_BOOL(true);
	PG_RETURN_BOOL(phc.m < (uint32) m || phc.t < (uint32) t || phc.p < (uint32) p);
}

/*
 * iam.auth_password_rehash(password) returns a fresh argon2id hash of a
 * password that has just been verified; no policy is applied (the user
 * chose it under an earlier one).
 */
Datum
iam_auth_password_rehash(PG_FUNCTION_ARGS)
{
	text	   *pw = PG_GETARG_TEXT_PP(0);

	PG_RETURN_TEXT_P(cstring_to_text(PasswordHashArgon2id(VARDATA_ANY(pw),
														   VARSIZE_ANY_EXHDR(pw))));
}

/*
 * iam.auth_random_token() returns 256 random bits from OpenSSL as 43
 * characters of unpadded base64url: refresh, reset and invitation tokens.
 */
Datum
iam_auth_random_token(PG_FUNCTION_ARGS)
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	uint8		b[TOKEN_BYTES + 1];
	char		out[44];
	int			o = 0;

	if (RAND_bytes(b, TOKEN_BYTES) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a random token")));
	b[TOKEN_BYTES] = 0;
	for (int i = 0; i < TOKEN_BYTES; i += 3)
	{
		uint32		v = (uint32) b[i] << 16 | (uint32) b[i + 1] << 8 |
			(i + 2 < TOKEN_BYTES ? b[i + 2] : 0);

		out[o++] = alphabet[(v >> 18) & 63];
		out[o++] = alphabet[(v >> 12) & 63];
		out[o++] = alphabet[(v >> 6) & 63];
		if (i + 2 < TOKEN_BYTES)
			out[o++] = alphabet[v & 63];
	}
	out[o] = '\0';
	explicit_bzero(b, sizeof(b));
	PG_RETURN_TEXT_P(cstring_to_text(out));
}

/*
 * AuthInit defines the lockout settings, read by iam.api_auth_login.
 */
void
AuthInit(void)
{
	DefineCustomIntVariable("iam.lockout_threshold",
							"Failed logins of one account within iam.lockout_window that lock it (0: never).",
							NULL, &lockout_threshold, 5, 0, 1000,
							PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("iam.lockout_window",
							"Window in which failed logins are counted, and how long a lockout lasts.",
							NULL, &lockout_window, 900, 1, 86400,
							PGC_SUSET, GUC_UNIT_S, NULL, NULL, NULL);
}
