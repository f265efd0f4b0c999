/*
 * auth.c
 *		Access tokens for the sign-in routes, and the JWKS document.
 *
 * The database decides who signs in (iam.api_auth_login / _refresh) and
 * keeps the sessions; the gateway holds the signing key, so it turns the
 * handler's {user_id, org_id, session_id, refresh_token} into the client's
 * {access_token, refresh_token, token_type, expires_in}.  The refresh token
 * passes through untouched (the database stores only its digest).
 *
 * Ownership: jansson values created here are json_decref'ed here; the
 * signed token (jwt_sign) and json_dumps strings are free()d here.
 */
#include "auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "accesslog.h"
#include "problem.h"
#include "routes.h"

#define AUTH_REFRESH_TOKEN_MAX	200

static JwtAlg
alg_of(ConfigJwtAlg alg)
{
	return alg == CONFIG_JWT_HS256 ? JWT_HS256 : alg == CONFIG_JWT_RS256 ? JWT_RS256 : JWT_ES256;
}

static int
internal_error(HttpRequest *req, const char *why)
{
	accesslog_event("error", why, "request_id", http_request_id(req), NULL);
	return problem_reply(req, &(Problem) {.status = 500,.code = "internal",.detail = "internal error"});
}

/* uuid_member copies obj.name, a uuid string, lower-cased into out[37]. */
static bool
uuid_member(json_t *obj, const char *name, char out[37])
{
	const char *s = json_string_value(json_object_get(obj, name));

	if (s == NULL || !routes_is_uuid(s))
		return false;
	for (int i = 0; i < 37; i++)
		out[i] = (s[i] >= 'A' && s[i] <= 'F') ? (char) (s[i] - 'A' + 'a') : s[i];
	return true;
}

/* refusal turns a handler's 4xx {code, detail} into problem+json. */
static int
refusal(HttpRequest *req, int status, json_t *body, const char *headers_json)
{
	const char *code = json_string_value(json_object_get(body, "code"));
	const char *detail = json_string_value(json_object_get(body, "detail"));
	json_t	   *h = headers_json != NULL ? json_loads(headers_json, 0, NULL) : NULL;
	const char *ra = json_string_value(json_object_get(h, "Retry-After"));
	int			retry_after = 0;
	int			rc;

	if (ra != NULL)
		retry_after = atoi(ra);
	rc = problem_reply(req, &(Problem) {
		.status = (unsigned int) status,
			.code = code != NULL ? code : "unauthorized",
			.detail = detail,
			.retry_after = retry_after > 0 ? retry_after : 0,
			.www_authenticate = status == 401 ? "Bearer" : NULL,
	});
	json_decref(h);
	return rc;
}

AuthTokenResult
auth_token_json(const Config *cfg, const char *body, size_t len, long long now, char **out)
{
	json_t	   *in = body != NULL ? json_loadb(body, len, 0, NULL) : NULL;
	json_t	   *res = NULL;
	const char *refresh;
	JwtClaims	claims;
	JwtKey		key;
	unsigned char jti[16];
	char	   *token = NULL;
	AuthTokenResult rc = AUTH_TOKEN_FAILED;

	*out = NULL;
	memset(&claims, 0, sizeof(claims));
	refresh = json_string_value(json_object_get(in, "refresh_token"));
	if (!json_is_object(in) || refresh == NULL || strlen(refresh) > AUTH_REFRESH_TOKEN_MAX ||
		!uuid_member(in, "user_id", claims.sub) || !uuid_member(in, "org_id", claims.org) ||
		!uuid_member(in, "session_id", claims.sid))
	{
		json_decref(in);
		return AUTH_TOKEN_NOT_SESSION;
	}
	if (cfg->jwt_key_file == NULL)
	{
		json_decref(in);
		return AUTH_TOKEN_NO_KEY;
	}
	if (RAND_bytes(jti, sizeof(jti)) != 1)
	{
		json_decref(in);
		return AUTH_TOKEN_FAILED;
	}
	for (size_t i = 0; i < sizeof(jti); i++)
		snprintf(claims.jti + 2 * i, 3, "%02x", jti[i]);
	claims.iat = now;
	claims.exp = now + cfg->access_ttl;
	key = (JwtKey) {
		.kid = cfg->jwt_kid,.pkey = cfg->jwt_pkey,
			.secret = cfg->jwt_secret,.secret_len = cfg->jwt_secret_len,
	};
	token = jwt_sign(alg_of(cfg->jwt_alg), &key, cfg->jwt_issuer, cfg->jwt_audience, &claims);
	if (token != NULL && (res = json_object()) != NULL &&
		json_object_set_new(res, "access_token", json_string(token)) == 0 &&
		json_object_set_new(res, "refresh_token", json_string(refresh)) == 0 &&
		json_object_set_new(res, "token_type", json_string("Bearer")) == 0 &&
		json_object_set_new(res, "expires_in", json_integer(cfg->access_ttl)) == 0 &&
		(*out = json_dumps(res, JSON_COMPACT)) != NULL)
		rc = AUTH_TOKEN_OK;
	free(token);
	json_decref(res);
	json_decref(in);
	return rc;
}

int
auth_token_reply(HttpRequest *req, const HttpContext *ctx, int status,
				 const char *body, size_t len, const char *headers_json)
{
	json_t	   *in;
	char	   *text = NULL;
	int			rc;

	if (status >= 400 && status < 500)
	{
		in = body != NULL ? json_loadb(body, len, 0, NULL) : NULL;
		if (!json_is_object(in))
		{
			json_decref(in);
			return internal_error(req, "token route: handler body is not a JSON object");
		}
		rc = refusal(req, status, in, headers_json);
		json_decref(in);
		return rc;
	}
	if (status != 200)
		return internal_error(req, "token route: handler answer is not a session");
	switch (auth_token_json(ctx->config, body, len, (long long) time(NULL), &text))
	{
		case AUTH_TOKEN_OK:
			break;
		case AUTH_TOKEN_NOT_SESSION:
			return internal_error(req, "token route: handler answer is not a session");
		case AUTH_TOKEN_NO_KEY:
			return problem_reply(req, &(Problem) {
				.status = 503,.code = "no_signing_key",
					.detail = "This gateway has no signing key configured.",
			});
		case AUTH_TOKEN_FAILED:
			return internal_error(req, "token route: signing or encoding the tokens failed");
	}
	rc = http_reply(req, 200, "application/json", text, strlen(text), NULL, 0);
	OPENSSL_cleanse(text, strlen(text));
	free(text);
	return rc;
}

/* b64url writes n bytes of in as unpadded base64url into a new json string. */
static json_t *
b64url_string(const unsigned char *in, size_t n)
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	char	   *out = malloc(n / 3 * 4 + 5);
	size_t		o = 0;
	json_t	   *j;

	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < n; i += 3)
	{
		unsigned long v = (unsigned long) in[i] << 16 |
			(i + 1 < n ? (unsigned long) in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);

		out[o++] = alphabet[(v >> 18) & 63];
		out[o++] = alphabet[(v >> 12) & 63];
		if (i + 1 < n)
			out[o++] = alphabet[(v >> 6) & 63];
		if (i + 2 < n)
			out[o++] = alphabet[v & 63];
	}
	out[o] = '\0';
	j = json_string(out);
	free(out);
	return j;
}

/* bn_member sets obj.name to BIGNUM parameter param of pkey, padded to pad bytes (0: minimal). */
static bool
bn_member(json_t *obj, const char *name, EVP_PKEY *pkey, const char *param, int pad)
{
	BIGNUM	   *bn = NULL;
	unsigned char *buf;
	int			n;
	bool		ok = false;

	if (!EVP_PKEY_get_bn_param(pkey, param, &bn))
		return false;
	n = pad > 0 ? pad : BN_num_bytes(bn);
	if ((buf = malloc((size_t) n + 1)) != NULL &&
		BN_bn2binpad(bn, buf, n) == n)
		ok = json_object_set_new(obj, name, b64url_string(buf, (size_t) n)) == 0;
	free(buf);
	BN_free(bn);
	return ok;
}

json_t *
auth_jwk(EVP_PKEY *pkey, const char *kid)
{
	json_t	   *k = json_object();
	bool		ok;

	if (k == NULL || pkey == NULL)
	{
		json_decref(k);
		return NULL;
	}
	if (EVP_PKEY_is_a(pkey, "EC"))
		ok = json_object_set_new(k, "kty", json_string("EC")) == 0 &&
			json_object_set_new(k, "crv", json_string("P-256")) == 0 &&
			json_object_set_new(k, "alg", json_string("ES256")) == 0 &&
			bn_member(k, "x", pkey, OSSL_PKEY_PARAM_EC_PUB_X, 32) &&
			bn_member(k, "y", pkey, OSSL_PKEY_PARAM_EC_PUB_Y, 32);
	else if (EVP_PKEY_is_a(pkey, "RSA"))
		ok = json_object_set_new(k, "kty", json_string("RSA")) == 0 &&
			json_object_set_new(k, "alg", json_string("RS256")) == 0 &&
			bn_member(k, "n", pkey, OSSL_PKEY_PARAM_RSA_N, 0) &&
			bn_member(k, "e", pkey, OSSL_PKEY_PARAM_RSA_E, 0);
	else
		ok = false;
	ok = ok && json_object_set_new(k, "use", json_string("sig")) == 0 &&
		(kid == NULL || json_object_set_new(k, "kid", json_string(kid)) == 0);
	if (!ok)
	{
		json_decref(k);
		return NULL;
	}
	return k;
}

int
auth_jwks(HttpRequest *req, const HttpContext *ctx)
{
	const Config *cfg = ctx->config;
	json_t	   *doc = json_object();
	json_t	   *keys = json_array();
	char	   *text = NULL;
	bool		ok = doc != NULL && keys != NULL;
	int			rc;

	if (ok && cfg->jwt_alg != CONFIG_JWT_HS256)
	{
		if (cfg->jwt_pkey != NULL)
			ok = json_array_append_new(keys, auth_jwk(cfg->jwt_pkey, cfg->jwt_kid)) == 0;
		for (int i = 0; ok && i < cfg->n_jwt_verify_keys; i++)
			ok = json_array_append_new(keys, auth_jwk(cfg->jwt_verify_keys[i].pkey,
													  cfg->jwt_verify_keys[i].kid)) == 0;
	}
	if (ok && json_object_set(doc, "keys", keys) == 0)
		text = json_dumps(doc, JSON_COMPACT);
	json_decref(keys);
	json_decref(doc);
	if (text == NULL)
		return internal_error(req, "jwks: cannot build the document");
	rc = http_reply(req, 200, "application/jwk-set+json", text, strlen(text), NULL, 0);
	free(text);
	return rc;
}
