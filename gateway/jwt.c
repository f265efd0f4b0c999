/*
 * jwt.c
 *		JSON Web Tokens (RFC 7519) in JWS compact form (RFC 7515): verifying
 *		bearer tokens and signing the access tokens the gateway issues.
 *
 * The rules are those of RFC 8725 (JWT best current practices).  The
 * algorithm is pinned by configuration, per key: a verifier holds HS256
 * secrets only, or public keys whose type fixes their algorithm (EC P-256:
 * ES256, RSA: RS256), and the header's "alg" must be the algorithm of the
 * key its "kid" selects.  So neither "none" nor an HS256 token keyed with an
 * RSA public key gets in, and rotating from ES256 to RS256 keeps the old
 * tokens valid without letting a token choose how a key is used.
 *
 * Tokens of an external identity provider (JWT_MODE_EXTERNAL) follow the
 * same rules, and must name their key by kid; their sub is any string (an
 * identifier of the provider, mapped to a user by the database) and they
 * carry no org.
 * Every parser is strict: base64url without padding or stray bits, JSON
 * objects without duplicate members (two parsers reading different values
 * from one token is a classic bypass), no "crit" extension, since we
 * implement none.  ES256 r and s are range-checked before OpenSSL sees them
 * (Java's CVE-2022-21449 accepted r = s = 0).  The signature is checked
 * before the claims are even parsed.
 *
 * A JwtVerifier is built once and only read afterwards, so the HTTP threads
 * share it without locks: OpenSSL documents EVP_PKEY and EVP_MAC as safe for
 * concurrent read-only use, and every OpenSSL context is made per call.
 * Errors are values: nothing here logs, and OpenSSL's per-thread error queue
 * is left as it was found (ERR_set_mark / ERR_pop_to_mark).
 */
#include "jwt.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/params.h>
#include <openssl/rsa.h>

#define HS256_MIN_SECRET	32
#define HS256_MAC_LEN		32
#define ES256_SCALAR_LEN	32
#define ES256_SIG_LEN		(2 * ES256_SCALAR_LEN)
#define RS256_MIN_BITS		2048
#define LEEWAY_MAX			3600
#define JTI_MAX				64
#define UUID_LEN			36

/*
 * NumericDates beyond 9999-12-31T23:59:59Z are refused: nothing legitimate
 * needs them, and the bound keeps "exp + leeway" far from overflow.
 */
#define TIME_MAX			253402300799LL

/* One key of a verifier, owned by it. */
typedef struct VerifierKey
{
	char	   *kid;			/* NULL: the default key */
	size_t		kid_len;
	JwtAlg		alg;			/* the only algorithm this key verifies */
	EVP_PKEY   *pkey;			/* our own reference */
	unsigned char *secret;		/* wiped on free */
	size_t		secret_len;
} VerifierKey;

struct JwtVerifier
{
	unsigned int algs;			/* bit (1 << alg) of every key's algorithm */
	JwtMode		mode;
	VerifierKey *keys;
	size_t		nkeys;
	char	   *issuer;			/* NULL: not checked */
	char	   *audience;		/* NULL: tokens must carry no aud (external
								 * mode: aud not checked) */
	int			leeway;
	EVP_MAC    *hmac;			/* HS256: fetched once, not per token */
	BIGNUM	   *order;			/* ES256 keys: n of P-256, for the r/s range */
};

/* A decoded part of a token, pointing into jwt_verify's buffer. */
typedef struct Part
{
	const unsigned char *data;
	size_t		len;
} Part;

static const char b64url_alphabet[] =
"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* b64url_value returns the 6-bit value of c, or -1 outside the alphabet. */
static int
b64url_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

/*
 * b64url_decode decodes in[0..len) into out (room for len * 3 / 4 bytes).
 * Only the canonical encoding is accepted: no padding, no other characters,
 * no length of 1 mod 4, and zero unused bits in the last character, so one
 * byte string has exactly one accepted spelling.  Returns false otherwise.
 */
static bool
b64url_decode(const char *in, size_t len, unsigned char *out, size_t *out_len)
{
	size_t		i;
	size_t		o = 0;
	unsigned int acc = 0;
	int			bits = 0;

	if (len % 4 == 1)
		return false;
	for (i = 0; i < len; i++)
	{
		int			v = b64url_value((unsigned char) in[i]);

		if (v < 0)
			return false;
		acc = (acc << 6) | (unsigned int) v;
		bits += 6;
		if (bits >= 8)
		{
			bits -= 8;
			out[o++] = (unsigned char) (acc >> bits);
			acc &= (1U << bits) - 1;
		}
	}
	/* what is left over are the unused low bits of the last character */
	if (acc != 0)
		return false;
	*out_len = o;
	return true;
}

/* b64url_len returns the length of the unpadded encoding of n bytes. */
static size_t
b64url_len(size_t n)
{
	return n / 3 * 4 + (n % 3 == 0 ? 0 : n % 3 + 1);
}

/* b64url_encode writes the encoding of in[0..n) to out; returns its end. */
static char *
b64url_encode(const unsigned char *in, size_t n, char *out)
{
	size_t		i;

	for (i = 0; i + 2 < n; i += 3)
	{
		unsigned int v = (unsigned int) in[i] << 16 | (unsigned int) in[i + 1] << 8 | in[i + 2];

		*out++ = b64url_alphabet[v >> 18];
		*out++ = b64url_alphabet[(v >> 12) & 63];
		*out++ = b64url_alphabet[(v >> 6) & 63];
		*out++ = b64url_alphabet[v & 63];
	}
	if (n - i == 1)
	{
		*out++ = b64url_alphabet[in[i] >> 2];
		*out++ = b64url_alphabet[(in[i] & 3) << 4];
	}
	else if (n - i == 2)
	{
		unsigned int v = (unsigned int) in[i] << 8 | in[i + 1];

		*out++ = b64url_alphabet[v >> 10];
		*out++ = b64url_alphabet[(v >> 4) & 63];
		*out++ = b64url_alphabet[(v & 15) << 2];
	}
	return out;
}

/* alg_name returns the JOSE name of alg. */
static const char *
alg_name(JwtAlg alg)
{
	switch (alg)
	{
		case JWT_HS256:
			return "HS256";
		case JWT_ES256:
			return "ES256";
		case JWT_RS256:
			return "RS256";
	}
	return "?";
}

/*
 * key_fits says whether key can serve alg: a secret of at least 32 bytes for
 * HS256 (RFC 7518 3.2: no shorter than the hash), an EC key on P-256 for
 * ES256, an RSA key of at least 2048 bits for RS256 (RFC 7518 3.3).
 */
static bool
key_fits(JwtAlg alg, const JwtKey *key)
{
	if (alg == JWT_HS256)
		return key->secret != NULL && key->secret_len >= HS256_MIN_SECRET;
	if (key->pkey == NULL)
		return false;
	if (alg == JWT_ES256)
	{
		char		group[80];
		size_t		group_len = 0;
		int			nid;

		if (!EVP_PKEY_is_a(key->pkey, "EC") ||
			EVP_PKEY_get_group_name(key->pkey, group, sizeof(group), &group_len) != 1)
			return false;
		nid = OBJ_txt2nid(group);
		if (nid == NID_undef)
			nid = EC_curve_nist2nid(group);
		return nid == NID_X9_62_prime256v1;
	}
	if (alg == JWT_RS256)
		return EVP_PKEY_is_a(key->pkey, "RSA") &&
			EVP_PKEY_get_bits(key->pkey) >= RS256_MIN_BITS;
	return false;
}

/* p256_order returns a new copy of the order n of P-256, or NULL. */
static BIGNUM *
p256_order(void)
{
	EC_GROUP   *group = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
	BIGNUM	   *order = NULL;

	if (group != NULL)
		order = BN_dup(EC_GROUP_get0_order(group));
	EC_GROUP_free(group);
	return order;
}

/*
 * verifier_create builds a verifier of nkeys keys, key i verifying
 * algs[i] only (already checked to fit).
 */
static JwtVerifier *
verifier_create(const JwtKey *keys, const JwtAlg *algs, size_t nkeys,
				const char *issuer, const char *audience,
				int leeway_seconds, JwtMode mode)
{
	JwtVerifier *v;
	size_t		i;
	size_t		j;

	if (leeway_seconds < 0 || leeway_seconds > LEEWAY_MAX ||
		(mode != JWT_MODE_ACCESS && mode != JWT_MODE_EXTERNAL) ||
		(mode == JWT_MODE_EXTERNAL && issuer == NULL))
		return NULL;
	for (i = 0; i < nkeys; i++)
	{
		/* an external provider's tokens name their key */
		if (mode == JWT_MODE_EXTERNAL && keys[i].kid == NULL)
			return NULL;
		/* two keys under one kid (or two defaults) would make kid ambiguous */
		for (j = 0; j < i; j++)
			if ((keys[i].kid == NULL && keys[j].kid == NULL) ||
				(keys[i].kid != NULL && keys[j].kid != NULL &&
				 strcmp(keys[i].kid, keys[j].kid) == 0))
				return NULL;
	}

	if ((v = calloc(1, sizeof(*v))) == NULL)
		return NULL;
	v->mode = mode;
	v->leeway = leeway_seconds;
	if ((v->keys = calloc(nkeys, sizeof(*v->keys))) == NULL)
		goto fail;
	for (i = 0; i < nkeys; i++)
	{
		VerifierKey *k = &v->keys[i];

		/* count the key before filling it so a failure frees what is set */
		v->nkeys = i + 1;
		k->alg = algs[i];
		v->algs |= 1U << algs[i];
		if (keys[i].kid != NULL)
		{
			if ((k->kid = strdup(keys[i].kid)) == NULL)
				goto fail;
			k->kid_len = strlen(k->kid);
		}
		if (algs[i] == JWT_HS256)
		{
			if ((k->secret = malloc(keys[i].secret_len)) == NULL)
				goto fail;
			memcpy(k->secret, keys[i].secret, keys[i].secret_len);
			k->secret_len = keys[i].secret_len;
		}
		else
		{
			if (EVP_PKEY_up_ref(keys[i].pkey) != 1)
				goto fail;
			k->pkey = keys[i].pkey;
		}
	}
	if ((issuer != NULL && (v->issuer = strdup(issuer)) == NULL) ||
		(audience != NULL && (v->audience = strdup(audience)) == NULL))
		goto fail;
	if ((v->algs & (1U << JWT_HS256)) && (v->hmac = EVP_MAC_fetch(NULL, "HMAC", NULL)) == NULL)
		goto fail;
	if ((v->algs & (1U << JWT_ES256)) && (v->order = p256_order()) == NULL)
		goto fail;
	return v;

fail:
	jwt_verifier_free(v);
	return NULL;
}

JwtVerifier *
jwt_verifier_create(JwtAlg alg, const JwtKey *keys, size_t nkeys,
					const char *issuer, const char *audience,
					int leeway_seconds)
{
	JwtAlg	   *algs;
	JwtVerifier *v;

	if (keys == NULL || nkeys == 0 ||
		(alg != JWT_HS256 && alg != JWT_ES256 && alg != JWT_RS256))
		return NULL;
	for (size_t i = 0; i < nkeys; i++)
		if (!key_fits(alg, &keys[i]))
			return NULL;
	if ((algs = calloc(nkeys, sizeof(*algs))) == NULL)
		return NULL;
	for (size_t i = 0; i < nkeys; i++)
		algs[i] = alg;
	v = verifier_create(keys, algs, nkeys, issuer, audience, leeway_seconds, JWT_MODE_ACCESS);
	free(algs);
	return v;
}

bool
jwt_key_alg(EVP_PKEY *pkey, JwtAlg *alg)
{
	JwtKey		k = {NULL, pkey, NULL, 0};

	if (key_fits(JWT_ES256, &k))
		*alg = JWT_ES256;
	else if (key_fits(JWT_RS256, &k))
		*alg = JWT_RS256;
	else
		return false;
	return true;
}

JwtVerifier *
jwt_verifier_create_public(const JwtKey *keys, size_t nkeys,
						   const char *issuer, const char *audience,
						   int leeway_seconds, JwtMode mode)
{
	JwtAlg	   *algs;
	JwtVerifier *v;

	if (keys == NULL || nkeys == 0)
		return NULL;
	if ((algs = calloc(nkeys, sizeof(*algs))) == NULL)
		return NULL;
	for (size_t i = 0; i < nkeys; i++)
		if (keys[i].secret != NULL || !jwt_key_alg(keys[i].pkey, &algs[i]))
		{
			free(algs);
			return NULL;
		}
	v = verifier_create(keys, algs, nkeys, issuer, audience, leeway_seconds, mode);
	free(algs);
	return v;
}

void
jwt_verifier_free(JwtVerifier *v)
{
	size_t		i;

	if (v == NULL)
		return;
	for (i = 0; i < v->nkeys; i++)
	{
		free(v->keys[i].kid);
		EVP_PKEY_free(v->keys[i].pkey);
		if (v->keys[i].secret != NULL)
		{
			OPENSSL_cleanse(v->keys[i].secret, v->keys[i].secret_len);
			free(v->keys[i].secret);
		}
	}
	free(v->keys);
	free(v->issuer);
	free(v->audience);
	EVP_MAC_free(v->hmac);
	BN_free(v->order);
	free(v);
}

const char *
jwt_error_name(JwtError e)
{
	switch (e)
	{
		case JWT_OK:
			return "ok";
		case JWT_MALFORMED:
			return "malformed";
		case JWT_TOO_LARGE:
			return "too_large";
		case JWT_BAD_ALG:
			return "bad_alg";
		case JWT_UNKNOWN_KID:
			return "unknown_kid";
		case JWT_BAD_SIGNATURE:
			return "bad_signature";
		case JWT_EXPIRED:
			return "expired";
		case JWT_NOT_YET_VALID:
			return "not_yet_valid";
		case JWT_BAD_ISSUER:
			return "bad_issuer";
		case JWT_BAD_AUDIENCE:
			return "bad_audience";
		case JWT_BAD_CLAIMS:
			return "bad_claims";
	}
	return "unknown";
}

/*
 * hmac_sha256 computes HMAC-SHA256 of data into out.  mac is the fetched
 * HMAC implementation; the context is per call, so threads never share one.
 */
static bool
hmac_sha256(EVP_MAC *mac, const unsigned char *key, size_t key_len,
			const unsigned char *data, size_t len,
			unsigned char out[HS256_MAC_LEN])
{
	EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);
	char		digest[] = "SHA256";
	OSSL_PARAM	params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
		OSSL_PARAM_construct_end()
	};
	size_t		out_len = 0;
	bool		ok;

	if (ctx == NULL)
		return false;
	ok = EVP_MAC_init(ctx, key, key_len, params) == 1 &&
		EVP_MAC_update(ctx, data, len) == 1 &&
		EVP_MAC_final(ctx, out, &out_len, HS256_MAC_LEN) == 1 &&
		out_len == HS256_MAC_LEN;
	EVP_MAC_CTX_free(ctx);
	return ok;
}

/*
 * digest_verify checks sig (DER for ECDSA) over data with SHA-256 and pkey;
 * rsa selects PKCS#1 v1.5 padding, set explicitly rather than trusting the
 * default.
 */
static bool
digest_verify(EVP_PKEY *pkey, bool rsa, const unsigned char *sig, size_t sig_len,
			  const unsigned char *data, size_t len)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	bool		ok;

	if (md == NULL)
		return false;
	ok = EVP_DigestVerifyInit(md, &pctx, EVP_sha256(), NULL, pkey) == 1 &&
		(!rsa || EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) > 0) &&
		EVP_DigestVerify(md, sig, sig_len, data, len) == 1;
	EVP_MD_CTX_free(md);
	return ok;
}

/*
 * es256_scalar reads a 32-byte big-endian r or s and returns it as a new
 * BIGNUM when it lies in [1, n-1], else NULL.
 */
static BIGNUM *
es256_scalar(const unsigned char *bytes, const BIGNUM *order)
{
	BIGNUM	   *x = BN_bin2bn(bytes, ES256_SCALAR_LEN, NULL);

	if (x != NULL && (BN_is_zero(x) || BN_cmp(x, order) >= 0))
	{
		BN_free(x);
		x = NULL;
	}
	return x;
}

/*
 * es256_verify checks a JWS ES256 signature, r || s (RFC 7518 3.4), by
 * converting it to the DER form OpenSSL verifies.
 */
static bool
es256_verify(const JwtVerifier *v, EVP_PKEY *pkey, const unsigned char *sig,
			 size_t sig_len, const unsigned char *data, size_t len)
{
	BIGNUM	   *r = NULL;
	BIGNUM	   *s = NULL;
	ECDSA_SIG  *es = NULL;
	unsigned char *der = NULL;
	int			der_len;
	bool		ok = false;

	if (sig_len != ES256_SIG_LEN ||
		(r = es256_scalar(sig, v->order)) == NULL ||
		(s = es256_scalar(sig + ES256_SCALAR_LEN, v->order)) == NULL ||
		(es = ECDSA_SIG_new()) == NULL ||
		ECDSA_SIG_set0(es, r, s) != 1)
		goto done;
	/* es owns r and s now */
	r = s = NULL;
	if ((der_len = i2d_ECDSA_SIG(es, &der)) <= 0)
		goto done;
	ok = digest_verify(pkey, false, der, (size_t) der_len, data, len);

done:
	OPENSSL_free(der);
	ECDSA_SIG_free(es);
	BN_free(r);
	BN_free(s);
	return ok;
}

/* verify_signature checks sig over data (the signing input) with key. */
static bool
verify_signature(const JwtVerifier *v, const VerifierKey *key,
				 const unsigned char *sig, size_t sig_len,
				 const unsigned char *data, size_t len)
{
	switch (key->alg)
	{
		case JWT_HS256:
			{
				unsigned char mac[HS256_MAC_LEN];
				bool		ok;

				if (sig_len != HS256_MAC_LEN)
					return false;
				ok = hmac_sha256(v->hmac, key->secret, key->secret_len,
								 data, len, mac) &&
					CRYPTO_memcmp(mac, sig, HS256_MAC_LEN) == 0;
				/* the expected MAC is a valid signature: do not leave it */
				OPENSSL_cleanse(mac, sizeof(mac));
				return ok;
			}
		case JWT_ES256:
			return es256_verify(v, key->pkey, sig, sig_len, data, len);
		case JWT_RS256:
			/* RFC 7518 3.3: the signature is exactly as long as the modulus */
			if (sig_len != (size_t) EVP_PKEY_get_size(key->pkey))
				return false;
			return digest_verify(key->pkey, true, sig, sig_len, data, len);
	}
	return false;
}

/* json_equals says whether j is a string equal to s[0..len). */
static bool
json_equals(const json_t *j, const char *s, size_t len)
{
	return json_is_string(j) && json_string_length(j) == len &&
		memcmp(json_string_value(j), s, len) == 0;
}

/*
 * select_key returns the key named by kid (kid_len bytes; kid NULL when the
 * header has none), or NULL.  Without kid: the default key, or the only one.
 * A kid never falls back to the default key, so a token naming a key we do
 * not have is refused rather than tried against another.
 */
static const VerifierKey *
select_key(const JwtVerifier *v, const char *kid, size_t kid_len)
{
	size_t		i;

	for (i = 0; i < v->nkeys; i++)
	{
		const VerifierKey *k = &v->keys[i];

		if (kid == NULL ? k->kid == NULL :
			(k->kid != NULL && k->kid_len == kid_len &&
			 memcmp(k->kid, kid, kid_len) == 0))
			return k;
	}
	if (kid == NULL && v->nkeys == 1 && v->mode == JWT_MODE_ACCESS)
		return &v->keys[0];
	return NULL;
}

/*
 * check_header applies the header rules and picks the key: alg must be one
 * the verifier's keys use, typ (if any) "JWT", no crit, kid (if any) a known
 * string, and alg the very algorithm of the key kid selects.
 */
static JwtError
check_header(const JwtVerifier *v, json_t *hdr, const VerifierKey **key)
{
	json_t	   *alg = json_object_get(hdr, "alg");
	json_t	   *typ = json_object_get(hdr, "typ");
	json_t	   *kid = json_object_get(hdr, "kid");
	int			want = -1;

	if (!json_is_string(alg))
		return JWT_MALFORMED;
	for (int a = JWT_HS256; a <= JWT_RS256; a++)
		if ((v->algs & (1U << a)) &&
			json_equals(alg, alg_name((JwtAlg) a), strlen(alg_name((JwtAlg) a))))
			want = a;
	if (want < 0)
		return JWT_BAD_ALG;
	if (typ != NULL && !json_equals(typ, "JWT", 3))
		return JWT_MALFORMED;
	/* RFC 7515 4.1.11: extensions we do not understand must be refused */
	if (json_object_get(hdr, "crit") != NULL)
		return JWT_MALFORMED;
	if (kid != NULL && !json_is_string(kid))
		return JWT_MALFORMED;
	*key = kid != NULL ?
		select_key(v, json_string_value(kid), json_string_length(kid)) :
		select_key(v, NULL, 0);
	if (*key == NULL)
		return JWT_UNKNOWN_KID;
	/* the key's type fixed its algorithm: a token cannot pick another */
	if ((int) (*key)->alg != want)
		return JWT_BAD_ALG;
	return JWT_OK;
}

/*
 * claim_time reads the NumericDate claim name into *out: an integer, or a
 * real without fraction, in [0, TIME_MAX].  *present tells whether the claim
 * is there; returns false when it is there but unfit.
 */
static bool
claim_time(json_t *claims, const char *name, bool *present, long long *out)
{
	json_t	   *j = json_object_get(claims, name);

	*present = j != NULL;
	if (j == NULL)
		return true;
	if (json_is_integer(j))
	{
		json_int_t	n = json_integer_value(j);

		if (n < 0 || n > TIME_MAX)
			return false;
		*out = (long long) n;
		return true;
	}
	if (json_is_real(j))
	{
		double		d = json_real_value(j);

		if (!isfinite(d) || d != floor(d) || d < 0 || d > (double) TIME_MAX)
			return false;
		*out = (long long) d;
		return true;
	}
	return false;
}

/* uuid_canon copies the uuid s[0..len) in lower case into out; false if not one. */
static bool
uuid_canon(const char *s, size_t len, char out[UUID_LEN + 1])
{
	size_t		i;

	if (len != UUID_LEN)
		return false;
	for (i = 0; i < UUID_LEN; i++)
	{
		char		c = s[i];

		if (i == 8 || i == 13 || i == 18 || i == 23)
		{
			if (c != '-')
				return false;
		}
		else if (c >= 'A' && c <= 'F')
			c = (char) (c - 'A' + 'a');
		else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return false;
		out[i] = c;
	}
	out[UUID_LEN] = '\0';
	return true;
}

/* claim_uuid reads the uuid claim name; false when present but not a uuid. */
static bool
claim_uuid(json_t *claims, const char *name, bool *present, char out[UUID_LEN + 1])
{
	json_t	   *j = json_object_get(claims, name);

	*present = j != NULL;
	if (j == NULL)
		return true;
	return json_is_string(j) &&
		uuid_canon(json_string_value(j), json_string_length(j), out);
}

/*
 * jti_ok says whether s[0..len) is an acceptable jti: 1 to 64 printable
 * ASCII characters, so it can go into a log line or a Redis key as is.
 */
static bool
jti_ok(const char *s, size_t len)
{
	size_t		i;

	if (len == 0 || len > JTI_MAX)
		return false;
	for (i = 0; i < len; i++)
		if (s[i] < 0x21 || s[i] > 0x7E)
			return false;
	return true;
}

/* check_audience applies the aud rule of RFC 7519 4.1.3. */
static bool
check_audience(const JwtVerifier *v, json_t *aud)
{
	size_t		len;
	size_t		i;
	json_t	   *item;
	bool		found = false;

	/*
	 * A token meant for someone, when we are no one in particular; an
	 * external provider's tokens always name its client, checked only when
	 * configured.
	 */
	if (v->audience == NULL)
		return aud == NULL || v->mode == JWT_MODE_EXTERNAL;
	len = strlen(v->audience);
	if (json_is_string(aud))
		return json_equals(aud, v->audience, len);
	if (!json_is_array(aud))
		return false;
	json_array_foreach(aud, i, item)
	{
		if (!json_is_string(item))
			return false;
		if (json_equals(item, v->audience, len))
			found = true;
	}
	return found;
}

/*
 * external_subject copies an external token's sub, 1 to JWT_EXT_SUB_MAX
 * bytes of UTF-8 without control characters, into out->ext_sub.  Its org,
 * sid and jti are not ours to read: the database maps sub to a user.
 */
static JwtError
external_subject(json_t *claims, JwtClaims *out)
{
	json_t	   *sub = json_object_get(claims, "sub");
	const char *s = json_string_value(sub);
	size_t		len = json_string_length(sub);

	if (s == NULL || len == 0 || len > JWT_EXT_SUB_MAX)
		return JWT_BAD_CLAIMS;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char) s[i] < 0x20 || s[i] == 0x7F)
			return JWT_BAD_CLAIMS;
	memcpy(out->ext_sub, s, len);
	out->ext_sub[len] = '\0';
	return JWT_OK;
}

/* check_claims applies the claim rules at time now and fills *out. */
static JwtError
check_claims(const JwtVerifier *v, json_t *claims, long long now, JwtClaims *out)
{
	json_t	   *iss = json_object_get(claims, "iss");
	json_t	   *jti = json_object_get(claims, "jti");
	bool		has_exp,
				has_iat,
				has_nbf,
				has_sub,
				has_org,
				has_sid;
	long long	nbf = 0;

	if (!claim_time(claims, "exp", &has_exp, &out->exp) || !has_exp ||
		!claim_time(claims, "iat", &has_iat, &out->iat) || !has_iat ||
		!claim_time(claims, "nbf", &has_nbf, &nbf))
		return JWT_BAD_CLAIMS;
	if (v->issuer != NULL && !json_equals(iss, v->issuer, strlen(v->issuer)))
		return JWT_BAD_ISSUER;
	if (!check_audience(v, json_object_get(claims, "aud")))
		return JWT_BAD_AUDIENCE;

	/*
	 * The times are at most TIME_MAX and the leeway at most LEEWAY_MAX, so
	 * adding or subtracting the leeway on their side cannot overflow,
	 * whatever now is.
	 */
	if (out->exp + v->leeway <= now)
		return JWT_EXPIRED;
	if ((has_nbf && nbf - v->leeway > now) || out->iat - v->leeway > now)
		return JWT_NOT_YET_VALID;

	if (v->mode == JWT_MODE_EXTERNAL)
		return external_subject(claims, out);
	if (!claim_uuid(claims, "sub", &has_sub, out->sub) || !has_sub ||
		!claim_uuid(claims, "org", &has_org, out->org) || !has_org ||
		!claim_uuid(claims, "sid", &has_sid, out->sid))
		return JWT_BAD_CLAIMS;
	if (jti != NULL)
	{
		if (!json_is_string(jti) ||
			!jti_ok(json_string_value(jti), json_string_length(jti)))
			return JWT_BAD_CLAIMS;
		memcpy(out->jti, json_string_value(jti), json_string_length(jti));
		out->jti[json_string_length(jti)] = '\0';
	}
	return JWT_OK;
}

/* parse_object parses buf[0..len) as one JSON object without duplicate members. */
static json_t *
parse_object(const unsigned char *buf, size_t len)
{
	json_t	   *j = json_loadb((const char *) buf, len, JSON_REJECT_DUPLICATES, NULL);

	if (j != NULL && !json_is_object(j))
	{
		json_decref(j);
		j = NULL;
	}
	return j;
}

/* verify_token is jwt_verify once the arguments are known to be sane. */
static JwtError
verify_token(const JwtVerifier *v, const char *token, size_t len,
			 long long now, JwtClaims *out)
{
	/* each decoded part is 3/4 of its text, so all three fit in len bytes */
	unsigned char buf[JWT_MAX_TOKEN];
	const char *dot1;
	const char *dot2;
	Part		header;
	Part		payload;
	Part		sig;
	json_t	   *obj;
	const VerifierKey *key = NULL;
	JwtError	err;

	if ((dot1 = memchr(token, '.', len)) == NULL ||
		(dot2 = memchr(dot1 + 1, '.', len - (size_t) (dot1 + 1 - token))) == NULL ||
		memchr(dot2 + 1, '.', len - (size_t) (dot2 + 1 - token)) != NULL)
		return JWT_MALFORMED;

	/* the whole token is decoded, strictly, before any key is involved */
	header.data = buf;
	if (!b64url_decode(token, (size_t) (dot1 - token), buf, &header.len))
		return JWT_MALFORMED;
	payload.data = header.data + header.len;
	if (!b64url_decode(dot1 + 1, (size_t) (dot2 - dot1 - 1),
					   buf + header.len, &payload.len))
		return JWT_MALFORMED;
	sig.data = payload.data + payload.len;
	if (!b64url_decode(dot2 + 1, len - (size_t) (dot2 + 1 - token),
					   buf + header.len + payload.len, &sig.len))
		return JWT_MALFORMED;

	if ((obj = parse_object(header.data, header.len)) == NULL)
		return JWT_MALFORMED;
	err = check_header(v, obj, &key);
	json_decref(obj);
	if (err != JWT_OK)
		return err;

	/* the signing input is the text up to the second dot (RFC 7515 5.2) */
	if (!verify_signature(v, key, sig.data, sig.len,
						  (const unsigned char *) token, (size_t) (dot2 - token)))
		return JWT_BAD_SIGNATURE;

	if ((obj = parse_object(payload.data, payload.len)) == NULL)
		return JWT_MALFORMED;
	err = check_claims(v, obj, now, out);
	json_decref(obj);
	return err;
}

JwtError
jwt_verify(const JwtVerifier *v, const char *token, size_t len,
		   long long now, JwtClaims *out)
{
	JwtClaims	claims;
	JwtError	err;

	if (out != NULL)
		memset(out, 0, sizeof(*out));
	if (v == NULL || token == NULL || out == NULL)
		return JWT_MALFORMED;
	if (len > JWT_MAX_TOKEN)
		return JWT_TOO_LARGE;

	memset(&claims, 0, sizeof(claims));
	ERR_set_mark();
	err = verify_token(v, token, len, now, &claims);
	ERR_pop_to_mark();
	/* *out only ever holds the claims of a token that passed */
	if (err == JWT_OK)
		*out = claims;
	return err;
}

bool
jwt_issuer_is(const char *token, size_t len, const char *issuer)
{
	const char *dot1;
	const char *dot2;
	unsigned char *buf;
	size_t		n = 0;
	json_t	   *claims = NULL;
	bool		same = false;

	if (token == NULL || issuer == NULL || len > JWT_MAX_TOKEN ||
		(dot1 = memchr(token, '.', len)) == NULL ||
		(dot2 = memchr(dot1 + 1, '.', len - (size_t) (dot1 + 1 - token))) == NULL ||
		(buf = malloc(len)) == NULL)
		return false;
	if (b64url_decode(dot1 + 1, (size_t) (dot2 - dot1 - 1), buf, &n))
		claims = parse_object(buf, n);
	same = claims != NULL && json_equals(json_object_get(claims, "iss"), issuer, strlen(issuer));
	json_decref(claims);
	free(buf);
	return same;
}

/*
 * digest_sign signs data with pkey and SHA-256 (PKCS#1 v1.5 when rsa) and
 * returns the malloc'd signature (DER for ECDSA), or NULL.
 */
static unsigned char *
digest_sign(EVP_PKEY *pkey, bool rsa, const unsigned char *data, size_t len,
			size_t *sig_len)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	unsigned char *sig = NULL;
	size_t		n = 0;

	if (md == NULL)
		return NULL;
	if (EVP_DigestSignInit(md, &pctx, EVP_sha256(), NULL, pkey) == 1 &&
		(!rsa || EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) > 0) &&
		EVP_DigestSign(md, NULL, &n, data, len) == 1 &&
		(sig = malloc(n)) != NULL &&
		EVP_DigestSign(md, sig, &n, data, len) != 1)
	{
		free(sig);
		sig = NULL;
	}
	EVP_MD_CTX_free(md);
	*sig_len = n;
	return sig;
}

/*
 * sign_input returns the malloc'd JWS signature of data with key, in its
 * JWS form (ES256: r || s, not DER), or NULL.
 */
static unsigned char *
sign_input(JwtAlg alg, const JwtKey *key, const unsigned char *data, size_t len,
		   size_t *sig_len)
{
	unsigned char *sig = NULL;

	if (alg == JWT_HS256)
	{
		EVP_MAC    *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);

		if (mac != NULL && (sig = malloc(HS256_MAC_LEN)) != NULL &&
			!hmac_sha256(mac, key->secret, key->secret_len, data, len, sig))
		{
			free(sig);
			sig = NULL;
		}
		EVP_MAC_free(mac);
		*sig_len = HS256_MAC_LEN;
	}
	else if (alg == JWT_RS256)
		sig = digest_sign(key->pkey, true, data, len, sig_len);
	else
	{
		size_t		der_len;
		unsigned char *der = digest_sign(key->pkey, false, data, len, &der_len);
		const unsigned char *p = der;
		ECDSA_SIG  *es = NULL;

		if (der != NULL &&
			(es = d2i_ECDSA_SIG(NULL, &p, (long) der_len)) != NULL &&
			(sig = malloc(ES256_SIG_LEN)) != NULL &&
			(BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, ES256_SCALAR_LEN) != ES256_SCALAR_LEN ||
			 BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + ES256_SCALAR_LEN,
						  ES256_SCALAR_LEN) != ES256_SCALAR_LEN))
		{
			free(sig);
			sig = NULL;
		}
		ECDSA_SIG_free(es);
		free(der);
		*sig_len = ES256_SIG_LEN;
	}
	return sig;
}

/* claims_signable says whether claims would pass jwt_verify's shape checks. */
static bool
claims_signable(const JwtClaims *c)
{
	char		canon[UUID_LEN + 1];
	size_t		sid_len = strnlen(c->sid, sizeof(c->sid));
	size_t		jti_len = strnlen(c->jti, sizeof(c->jti));

	return uuid_canon(c->sub, strnlen(c->sub, sizeof(c->sub)), canon) &&
		uuid_canon(c->org, strnlen(c->org, sizeof(c->org)), canon) &&
		(sid_len == 0 || uuid_canon(c->sid, sid_len, canon)) &&
		(jti_len == 0 || jti_ok(c->jti, jti_len)) &&
		c->iat >= 0 && c->iat <= TIME_MAX && c->exp >= 0 && c->exp <= TIME_MAX;
}

/* set_string adds key: s to obj; false when s is not UTF-8 or out of memory. */
static bool
set_string(json_t *obj, const char *key, const char *s)
{
	/* json_object_set_new steals the value, even on failure */
	return json_object_set_new(obj, key, json_string(s)) == 0;
}

/* header_json returns the compact JOSE header, malloc'd, or NULL. */
static char *
header_json(JwtAlg alg, const JwtKey *key)
{
	json_t	   *hdr = json_object();
	char	   *text = NULL;

	if (hdr != NULL &&
		set_string(hdr, "alg", alg_name(alg)) &&
		set_string(hdr, "typ", "JWT") &&
		(key->kid == NULL || set_string(hdr, "kid", key->kid)))
		text = json_dumps(hdr, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(hdr);
	return text;
}

/* claims_json returns the compact claims set, malloc'd, or NULL. */
static char *
claims_json(const char *issuer, const char *audience, const JwtClaims *c)
{
	json_t	   *obj = json_object();
	char	   *text = NULL;

	if (obj != NULL &&
		set_string(obj, "sub", c->sub) &&
		set_string(obj, "org", c->org) &&
		(c->sid[0] == '\0' || set_string(obj, "sid", c->sid)) &&
		json_object_set_new(obj, "iat", json_integer(c->iat)) == 0 &&
		json_object_set_new(obj, "exp", json_integer(c->exp)) == 0 &&
		(c->jti[0] == '\0' || set_string(obj, "jti", c->jti)) &&
		(issuer == NULL || set_string(obj, "iss", issuer)) &&
		(audience == NULL || set_string(obj, "aud", audience)))
		text = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(obj);
	return text;
}

char *
jwt_sign(JwtAlg alg, const JwtKey *key, const char *issuer,
		 const char *audience, const JwtClaims *claims)
{
	char	   *hdr = NULL;
	char	   *body = NULL;
	unsigned char *sig = NULL;
	size_t		sig_len = 0;
	size_t		hdr_len;
	size_t		body_len;
	size_t		input_len;
	size_t		total;
	char	   *token = NULL;
	char	   *p;

	if (key == NULL || claims == NULL ||
		(alg != JWT_HS256 && alg != JWT_ES256 && alg != JWT_RS256) ||
		!key_fits(alg, key) || !claims_signable(claims))
		return NULL;

	ERR_set_mark();
	if ((hdr = header_json(alg, key)) == NULL ||
		(body = claims_json(issuer, audience, claims)) == NULL)
		goto done;
	hdr_len = strlen(hdr);
	body_len = strlen(body);
	input_len = b64url_len(hdr_len) + 1 + b64url_len(body_len);
	/* room for the largest signature: an RSA one as long as the modulus */
	total = input_len + 1 + b64url_len(alg == JWT_RS256 ?
									   (size_t) EVP_PKEY_get_size(key->pkey) :
									   ES256_SIG_LEN) + 1;
	if ((token = malloc(total)) == NULL)
		goto done;
	p = b64url_encode((const unsigned char *) hdr, hdr_len, token);
	*p++ = '.';
	p = b64url_encode((const unsigned char *) body, body_len, p);
	if ((sig = sign_input(alg, key, (const unsigned char *) token, input_len,
						  &sig_len)) == NULL ||
		b64url_len(sig_len) > total - input_len - 2)
		goto fail;
	*p++ = '.';
	p = b64url_encode(sig, sig_len, p);
	*p = '\0';
	/* never hand out a token jwt_verify would refuse for its size */
	if ((size_t) (p - token) > JWT_MAX_TOKEN)
		goto fail;
	goto done;

fail:
	free(token);
	token = NULL;
done:
	ERR_pop_to_mark();
	free(hdr);
	free(body);
	free(sig);
	return token;
}
