/*-------------------------------------------------------------------------
 *
 * totp.c
 *		Time-based one-time passwords (RFC 6238 over RFC 4226 HOTP):
 *		HMAC-SHA-1, 30-second steps, 6 digits, one step of clock skew either
 *		way, and base32 for the secret shown to authenticator apps.
 *
 *		Replay is refused by the caller: iam.totp_match returns the step a
 *		code matched, which the login flow stores and requires to grow.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#define TOTP_STEP_SECONDS	30
#define TOTP_DIGITS			6
#define TOTP_SKEW_STEPS		1

PG_FUNCTION_INFO_V1(iam_totp_code);
PG_FUNCTION_INFO_V1(iam_totp_match);
PG_FUNCTION_INFO_V1(iam_base32_encode);

/* hotp writes the 6-digit HOTP code of secret at counter into out[7]. */
static void
hotp(const uint8 *secret, size_t secret_len, uint64 counter, char out[TOTP_DIGITS + 1])
{
	uint8		msg[8];
	uint8		mac[EVP_MAX_MD_SIZE];
	unsigned int mac_len = 0;
	int			offset;
	uint32		bin;

	for (int i = 7; i >= 0; i--)
	{
		msg[i] = (uint8) (counter & 0xff);
		counter >>= 8;
	}
	if (HMAC(EVP_sha1(), secret, (int) secret_len, msg, sizeof(msg), mac, &mac_len) == NULL ||
		mac_len != 20)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("HMAC-SHA-1 failed")));
	offset = mac[19] & 0x0f;
	bin = ((uint32) (mac[offset] & 0x7f) << 24) | ((uint32) mac[offset + 1] << 16) |
		((uint32) mac[offset + 2] << 8) | (uint32) mac[offset + 3];
	snprintf(out, TOTP_DIGITS + 1, "%06u", bin % 1000000);
	explicit_bzero(mac, sizeof(mac));
}

static void
check_secret(bytea *secret)
{
	if (VARSIZE_ANY_EXHDR(secret) < 10 || VARSIZE_ANY_EXHDR(secret) > 64)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a TOTP secret is 10 to 64 bytes long")));
}

/* iam.totp_code(secret, step) is the 6-digit code of step (tests, RFC vectors). */
Datum
iam_totp_code(PG_FUNCTION_ARGS)
{
	bytea	   *secret = PG_GETARG_BYTEA_PP(0);
	int64		step = PG_GETARG_INT64(1);
	char		code[TOTP_DIGITS + 1];

	check_secret(secret);
	if (step < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a TOTP step is not negative")));
	hotp((uint8 *) VARDATA_ANY(secret), VARSIZE_ANY_EXHDR(secret), (uint64) step, code);
	PG_RETURN_TEXT_P(cstring_to_text(code));
}

/*
 * iam.totp_match(secret, code, at, after_step) returns the step within one
 * of at's step whose code is code and which is greater than after_step
 * (NULL: any), or NULL.  Every candidate is compared, in constant time.
 */
Datum
iam_totp_match(PG_FUNCTION_ARGS)
{
	bytea	   *secret;
	text	   *code_text;
	TimestampTz at;
	int64		after = PG_ARGISNULL(3) ? -1 : PG_GETARG_INT64(3);
	int64		now_step;
	int64		matched = -1;
	char		given[TOTP_DIGITS + 1];

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		PG_RETURN_NULL();
	secret = PG_GETARG_BYTEA_PP(0);
	code_text = PG_GETARG_TEXT_PP(1);
	at = PG_GETARG_TIMESTAMPTZ(2);
	check_secret(secret);
	if (VARSIZE_ANY_EXHDR(code_text) != TOTP_DIGITS)
		PG_RETURN_NULL();
	memcpy(given, VARDATA_ANY(code_text), TOTP_DIGITS);
	given[TOTP_DIGITS] = '\0';
	for (int i = 0; i < TOTP_DIGITS; i++)
		if (given[i] < '0' || given[i] > '9')
			PG_RETURN_NULL();

	/* seconds since the Unix epoch, from PostgreSQL's 2000 epoch in µs */
	now_step = (at / USECS_PER_SEC +
				(POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY) / TOTP_STEP_SECONDS;
	for (int64 s = now_step - TOTP_SKEW_STEPS; s <= now_step + TOTP_SKEW_STEPS; s++)
	{
		char		want[TOTP_DIGITS + 1];

		if (s < 0)
			continue;
		hotp((uint8 *) VARDATA_ANY(secret), VARSIZE_ANY_EXHDR(secret), (uint64) s, want);
		if (CRYPTO_memcmp(want, given, TOTP_DIGITS) == 0 && s > after && matched < 0)
			matched = s;
	}
	if (matched < 0)
		PG_RETURN_NULL();
	PG_RETURN_INT64(matched);
}

/* iam.base32_encode(bytes) is RFC 4648 base32 without padding (otpauth URIs). */
Datum
iam_base32_encode(PG_FUNCTION_ARGS)
{
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
	bytea	   *in = PG_GETARG_BYTEA_PP(0);
	const uint8 *b = (const uint8 *) VARDATA_ANY(in);
	size_t		n = VARSIZE_ANY_EXHDR(in);
	char	   *out = palloc((n * 8 + 4) / 5 + 1);
	size_t		o = 0;
	uint32		buf = 0;
	int			bits = 0;

	for (size_t i = 0; i < n; i++)
	{
		buf = (buf << 8) | b[i];
		bits += 8;
		while (bits >= 5)
		{
			out[o++] = alphabet[(buf >> (bits - 5)) & 31];
			bits -= 5;
		}
	}
	if (bits > 0)
		out[o++] = alphabet[(buf << (5 - bits)) & 31];
	out[o] = '\0';
	PG_RETURN_TEXT_P(cstring_to_text(out));
}
