/*
 * jwt.h
 *		JSON Web Tokens: verifying bearer tokens and signing access tokens.
 */
#ifndef JWT_H
#define JWT_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/evp.h>

/* The largest token jwt_verify looks at, in bytes. */
#define JWT_MAX_TOKEN		8192

/*
 * The algorithm of each key is pinned when the verifier is built: the one
 * configured (jwt_verifier_create), or the one its type implies
 * (jwt_verifier_create_public).
 */
typedef enum JwtAlg
{
	JWT_HS256,
	JWT_ES256,
	JWT_RS256
} JwtAlg;

/*
 * JwtKey describes one key; everything is borrowed for the call that takes
 * it (jwt_verifier_create copies the strings and secret and takes its own
 * reference on pkey).
 */
typedef struct JwtKey
{
	const char *kid;			/* NULL: the default key */
	EVP_PKEY   *pkey;			/* ES256/RS256 (public or private) */
	const unsigned char *secret;	/* HS256, at least 32 bytes */
	size_t		secret_len;
} JwtKey;

/* Immutable after it is created; any number of threads may share it. */
typedef struct JwtVerifier JwtVerifier;

/* Whose tokens a verifier checks. */
typedef enum JwtMode
{
	JWT_MODE_ACCESS,			/* the gateway's own: sub and org uuids */
	JWT_MODE_EXTERNAL			/* an external identity provider's: any sub, no org */
} JwtMode;

/* The longest sub of an external token, in bytes. */
#define JWT_EXT_SUB_MAX		255

/*
 * JwtClaims is what a verified token says.  sub, org and sid are canonical
 * lower-case uuids; sid and jti are "" when the token has none.  A token of
 * an external provider (JWT_MODE_EXTERNAL) has sub, org, sid and jti ""
 * and its subject in ext_sub instead ("" for the gateway's own tokens).
 */
typedef struct JwtClaims
{
	char		sub[37];
	char		org[37];
	char		sid[37];
	char		jti[65];
	long long	iat;
	long long	exp;
	char		ext_sub[JWT_EXT_SUB_MAX + 1];
} JwtClaims;

typedef enum JwtError
{
	JWT_OK,
	JWT_MALFORMED,				/* not three strict base64url parts of JSON
								 * objects, bad header, duplicate member */
	JWT_TOO_LARGE,				/* more than JWT_MAX_TOKEN bytes */
	JWT_BAD_ALG,				/* header alg is not the pinned one (of the
								 * key kid selects) */
	JWT_UNKNOWN_KID,			/* no key for the header's kid */
	JWT_BAD_SIGNATURE,
	JWT_EXPIRED,
	JWT_NOT_YET_VALID,			/* nbf or iat in the future */
	JWT_BAD_ISSUER,
	JWT_BAD_AUDIENCE,
	JWT_BAD_CLAIMS				/* exp/iat/sub/org missing or of the wrong
								 * type, bad sid or jti */
} JwtError;

/*
 * jwt_verifier_create builds a verifier accepting alg only, with nkeys keys
 * (kids distinct, at most one without kid), the expected issuer and audience
 * (NULL: not checked; a token carrying an aud is then refused) and a clock
 * leeway in seconds (0 to 3600) for exp, nbf and iat.
 *
 * Returns a verifier the caller frees with jwt_verifier_free; the caller may
 * free keys, secrets, strings and drop its pkey references right away.
 * Returns NULL when out of memory or when the arguments are unfit: no key,
 * duplicate kids, an HS256 secret shorter than 32 bytes, an ES256 key not on
 * P-256, an RS256 key not RSA or shorter than 2048 bits, a bad leeway.
 */
extern JwtVerifier *jwt_verifier_create(JwtAlg alg, const JwtKey *keys, size_t nkeys,
										const char *issuer, const char *audience,
										int leeway_seconds);

/*
 * jwt_verifier_create_public builds a verifier of public keys (a private
 * key's public half is used) whose algorithms their types fix: an EC key on
 * P-256 verifies ES256 only, an RSA key of at least 2048 bits RS256 only; a
 * header alg other than that of the key its kid selects is JWT_BAD_ALG.
 * HS256 secrets are not accepted here (an HS256 verifier holds secrets
 * only).  mode JWT_MODE_EXTERNAL also requires a kid on every key and on
 * every token, an issuer, and checks aud only when audience is not NULL.
 * Otherwise as jwt_verifier_create: NULL when out of memory or when a key
 * does not fit, two keys share a kid, or the leeway is bad.
 */
extern JwtVerifier *jwt_verifier_create_public(const JwtKey *keys, size_t nkeys,
											   const char *issuer, const char *audience,
											   int leeway_seconds, JwtMode mode);

/*
 * jwt_key_alg sets *alg to the algorithm pkey's type implies (ES256 for EC
 * P-256, RS256 for RSA of at least 2048 bits) and returns true; false for
 * any other key.
 */
extern bool jwt_key_alg(EVP_PKEY *pkey, JwtAlg *alg);

/* jwt_verifier_free wipes the secrets and frees v; v may be NULL. */
extern void jwt_verifier_free(JwtVerifier *v);

/*
 * jwt_verify checks the compact JWS token[0..len) (no NUL needed) against v
 * at time now (seconds since the epoch) and fills *out.  Returns JWT_OK, or
 * the first rule the token breaks, with *out zeroed.  Running out of memory
 * also refuses the token (with the error of the step that failed).  Nothing
 * is logged and OpenSSL's error queue is left as it was.
 */
extern JwtError jwt_verify(const JwtVerifier *v, const char *token, size_t len,
						   long long now, JwtClaims *out);

/*
 * jwt_issuer_is says whether the claims of token[0..len), read without any
 * verification, have iss equal to issuer.  It only chooses which verifier
 * to ask (the gateway's or an external provider's); that verifier then
 * checks everything, the issuer included.
 */
extern bool jwt_issuer_is(const char *token, size_t len, const char *issuer);

/* jwt_error_name returns e.g. "expired" (static storage); for logs only. */
extern const char *jwt_error_name(JwtError e);

/*
 * jwt_sign returns the compact JWS of claims (sub, org, sid and jti when not
 * empty, iat, exp, and iss/aud when not NULL) with the header
 * {"alg":..,"typ":"JWT"[,"kid":..]}, signed with key (a private key for
 * ES256/RS256).  The caller frees the NUL-terminated token with free().
 * Returns NULL when out of memory, when the key does not suit alg (same
 * rules as jwt_verifier_create), when signing fails, or when the claims
 * would not pass jwt_verify (sub/org not uuids, bad sid/jti/times).
 */
extern char *jwt_sign(JwtAlg alg, const JwtKey *key, const char *issuer,
					  const char *audience, const JwtClaims *claims);

#endif							/* JWT_H */
