/*
 * jwk.h
 *		JSON Web Keys (RFC 7517) read from a file: the public keys of an
 *		external identity provider (IAM_OIDC_JWKS_FILE).
 */
#ifndef JWK_H
#define JWK_H

#include <stddef.h>

#include <jansson.h>
#include <openssl/evp.h>

/* One usable key of a JWKS document. */
typedef struct JwkKey
{
	char	   *kid;			/* malloc'd */
	EVP_PKEY   *pkey;			/* EC P-256 (ES256) or RSA >= 2048 bits (RS256) */
} JwkKey;

/*
 * jwk_to_pkey returns the public key of the JWK object jwk: kty "EC" with
 * crv "P-256", x and y (32 bytes each, a point on the curve), or kty "RSA"
 * with n (at least 2048 bits) and e.  The caller frees it with
 * EVP_PKEY_free.  Returns NULL with *why (static storage) set when jwk is
 * anything else; private members ("d", ...) are ignored, never used.
 */
extern EVP_PKEY *jwk_to_pkey(json_t *jwk, const char **why);

/*
 * jwk_set_parse reads a JWKS document {"keys": [...]} from text[0..len).
 * Keys meant for encryption ("use": "enc") and of other types than EC
 * P-256 and RSA, or whose "alg" is not ES256 / RS256 respectively, are
 * skipped; every other key must be well formed and carry a kid unique in
 * the set.  On success returns 0 with *keys (malloc'd array of *n >= 1
 * keys; free with jwk_keys_free).  On failure returns -1 with one line in
 * err[0..errsize) naming the key (e.g. "key 2: kid is missing").
 */
extern int	jwk_set_parse(const char *text, size_t len, JwkKey **keys, size_t *n,
						  char *err, size_t errsize);

/* jwk_keys_free frees n keys of keys and the array; keys may be NULL. */
extern void jwk_keys_free(JwkKey *keys, size_t n);

#endif							/* JWK_H */
