/*
 * test_auth.c
 *		Unit tests for auth.c and jwk.c: the public JWKs the gateway
 *		publishes (EC and RSA, checked member by member and read back into
 *		a key equal to the original), the JWKS files of an external identity
 *		provider, and the token reply built from a handler's session.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "auth.h"
#include "jwk.h"
#include "jwt.h"
#include "tap.h"

#define NOW			1700000000LL
#define SUB_UPPER	"6F1C2A4E-8B1D-4C8E-9A57-0D3E4F5A6B7C"
#define SUB			"6f1c2a4e-8b1d-4c8e-9a57-0d3e4f5a6b7c"
#define ORG			"0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
#define SID			"11111111-2222-4333-8444-555555555555"
#define REFRESH		"AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_AbCdE"

static EVP_PKEY *
keygen(const char *type, unsigned int bits)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
	EVP_PKEY   *pkey = NULL;

	if (ctx != NULL && EVP_PKEY_keygen_init(ctx) == 1)
	{
		if (strcmp(type, "EC") == 0)
		{
			char		group[] = "P-256";
			OSSL_PARAM	p[] = {
				OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
				OSSL_PARAM_construct_end()
			};

			EVP_PKEY_CTX_set_params(ctx, p);
		}
		else if (strcmp(type, "RSA") == 0)
			EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, (int) bits);
		EVP_PKEY_keygen(ctx, &pkey);
	}
	EVP_PKEY_CTX_free(ctx);
	return pkey;
}

static const char *
str(json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));

	return s != NULL ? s : "";
}

/* unb64 decodes unpadded base64url text into out; returns the length or -1. */
static int
unb64(const char *text, unsigned char *out, size_t cap)
{
	size_t		len = strlen(text);
	char	   *std = malloc(len + 4);
	size_t		pad = (4 - len % 4) % 4;
	int			n;

	for (size_t i = 0; i < len; i++)
		std[i] = text[i] == '-' ? '+' : text[i] == '_' ? '/' : text[i];
	memset(std + len, '=', pad);
	n = (len + pad) / 4 * 3 <= cap ? EVP_DecodeBlock(out, (unsigned char *) std, (int) (len + pad)) : -1;
	free(std);
	return n < 0 ? -1 : n - (int) pad;
}

/* roundtrip says whether jwk reads back into a key equal to pkey. */
static bool
roundtrip(json_t *jwk, EVP_PKEY *pkey)
{
	const char *why = NULL;
	EVP_PKEY   *back = jwk_to_pkey(jwk, &why);
	bool		ok = back != NULL && EVP_PKEY_eq(back, pkey) == 1;

	if (back == NULL)
		tap_diag("jwk_to_pkey: %s", why != NULL ? why : "?");
	EVP_PKEY_free(back);
	return ok;
}

static void
test_jwk_ec(void)
{
	EVP_PKEY   *ec = keygen("EC", 0);
	json_t	   *jwk = auth_jwk(ec, "k1");
	unsigned char x[64];
	unsigned char pub[65];
	size_t		pub_len = 0;
	int			padded = 0;

	tap_ok(jwk != NULL, "EC: a JWK");
	tap_ok(strcmp(str(jwk, "kty"), "EC") == 0 && strcmp(str(jwk, "crv"), "P-256") == 0 &&
		   strcmp(str(jwk, "alg"), "ES256") == 0 && strcmp(str(jwk, "use"), "sig") == 0 &&
		   strcmp(str(jwk, "kid"), "k1") == 0,
		   "EC: kty EC, crv P-256, alg ES256, use sig, kid");
	tap_ok(json_object_get(jwk, "d") == NULL && json_object_size(jwk) == 7,
		   "EC: exactly the public members (no d)");
	EVP_PKEY_get_octet_string_param(ec, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub), &pub_len);
	tap_ok(pub_len == 65 &&
		   unb64(str(jwk, "x"), x, sizeof(x)) == 32 && memcmp(x, pub + 1, 32) == 0 &&
		   unb64(str(jwk, "y"), x, sizeof(x)) == 32 && memcmp(x, pub + 33, 32) == 0,
		   "EC: x and y are the point's coordinates, 32 bytes each");
	tap_ok(roundtrip(jwk, ec), "EC: the JWK reads back into the same public key");
	json_decref(jwk);

	/* coordinates with leading zero bytes keep their 32 bytes (RFC 7518 6.2.1.2) */
	for (int i = 0; i < 4000 && padded < 1; i++)
	{
		EVP_PKEY   *k = keygen("EC", 0);
		BIGNUM	   *bx = NULL;

		if (EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_X, &bx) == 1 && BN_num_bytes(bx) < 32)
		{
			json_t	   *j = auth_jwk(k, NULL);

			padded++;
			tap_ok(strlen(str(j, "x")) == 43 && unb64(str(j, "x"), x, sizeof(x)) == 32 && x[0] == 0,
				   "EC: a short x coordinate is left-padded to 32 bytes");
			tap_ok(json_object_get(j, "kid") == NULL, "EC: no kid member without a kid");
			tap_ok(roundtrip(j, k), "EC: the padded JWK reads back");
			json_decref(j);
		}
		BN_free(bx);
		EVP_PKEY_free(k);
	}
	tap_ok(padded == 1, "EC: a key with a short coordinate was found and checked");
	EVP_PKEY_free(ec);
}

static void
test_jwk_rsa(void)
{
	EVP_PKEY   *rsa = keygen("RSA", 2048);
	EVP_PKEY   *ed = keygen("ED25519", 0);
	json_t	   *jwk = auth_jwk(rsa, "r1");
	unsigned char n[512];
	unsigned char want[512];
	BIGNUM	   *bn = NULL;

	tap_ok(jwk != NULL && strcmp(str(jwk, "kty"), "RSA") == 0 &&
		   strcmp(str(jwk, "alg"), "RS256") == 0 && strcmp(str(jwk, "use"), "sig") == 0 &&
		   strcmp(str(jwk, "kid"), "r1") == 0 && strcmp(str(jwk, "e"), "AQAB") == 0,
		   "RSA: kty RSA, alg RS256, use sig, kid, e = AQAB");
	tap_ok(json_object_size(jwk) == 6 && json_object_get(jwk, "d") == NULL &&
		   json_object_get(jwk, "p") == NULL, "RSA: exactly the public members");
	EVP_PKEY_get_bn_param(rsa, OSSL_PKEY_PARAM_RSA_N, &bn);
	tap_ok(unb64(str(jwk, "n"), n, sizeof(n)) == 256 && BN_bn2bin(bn, want) == 256 &&
		   memcmp(n, want, 256) == 0, "RSA: n is the 256-byte modulus");
	tap_ok(roundtrip(jwk, rsa), "RSA: the JWK reads back into the same public key");
	json_decref(jwk);
	BN_free(bn);
	tap_ok(auth_jwk(ed, "x") == NULL, "an Ed25519 key has no JWK here");
	tap_ok(auth_jwk(NULL, "x") == NULL, "no key, no JWK");
	EVP_PKEY_free(ed);
	EVP_PKEY_free(rsa);
}

/* set_of returns a JWKS document text of the given keys (steals them). */
static char *
set_of(json_t *k1, json_t *k2, json_t *k3)
{
	json_t	   *doc = json_pack("{s:[]}", "keys");
	json_t	   *arr = json_object_get(doc, "keys");
	char	   *text;

	if (k1 != NULL)
		json_array_append_new(arr, k1);
	if (k2 != NULL)
		json_array_append_new(arr, k2);
	if (k3 != NULL)
		json_array_append_new(arr, k3);
	text = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	return text;
}

/* parse_fails says whether text is refused, with an error naming want. */
static bool
parse_fails(const char *text, const char *want)
{
	JwkKey	   *keys = NULL;
	size_t		n = 0;
	char		err[256] = "";
	bool		failed = jwk_set_parse(text, strlen(text), &keys, &n, err, sizeof(err)) != 0;

	if (!failed || strstr(err, want) == NULL)
		tap_diag("error: %s", err);
	jwk_keys_free(keys, n);
	return failed && keys == NULL && n == 0 && strstr(err, want) != NULL;
}

static void
test_jwks_file(void)
{
	EVP_PKEY   *ec = keygen("EC", 0);
	EVP_PKEY   *rsa = keygen("RSA", 2048);
	EVP_PKEY   *small = keygen("RSA", 1024);
	json_t	   *enc = auth_jwk(ec, "enc1");
	json_t	   *oct = json_pack("{s:s, s:s, s:s}", "kty", "oct", "k", "AAAA", "kid", "o");
	json_t	   *bad;
	char	   *text;
	JwkKey	   *keys = NULL;
	size_t		n = 0;
	char		err[256];
	char	   *x;

	json_object_set_new(enc, "use", json_string("enc"));
	text = set_of(auth_jwk(ec, "e1"), auth_jwk(rsa, "r1"), enc);
	tap_ok(jwk_set_parse(text, strlen(text), &keys, &n, err, sizeof(err)) == 0 && n == 2 &&
		   strcmp(keys[0].kid, "e1") == 0 && EVP_PKEY_eq(keys[0].pkey, ec) == 1 &&
		   strcmp(keys[1].kid, "r1") == 0 && EVP_PKEY_eq(keys[1].pkey, rsa) == 1,
		   "a JWKS with an EC and an RSA key: both read, the encryption key skipped");
	jwk_keys_free(keys, n);
	free(text);

	text = set_of(oct, auth_jwk(ec, "e1"), NULL);
	tap_ok(jwk_set_parse(text, strlen(text), &keys, &n, err, sizeof(err)) == 0 && n == 1,
		   "a symmetric key in the set is skipped, never used");
	jwk_keys_free(keys, n);
	free(text);

	text = set_of(auth_jwk(ec, NULL), NULL, NULL);
	tap_ok(parse_fails(text, "key 1: kid is missing"), "a key without kid is refused");
	free(text);
	text = set_of(auth_jwk(ec, "a"), auth_jwk(rsa, "a"), NULL);
	tap_ok(parse_fails(text, "key 2: kid \"a\" is used twice"), "a kid used twice is refused");
	free(text);
	text = set_of(auth_jwk(small, "s"), NULL, NULL);
	tap_ok(parse_fails(text, "at least 2048 bits"), "a 1024-bit RSA key is refused");
	free(text);

	bad = auth_jwk(ec, "p");
	x = strdup(str(bad, "x"));
	x[10] = x[10] == 'A' ? 'B' : 'A';
	json_object_set_new(bad, "x", json_string(x));
	free(x);
	text = set_of(bad, NULL, NULL);
	tap_ok(parse_fails(text, "not a point on P-256"), "a point off the curve is refused");
	free(text);

	bad = auth_jwk(ec, "p");
	json_object_set_new(bad, "y", json_string("AAAA"));
	text = set_of(bad, NULL, NULL);
	tap_ok(parse_fails(text, "32 bytes"), "a short coordinate is refused");
	free(text);

	tap_ok(parse_fails("{\"keys\":[]}", "at least one key"), "an empty set is refused");
	tap_ok(parse_fails("{\"keys\":[{\"kty\":\"oct\",\"k\":\"AA\"}]}", "no EC P-256"),
		   "a set without a usable key is refused");
	tap_ok(parse_fails("{\"keys\":", "not JSON"), "text that is not JSON is refused");
	tap_ok(parse_fails("{\"keys\":[1]}", "key 1: not a JSON object"), "a key that is not an object is refused");
	EVP_PKEY_free(small);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(ec);
}

/* session_body returns a handler answer with the given members replaced. */
static char *
session_body(const char *user, const char *org, const char *sid, const char *refresh)
{
	json_t	   *o = json_object();
	char	   *text;

	if (user != NULL)
		json_object_set_new(o, "user_id", json_string(user));
	if (org != NULL)
		json_object_set_new(o, "org_id", json_string(org));
	if (sid != NULL)
		json_object_set_new(o, "session_id", json_string(sid));
	if (refresh != NULL)
		json_object_set_new(o, "refresh_token", json_string(refresh));
	text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return text;
}

static AuthTokenResult
reply_of(const Config *cfg, const char *body, char **out)
{
	return auth_token_json(cfg, body, body != NULL ? strlen(body) : 0, NOW, out);
}

static void
test_token_reply(void)
{
	EVP_PKEY   *ec = keygen("EC", 0);
	char		path[] = "/keys/k1.pem";
	char		kid[] = "k1";
	char		iss[] = "https://iam.example";
	char		aud[] = "iam-api";
	Config		cfg;
	char	   *body = session_body(SUB_UPPER, ORG, SID, REFRESH);
	char	   *out = NULL;
	char	   *out2 = NULL;
	json_t	   *reply;
	JwtKey		vk = {"k1", ec, NULL, 0};
	JwtVerifier *v = jwt_verifier_create(JWT_ES256, &vk, 1, iss, aud, 0);
	JwtClaims	c;
	const char *at;
	char		long_refresh[202];

	memset(&cfg, 0, sizeof(cfg));
	cfg.jwt_alg = CONFIG_JWT_ES256;
	cfg.jwt_key_file = path;
	cfg.jwt_pkey = ec;
	cfg.jwt_kid = kid;
	cfg.jwt_issuer = iss;
	cfg.jwt_audience = aud;
	cfg.access_ttl = 600;

	tap_ok(reply_of(&cfg, body, &out) == AUTH_TOKEN_OK && out != NULL, "a session becomes tokens");
	reply = json_loads(out != NULL ? out : "", 0, NULL);
	tap_ok(json_object_size(reply) == 4 && strcmp(str(reply, "token_type"), "Bearer") == 0 &&
		   json_integer_value(json_object_get(reply, "expires_in")) == 600 &&
		   strcmp(str(reply, "refresh_token"), REFRESH) == 0,
		   "reply: token_type Bearer, expires_in = IAM_ACCESS_TTL, the refresh token untouched");
	at = str(reply, "access_token");
	tap_ok(jwt_verify(v, at, strlen(at), NOW, &c) == JWT_OK, "the access token verifies (ES256, kid, iss, aud)");
	tap_ok(strcmp(c.sub, SUB) == 0 && strcmp(c.org, ORG) == 0 && strcmp(c.sid, SID) == 0,
		   "claims: sub (lower-cased), org, sid of the session");
	tap_ok(c.iat == NOW && c.exp == NOW + 600 && strlen(c.jti) == 32,
		   "claims: iat now, exp now + ttl, a 128-bit jti");
	tap_ok(jwt_verify(v, at, strlen(at), NOW + 601, &c) == JWT_EXPIRED, "and it expires after the ttl");
	tap_ok(reply_of(&cfg, body, &out2) == AUTH_TOKEN_OK && out2 != NULL && strcmp(out, out2) != 0,
		   "two replies differ (a fresh jti each)");
	json_decref(reply);
	free(out);
	free(out2);

	memset(long_refresh, 'a', sizeof(long_refresh) - 1);
	long_refresh[sizeof(long_refresh) - 1] = '\0';
	{
		struct
		{
			char	   *body;
			const char *label;
		}			bad[] = {
			{session_body(NULL, ORG, SID, REFRESH), "no user_id"},
			{session_body(SUB, "not-a-uuid", SID, REFRESH), "org_id not a uuid"},
			{session_body(SUB, ORG, NULL, REFRESH), "no session_id"},
			{session_body(SUB, ORG, SID, NULL), "no refresh_token"},
			{session_body(SUB, ORG, SID, long_refresh), "a refresh token over 200 bytes"},
			{strdup("[1,2]"), "an array"},
			{strdup("{\"user_id\":"), "not JSON"},
		};

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		{
			out = (char *) "x";
			tap_ok(reply_of(&cfg, bad[i].body, &out) == AUTH_TOKEN_NOT_SESSION && out == NULL,
				   "not a session: %s", bad[i].label);
			free(bad[i].body);
		}
		tap_ok(reply_of(&cfg, NULL, &out) == AUTH_TOKEN_NOT_SESSION, "not a session: no body");
	}

	cfg.jwt_key_file = NULL;
	tap_ok(reply_of(&cfg, body, &out) == AUTH_TOKEN_NO_KEY && out == NULL, "no signing key: AUTH_TOKEN_NO_KEY");

	{
		unsigned char secret[32];
		JwtKey		hk = {NULL, NULL, secret, sizeof(secret)};
		JwtVerifier *hv;

		memset(secret, 7, sizeof(secret));
		hv = jwt_verifier_create(JWT_HS256, &hk, 1, NULL, NULL, 0);
		memset(&cfg, 0, sizeof(cfg));
		cfg.jwt_alg = CONFIG_JWT_HS256;
		cfg.jwt_key_file = path;
		cfg.jwt_secret = secret;
		cfg.jwt_secret_len = sizeof(secret);
		cfg.access_ttl = 60;
		tap_ok(reply_of(&cfg, body, &out) == AUTH_TOKEN_OK, "HS256: a session becomes tokens");
		reply = json_loads(out != NULL ? out : "", 0, NULL);
		at = str(reply, "access_token");
		tap_ok(jwt_verify(hv, at, strlen(at), NOW, &c) == JWT_OK && c.exp == NOW + 60,
			   "HS256: the access token verifies, without iss/aud");
		json_decref(reply);
		free(out);
		jwt_verifier_free(hv);
	}
	free(body);
	jwt_verifier_free(v);
	EVP_PKEY_free(ec);
}

int
main(void)
{
	test_jwk_ec();
	test_jwk_rsa();
	test_jwks_file();
	test_token_reply();
	return tap_done();
}
