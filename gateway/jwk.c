/*
 * jwk.c
 *		JSON Web Keys (RFC 7517, RFC 7518 section 6) to OpenSSL public keys:
 *		the key set an external identity provider publishes, saved to a
 *		file (IAM_OIDC_JWKS_FILE) and read once at start-up.
 *
 * Only public members are read.  A key's algorithm follows from its type
 * (EC P-256: ES256, RSA: RS256); jwt.c pins it per key, so a token can
 * never pick another algorithm for a key than the one its type implies.
 *
 * Ownership: the EVP_PKEYs returned are the caller's; jansson values are
 * json_decref'ed here; OpenSSL's error queue is left as it was found.
 */
#include "jwk.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/param_build.h>

#define JWK_KID_MAX			255
#define JWK_MEMBER_MAX		1024	/* bytes of a decoded n: 8192-bit RSA */
#define EC_COORD_LEN		32
#define RSA_MIN_BITS		2048

/*
 * b64url_member decodes obj.name, unpadded base64url, into out (room for
 * cap bytes); returns the length, or -1 when absent, malformed or too long.
 */
static int
b64url_member(json_t *obj, const char *name, unsigned char *out, size_t cap)
{
	const char *s = json_string_value(json_object_get(obj, name));
	size_t		len;
	size_t		o = 0;
	unsigned int acc = 0;
	int			bits = 0;

	if (s == NULL)
		return -1;
	len = strlen(s);
	if (len == 0 || len % 4 == 1 || len / 4 * 3 > cap)
		return -1;
	for (size_t i = 0; i < len; i++)
	{
		char		c = s[i];
		int			v;

		if (c >= 'A' && c <= 'Z')
			v = c - 'A';
		else if (c >= 'a' && c <= 'z')
			v = c - 'a' + 26;
		else if (c >= '0' && c <= '9')
			v = c - '0' + 52;
		else if (c == '-')
			v = 62;
		else if (c == '_')
			v = 63;
		else
			return -1;
		acc = (acc << 6) | (unsigned int) v;
		bits += 6;
		if (bits >= 8)
		{
			bits -= 8;
			if (o >= cap)
				return -1;
			out[o++] = (unsigned char) (acc >> bits);
			acc &= (1U << bits) - 1;
		}
	}
	return (int) o;
}

/* from_params builds a public key of type from the parameters in bld. */
static EVP_PKEY *
from_params(const char *type, OSSL_PARAM_BLD *bld)
{
	OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
	EVP_PKEY_CTX *check = NULL;
	EVP_PKEY   *pkey = NULL;

	if (params == NULL || ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
		EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
		pkey = NULL;
	/* an EC point must lie on the curve, an RSA modulus be odd and so on */
	if (pkey != NULL &&
		((check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL)) == NULL ||
		 EVP_PKEY_public_check(check) != 1))
	{
		EVP_PKEY_free(pkey);
		pkey = NULL;
	}
	EVP_PKEY_CTX_free(check);
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	return pkey;
}

static EVP_PKEY *
ec_key(json_t *jwk, const char **why)
{
	unsigned char pub[1 + 2 * EC_COORD_LEN];
	OSSL_PARAM_BLD *bld;
	EVP_PKEY   *pkey = NULL;

	if (!json_is_string(json_object_get(jwk, "crv")) ||
		strcmp(json_string_value(json_object_get(jwk, "crv")), "P-256") != 0)
	{
		*why = "an EC key must be on crv P-256";
		return NULL;
	}
	pub[0] = 0x04;				/* uncompressed point */
	if (b64url_member(jwk, "x", pub + 1, EC_COORD_LEN) != EC_COORD_LEN ||
		b64url_member(jwk, "y", pub + 1 + EC_COORD_LEN, EC_COORD_LEN) != EC_COORD_LEN)
	{
		*why = "x and y must be 32 bytes of base64url each";
		return NULL;
	}
	if ((bld = OSSL_PARAM_BLD_new()) != NULL &&
		OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) == 1 &&
		OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub)) == 1)
		pkey = from_params("EC", bld);
	OSSL_PARAM_BLD_free(bld);
	if (pkey == NULL)
		*why = "x, y is not a point on P-256";
	return pkey;
}

static EVP_PKEY *
rsa_key(json_t *jwk, const char **why)
{
	unsigned char buf[JWK_MEMBER_MAX];
	int			len;
	BIGNUM	   *n = NULL;
	BIGNUM	   *e = NULL;
	OSSL_PARAM_BLD *bld = NULL;
	EVP_PKEY   *pkey = NULL;

	if ((len = b64url_member(jwk, "n", buf, sizeof(buf))) <= 0 ||
		(n = BN_bin2bn(buf, len, NULL)) == NULL ||
		(len = b64url_member(jwk, "e", buf, 8)) <= 0 ||
		(e = BN_bin2bn(buf, len, NULL)) == NULL)
		*why = "n and e must be base64url integers (n at most 8192 bits)";
	else if (BN_num_bits(n) < RSA_MIN_BITS)
		*why = "an RSA key must have at least 2048 bits";
	else if ((bld = OSSL_PARAM_BLD_new()) == NULL ||
			 OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) != 1 ||
			 OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) != 1 ||
			 (pkey = from_params("RSA", bld)) == NULL)
		*why = "n, e is not an RSA public key";
	OSSL_PARAM_BLD_free(bld);
	BN_free(n);
	BN_free(e);
	return pkey;
}

EVP_PKEY *
jwk_to_pkey(json_t *jwk, const char **why)
{
	const char *kty = json_string_value(json_object_get(jwk, "kty"));
	EVP_PKEY   *pkey;

	*why = NULL;
	if (!json_is_object(jwk) || kty == NULL)
	{
		*why = "not a JWK object with kty";
		return NULL;
	}
	ERR_set_mark();
	if (strcmp(kty, "EC") == 0)
		pkey = ec_key(jwk, why);
	else if (strcmp(kty, "RSA") == 0)
		pkey = rsa_key(jwk, why);
	else
	{
		*why = "kty must be EC or RSA";
		pkey = NULL;
	}
	ERR_pop_to_mark();
	return pkey;
}

/* usable says whether jwk is a signature key of a type and alg we verify. */
static bool
usable(json_t *jwk)
{
	const char *kty = json_string_value(json_object_get(jwk, "kty"));
	const char *use = json_string_value(json_object_get(jwk, "use"));
	const char *alg = json_string_value(json_object_get(jwk, "alg"));
	const char *crv = json_string_value(json_object_get(jwk, "crv"));

	if (kty == NULL || (use != NULL && strcmp(use, "sig") != 0))
		return false;
	if (strcmp(kty, "EC") == 0)
		return crv != NULL && strcmp(crv, "P-256") == 0 &&
			(alg == NULL || strcmp(alg, "ES256") == 0);
	if (strcmp(kty, "RSA") == 0)
		return alg == NULL || strcmp(alg, "RS256") == 0;
	return false;
}

int
jwk_set_parse(const char *text, size_t len, JwkKey **keys, size_t *n,
			  char *err, size_t errsize)
{
	json_error_t jerr;
	json_t	   *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	json_t	   *arr = json_object_get(doc, "keys");
	json_t	   *jwk;
	size_t		i;
	JwkKey	   *out = NULL;
	size_t		got = 0;

	*keys = NULL;
	*n = 0;
	if (doc == NULL)
	{
		snprintf(err, errsize, "not JSON (line %d: %s)", jerr.line, jerr.text);
		return -1;
	}
	if (!json_is_array(arr) || json_array_size(arr) == 0)
	{
		snprintf(err, errsize, "not a JWKS document {\"keys\": [...]} with at least one key");
		json_decref(doc);
		return -1;
	}
	if ((out = calloc(json_array_size(arr), sizeof(JwkKey))) == NULL)
	{
		snprintf(err, errsize, "out of memory");
		json_decref(doc);
		return -1;
	}
	json_array_foreach(arr, i, jwk)
	{
		const char *kid = json_string_value(json_object_get(jwk, "kid"));
		const char *why = NULL;

		if (!json_is_object(jwk))
		{
			snprintf(err, errsize, "key %zu: not a JSON object", i + 1);
			goto fail;
		}
		if (!usable(jwk))
			continue;
		if (kid == NULL || kid[0] == '\0' || strlen(kid) > JWK_KID_MAX)
		{
			snprintf(err, errsize, "key %zu: kid is missing (or longer than %d bytes)",
					 i + 1, JWK_KID_MAX);
			goto fail;
		}
		for (size_t j = 0; j < got; j++)
			if (strcmp(out[j].kid, kid) == 0)
			{
				snprintf(err, errsize, "key %zu: kid \"%.64s\" is used twice", i + 1, kid);
				goto fail;
			}
		if ((out[got].pkey = jwk_to_pkey(jwk, &why)) == NULL)
		{
			snprintf(err, errsize, "key %zu (kid \"%.64s\"): %s", i + 1, kid,
					 why != NULL ? why : "out of memory");
			goto fail;
		}
		if ((out[got].kid = strdup(kid)) == NULL)
		{
			EVP_PKEY_free(out[got].pkey);
			snprintf(err, errsize, "out of memory");
			goto fail;
		}
		got++;
	}
	json_decref(doc);
	if (got == 0)
	{
		snprintf(err, errsize, "no EC P-256 (ES256) or RSA (RS256) signature key in the set");
		free(out);
		return -1;
	}
	*keys = out;
	*n = got;
	return 0;

fail:
	json_decref(doc);
	jwk_keys_free(out, got);
	return -1;
}

void
jwk_keys_free(JwkKey *keys, size_t n)
{
	if (keys == NULL)
		return;
	for (size_t i = 0; i < n; i++)
	{
		free(keys[i].kid);
		EVP_PKEY_free(keys[i].pkey);
	}
	free(keys);
}
