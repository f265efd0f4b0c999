/*
 * test_jwt.c
 *		Unit tests for jwt.c: sign/verify round trips for HS256, ES256 and
 *		RS256 with keys generated here, and every way a token is refused,
 *		each checked for its exact JwtError.
 *
 * Tokens the module would never sign (odd headers, duplicate members,
 * bad claims) are built here from JSON text with the test's own base64url
 * and HMAC, so the module's encoder is not trusted to test its decoder.
 * Time is a fixed NOW passed to jwt_verify: nothing sleeps.
 */
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "jwt.h"
#include "tap.h"

#define NOW			1700000000LL
#define LEEWAY		30
#define SUB			"6f1c2a4e-8b1d-4c8e-9a57-0d3e4f5a6b7c"
#define ORG			"0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
#define SID			"11111111-2222-4333-8444-555555555555"
#define ISSUER		"https://iam.example"
#define AUDIENCE	"iam-api"
#define HS_HEADER	"{\"alg\":\"HS256\",\"typ\":\"JWT\"}"
#define ODD_HEADER	"{\"alg\":\"HS256\",\"x\":123}"

/* P-256 group order n, big-endian */
static const unsigned char p256_n[32] = {
	0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00,
	0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
	0xBC, 0xE6, 0xFA, 0xAD, 0xA7, 0x17, 0x9E, 0x84,
	0xF3, 0xB9, 0xCA, 0xC2, 0xFC, 0x63, 0x25, 0x51
};

static unsigned char hs_secret[32];
static unsigned char hs_other[32];
static EVP_PKEY *ec_key;
static EVP_PKEY *ec_key2;
static EVP_PKEY *rsa_key;

/* b64 returns the unpadded base64url of data (malloc'd), via OpenSSL's base64. */
static char *
b64(const void *data, size_t len)
{
	char	   *out = malloc(4 * (len / 3 + 1) + 1);
	int			n = EVP_EncodeBlock((unsigned char *) out, data, (int) len);
	int			i;

	while (n > 0 && out[n - 1] == '=')
		n--;
	out[n] = '\0';
	for (i = 0; i < n; i++)
		out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
	return out;
}

/* unb64 decodes unpadded base64url text of len chars into out; returns its length. */
static size_t
unb64(const char *text, size_t len, unsigned char *out)
{
	char	   *std = malloc(len + 4);
	size_t		pad = (4 - len % 4) % 4;
	size_t		i;
	int			n;

	for (i = 0; i < len; i++)
		std[i] = text[i] == '-' ? '+' : text[i] == '_' ? '/' : text[i];
	memset(std + len, '=', pad);
	n = EVP_DecodeBlock(out, (unsigned char *) std, (int) (len + pad));
	free(std);
	return n < 0 ? 0 : (size_t) n - pad;
}

/* join returns "a.b.c" (malloc'd). */
static char *
join(const char *a, const char *b, const char *c)
{
	size_t		n = strlen(a) + strlen(b) + strlen(c) + 3;
	char	   *out = malloc(n);

	snprintf(out, n, "%s.%s.%s", a, b, c);
	return out;
}

/*
 * hs_token returns a token of the header and payload JSON texts as given,
 * signed HS256 with secret (malloc'd).
 */
static char *
hs_token(const char *header, const char *payload, const unsigned char *secret)
{
	char	   *h = b64(header, strlen(header));
	char	   *p = b64(payload, strlen(payload));
	char	   *input = join(h, p, "");
	unsigned char mac[32];
	unsigned int mac_len = 0;
	char	   *s;
	char	   *token;

	/* sign "h.p" (join left a trailing dot) */
	input[strlen(input) - 1] = '\0';
	HMAC(EVP_sha256(), secret, 32, (unsigned char *) input, strlen(input), mac, &mac_len);
	s = b64(mac, mac_len);
	token = join(h, p, s);
	free(h);
	free(p);
	free(s);
	free(input);
	return token;
}

/* claims_text writes a claims set with the given times and extra members. */
static const char *
claims_text(char *buf, size_t size, long long iat, long long exp, const char *extra)
{
	snprintf(buf, size, "{\"sub\":\"" SUB "\",\"org\":\"" ORG "\",\"iat\":%lld,\"exp\":%lld%s}",
			 iat, exp, extra);
	return buf;
}

/* sig_part returns where the signature part of token starts. */
static const char *
sig_part(const char *token)
{
	return strrchr(token, '.') + 1;
}

/* with_sig returns token with its signature replaced by sig (malloc'd). */
static char *
with_sig(const char *token, const unsigned char *sig, size_t sig_len)
{
	size_t		prefix = (size_t) (sig_part(token) - token);
	char	   *s = b64(sig, sig_len);
	char	   *out = malloc(prefix + strlen(s) + 1);

	memcpy(out, token, prefix);
	strcpy(out + prefix, s);
	free(s);
	return out;
}

/* flip_sig returns token with one bit of its decoded signature flipped. */
static char *
flip_sig(const char *token)
{
	unsigned char sig[1024];
	const char *s = sig_part(token);
	size_t		n = unb64(s, strlen(s), sig);

	sig[n / 2] ^= 0x04;
	return with_sig(token, sig, n);
}

/* expect verifies token at now and checks the result is want. */
static bool
expect_at(const JwtVerifier *v, const char *token, long long now, JwtError want,
		  const char *label)
{
	JwtClaims	c;
	JwtError	got = jwt_verify(v, token, token != NULL ? strlen(token) : 0, now, &c);

	return tap_ok(got == want, "%s: %s (got %s)", label, jwt_error_name(want),
				  jwt_error_name(got));
}

static bool
expect(const JwtVerifier *v, const char *token, JwtError want, const char *label)
{
	return expect_at(v, token, NOW, want, label);
}

/* expect_hs builds an HS256 token from JSON texts and checks it gives want. */
static void
expect_hs(const JwtVerifier *v, const char *header, const char *payload,
		  JwtError want, const char *label)
{
	char	   *token = hs_token(header, payload, hs_secret);

	expect(v, token, want, label);
	free(token);
}

static JwtClaims
base_claims(void)
{
	JwtClaims	c;

	memset(&c, 0, sizeof(c));
	strcpy(c.sub, SUB);
	strcpy(c.org, ORG);
	strcpy(c.sid, SID);
	strcpy(c.jti, "jti-0001");
	c.iat = NOW - 10;
	c.exp = NOW + 3600;
	return c;
}

/* sign_with signs base_claims() with key; the caller frees the token. */
static char *
sign_with(JwtAlg alg, const JwtKey *key, const char *iss, const char *aud)
{
	JwtClaims	c = base_claims();

	return jwt_sign(alg, key, iss, aud, &c);
}

static JwtKey
hs_key(void)
{
	return (JwtKey) {NULL, NULL, hs_secret, sizeof(hs_secret)};
}

static JwtKey
pkey_key(const char *kid, EVP_PKEY *pkey)
{
	return (JwtKey) {kid, pkey, NULL, 0};
}

/* public_only returns a new EVP_PKEY holding just the public half of pkey. */
static EVP_PKEY *
public_only(EVP_PKEY *pkey)
{
	unsigned char *der = NULL;
	const unsigned char *p;
	int			len = i2d_PUBKEY(pkey, &der);
	EVP_PKEY   *pub;

	p = der;
	pub = d2i_PUBKEY(NULL, &p, len);
	OPENSSL_free(der);
	return pub;
}

static void
test_create(void)
{
	JwtKey		k;
	JwtKey		two[2];
	unsigned char short_secret[31] = {0};
	EVP_PKEY   *rsa1024 = EVP_RSA_gen(1024);
	EVP_PKEY   *p384 = EVP_EC_gen("P-384");
	JwtVerifier *v;

	k = pkey_key(NULL, rsa1024);
	v = jwt_verifier_create(JWT_RS256, &k, 1, NULL, NULL, LEEWAY);
	tap_ok(v == NULL, "create refuses a 1024-bit RSA key");
	jwt_verifier_free(v);
	k = pkey_key(NULL, rsa1024);
	tap_ok(jwt_sign(JWT_RS256, &k, NULL, NULL, &(JwtClaims) {0}) == NULL,
		   "sign refuses a 1024-bit RSA key");

	k = pkey_key(NULL, p384);
	v = jwt_verifier_create(JWT_ES256, &k, 1, NULL, NULL, LEEWAY);
	tap_ok(v == NULL, "create refuses a P-384 key for ES256");
	jwt_verifier_free(v);

	k = pkey_key(NULL, rsa_key);
	v = jwt_verifier_create(JWT_ES256, &k, 1, NULL, NULL, LEEWAY);
	tap_ok(v == NULL, "create refuses an RSA key for ES256");
	jwt_verifier_free(v);

	k = pkey_key(NULL, ec_key);
	v = jwt_verifier_create(JWT_RS256, &k, 1, NULL, NULL, LEEWAY);
	tap_ok(v == NULL, "create refuses an EC key for RS256");
	jwt_verifier_free(v);

	k = (JwtKey) {NULL, NULL, short_secret, sizeof(short_secret)};
	v = jwt_verifier_create(JWT_HS256, &k, 1, NULL, NULL, LEEWAY);
	tap_ok(v == NULL, "create refuses a 31-byte HS256 secret");
	jwt_verifier_free(v);

	k = pkey_key(NULL, ec_key);
	v = jwt_verifier_create(JWT_HS256, &k, 1, NULL, NULL, LEEWAY);
	tap_ok(v == NULL, "create refuses an EC key for HS256");
	jwt_verifier_free(v);

	k = hs_key();
	v = jwt_verifier_create(JWT_HS256, &k, 0, NULL, NULL, LEEWAY);
	tap_ok(v == NULL, "create refuses zero keys");
	jwt_verifier_free(v);

	v = jwt_verifier_create(JWT_HS256, &k, 1, NULL, NULL, -1);
	tap_ok(v == NULL, "create refuses a negative leeway");
	jwt_verifier_free(v);
	v = jwt_verifier_create(JWT_HS256, &k, 1, NULL, NULL, 3601);
	tap_ok(v == NULL, "create refuses a leeway over an hour");
	jwt_verifier_free(v);

	two[0] = pkey_key("k1", ec_key);
	two[1] = pkey_key("k1", ec_key2);
	v = jwt_verifier_create(JWT_ES256, two, 2, NULL, NULL, LEEWAY);
	tap_ok(v == NULL, "create refuses two keys with one kid");
	jwt_verifier_free(v);
	two[0] = pkey_key(NULL, ec_key);
	two[1] = pkey_key(NULL, ec_key2);
	v = jwt_verifier_create(JWT_ES256, two, 2, NULL, NULL, LEEWAY);
	tap_ok(v == NULL, "create refuses two default keys");
	jwt_verifier_free(v);

	EVP_PKEY_free(rsa1024);
	EVP_PKEY_free(p384);
}

/* round_trip signs with key, verifies with a verifier on vkey, checks claims. */
static void
round_trip(JwtAlg alg, const char *name, JwtKey key, JwtKey vkey)
{
	JwtVerifier *v = jwt_verifier_create(alg, &vkey, 1, ISSUER, AUDIENCE, LEEWAY);
	JwtClaims	want = base_claims();
	JwtClaims	got;
	char	   *token = jwt_sign(alg, &key, ISSUER, AUDIENCE, &want);
	JwtError	err;

	tap_ok(v != NULL && token != NULL, "%s: verifier and token created", name);
	if (v == NULL || token == NULL)
	{
		jwt_verifier_free(v);
		free(token);
		return;
	}
	err = jwt_verify(v, token, strlen(token), NOW, &got);
	tap_ok(err == JWT_OK, "%s: signed token verifies (got %s)", name, jwt_error_name(err));
	tap_ok(memcmp(&want, &got, sizeof(want)) == 0,
		   "%s: claims come back unchanged", name);
	jwt_verifier_free(v);
	free(token);
}

static void
test_round_trips(void)
{
	EVP_PKEY   *ec_pub = public_only(ec_key);
	EVP_PKEY   *rsa_pub = public_only(rsa_key);
	JwtClaims	c = base_claims();
	JwtKey		k = pkey_key(NULL, ec_pub);
	char	   *token;
	char		header[256];
	size_t		n;

	round_trip(JWT_HS256, "HS256", hs_key(), hs_key());
	round_trip(JWT_ES256, "ES256", pkey_key(NULL, ec_key), pkey_key(NULL, ec_pub));
	round_trip(JWT_RS256, "RS256", pkey_key(NULL, rsa_key), pkey_key(NULL, rsa_pub));
	round_trip(JWT_ES256, "ES256 private key verifier", pkey_key(NULL, ec_key),
			   pkey_key(NULL, ec_key));

	tap_ok(jwt_sign(JWT_ES256, &k, NULL, NULL, &c) == NULL,
		   "sign with a public key only returns NULL");

	/* the header is exactly what the contract says, kid included */
	k = pkey_key("key-2", ec_key);
	token = jwt_sign(JWT_ES256, &k, NULL, NULL, &c);
	n = unb64(token, (size_t) (strchr(token, '.') - token), (unsigned char *) header);
	header[n] = '\0';
	tap_ok(strcmp(header, "{\"alg\":\"ES256\",\"typ\":\"JWT\",\"kid\":\"key-2\"}") == 0,
		   "header is {alg,typ,kid}: %s", header);
	free(token);

	EVP_PKEY_free(ec_pub);
	EVP_PKEY_free(rsa_pub);
}

/* The verifier keeps its own copies: the caller's may go at once. */
static void
test_ownership(void)
{
	unsigned char secret[32];
	EVP_PKEY   *pub = public_only(ec_key);
	JwtKey		k = {"mine", NULL, secret, sizeof(secret)};
	char		kid[] = "mine";
	JwtVerifier *hv;
	JwtVerifier *ev;
	char	   *token;

	memcpy(secret, hs_secret, sizeof(secret));
	k.kid = kid;
	hv = jwt_verifier_create(JWT_HS256, &k, 1, NULL, NULL, LEEWAY);
	memset(secret, 0, sizeof(secret));
	memset(kid, 'x', 4);
	k = (JwtKey) {"mine", NULL, hs_secret, sizeof(hs_secret)};
	token = sign_with(JWT_HS256, &k, NULL, NULL);
	expect(hv, token, JWT_OK, "HS256 verifier kept its own secret and kid");
	free(token);

	k = pkey_key(NULL, pub);
	ev = jwt_verifier_create(JWT_ES256, &k, 1, NULL, NULL, LEEWAY);
	EVP_PKEY_free(pub);
	k = pkey_key(NULL, ec_key);
	token = sign_with(JWT_ES256, &k, NULL, NULL);
	expect(ev, token, JWT_OK, "ES256 verifier holds its own key reference");
	free(token);

	jwt_verifier_free(hv);
	jwt_verifier_free(ev);
	jwt_verifier_free(NULL);
}

static void
test_times(void)
{
	JwtKey		k = hs_key();
	JwtVerifier *v = jwt_verifier_create(JWT_HS256, &k, 1, NULL, NULL, LEEWAY);
	char		p[512];
	char	   *token;

	expect_hs(v, HS_HEADER, claims_text(p, sizeof(p), NOW - 100, NOW - LEEWAY - 1, ""),
			  JWT_EXPIRED, "exp beyond the leeway");
	expect_hs(v, HS_HEADER, claims_text(p, sizeof(p), NOW - 100, NOW - LEEWAY, ""),
			  JWT_EXPIRED, "exp + leeway == now");
	expect_hs(v, HS_HEADER, claims_text(p, sizeof(p), NOW - 100, NOW - LEEWAY + 1, ""),
			  JWT_OK, "exp passed but within the leeway");
	expect_hs(v, HS_HEADER, claims_text(p, sizeof(p), NOW - 100, NOW - LEEWAY - 1,
										",\"nbf\":1700000031"),
			  JWT_EXPIRED, "expired (reported before nbf)");

	expect_hs(v, HS_HEADER, claims_text(p, sizeof(p), NOW, NOW + 60, ",\"nbf\":1700000031"),
			  JWT_NOT_YET_VALID, "nbf beyond the leeway");
	expect_hs(v, HS_HEADER, claims_text(p, sizeof(p), NOW, NOW + 60, ",\"nbf\":1700000030"),
			  JWT_OK, "nbf within the leeway");
	expect_hs(v, HS_HEADER, claims_text(p, sizeof(p), NOW + LEEWAY + 1, NOW + 3600, ""),
			  JWT_NOT_YET_VALID, "iat beyond the leeway");
	expect_hs(v, HS_HEADER, claims_text(p, sizeof(p), NOW + LEEWAY, NOW + 3600, ""),
			  JWT_OK, "iat within the leeway");

	/* no overflow at the ends of now's range (UBSan would abort) */
	token = hs_token(HS_HEADER, claims_text(p, sizeof(p), NOW, NOW + 60, ""), hs_secret);
	expect_at(v, token, LLONG_MAX, JWT_EXPIRED, "now = LLONG_MAX");
	expect_at(v, token, LLONG_MIN, JWT_NOT_YET_VALID, "now = LLONG_MIN");
	free(token);
	jwt_verifier_free(v);
}

static void
test_alg(void)
{
	JwtKey		hk = hs_key();
	JwtKey		ek = pkey_key(NULL, ec_key);
	JwtKey		rk = pkey_key(NULL, rsa_key);
	JwtVerifier *hv = jwt_verifier_create(JWT_HS256, &hk, 1, NULL, NULL, LEEWAY);
	JwtVerifier *ev = jwt_verifier_create(JWT_ES256, &ek, 1, NULL, NULL, LEEWAY);
	JwtVerifier *rv = jwt_verifier_create(JWT_RS256, &rk, 1, NULL, NULL, LEEWAY);
	char	   *hs = sign_with(JWT_HS256, &hk, NULL, NULL);
	char	   *es = sign_with(JWT_ES256, &ek, NULL, NULL);
	char	   *rs = sign_with(JWT_RS256, &rk, NULL, NULL);
	char		p[512];
	char	   *h;
	char	   *b;
	char	   *token;
	BIO		   *bio;
	char	   *pem;
	long		pem_len;
	JwtKey		confused;

	expect(ev, hs, JWT_BAD_ALG, "HS256 token against an ES256 verifier");
	expect(rv, hs, JWT_BAD_ALG, "HS256 token against an RS256 verifier");
	expect(ev, rs, JWT_BAD_ALG, "RS256 token against an ES256 verifier");
	expect(rv, es, JWT_BAD_ALG, "ES256 token against an RS256 verifier");
	expect(hv, es, JWT_BAD_ALG, "ES256 token against an HS256 verifier");

	/* the classic confusion: HMAC keyed with the RSA public key's PEM */
	bio = BIO_new(BIO_s_mem());
	PEM_write_bio_PUBKEY(bio, rsa_key);
	pem_len = BIO_get_mem_data(bio, &pem);
	confused = (JwtKey) {NULL, NULL, (unsigned char *) pem, (size_t) pem_len};
	token = sign_with(JWT_HS256, &confused, NULL, NULL);
	expect(rv, token, JWT_BAD_ALG, "HS256 token keyed with the RSA public key PEM");
	free(token);
	BIO_free(bio);

	claims_text(p, sizeof(p), NOW, NOW + 60, "");
	h = b64("{\"alg\":\"none\",\"typ\":\"JWT\"}", 26);
	b = b64(p, strlen(p));
	token = join(h, b, "");
	expect(hv, token, JWT_BAD_ALG, "alg none with an empty signature (HS256)");
	expect(ev, token, JWT_BAD_ALG, "alg none with an empty signature (ES256)");
	free(token);
	free(h);

	h = b64("{\"alg\":\"hs256\"}", 15);
	token = join(h, b, sig_part(hs));
	expect(hv, token, JWT_BAD_ALG, "alg in lower case");
	free(token);
	free(h);
	free(b);

	expect_hs(hv, "{\"typ\":\"JWT\"}", p, JWT_MALFORMED, "no alg");
	expect_hs(hv, "{\"alg\":256}", p, JWT_MALFORMED, "alg not a string");
	expect_hs(hv, "{\"alg\":\"HS256\"}", p, JWT_OK, "no typ is fine");
	expect_hs(hv, "{\"alg\":\"HS256\",\"typ\":\"at+jwt\"}", p, JWT_MALFORMED, "typ not JWT");
	expect_hs(hv, "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"x5u\":\"https://evil\"}", p,
			  JWT_OK, "unknown header members are ignored");
	expect_hs(hv, "{\"alg\":\"HS256\",\"crit\":[\"exp\"],\"exp\":1}", p,
			  JWT_MALFORMED, "crit header");
	expect_hs(hv, "{\"alg\":\"HS256\",\"crit\":[]}", p, JWT_MALFORMED, "empty crit header");

	free(hs);
	free(es);
	free(rs);
	jwt_verifier_free(hv);
	jwt_verifier_free(ev);
	jwt_verifier_free(rv);
}

static void
test_signature(void)
{
	JwtKey		hk = hs_key();
	JwtKey		ok = {NULL, NULL, hs_other, sizeof(hs_other)};
	JwtKey		ek = pkey_key(NULL, ec_key);
	JwtKey		ek2 = pkey_key(NULL, ec_key2);
	JwtKey		rk = pkey_key(NULL, rsa_key);
	JwtVerifier *hv = jwt_verifier_create(JWT_HS256, &hk, 1, NULL, NULL, LEEWAY);
	JwtVerifier *ev = jwt_verifier_create(JWT_ES256, &ek, 1, NULL, NULL, LEEWAY);
	JwtVerifier *rv = jwt_verifier_create(JWT_RS256, &rk, 1, NULL, NULL, LEEWAY);
	char	   *hs = sign_with(JWT_HS256, &hk, NULL, NULL);
	char	   *es = sign_with(JWT_ES256, &ek, NULL, NULL);
	char	   *rs = sign_with(JWT_RS256, &rk, NULL, NULL);
	char	   *t;
	unsigned char sig[512];
	size_t		n;

	expect(hv, hs, JWT_OK, "HS256 control");
	expect(ev, es, JWT_OK, "ES256 control");
	expect(rv, rs, JWT_OK, "RS256 control");

	t = flip_sig(hs);
	expect(hv, t, JWT_BAD_SIGNATURE, "HS256 signature with a flipped bit");
	free(t);
	t = flip_sig(es);
	expect(ev, t, JWT_BAD_SIGNATURE, "ES256 signature with a flipped bit");
	free(t);
	t = flip_sig(rs);
	expect(rv, t, JWT_BAD_SIGNATURE, "RS256 signature with a flipped bit");
	free(t);

	t = sign_with(JWT_HS256, &ok, NULL, NULL);
	expect(hv, t, JWT_BAD_SIGNATURE, "HS256 token signed with another secret");
	free(t);
	t = sign_with(JWT_ES256, &ek2, NULL, NULL);
	expect(ev, t, JWT_BAD_SIGNATURE, "ES256 token signed with another key");
	free(t);

	/* a changed payload under the original signature */
	t = strdup(hs);
	t[strchr(t, '.') - t + 5] ^= 0x01;
	expect(hv, t, JWT_BAD_SIGNATURE, "HS256 payload changed after signing");
	free(t);

	n = unb64(sig_part(hs), strlen(sig_part(hs)), sig);
	t = with_sig(hs, sig, n - 1);
	expect(hv, t, JWT_BAD_SIGNATURE, "HS256 signature one byte short");
	free(t);
	t = with_sig(hs, sig, 0);
	expect(hv, t, JWT_BAD_SIGNATURE, "HS256 empty signature");
	free(t);

	n = unb64(sig_part(rs), strlen(sig_part(rs)), sig);
	sig[n] = 0;
	t = with_sig(rs, sig, n + 1);
	expect(rv, t, JWT_BAD_SIGNATURE, "RS256 signature one byte long");
	free(t);

	free(hs);
	free(es);
	free(rs);
	jwt_verifier_free(hv);
	jwt_verifier_free(ev);
	jwt_verifier_free(rv);
}

/* es256_der returns the DER ECDSA signature of token's signing input. */
static unsigned char *
es256_der(const char *token, size_t *len)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char *der = malloc(128);

	*len = 128;
	EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, ec_key);
	EVP_DigestSign(md, der, len, (const unsigned char *) token,
				   (size_t) (sig_part(token) - 1 - token));
	EVP_MD_CTX_free(md);
	return der;
}

static void
test_es256_range(void)
{
	JwtKey		ek = pkey_key(NULL, ec_key);
	JwtVerifier *ev = jwt_verifier_create(JWT_ES256, &ek, 1, NULL, NULL, LEEWAY);
	char	   *es = sign_with(JWT_ES256, &ek, NULL, NULL);
	unsigned char good[64];
	unsigned char sig[64];
	unsigned char *der;
	size_t		der_len;
	char	   *t;

	unb64(sig_part(es), strlen(sig_part(es)), good);

	memcpy(sig, good, 64);
	t = with_sig(es, sig, 64);
	expect(ev, t, JWT_OK, "ES256 re-encoded signature (control)");
	free(t);

	memset(sig, 0, 32);
	t = with_sig(es, sig, 64);
	expect(ev, t, JWT_BAD_SIGNATURE, "ES256 r = 0");
	free(t);

	memcpy(sig, good, 64);
	memset(sig + 32, 0, 32);
	t = with_sig(es, sig, 64);
	expect(ev, t, JWT_BAD_SIGNATURE, "ES256 s = 0");
	free(t);

	memset(sig, 0, 64);
	t = with_sig(es, sig, 64);
	expect(ev, t, JWT_BAD_SIGNATURE, "ES256 r = s = 0 (CVE-2022-21449)");
	free(t);

	memcpy(sig, p256_n, 32);
	memcpy(sig + 32, good + 32, 32);
	t = with_sig(es, sig, 64);
	expect(ev, t, JWT_BAD_SIGNATURE, "ES256 r = n");
	free(t);

	memcpy(sig, good, 32);
	memcpy(sig + 32, p256_n, 32);
	t = with_sig(es, sig, 64);
	expect(ev, t, JWT_BAD_SIGNATURE, "ES256 s = n");
	free(t);

	memcpy(sig, good, 32);
	memset(sig + 32, 0xFF, 32);
	t = with_sig(es, sig, 64);
	expect(ev, t, JWT_BAD_SIGNATURE, "ES256 s = 2^256 - 1 > n");
	free(t);

	t = with_sig(es, good, 63);
	expect(ev, t, JWT_BAD_SIGNATURE, "ES256 signature of 63 bytes");
	free(t);

	der = es256_der(es, &der_len);
	t = with_sig(es, der, der_len);
	expect(ev, t, JWT_BAD_SIGNATURE, "ES256 signature in DER instead of r||s");
	free(t);
	free(der);

	free(es);
	jwt_verifier_free(ev);
}

static void
test_issuer_audience(void)
{
	JwtKey		k = hs_key();
	JwtVerifier *v = jwt_verifier_create(JWT_HS256, &k, 1, ISSUER, AUDIENCE, LEEWAY);
	JwtVerifier *plain = jwt_verifier_create(JWT_HS256, &k, 1, NULL, NULL, LEEWAY);
	char		p[512];

#define ISS_AUD(iss, aud)	",\"iss\":" iss ",\"aud\":" aud
	expect_hs(v, HS_HEADER, claims_text(p, sizeof(p), NOW, NOW + 60,
										ISS_AUD("\"" ISSUER "\"", "\"" AUDIENCE "\"")),
			  JWT_OK, "right iss and aud");
	expect_hs(v, HS_HEADER, claims_text(p, sizeof(p), NOW, NOW + 60,
										ISS_AUD("\"https://evil.example\"", "\"" AUDIENCE "\"")),
			  JWT_BAD_ISSUER, "wrong iss");
	expect_hs(v, HS_HEADER, claims_text(p, sizeof(p), NOW, NOW + 60,
										ISS_AUD("\"" ISSUER "/\"", "\"" AUDIENCE "\"")),
			  JWT_BAD_ISSUER, "iss with a trailing slash");
	expect_hs(v, HS_HEADER, claims_text(p, sizeof(p), NOW, NOW + 60,
										",\"aud\":\"" AUDIENCE "\""),
			  JWT_BAD_ISSUER, "missing iss");
	expect_hs(v, HS_HEADER, claims_text(p, sizeof(p), NOW, NOW + 60,
										ISS_AUD("[\"" ISSUER "\"]", "\"" AUDIENCE "\"")),
			  JWT_BAD_ISSUER, "iss as an array");

	expect_hs(v, HS_HEADER, claims_text(p, sizeof(p), NOW, NOW + 60,
										ISS_AUD("\"" ISSUER "\"", "\"other-api\"")),
			  JWT_BAD_AUDIENCE, "wrong aud string");
	expect_hs(v, HS_HEADER, claims_text(p, sizeof(p), NOW, NOW + 60,
										ISS_AUD("\"" ISSUER "\"", "[\"a\",\"iam-apix\"]")),
			  JWT_BAD_AUDIENCE, "aud array without us");
	expect_hs(v, HS_HEADER, claims_text(p, sizeof(p), NOW, NOW + 60,
										ISS_AUD("\"" ISSUER "\"", "[\"a\",\"" AUDIENCE "\"]")),
			  JWT_OK, "aud array containing us");
	expect_hs(v, HS_HEADER, claims_text(p, sizeof(p), NOW, NOW + 60,
										ISS_AUD("\"" ISSUER "\"", "[]")),
			  JWT_BAD_AUDIENCE, "empty aud array");
	expect_hs(v, HS_HEADER, claims_text(p, sizeof(p), NOW, NOW + 60,
										ISS_AUD("\"" ISSUER "\"", "[1,\"" AUDIENCE "\"]")),
			  JWT_BAD_AUDIENCE, "aud array with a non-string");
	expect_hs(v, HS_HEADER, claims_text(p, sizeof(p), NOW, NOW + 60,
										",\"iss\":\"" ISSUER "\""),
			  JWT_BAD_AUDIENCE, "missing aud");
	expect_hs(plain, HS_HEADER, claims_text(p, sizeof(p), NOW, NOW + 60,
											ISS_AUD("\"" ISSUER "\"", "\"" AUDIENCE "\"")),
			  JWT_BAD_AUDIENCE, "aud present but no audience configured");
	expect_hs(plain, HS_HEADER, claims_text(p, sizeof(p), NOW, NOW + 60,
											",\"iss\":\"anyone\""),
			  JWT_OK, "iss not checked when no issuer configured");
#undef ISS_AUD
	jwt_verifier_free(v);
	jwt_verifier_free(plain);
}

static void
test_kid(void)
{
	JwtKey		keys[2] = {pkey_key("k1", ec_key), pkey_key("k2", ec_key2)};
	JwtKey		k2_as_k1 = pkey_key("k1", ec_key2);
	JwtKey		unknown = pkey_key("k3", ec_key);
	JwtKey		nokid = pkey_key(NULL, ec_key);
	JwtKey		with_default[2] = {pkey_key(NULL, ec_key), pkey_key("k2", ec_key2)};
	JwtVerifier *v = jwt_verifier_create(JWT_ES256, keys, 2, NULL, NULL, LEEWAY);
	JwtVerifier *vd = jwt_verifier_create(JWT_ES256, with_default, 2, NULL, NULL, LEEWAY);
	JwtVerifier *single = jwt_verifier_create(JWT_ES256, &keys[1], 1, NULL, NULL, LEEWAY);
	JwtVerifier *anon = jwt_verifier_create(JWT_ES256, &nokid, 1, NULL, NULL, LEEWAY);
	JwtKey		hk = hs_key();
	JwtVerifier *hv = jwt_verifier_create(JWT_HS256, &hk, 1, NULL, NULL, LEEWAY);
	char		p[512];
	char	   *t;

	t = sign_with(JWT_ES256, &keys[0], NULL, NULL);
	expect(v, t, JWT_OK, "kid k1 selects the first key");
	free(t);
	t = sign_with(JWT_ES256, &keys[1], NULL, NULL);
	expect(v, t, JWT_OK, "kid k2 selects the second key");
	expect(single, t, JWT_OK, "kid matching the only key");
	expect(anon, t, JWT_UNKNOWN_KID, "kid against a verifier whose only key has none");
	free(t);
	t = sign_with(JWT_ES256, &k2_as_k1, NULL, NULL);
	expect(v, t, JWT_BAD_SIGNATURE, "kid k1 on a token signed with k2's key");
	free(t);
	t = sign_with(JWT_ES256, &unknown, NULL, NULL);
	expect(v, t, JWT_UNKNOWN_KID, "unknown kid");
	expect(single, t, JWT_UNKNOWN_KID, "unknown kid with a single key");
	free(t);

	t = sign_with(JWT_ES256, &nokid, NULL, NULL);
	expect(v, t, JWT_UNKNOWN_KID, "no kid, two keys, no default");
	expect(vd, t, JWT_OK, "no kid picks the default key");
	expect(anon, t, JWT_OK, "no kid, one key without kid");
	free(t);
	t = sign_with(JWT_ES256, &keys[1], NULL, NULL);
	expect(vd, t, JWT_OK, "kid beside a default key");
	free(t);
	nokid = pkey_key(NULL, ec_key2);
	t = sign_with(JWT_ES256, &nokid, NULL, NULL);
	expect(single, t, JWT_OK, "no kid, the only key has one");
	free(t);

	claims_text(p, sizeof(p), NOW, NOW + 60, "");
	expect_hs(hv, "{\"alg\":\"HS256\",\"kid\":7}", p, JWT_MALFORMED, "kid not a string");

	jwt_verifier_free(v);
	jwt_verifier_free(vd);
	jwt_verifier_free(single);
	jwt_verifier_free(anon);
	jwt_verifier_free(hv);
}

/*
 * sized_token builds a valid HS256 token of exactly len bytes by padding
 * the header and the claims with members the verifier ignores, or NULL.
 */
static char *
sized_token(size_t len)
{
	char	   *pad = malloc(len);
	char	   *claims = malloc(len + 256);
	char		header[64];
	size_t		m;
	size_t		n;

	for (m = 0; m < 4; m++)
	{
		snprintf(header, sizeof(header), "{\"alg\":\"HS256\",\"x\":\"%.*s\"}", (int) m, "xxxx");
		for (n = len * 3 / 4 - 400; n < len * 3 / 4; n++)
		{
			char	   *t;

			memset(pad, 'p', n);
			pad[n] = '\0';
			snprintf(claims, len + 256, "{\"sub\":\"" SUB "\",\"org\":\"" ORG
					 "\",\"iat\":%lld,\"exp\":%lld,\"pad\":\"%s\"}", NOW, NOW + 60, pad);
			t = hs_token(header, claims, hs_secret);
			if (strlen(t) == len)
			{
				free(pad);
				free(claims);
				return t;
			}
			free(t);
		}
	}
	free(pad);
	free(claims);
	return NULL;
}

static void
test_size_and_garbage(void)
{
	JwtKey		k = hs_key();
	JwtVerifier *v = jwt_verifier_create(JWT_HS256, &k, 1, NULL, NULL, LEEWAY);
	char	   *max = sized_token(JWT_MAX_TOKEN);
	char	   *over = sized_token(JWT_MAX_TOKEN + 1);
	char	   *good = sign_with(JWT_HS256, &k, NULL, NULL);
	char		p[512];
	char	   *t;
	char	   *h;
	char	   *b;
	size_t		hlen;

	tap_ok(max != NULL && over != NULL, "tokens of 8192 and 8193 bytes built");
	expect(v, max, JWT_OK, "valid token of 8192 bytes");
	expect(v, over, JWT_TOO_LARGE, "valid token of 8193 bytes");
	free(max);
	free(over);

	expect(v, "", JWT_MALFORMED, "empty token");
	expect(v, "eyJhbGciOiJIUzI1NiJ9", JWT_MALFORMED, "no dots");
	t = strdup(good);
	*strrchr(t, '.') = '\0';
	expect(v, t, JWT_MALFORMED, "two parts");
	free(t);
	t = malloc(strlen(good) + 3);
	sprintf(t, "%s.x", good);
	expect(v, t, JWT_MALFORMED, "four parts");
	free(t);
	t = malloc(strlen(good) + 2);
	sprintf(t, "%s.", good);
	expect(v, t, JWT_MALFORMED, "four parts, the last empty");
	free(t);
	expect(v, "..", JWT_MALFORMED, "three empty parts");

	/* a NUL inside the given length must not end the token early */
	{
		JwtClaims	c;
		size_t		len = strlen(good);

		t = malloc(len + 2);
		memcpy(t, good, len + 1);
		t[len + 1] = 'A';
		tap_ok(jwt_verify(v, t, len + 1, NOW, &c) == JWT_MALFORMED,
			   "NUL byte inside the token length");
		free(t);
	}

	claims_text(p, sizeof(p), NOW, NOW + 60, "");
	b = b64(p, strlen(p));

	/* 23 bytes encode to 31 characters: standard base64 would pad with '=' */
	h = b64(ODD_HEADER, strlen(ODD_HEADER));
	hlen = strlen(h);
	tap_ok(hlen % 4 == 3, "header of %zu base64url characters", hlen);
	t = hs_token(ODD_HEADER, p, hs_secret);
	expect(v, t, JWT_OK, "unpadded header of 31 characters (control)");
	free(t);
	{
		char	   *padded = malloc(hlen + 2);

		sprintf(padded, "%s=", h);
		t = join(padded, b, "AAAA");
		expect(v, t, JWT_MALFORMED, "header with '=' padding");
		free(t);
		free(padded);
	}
	{
		/* the last character's two unused bits set: same bytes, other text */
		char	   *odd = strdup(h);
		const char *alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
		int			val = (int) (strchr(alphabet, odd[hlen - 1]) - alphabet);

		odd[hlen - 1] = alphabet[val | 1];
		t = join(odd, b, "AAAA");
		expect(v, t, JWT_MALFORMED, "header with non-zero trailing bits");
		free(t);
		free(odd);
	}
	{
		char	   *std = strdup(h);

		std[3] = '+';
		t = join(std, b, "AAAA");
		expect(v, t, JWT_MALFORMED, "'+' (standard base64) in the header");
		free(t);
		std[3] = ' ';
		t = join(std, b, "AAAA");
		expect(v, t, JWT_MALFORMED, "space in the header");
		free(t);
		free(std);
	}
	t = join(h, b, "AAA*");
	expect(v, t, JWT_MALFORMED, "'*' in the signature");
	free(t);
	t = join(h, b, "AAAAA");
	expect(v, t, JWT_MALFORMED, "signature of 5 characters (1 mod 4)");
	free(t);
	{
		char	   *bad = malloc(strlen(b) + 2);

		sprintf(bad, "%s=", b);
		t = join(h, bad, "AAAA");
		expect(v, t, JWT_MALFORMED, "'=' in the payload");
		free(t);
		free(bad);
	}
	free(h);

	h = b64("[\"HS256\"]", 9);
	t = join(h, b, "AAAA");
	expect(v, t, JWT_MALFORMED, "header is a JSON array");
	free(t);
	free(h);
	h = b64("\"HS256\"", 7);
	t = join(h, b, "AAAA");
	expect(v, t, JWT_MALFORMED, "header is a JSON string");
	free(t);
	free(h);
	h = b64("alg=HS256", 9);
	t = join(h, b, "AAAA");
	expect(v, t, JWT_MALFORMED, "header is not JSON");
	free(t);
	free(h);
	h = b64(HS_HEADER " x", strlen(HS_HEADER) + 2);
	t = join(h, b, "AAAA");
	expect(v, t, JWT_MALFORMED, "header with trailing garbage");
	free(t);
	free(h);
	free(b);

	expect_hs(v, HS_HEADER, "[1,2]", JWT_MALFORMED, "signed payload is an array");
	expect_hs(v, HS_HEADER, "{\"sub\":", JWT_MALFORMED, "signed payload is broken JSON");

	free(good);
	jwt_verifier_free(v);
}

static void
test_duplicates(void)
{
	JwtKey		k = hs_key();
	JwtVerifier *v = jwt_verifier_create(JWT_HS256, &k, 1, NULL, NULL, LEEWAY);
	char		p[512];

	claims_text(p, sizeof(p), NOW, NOW + 60, "");
	expect_hs(v, "{\"alg\":\"HS256\",\"alg\":\"HS256\"}", p, JWT_MALFORMED,
			  "duplicate alg in the header");
	expect_hs(v, "{\"alg\":\"none\",\"alg\":\"HS256\"}", p, JWT_MALFORMED,
			  "duplicate alg in the header, none first");
	expect_hs(v, "{\"alg\":\"HS256\",\"kid\":\"a\",\"kid\":\"b\"}", p, JWT_MALFORMED,
			  "duplicate kid in the header");
	expect_hs(v, HS_HEADER, claims_text(p, sizeof(p), NOW, NOW + 60,
										",\"sub\":\"" SUB "\""),
			  JWT_MALFORMED, "duplicate sub in the claims");
	expect_hs(v, HS_HEADER, claims_text(p, sizeof(p), NOW, NOW + 60,
										",\"exp\":99999999999"),
			  JWT_MALFORMED, "duplicate exp in the claims");
	jwt_verifier_free(v);
}

static void
test_claims(void)
{
	JwtKey		k = hs_key();
	JwtVerifier *v = jwt_verifier_create(JWT_HS256, &k, 1, NULL, NULL, LEEWAY);
	char		p[512];
	char	   *t;
	JwtClaims	c;
	JwtError	err;

#define CLAIMS(body)	"{" body "}"
#define TIMES			"\"iat\":1700000000,\"exp\":1700000060"
	expect_hs(v, HS_HEADER, CLAIMS("\"org\":\"" ORG "\"," TIMES), JWT_BAD_CLAIMS, "missing sub");
	expect_hs(v, HS_HEADER, CLAIMS("\"sub\":\"" SUB "\"," TIMES), JWT_BAD_CLAIMS, "missing org");
	expect_hs(v, HS_HEADER, CLAIMS("\"sub\":\"alice\",\"org\":\"" ORG "\"," TIMES),
			  JWT_BAD_CLAIMS, "sub not a uuid");
	expect_hs(v, HS_HEADER, CLAIMS("\"sub\":\"6f1c2a4e8b1d4c8e9a570d3e4f5a6b7c\",\"org\":\"" ORG "\"," TIMES),
			  JWT_BAD_CLAIMS, "sub a uuid without dashes");
	expect_hs(v, HS_HEADER, CLAIMS("\"sub\":\"{" SUB "}\",\"org\":\"" ORG "\"," TIMES),
			  JWT_BAD_CLAIMS, "sub a uuid in braces");
	expect_hs(v, HS_HEADER, CLAIMS("\"sub\":\"6f1c2a4e-8b1d-4c8e-9a57-0d3e4f5a6b7g\",\"org\":\"" ORG "\"," TIMES),
			  JWT_BAD_CLAIMS, "sub with a non-hex digit");
	expect_hs(v, HS_HEADER, CLAIMS("\"sub\":42,\"org\":\"" ORG "\"," TIMES),
			  JWT_BAD_CLAIMS, "sub a number");
	expect_hs(v, HS_HEADER, CLAIMS("\"sub\":\"" SUB "\",\"org\":\"acme\"," TIMES),
			  JWT_BAD_CLAIMS, "org not a uuid");
	expect_hs(v, HS_HEADER, claims_text(p, sizeof(p), NOW, NOW + 60, ",\"sid\":\"s1\""),
			  JWT_BAD_CLAIMS, "sid not a uuid");
	expect_hs(v, HS_HEADER, claims_text(p, sizeof(p), NOW, NOW + 60, ",\"jti\":17"),
			  JWT_BAD_CLAIMS, "jti a number");
	expect_hs(v, HS_HEADER, claims_text(p, sizeof(p), NOW, NOW + 60, ",\"jti\":\"a b\""),
			  JWT_BAD_CLAIMS, "jti with a space");
	expect_hs(v, HS_HEADER, claims_text(p, sizeof(p), NOW, NOW + 60,
										",\"jti\":\"0123456789012345678901234567890123456789012345678901234567890123\""),
			  JWT_OK, "jti of 64 characters");
	expect_hs(v, HS_HEADER, claims_text(p, sizeof(p), NOW, NOW + 60,
										",\"jti\":\"01234567890123456789012345678901234567890123456789012345678901234\""),
			  JWT_BAD_CLAIMS, "jti of 65 characters");

	expect_hs(v, HS_HEADER, CLAIMS("\"sub\":\"" SUB "\",\"org\":\"" ORG "\",\"iat\":1700000000"),
			  JWT_BAD_CLAIMS, "missing exp");
	expect_hs(v, HS_HEADER, CLAIMS("\"sub\":\"" SUB "\",\"org\":\"" ORG "\",\"exp\":1700000060"),
			  JWT_BAD_CLAIMS, "missing iat");
	expect_hs(v, HS_HEADER, CLAIMS("\"sub\":\"" SUB "\",\"org\":\"" ORG "\",\"iat\":1700000000,\"exp\":\"1700000060\""),
			  JWT_BAD_CLAIMS, "exp as a string");
	expect_hs(v, HS_HEADER, CLAIMS("\"sub\":\"" SUB "\",\"org\":\"" ORG "\",\"iat\":1700000000,\"exp\":null"),
			  JWT_BAD_CLAIMS, "exp null");
	expect_hs(v, HS_HEADER, CLAIMS("\"sub\":\"" SUB "\",\"org\":\"" ORG "\",\"iat\":1700000000,\"exp\":1700000060.5"),
			  JWT_BAD_CLAIMS, "exp with a fraction");
	expect_hs(v, HS_HEADER, CLAIMS("\"sub\":\"" SUB "\",\"org\":\"" ORG "\",\"iat\":1700000000,\"exp\":1700000060.0"),
			  JWT_OK, "exp a real without fraction");
	expect_hs(v, HS_HEADER, CLAIMS("\"sub\":\"" SUB "\",\"org\":\"" ORG "\",\"iat\":1.7e9,\"exp\":1.70000006e9"),
			  JWT_OK, "times in exponent notation");
	expect_hs(v, HS_HEADER, CLAIMS("\"sub\":\"" SUB "\",\"org\":\"" ORG "\",\"iat\":1700000000,\"exp\":1e300"),
			  JWT_BAD_CLAIMS, "exp 1e300");
	expect_hs(v, HS_HEADER, CLAIMS("\"sub\":\"" SUB "\",\"org\":\"" ORG "\",\"iat\":1700000000,\"exp\":253402300800"),
			  JWT_BAD_CLAIMS, "exp after the year 9999");
	expect_hs(v, HS_HEADER, CLAIMS("\"sub\":\"" SUB "\",\"org\":\"" ORG "\",\"iat\":1700000000,\"exp\":9223372036854775807"),
			  JWT_BAD_CLAIMS, "exp LLONG_MAX");
	expect_hs(v, HS_HEADER, CLAIMS("\"sub\":\"" SUB "\",\"org\":\"" ORG "\",\"iat\":1700000000,\"exp\":99999999999999999999"),
			  JWT_MALFORMED, "exp beyond 64 bits (JSON refused)");
	expect_hs(v, HS_HEADER, CLAIMS("\"sub\":\"" SUB "\",\"org\":\"" ORG "\",\"iat\":-1,\"exp\":1700000060"),
			  JWT_BAD_CLAIMS, "negative iat");
	expect_hs(v, HS_HEADER, claims_text(p, sizeof(p), NOW, NOW + 60, ",\"nbf\":\"0\""),
			  JWT_BAD_CLAIMS, "nbf as a string");
#undef CLAIMS
#undef TIMES

	/* upper-case uuids are accepted and come back canonical */
	t = hs_token(HS_HEADER, "{\"sub\":\"6F1C2A4E-8B1D-4C8E-9A57-0D3E4F5A6B7C\",\"org\":\""
				 ORG "\",\"sid\":\"" SID "\",\"jti\":\"j-1\",\"iat\":1700000000,\"exp\":1700000060}",
				 hs_secret);
	err = jwt_verify(v, t, strlen(t), NOW, &c);
	tap_ok(err == JWT_OK && strcmp(c.sub, SUB) == 0 && strcmp(c.org, ORG) == 0 &&
		   strcmp(c.sid, SID) == 0 && strcmp(c.jti, "j-1") == 0 &&
		   c.iat == NOW && c.exp == NOW + 60,
		   "claims copied out, sub lower-cased (got %s, sub %s)", jwt_error_name(err), c.sub);
	free(t);

	t = hs_token(HS_HEADER, claims_text(p, sizeof(p), NOW, NOW + 60, ""), hs_secret);
	err = jwt_verify(v, t, strlen(t), NOW, &c);
	tap_ok(err == JWT_OK && c.sid[0] == '\0' && c.jti[0] == '\0',
		   "absent sid and jti come back empty");
	free(t);

	/* on failure *out is all zeroes, never half-filled */
	t = hs_token(HS_HEADER, "{\"sub\":\"" SUB "\",\"iat\":1700000000,\"exp\":1700000060}",
				 hs_secret);
	memset(&c, 'x', sizeof(c));
	err = jwt_verify(v, t, strlen(t), NOW, &c);
	{
		JwtClaims	zero;

		memset(&zero, 0, sizeof(zero));
		tap_ok(err == JWT_BAD_CLAIMS && memcmp(&c, &zero, sizeof(c)) == 0,
			   "claims zeroed on failure");
	}
	free(t);

	jwt_verifier_free(v);
}

static void
test_sign_refuses(void)
{
	JwtKey		k = hs_key();
	JwtClaims	c = base_claims();
	char	   *t;

	strcpy(c.sub, "not-a-uuid");
	tap_ok(jwt_sign(JWT_HS256, &k, NULL, NULL, &c) == NULL, "sign refuses a non-uuid sub");
	c = base_claims();
	c.org[0] = '\0';
	tap_ok(jwt_sign(JWT_HS256, &k, NULL, NULL, &c) == NULL, "sign refuses an empty org");
	c = base_claims();
	strcpy(c.jti, "with space");
	tap_ok(jwt_sign(JWT_HS256, &k, NULL, NULL, &c) == NULL, "sign refuses a bad jti");
	c = base_claims();
	c.exp = -5;
	tap_ok(jwt_sign(JWT_HS256, &k, NULL, NULL, &c) == NULL, "sign refuses a negative exp");
	c = base_claims();
	tap_ok(jwt_sign(JWT_HS256, &k, "\xff", NULL, &c) == NULL, "sign refuses a non-UTF-8 issuer");
	c = base_claims();
	c.sid[0] = '\0';
	c.jti[0] = '\0';
	t = jwt_sign(JWT_HS256, &k, NULL, NULL, &c);
	{
		const char *dot = strchr(t, '.');
		char		body[512];
		size_t		n = unb64(dot + 1, (size_t) (strchr(dot + 1, '.') - dot - 1),
							  (unsigned char *) body);

		body[n] = '\0';
		tap_ok(strcmp(body, "{\"sub\":\"" SUB "\",\"org\":\"" ORG
					  "\",\"iat\":1699999990,\"exp\":1700003600}") == 0,
			   "empty sid and jti are left out: %s", body);
	}
	free(t);
}

static void
test_misc(void)
{
	JwtKey		k = hs_key();
	JwtVerifier *v = jwt_verifier_create(JWT_HS256, &k, 1, NULL, NULL, LEEWAY);
	char	   *t = sign_with(JWT_HS256, &k, NULL, NULL);
	char	   *bad = flip_sig(t);
	JwtClaims	c;
	JwtError	e;
	bool		names_ok = true;

	tap_ok(jwt_verify(NULL, t, strlen(t), NOW, &c) == JWT_MALFORMED, "NULL verifier");
	tap_ok(jwt_verify(v, NULL, 0, NOW, &c) == JWT_MALFORMED, "NULL token");
	tap_ok(jwt_verify(v, t, strlen(t), NOW, NULL) == JWT_MALFORMED, "NULL claims");

	/* a refused token leaves OpenSSL's per-thread error queue untouched */
	ERR_clear_error();
	ERR_raise_data(ERR_LIB_USER, 1, "caller's error");
	jwt_verify(v, bad, strlen(bad), NOW, &c);
	tap_ok(ERR_peek_last_error() != 0 && ERR_GET_LIB(ERR_peek_last_error()) == ERR_LIB_USER,
		   "error queue left as found");
	ERR_clear_error();

	for (e = JWT_OK; e <= JWT_BAD_CLAIMS; e++)
	{
		JwtError	f;

		if (strcmp(jwt_error_name(e), "unknown") == 0)
			names_ok = false;
		for (f = JWT_OK; f < e; f++)
			if (strcmp(jwt_error_name(e), jwt_error_name(f)) == 0)
				names_ok = false;
	}
	tap_ok(names_ok && strcmp(jwt_error_name(JWT_EXPIRED), "expired") == 0,
		   "every error has its own name");

	free(t);
	free(bad);
	jwt_verifier_free(v);
}

#define THREADS		4
#define ROUNDS		50

typedef struct ThreadArg
{
	const JwtVerifier *v[3];
	const char *token[3];
	int			failures;
} ThreadArg;

static void *
verify_thread(void *p)
{
	ThreadArg  *a = p;
	int			i;
	int			j;

	for (i = 0; i < ROUNDS; i++)
		for (j = 0; j < 3; j++)
		{
			JwtClaims	c;

			if (jwt_verify(a->v[j], a->token[j], strlen(a->token[j]), NOW, &c) != JWT_OK ||
				strcmp(c.sub, SUB) != 0)
				a->failures++;
		}
	return NULL;
}

/* One verifier per algorithm, shared by several threads at once. */
static void
test_threads(void)
{
	JwtKey		keys[3] = {hs_key(), pkey_key(NULL, ec_key), pkey_key(NULL, rsa_key)};
	JwtAlg		algs[3] = {JWT_HS256, JWT_ES256, JWT_RS256};
	JwtVerifier *v[3];
	char	   *tokens[3];
	pthread_t	th[THREADS];
	ThreadArg	args[THREADS];
	int			failures = 0;
	int			i;
	int			j;

	for (j = 0; j < 3; j++)
	{
		v[j] = jwt_verifier_create(algs[j], &keys[j], 1, NULL, NULL, LEEWAY);
		tokens[j] = sign_with(algs[j], &keys[j], NULL, NULL);
	}
	for (i = 0; i < THREADS; i++)
	{
		for (j = 0; j < 3; j++)
		{
			args[i].v[j] = v[j];
			args[i].token[j] = tokens[j];
		}
		args[i].failures = 0;
		pthread_create(&th[i], NULL, verify_thread, &args[i]);
	}
	for (i = 0; i < THREADS; i++)
	{
		pthread_join(th[i], NULL);
		failures += args[i].failures;
	}
	tap_ok(failures == 0, "%d threads share the verifiers (%d failures)", THREADS, failures);
	for (j = 0; j < 3; j++)
	{
		jwt_verifier_free(v[j]);
		free(tokens[j]);
	}
}

/*
 * pk_token returns a token of the header and payload JSON texts as given,
 * signed ES256 or RS256 (by pkey's type) with pkey (malloc'd).
 */
static char *
pk_token(const char *header, const char *payload, EVP_PKEY *pkey)
{
	char	   *h = b64(header, strlen(header));
	char	   *p = b64(payload, strlen(payload));
	char	   *input = join(h, p, "");
	bool		rsa = EVP_PKEY_is_a(pkey, "RSA");
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char der[600];
	unsigned char raw[64];
	size_t		n = sizeof(der);
	char	   *s;
	char	   *token;

	input[strlen(input) - 1] = '\0';
	EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, pkey);
	EVP_DigestSign(md, der, &n, (unsigned char *) input, strlen(input));
	EVP_MD_CTX_free(md);
	if (rsa)
		s = b64(der, n);
	else
	{
		const unsigned char *q = der;
		ECDSA_SIG  *es = d2i_ECDSA_SIG(NULL, &q, (long) n);

		BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, 32);
		BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + 32, 32);
		ECDSA_SIG_free(es);
		s = b64(raw, 64);
	}
	token = join(h, p, s);
	free(h);
	free(p);
	free(s);
	free(input);
	return token;
}

/*
 * test_mixed: a verifier of public keys of both types (rotation from ES256
 * to RS256) pins each key's algorithm by its type.
 */
static void
test_mixed(void)
{
	EVP_PKEY   *ec_pub = public_only(ec_key);
	EVP_PKEY   *rsa_small = EVP_RSA_gen(1024);
	EVP_PKEY   *p384 = EVP_EC_gen("P-384");
	JwtKey		keys[2] = {pkey_key("e1", ec_pub), pkey_key("r1", rsa_key)};
	JwtKey		bad[2];
	JwtVerifier *v = jwt_verifier_create_public(keys, 2, NULL, NULL, LEEWAY, JWT_MODE_ACCESS);
	JwtVerifier *one;
	JwtKey		k;
	JwtAlg		alg = JWT_HS256;
	char	   *t;
	char		buf[512];
	unsigned char *der = NULL;
	int			der_len;

	tap_ok(v != NULL, "mixed: an EC and an RSA public key in one verifier");
	k = pkey_key("e1", ec_key);
	t = sign_with(JWT_ES256, &k, NULL, NULL);
	expect(v, t, JWT_OK, "mixed: an ES256 token of kid e1");
	free(t);
	k = pkey_key("r1", rsa_key);
	t = sign_with(JWT_RS256, &k, NULL, NULL);
	expect(v, t, JWT_OK, "mixed: an RS256 token of kid r1");
	free(t);
	/* the header names the other key's algorithm: never tried */
	k = pkey_key("e1", rsa_key);
	t = sign_with(JWT_RS256, &k, NULL, NULL);
	expect(v, t, JWT_BAD_ALG, "mixed: RS256 with the kid of the EC key");
	free(t);
	k = pkey_key("r1", ec_key);
	t = sign_with(JWT_ES256, &k, NULL, NULL);
	expect(v, t, JWT_BAD_ALG, "mixed: ES256 with the kid of the RSA key");
	free(t);
	/* key confusion: HS256 keyed with the RSA public key's bytes */
	der_len = i2d_PUBKEY(rsa_key, &der);
	{
		char	   *h = b64("{\"alg\":\"HS256\",\"kid\":\"r1\"}", 26);
		char	   *pl = b64(claims_text(buf, sizeof(buf), NOW - 10, NOW + 60, ""), strlen(buf));
		char	   *in = join(h, pl, "");
		unsigned char mac[32];
		unsigned int mac_len = 0;
		char	   *sg;

		in[strlen(in) - 1] = '\0';
		HMAC(EVP_sha256(), der, der_len, (unsigned char *) in, strlen(in), mac, &mac_len);
		sg = b64(mac, mac_len);
		t = join(h, pl, sg);
		expect(v, t, JWT_BAD_ALG, "mixed: HS256 keyed with the RSA public key");
		free(t);
		free(sg);
		free(in);
		free(pl);
		free(h);
	}
	OPENSSL_free(der);
	t = pk_token("{\"alg\":\"none\",\"kid\":\"e1\"}", claims_text(buf, sizeof(buf), NOW - 10, NOW + 60, ""), ec_key);
	expect(v, t, JWT_BAD_ALG, "mixed: alg none");
	free(t);
	t = pk_token("{\"alg\":\"ES256\",\"kid\":\"zz\"}", claims_text(buf, sizeof(buf), NOW - 10, NOW + 60, ""), ec_key);
	expect(v, t, JWT_UNKNOWN_KID, "mixed: an unknown kid");
	free(t);
	t = pk_token("{\"alg\":\"ES256\"}", claims_text(buf, sizeof(buf), NOW - 10, NOW + 60, ""), ec_key);
	expect(v, t, JWT_UNKNOWN_KID, "mixed: no kid among two keys with kids");
	free(t);
	t = pk_token("{\"alg\":\"ES256\",\"kid\":\"e1\"}", claims_text(buf, sizeof(buf), NOW - 10, NOW + 60, ""), ec_key2);
	expect(v, t, JWT_BAD_SIGNATURE, "mixed: ES256 by another EC key");
	free(t);
	jwt_verifier_free(v);

	keys[0] = pkey_key(NULL, ec_key);
	one = jwt_verifier_create_public(keys, 1, NULL, NULL, LEEWAY, JWT_MODE_ACCESS);
	k = pkey_key(NULL, ec_key);
	t = sign_with(JWT_ES256, &k, NULL, NULL);
	expect(one, t, JWT_OK, "one EC key (a private key): ES256 without kid");
	free(t);
	k = pkey_key(NULL, rsa_key);
	t = sign_with(JWT_RS256, &k, NULL, NULL);
	expect(one, t, JWT_BAD_ALG, "one EC key: RS256 is not among its algorithms");
	free(t);
	jwt_verifier_free(one);

	bad[0] = hs_key();
	tap_ok(jwt_verifier_create_public(bad, 1, NULL, NULL, 0, JWT_MODE_ACCESS) == NULL,
		   "create_public: an HS256 secret is refused (HS256 stays exclusive)");
	bad[0] = pkey_key("a", rsa_small);
	tap_ok(jwt_verifier_create_public(bad, 1, NULL, NULL, 0, JWT_MODE_ACCESS) == NULL,
		   "create_public: a 1024-bit RSA key is refused");
	bad[0] = pkey_key("a", p384);
	tap_ok(jwt_verifier_create_public(bad, 1, NULL, NULL, 0, JWT_MODE_ACCESS) == NULL,
		   "create_public: a P-384 key is refused");
	bad[0] = pkey_key("a", ec_key);
	bad[1] = pkey_key("a", rsa_key);
	tap_ok(jwt_verifier_create_public(bad, 2, NULL, NULL, 0, JWT_MODE_ACCESS) == NULL,
		   "create_public: two keys under one kid are refused");
	tap_ok(jwt_verifier_create_public(bad, 0, NULL, NULL, 0, JWT_MODE_ACCESS) == NULL &&
		   jwt_verifier_create_public(NULL, 1, NULL, NULL, 0, JWT_MODE_ACCESS) == NULL,
		   "create_public: no keys");
	tap_ok(jwt_key_alg(ec_key, &alg) && alg == JWT_ES256 &&
		   jwt_key_alg(rsa_key, &alg) && alg == JWT_RS256 &&
		   !jwt_key_alg(p384, &alg) && !jwt_key_alg(rsa_small, &alg) && !jwt_key_alg(NULL, &alg),
		   "jwt_key_alg: EC P-256 ES256, RSA RS256, nothing else");
	EVP_PKEY_free(p384);
	EVP_PKEY_free(rsa_small);
	EVP_PKEY_free(ec_pub);
}

/* ext_payload writes the claims of an external token with sub as JSON text. */
static const char *
ext_payload(char *buf, size_t size, const char *sub_json, const char *extra)
{
	snprintf(buf, size, "{\"iss\":\"https://idp.example\",\"sub\":%s,\"iat\":%lld,\"exp\":%lld%s}",
			 sub_json, NOW - 10, NOW + 600, extra);
	return buf;
}

/* expect_ext signs an external token with pkey and checks it gives want. */
static void
expect_ext(const JwtVerifier *v, const char *header, const char *payload, EVP_PKEY *pkey,
		   JwtError want, const char *label)
{
	char	   *t = pk_token(header, payload, pkey);

	expect(v, t, want, label);
	free(t);
}

/* test_external: tokens of an external identity provider (JWT_MODE_EXTERNAL). */
static void
test_external(void)
{
	JwtKey		keys[2] = {pkey_key("idp-ec", ec_key), pkey_key("idp-rsa", rsa_key)};
	JwtVerifier *v = jwt_verifier_create_public(keys, 2, "https://idp.example", NULL, LEEWAY,
												JWT_MODE_EXTERNAL);
	JwtVerifier *va = jwt_verifier_create_public(keys, 2, "https://idp.example", "client-1", LEEWAY,
												 JWT_MODE_EXTERNAL);
	JwtVerifier *own = jwt_verifier_create_public(keys, 2, NULL, NULL, LEEWAY, JWT_MODE_ACCESS);
	const char *ec_h = "{\"alg\":\"ES256\",\"kid\":\"idp-ec\",\"typ\":\"JWT\"}";
	const char *rs_h = "{\"alg\":\"RS256\",\"kid\":\"idp-rsa\"}";
	char		buf[1024];
	char		sub[300];
	char	   *t;
	JwtClaims	c;
	JwtKey		nokid = pkey_key(NULL, ec_key);

	tap_ok(v != NULL && va != NULL, "external: a verifier of the provider's keys");
	tap_ok(jwt_verifier_create_public(keys, 2, NULL, NULL, 0, JWT_MODE_EXTERNAL) == NULL,
		   "external: an issuer is required");
	tap_ok(jwt_verifier_create_public(&nokid, 1, "https://idp.example", NULL, 0, JWT_MODE_EXTERNAL) == NULL,
		   "external: every key needs a kid");

	t = pk_token(ec_h, ext_payload(buf, sizeof(buf), "\"user_2abc|Zx 9\"", ",\"aud\":\"client-1\""), ec_key);
	tap_ok(jwt_verify(v, t, strlen(t), NOW, &c) == JWT_OK &&
		   strcmp(c.ext_sub, "user_2abc|Zx 9") == 0 && c.sub[0] == '\0' && c.org[0] == '\0' &&
		   c.sid[0] == '\0' && c.exp == NOW + 600,
		   "external: ES256, the raw sub in ext_sub, no sub/org/sid");
	expect(va, t, JWT_OK, "external with audience client-1: aud client-1");
	free(t);
	expect_ext(v, rs_h, ext_payload(buf, sizeof(buf), "\"rsa-user\"", ""), rsa_key, JWT_OK,
			   "external: RS256, no aud (not configured, not required)");
	expect_ext(own, rs_h, ext_payload(buf, sizeof(buf), "\"rsa-user\"", ""), rsa_key, JWT_BAD_CLAIMS,
			   "the same token to a gateway-mode verifier: sub is not a uuid");
	expect_ext(va, rs_h, ext_payload(buf, sizeof(buf), "\"rsa-user\"", ""), rsa_key, JWT_BAD_AUDIENCE,
			   "external with audience: no aud");
	expect_ext(va, rs_h, ext_payload(buf, sizeof(buf), "\"rsa-user\"", ",\"aud\":\"client-2\""), rsa_key,
			   JWT_BAD_AUDIENCE, "external with audience: another client's token");
	expect_ext(va, rs_h, ext_payload(buf, sizeof(buf), "\"rsa-user\"", ",\"aud\":[\"x\",\"client-1\"]"),
			   rsa_key, JWT_OK, "external with audience: an aud array naming it");
	expect_ext(v, "{\"alg\":\"ES256\"}", ext_payload(buf, sizeof(buf), "\"u\"", ""), ec_key,
			   JWT_UNKNOWN_KID, "external: a token without kid");
	expect_ext(v, "{\"alg\":\"RS256\",\"kid\":\"idp-ec\"}", ext_payload(buf, sizeof(buf), "\"u\"", ""),
			   rsa_key, JWT_BAD_ALG, "external: RS256 under the EC key's kid");
	snprintf(buf, sizeof(buf), "{\"iss\":\"https://evil.example\",\"sub\":\"u\",\"iat\":%lld,\"exp\":%lld}",
			 NOW - 10, NOW + 600);
	expect_ext(v, ec_h, buf, ec_key, JWT_BAD_ISSUER, "external: another issuer");
	snprintf(buf, sizeof(buf), "{\"sub\":\"u\",\"iat\":%lld,\"exp\":%lld}", NOW - 10, NOW + 600);
	expect_ext(v, ec_h, buf, ec_key, JWT_BAD_ISSUER, "external: no issuer");
	snprintf(buf, sizeof(buf), "{\"iss\":\"https://idp.example\",\"sub\":\"u\",\"iat\":%lld,\"exp\":%lld}",
			 NOW - 700, NOW - 600);
	expect_ext(v, ec_h, buf, ec_key, JWT_EXPIRED, "external: expired");

	memset(sub, 'a', sizeof(sub));
	sub[0] = '"';
	sub[256] = '"';
	sub[257] = '\0';
	expect_ext(v, ec_h, ext_payload(buf, sizeof(buf), sub, ""), ec_key, JWT_OK, "external: a sub of 255 bytes");
	sub[256] = 'a';
	sub[257] = '"';
	sub[258] = '\0';
	expect_ext(v, ec_h, ext_payload(buf, sizeof(buf), sub, ""), ec_key, JWT_BAD_CLAIMS, "external: a sub of 256 bytes");
	expect_ext(v, ec_h, ext_payload(buf, sizeof(buf), "\"\"", ""), ec_key, JWT_BAD_CLAIMS, "external: an empty sub");
	expect_ext(v, ec_h, ext_payload(buf, sizeof(buf), "42", ""), ec_key, JWT_BAD_CLAIMS, "external: a numeric sub");
	expect_ext(v, ec_h, ext_payload(buf, sizeof(buf), "\"a\\u0000b\"", ""), ec_key, JWT_MALFORMED,
			   "external: a NUL byte in sub (the JSON parser refuses it)");
	expect_ext(v, ec_h, ext_payload(buf, sizeof(buf), "\"a\\nb\"", ""), ec_key, JWT_BAD_CLAIMS,
			   "external: a control character in sub");
	snprintf(buf, sizeof(buf), "{\"iss\":\"https://idp.example\",\"iat\":%lld,\"exp\":%lld}", NOW - 10, NOW + 600);
	expect_ext(v, ec_h, buf, ec_key, JWT_BAD_CLAIMS, "external: no sub");
	expect_ext(v, ec_h, ext_payload(buf, sizeof(buf), "\"\xc3\xa9l\xc3\xa8ve\"", ""), ec_key, JWT_OK,
			   "external: a UTF-8 sub");
	jwt_verifier_free(own);
	jwt_verifier_free(va);
	jwt_verifier_free(v);
}

int
main(void)
{
	if (RAND_bytes(hs_secret, sizeof(hs_secret)) != 1 ||
		RAND_bytes(hs_other, sizeof(hs_other)) != 1 ||
		(ec_key = EVP_EC_gen("P-256")) == NULL ||
		(ec_key2 = EVP_EC_gen("P-256")) == NULL ||
		(rsa_key = EVP_RSA_gen(2048)) == NULL)
	{
		printf("Bail out! cannot generate keys\n");
		return 1;
	}

	test_create();
	test_round_trips();
	test_ownership();
	test_times();
	test_alg();
	test_signature();
	test_es256_range();
	test_issuer_audience();
	test_kid();
	test_size_and_garbage();
	test_duplicates();
	test_claims();
	test_sign_refuses();
	test_misc();
	test_threads();
	test_mixed();
	test_external();

	EVP_PKEY_free(ec_key);
	EVP_PKEY_free(ec_key2);
	EVP_PKEY_free(rsa_key);
	return tap_done();
}
