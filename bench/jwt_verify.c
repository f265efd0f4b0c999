/*
 * jwt_verify.c
 *		Token verifications per second for bench/auth.sh: HS256, ES256 and
 *		RS256 through gateway/jwt.c, each without and with the verified-token
 *		cache (gateway/jwtcache.c) in front, as api.c uses them.  Built by
 *		bench/auth.sh against gateway/build/release.
 *
 *	usage: jwt_verify SECONDS_PER_MEASURE
 *	prints: ALG MODE VERIFIES_PER_SECOND MICROSECONDS_PER_VERIFY
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "jwt.h"
#include "jwtcache.h"

static double
seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* measure verifies token for about duration seconds; returns verifies per second. */
static double
measure(const JwtVerifier *v, JwtCache *cache, const char *token, double duration)
{
	size_t		len = strlen(token);
	long long	now = (long long) time(NULL);
	double		t0 = seconds();
	double		t;
	long		n = 0;

	do
	{
		for (int i = 0; i < 100; i++)
		{
			JwtClaims	c;

			if (jwtcache_get(cache, token, len, now, &c))
				continue;
			if (jwt_verify(v, token, len, now, &c) != JWT_OK)
			{
				fprintf(stderr, "jwt_verify failed\n");
				exit(1);
			}
			jwtcache_put(cache, token, len, now, &c);
		}
		n += 100;
		t = seconds() - t0;
	} while (t < duration);
	return (double) n / t;
}

int
main(int argc, char **argv)
{
	double		duration = argc > 1 ? atof(argv[1]) : 2.0;
	unsigned char secret[32];
	EVP_PKEY   *ec = EVP_EC_gen("P-256");
	EVP_PKEY   *rsa = EVP_RSA_gen(2048);
	struct
	{
		const char *name;
		JwtAlg		alg;
		JwtKey		key;
	}			algs[] = {
		{"HS256", JWT_HS256, {"k1", NULL, secret, sizeof(secret)}},
		{"ES256", JWT_ES256, {"k1", ec, NULL, 0}},
		{"RS256", JWT_RS256, {"k1", rsa, NULL, 0}},
	};
	JwtClaims	claims;

	memset(secret, 0x5a, sizeof(secret));
	memset(&claims, 0, sizeof(claims));
	strcpy(claims.sub, "6f1c2a4e-8b1d-4c8e-9a57-0d3e4f5a6b7c");
	strcpy(claims.org, "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d");
	strcpy(claims.sid, "11111111-2222-4333-8444-555555555555");
	strcpy(claims.jti, "0123456789abcdef0123456789abcdef");
	claims.iat = (long long) time(NULL);
	claims.exp = claims.iat + 3600;
	for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++)
	{
		JwtVerifier *v = jwt_verifier_create(algs[i].alg, &algs[i].key, 1, NULL, NULL, 30);
		JwtCache   *cache = jwtcache_create(10000);
		char	   *token = jwt_sign(algs[i].alg, &algs[i].key, NULL, NULL, &claims);
		double		plain,
					cached;

		if (v == NULL || cache == NULL || token == NULL)
		{
			fprintf(stderr, "%s: cannot set up\n", algs[i].name);
			return 1;
		}
		plain = measure(v, NULL, token, duration);
		cached = measure(v, cache, token, duration);
		printf("%s verify %.0f %.2f\n", algs[i].name, plain, 1e6 / plain);
		printf("%s cached %.0f %.2f\n", algs[i].name, cached, 1e6 / cached);
		free(token);
		jwtcache_free(cache);
		jwt_verifier_free(v);
	}
	EVP_PKEY_free(ec);
	EVP_PKEY_free(rsa);
	return 0;
}
