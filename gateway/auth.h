/*
 * auth.h
 *		What the gateway adds to sign-in: access tokens for the
 *		token-issuing routes (login, refresh) and the published public keys.
 */
#ifndef AUTH_H
#define AUTH_H

#include <stddef.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "config.h"
#include "http.h"

/* What auth_token_json made of a token-issuing handler's answer. */
typedef enum AuthTokenResult
{
	AUTH_TOKEN_OK,
	AUTH_TOKEN_NOT_SESSION,		/* not {user_id, org_id, session_id, refresh_token} */
	AUTH_TOKEN_NO_KEY,			/* no IAM_JWT_KEY_FILE: nothing to sign with */
	AUTH_TOKEN_FAILED			/* out of memory, or signing failed */
} AuthTokenResult;

/*
 * auth_token_json turns a token-issuing handler's 200 body {user_id,
 * org_id, session_id, refresh_token} into the client's {access_token,
 * refresh_token, token_type: "Bearer", expires_in}: an access token signed
 * with cfg's key (claims sub, org, sid, iat = now, exp = now +
 * IAM_ACCESS_TTL, a random jti, iss/aud when configured).  On AUTH_TOKEN_OK
 * *out is the compact JSON text, which the caller wipes (it holds the
 * refresh token) and free()s; otherwise *out is NULL.
 */
extern AuthTokenResult auth_token_json(const Config *cfg, const char *body, size_t len,
									   long long now, char **out);

/*
 * auth_token_reply answers a token-issuing route (iam.routes.issues_token)
 * from its handler's result.  A 2xx body {user_id, org_id, session_id,
 * refresh_token} becomes {access_token, refresh_token, token_type:
 * "Bearer", expires_in} with an access token signed by the configured key
 * (claims sub, org, sid, iat, exp, jti, iss/aud when configured); a 4xx
 * body {code, detail} becomes problem+json of that status, with the
 * Retry-After of headers_json (a JSON object, may be NULL).  Anything else
 * is a 500.  Nothing is left for the caller to free.  Returns 0, or -1 when
 * no reply could be queued.
 */
extern int	auth_token_reply(HttpRequest *req, const HttpContext *ctx, int status,
							 const char *body, size_t len, const char *headers_json);

/*
 * auth_jwk returns the public JWK of pkey (EC P-256 as ES256, RSA as
 * RS256) with kid when not NULL, as a new jansson object the caller
 * json_decref's; NULL for another kind of key or when out of memory.
 */
extern json_t *auth_jwk(EVP_PKEY *pkey, const char *kid);

/*
 * auth_jwks answers GET /.well-known/jwks.json: {"keys": [...]} with the
 * public keys of IAM_JWT_KEY_FILE and IAM_JWT_VERIFY_KEYS (none for HS256,
 * whose secrets are never published).
 */
extern int	auth_jwks(HttpRequest *req, const HttpContext *ctx);

#endif							/* AUTH_H */
