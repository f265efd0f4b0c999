/*
 * test_config.c
 *		Unit tests for config_load: defaults, every setting's bad values,
 *		JWT key files generated here with OpenSSL, and that messages stay
 *		on one line and never show a password.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "auth.h"
#include "config.h"
#include "tap.h"

#define SECRET	"s3cretpw"
#define DB		"IAM_DATABASE_URL=postgresql://iam:" SECRET "@localhost:5432/iam"

#define ENV(...)	((const char *const[]) {__VA_ARGS__, NULL})

static char tmpdir[] = "/tmp/test_config.XXXXXX";

/*
 * rejects loads env and checks that it fails with one line that names
 * setting and does not contain the test password.
 */
static bool
rejects(const char *setting, const char *const *env, const char *label)
{
	char	   *err = NULL;
	Config	   *cfg = config_load(env, &err);
	bool		ok = cfg == NULL && err != NULL &&
		strncmp(err, setting, strlen(setting)) == 0 &&
		err[strlen(setting)] == ':' &&
		strchr(err, '\n') == NULL && strchr(err, '\r') == NULL &&
		strstr(err, SECRET) == NULL;

	tap_ok(ok, "%s rejected: %s", setting, label);
	if (err != NULL)
		tap_diag("%s", err);
	config_free(cfg);
	free(err);
	return ok;
}

/* accepts loads env and returns the Config (caller frees), or NULL. */
static Config *
accepts(const char *const *env, const char *label)
{
	char	   *err = NULL;
	Config	   *cfg = config_load(env, &err);

	tap_ok(cfg != NULL, "accepted: %s", label);
	if (err != NULL)
		tap_diag("unexpected error: %s", err);
	free(err);
	return cfg;
}

static char *
tmp_path(const char *name)
{
	static char paths[16][256];
	static int	n;
	char	   *p = paths[n++ % 16];

	snprintf(p, 256, "%s/%s", tmpdir, name);
	return p;
}

static void
write_bytes(const char *path, const char *data, size_t len)
{
	FILE	   *f = fopen(path, "wb");

	fwrite(data, 1, len, f);
	fclose(f);
}

/* write_pem writes pkey as PEM (encrypted with pass when not NULL). */
static void
write_pem(const char *path, EVP_PKEY *pkey, const char *pass)
{
	FILE	   *f = fopen(path, "w");

	if (pass != NULL)
		PEM_write_PrivateKey(f, pkey, EVP_aes_256_cbc(),
							 (const unsigned char *) pass, (int) strlen(pass),
							 NULL, NULL);
	else
		PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	EVP_PKEY_free(pkey);
}

static char *
env_kv(const char *name, const char *value)
{
	static char bufs[32][512];
	static int	n;
	char	   *b = bufs[n++ % 32];

	snprintf(b, 512, "%s=%s", name, value);
	return b;
}

static void
test_defaults(void)
{
	Config	   *cfg = accepts(ENV(DB), "only IAM_DATABASE_URL");
	long		cpus = sysconf(_SC_NPROCESSORS_ONLN);
	int			want_threads = cpus < 1 ? 4 : cpus * 4 > 256 ? 256 : (int) cpus * 4;

	if (cfg == NULL)
		return;
	tap_ok(strcmp(cfg->listen, "127.0.0.1:8080") == 0, "IAM_LISTEN defaults to 127.0.0.1:8080");
	tap_ok(cfg->listen_addr.ss_family == AF_INET, "default listen address is IPv4");
	tap_ok(cfg->jwt_alg == CONFIG_JWT_ES256, "IAM_JWT_ALG defaults to ES256");
	tap_ok(cfg->jwt_key_file == NULL && cfg->jwt_pkey == NULL && cfg->jwt_secret == NULL,
		   "no JWT key by default");
	tap_ok(cfg->jwt_issuer == NULL && cfg->jwt_audience == NULL, "no issuer/audience by default");
	tap_ok(cfg->access_ttl == 3600, "IAM_ACCESS_TTL defaults to 3600");
	tap_ok(cfg->refresh_ttl == 604800, "IAM_REFRESH_TTL defaults to 604800");
	tap_ok(cfg->threads == want_threads, "IAM_THREADS defaults to four per online CPU (%d)", want_threads);
	tap_ok(cfg->db_pool_size == cfg->threads, "IAM_DB_POOL_SIZE defaults to IAM_THREADS");
	tap_ok(cfg->idle_timeout == 30, "IAM_IDLE_TIMEOUT defaults to 30");
	tap_ok(cfg->shutdown_timeout == 10, "IAM_SHUTDOWN_TIMEOUT defaults to 10");
	tap_ok(!cfg->redis_enabled, "Redis not configured by default");
	tap_ok(cfg->n_read_database_urls == 0 && cfg->read_database_urls != NULL &&
		   cfg->read_database_urls[0] == NULL, "no read replicas by default");
	tap_ok(strcmp(cfg->database_url, "postgresql://iam:" SECRET "@localhost:5432/iam") == 0,
		   "IAM_DATABASE_URL kept verbatim");
	config_free(cfg);

	cfg = accepts(ENV(DB, "IAM_THREADS=", "IAM_LISTEN=", "IAM_REDIS_URL="),
				  "empty values mean unset");
	if (cfg != NULL)
		tap_ok(cfg->threads == want_threads && !cfg->redis_enabled &&
			   strcmp(cfg->listen, "127.0.0.1:8080") == 0,
			   "empty values take the defaults");
	config_free(cfg);

	cfg = accepts(ENV(DB, "IAM_THREADS=3", "IAM_THREADS=5"), "duplicate entries");
	if (cfg != NULL)
		tap_ok(cfg->threads == 3, "the first duplicate wins, as with getenv");
	config_free(cfg);
}

static void
test_integers(void)
{
	static const struct
	{
		const char *name;
		const char *too_small;
	}			ints[] = {
		{"IAM_ACCESS_TTL", "0"},
		{"IAM_REFRESH_TTL", "0"},
		{"IAM_THREADS", "0"},
		{"IAM_DB_POOL_SIZE", "0"},
		{"IAM_IDLE_TIMEOUT", "0"},
		{"IAM_SHUTDOWN_TIMEOUT", "-1"},
	};
	static const char *const bad[] = {
		"abc", " 5", "5 ", "5x", "+", "-", "0x10", "1e3", "1.5",
		"99999999999999999999", "1\n2",
	};
	char	   *err = NULL;
	Config	   *cfg;

	for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++)
	{
		for (size_t j = 0; j < sizeof(bad) / sizeof(bad[0]); j++)
			rejects(ints[i].name, ENV(DB, env_kv(ints[i].name, bad[j])), bad[j][1] == '\n' ? "1\\n2" : bad[j]);
		rejects(ints[i].name, ENV(DB, env_kv(ints[i].name, ints[i].too_small)), ints[i].too_small);
	}
	rejects("IAM_THREADS", ENV(DB, "IAM_THREADS=257"), "257");
	rejects("IAM_DB_POOL_SIZE", ENV(DB, "IAM_DB_POOL_SIZE=1025"), "1025");

	cfg = config_load(ENV(DB, "IAM_THREADS=abc"), &err);
	tap_ok(cfg == NULL && err != NULL &&
		   strcmp(err, "IAM_THREADS: \"abc\" is not an integer between 1 and 256") == 0,
		   "IAM_THREADS message is exactly as documented");
	config_free(cfg);
	free(err);

	rejects("IAM_REFRESH_TTL", ENV(DB, "IAM_ACCESS_TTL=7200", "IAM_REFRESH_TTL=3600"),
			"shorter than IAM_ACCESS_TTL");

	cfg = accepts(ENV(DB, "IAM_ACCESS_TTL=60", "IAM_REFRESH_TTL=120", "IAM_THREADS=4",
					  "IAM_DB_POOL_SIZE=7", "IAM_IDLE_TIMEOUT=5", "IAM_SHUTDOWN_TIMEOUT=0"),
				  "every integer set");
	if (cfg != NULL)
		tap_ok(cfg->access_ttl == 60 && cfg->refresh_ttl == 120 && cfg->threads == 4 &&
			   cfg->db_pool_size == 7 && cfg->idle_timeout == 5 && cfg->shutdown_timeout == 0,
			   "integer settings read back");
	config_free(cfg);
}

static void
test_database(void)
{
	Config	   *cfg;

	rejects("IAM_DATABASE_URL", ENV("IAM_THREADS=2"), "missing");
	rejects("IAM_DATABASE_URL", ENV("IAM_DATABASE_URL="), "empty");
	rejects("IAM_DATABASE_URL",
			ENV("IAM_DATABASE_URL=postgresql://iam:" SECRET "@localhost/iam?bogus_option=1"),
			"unknown URI parameter, password not shown");
	rejects("IAM_DATABASE_URL",
			ENV("IAM_DATABASE_URL=host=localhost password=" SECRET " junk"),
			"broken key=value string, password not shown");
	rejects("IAM_DATABASE_URL", ENV("IAM_DATABASE_URL=" SECRET), "a bare word");

	cfg = accepts(ENV("IAM_DATABASE_URL=host=/tmp port=5432 dbname=iam"), "key=value form");
	config_free(cfg);

	cfg = accepts(ENV(DB, "IAM_READ_DATABASE_URLS=postgresql://r1/iam, postgresql://r2:5433/iam"),
				  "two read replicas");
	if (cfg != NULL)
		tap_ok(cfg->n_read_database_urls == 2 &&
			   strcmp(cfg->read_database_urls[0], "postgresql://r1/iam") == 0 &&
			   strcmp(cfg->read_database_urls[1], "postgresql://r2:5433/iam") == 0 &&
			   cfg->read_database_urls[2] == NULL,
			   "read replicas split at commas and trimmed");
	config_free(cfg);
	rejects("IAM_READ_DATABASE_URLS",
			ENV(DB, "IAM_READ_DATABASE_URLS=postgresql://r1/iam,postgresql://u:" SECRET "@r2/iam?nope=1"),
			"bad second entry, password not shown");
	rejects("IAM_READ_DATABASE_URLS",
			ENV(DB, "IAM_READ_DATABASE_URLS=postgresql://r1/iam,,postgresql://r2/iam"),
			"empty entry");
}

static void
test_redis(void)
{
	static const char *const bad[] = {
		"http://:" SECRET "@host",
		"rediss://:" SECRET "@host",
		"redis://:" SECRET "@host:99999",
		"redis://:" SECRET "@host:0",
		"redis://:" SECRET "@host:",
		"redis://:" SECRET "@host:12ab",
		"redis://:" SECRET "@host/abc",
		"redis://:" SECRET "@host/-1",
		"redis://:" SECRET "@",
		"redis://" SECRET "@host",
		"redis://:" SECRET "@host?db=1",
		"redis://:" SECRET "%zz@host",
		"redis://:" SECRET "@[::1",
		"redis://:" SECRET "@[nothost]:6379",
		"redis://:" SECRET "@ho st",
	};
	Config	   *cfg;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		rejects("IAM_REDIS_URL", ENV(DB, env_kv("IAM_REDIS_URL", bad[i])),
				"malformed URL, password not shown");

	cfg = accepts(ENV(DB, "IAM_REDIS_URL=redis://localhost"), "redis://localhost");
	if (cfg != NULL)
		tap_ok(cfg->redis_enabled && strcmp(cfg->redis.host, "localhost") == 0 &&
			   cfg->redis.port == 6379 && cfg->redis.db == 0 &&
			   cfg->redis.password == NULL && cfg->redis.username == NULL,
			   "host only: port 6379, db 0, no password");
	config_free(cfg);

	cfg = accepts(ENV(DB, "IAM_REDIS_URL=redis://:pw@127.0.0.1:6380/2"), "password, port, db");
	if (cfg != NULL)
		tap_ok(strcmp(cfg->redis.host, "127.0.0.1") == 0 && cfg->redis.port == 6380 &&
			   cfg->redis.db == 2 && strcmp(cfg->redis.password, "pw") == 0 &&
			   cfg->redis.username == NULL,
			   "password, port and db parsed");
	config_free(cfg);

	cfg = accepts(ENV(DB, "IAM_REDIS_URL=redis://app:p%40ss@[::1]:7000/"), "user, encoded password, IPv6");
	if (cfg != NULL)
		tap_ok(strcmp(cfg->redis.host, "::1") == 0 && cfg->redis.port == 7000 &&
			   strcmp(cfg->redis.username, "app") == 0 &&
			   strcmp(cfg->redis.password, "p@ss") == 0 && cfg->redis.db == 0,
			   "user, %%-decoded password and [IPv6] host parsed");
	config_free(cfg);
}

static void
test_listen(void)
{
	static const char *const bad[] = {
		"8080", ":8080", "localhost:8080", "127.0.0.1", "127.0.0.1:", "127.0.0.1:0",
		"127.0.0.1:65536", "127.0.0.1:80x", "127.0.0.1:-1", "256.1.1.1:80",
		"127.0.0.1:8080:1", "::1:8080", "[::1]8080", "[::1", "[::1]:", "[zz]:80",
		"[127.0.0.1]:80",
	};
	Config	   *cfg;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		rejects("IAM_LISTEN", ENV(DB, env_kv("IAM_LISTEN", bad[i])), bad[i]);

	cfg = accepts(ENV(DB, "IAM_LISTEN=0.0.0.0:9000"), "0.0.0.0:9000");
	if (cfg != NULL)
		tap_ok(strcmp(cfg->listen, "0.0.0.0:9000") == 0 &&
			   ntohs(((struct sockaddr_in *) &cfg->listen_addr)->sin_port) == 9000,
			   "IPv4 address and port parsed");
	config_free(cfg);
	cfg = accepts(ENV(DB, "IAM_LISTEN=[0:0::1]:8081"), "[0:0::1]:8081");
	if (cfg != NULL)
		tap_ok(strcmp(cfg->listen, "[::1]:8081") == 0 &&
			   cfg->listen_addr.ss_family == AF_INET6,
			   "IPv6 address parsed and normalised");
	config_free(cfg);
}

static void
test_jwt(void)
{
	char		secret[64];
	Config	   *cfg;
	const char *short_key = tmp_path("short.key");
	const char *hs_key = tmp_path("hs256.key");
	const char *p256 = tmp_path("p256.pem");
	const char *p384 = tmp_path("p384.pem");
	const char *rsa2048 = tmp_path("rsa2048.pem");
	const char *rsa1024 = tmp_path("rsa1024.pem");
	const char *enc = tmp_path("encrypted.pem");
	const char *garbage = tmp_path("garbage.pem");

	memset(secret, 'k', sizeof(secret));
	write_bytes(short_key, secret, 31);
	write_bytes(hs_key, secret, 32);
	write_pem(p256, EVP_EC_gen("P-256"), NULL);
	write_pem(p384, EVP_EC_gen("P-384"), NULL);
	write_pem(rsa2048, EVP_RSA_gen(2048), NULL);
	write_pem(rsa1024, EVP_RSA_gen(1024), NULL);
	write_pem(enc, EVP_EC_gen("P-256"), "passphrase");
	write_bytes(garbage, "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n", 58);

	rejects("IAM_JWT_ALG", ENV(DB, "IAM_JWT_ALG=hs256"), "lower case");
	rejects("IAM_JWT_ALG", ENV(DB, "IAM_JWT_ALG=none"), "none");
	rejects("IAM_JWT_ALG", ENV(DB, "IAM_JWT_ALG=HS512"), "HS512");

	rejects("IAM_JWT_KEY_FILE", ENV(DB, "IAM_JWT_ALG=HS256",
									env_kv("IAM_JWT_KEY_FILE", tmp_path("missing"))), "missing file");
	rejects("IAM_JWT_KEY_FILE", ENV(DB, "IAM_JWT_ALG=HS256",
									env_kv("IAM_JWT_KEY_FILE", tmpdir)), "a directory");
	rejects("IAM_JWT_KEY_FILE", ENV(DB, "IAM_JWT_ALG=HS256",
									env_kv("IAM_JWT_KEY_FILE", short_key)), "HS256 secret of 31 bytes");
	cfg = accepts(ENV(DB, "IAM_JWT_ALG=HS256", env_kv("IAM_JWT_KEY_FILE", hs_key)),
				  "HS256 secret of 32 bytes");
	if (cfg != NULL)
		tap_ok(cfg->jwt_alg == CONFIG_JWT_HS256 && cfg->jwt_secret_len == 32 &&
			   memcmp(cfg->jwt_secret, secret, 32) == 0 && cfg->jwt_pkey == NULL,
			   "HS256 secret loaded byte for byte");
	config_free(cfg);

	cfg = accepts(ENV(DB, env_kv("IAM_JWT_KEY_FILE", p256)), "ES256 (default) with a P-256 key");
	if (cfg != NULL)
		tap_ok(cfg->jwt_pkey != NULL && EVP_PKEY_is_a(cfg->jwt_pkey, "EC") &&
			   cfg->jwt_secret == NULL, "P-256 key kept as an EVP_PKEY");
	config_free(cfg);
	rejects("IAM_JWT_KEY_FILE", ENV(DB, "IAM_JWT_ALG=ES256", env_kv("IAM_JWT_KEY_FILE", rsa2048)),
			"RSA key for ES256");
	rejects("IAM_JWT_KEY_FILE", ENV(DB, "IAM_JWT_ALG=ES256", env_kv("IAM_JWT_KEY_FILE", p384)),
			"P-384 key for ES256");
	rejects("IAM_JWT_KEY_FILE", ENV(DB, "IAM_JWT_ALG=ES256", env_kv("IAM_JWT_KEY_FILE", hs_key)),
			"raw secret for ES256");
	rejects("IAM_JWT_KEY_FILE", ENV(DB, "IAM_JWT_ALG=ES256", env_kv("IAM_JWT_KEY_FILE", garbage)),
			"broken PEM");
	rejects("IAM_JWT_KEY_FILE", ENV(DB, "IAM_JWT_ALG=ES256", env_kv("IAM_JWT_KEY_FILE", enc)),
			"encrypted PEM (refused without prompting)");

	cfg = accepts(ENV(DB, "IAM_JWT_ALG=RS256", env_kv("IAM_JWT_KEY_FILE", rsa2048)),
				  "RS256 with a 2048-bit key");
	if (cfg != NULL)
		tap_ok(cfg->jwt_pkey != NULL && EVP_PKEY_get_bits(cfg->jwt_pkey) == 2048,
			   "RSA key kept as an EVP_PKEY");
	config_free(cfg);
	rejects("IAM_JWT_KEY_FILE", ENV(DB, "IAM_JWT_ALG=RS256", env_kv("IAM_JWT_KEY_FILE", rsa1024)),
			"1024-bit RSA key for RS256");
	rejects("IAM_JWT_KEY_FILE", ENV(DB, "IAM_JWT_ALG=RS256", env_kv("IAM_JWT_KEY_FILE", p256)),
			"EC key for RS256");

	rejects("IAM_JWT_ISSUER", ENV(DB, "IAM_JWT_ISSUER=bad\x01issuer"), "control character");
	rejects("IAM_JWT_ISSUER", ENV(DB, "IAM_JWT_ISSUER=bad\xffissuer"), "invalid UTF-8");
	rejects("IAM_JWT_AUDIENCE", ENV(DB, "IAM_JWT_AUDIENCE=line\nbreak"), "newline");
	cfg = accepts(ENV(DB, "IAM_JWT_ISSUER=https://iam.example.com", "IAM_JWT_AUDIENCE=admin-ui"),
				  "issuer and audience");
	if (cfg != NULL)
		tap_ok(strcmp(cfg->jwt_issuer, "https://iam.example.com") == 0 &&
			   strcmp(cfg->jwt_audience, "admin-ui") == 0, "issuer and audience kept");
	config_free(cfg);

	unlink(short_key);
	unlink(hs_key);
	unlink(p256);
	unlink(p384);
	unlink(rsa2048);
	unlink(rsa1024);
	unlink(enc);
	unlink(garbage);
}

/* test_issue5 covers the settings of the REST core: leeway, kid, extra
 * verification keys, CORS origins, connection timeout. */
static void
test_issue5(void)
{
	Config	   *cfg;
	const char *p256 = tmp_path("v-p256.pem");
	const char *p256b = tmp_path("v-p256b.pem");
	const char *pub = tmp_path("v-pub.pem");
	const char *rsa = tmp_path("v-rsa.pem");
	const char *hs = tmp_path("v-hs.key");
	const char *hs_short = tmp_path("v-hs-short.key");
	EVP_PKEY   *k = EVP_EC_gen("P-256");
	FILE	   *f = fopen(pub, "w");
	char		keys[1024];

	PEM_write_PUBKEY(f, k);
	fclose(f);
	EVP_PKEY_free(k);
	write_pem(p256, EVP_EC_gen("P-256"), NULL);
	write_pem(p256b, EVP_EC_gen("P-256"), NULL);
	write_pem(rsa, EVP_RSA_gen(2048), NULL);
	write_bytes(hs, "0123456789abcdef0123456789abcdef!", 33);
	write_bytes(hs_short, "short", 5);

	cfg = accepts(ENV(DB), "defaults of the REST settings");
	if (cfg != NULL)
		tap_ok(cfg->jwt_leeway == 30 && cfg->jwt_kid == NULL && cfg->n_jwt_verify_keys == 0 &&
			   cfg->n_cors_origins == 0 && cfg->idle_timeout == 30,
			   "IAM_JWT_LEEWAY 30, no kid, no extra keys, no CORS, connection timeout 30");
	config_free(cfg);

	cfg = accepts(ENV(DB, "IAM_JWT_LEEWAY=0", "IAM_CONNECTION_TIMEOUT=7", "IAM_JWT_KID=key-2026.a_1"),
				  "leeway, connection timeout and kid");
	if (cfg != NULL)
		tap_ok(cfg->jwt_leeway == 0 && cfg->idle_timeout == 7 && strcmp(cfg->jwt_kid, "key-2026.a_1") == 0,
			   "values kept");
	config_free(cfg);
	cfg = accepts(ENV(DB, "IAM_IDLE_TIMEOUT=9"), "IAM_IDLE_TIMEOUT still works");
	if (cfg != NULL)
		tap_ok(cfg->idle_timeout == 9, "IAM_IDLE_TIMEOUT is the fallback of IAM_CONNECTION_TIMEOUT");
	config_free(cfg);
	rejects("IAM_JWT_LEEWAY", ENV(DB, "IAM_JWT_LEEWAY=-1"), "negative leeway");
	rejects("IAM_JWT_LEEWAY", ENV(DB, "IAM_JWT_LEEWAY=3601"), "leeway over an hour");
	rejects("IAM_CONNECTION_TIMEOUT", ENV(DB, "IAM_CONNECTION_TIMEOUT=0"), "zero timeout");
	rejects("IAM_JWT_KID", ENV(DB, "IAM_JWT_KID=has space"), "space in kid");
	rejects("IAM_JWT_KID", ENV(DB, "IAM_JWT_KID=\"quoted\""), "quote in kid");

	snprintf(keys, sizeof(keys), "old=%s, new=%s", pub, p256b);
	cfg = accepts(ENV(DB, env_kv("IAM_JWT_KEY_FILE", p256), env_kv("IAM_JWT_VERIFY_KEYS", keys)),
				  "two ES256 verification keys (a public key and a private one)");
	if (cfg != NULL)
		tap_ok(cfg->n_jwt_verify_keys == 2 && strcmp(cfg->jwt_verify_keys[0].kid, "old") == 0 &&
			   strcmp(cfg->jwt_verify_keys[1].kid, "new") == 0 &&
			   cfg->jwt_verify_keys[0].pkey != NULL && cfg->jwt_verify_keys[1].pkey != NULL,
			   "kids and keys kept in order");
	config_free(cfg);
	snprintf(keys, sizeof(keys), "old=%s", hs);
	cfg = accepts(ENV(DB, "IAM_JWT_ALG=HS256", env_kv("IAM_JWT_VERIFY_KEYS", keys)),
				  "an HS256 verification secret");
	if (cfg != NULL)
		tap_ok(cfg->n_jwt_verify_keys == 1 && cfg->jwt_verify_keys[0].secret_len == 33,
			   "the secret is read raw");
	config_free(cfg);
	snprintf(keys, sizeof(keys), "old=%s", hs_short);
	rejects("IAM_JWT_VERIFY_KEYS", ENV(DB, "IAM_JWT_ALG=HS256", env_kv("IAM_JWT_VERIFY_KEYS", keys)),
			"a short HS256 secret");
	snprintf(keys, sizeof(keys), "old=%s", rsa);
	cfg = accepts(ENV(DB, env_kv("IAM_JWT_KEY_FILE", p256), env_kv("IAM_JWT_VERIFY_KEYS", keys)),
				  "an RSA verification key next to an ES256 signing key (rotation across algorithms)");
	if (cfg != NULL)
		tap_ok(cfg->n_jwt_verify_keys == 1 && EVP_PKEY_is_a(cfg->jwt_verify_keys[0].pkey, "RSA"),
			   "the RSA key is kept");
	config_free(cfg);
	snprintf(keys, sizeof(keys), "old=%s", p256);
	cfg = accepts(ENV(DB, "IAM_JWT_ALG=RS256", env_kv("IAM_JWT_KEY_FILE", rsa), env_kv("IAM_JWT_VERIFY_KEYS", keys)),
				  "an EC verification key next to an RS256 signing key");
	config_free(cfg);
	{
		const char *ed = tmp_path("v-ed25519.pem");

		write_pem(ed, EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"), NULL);
		snprintf(keys, sizeof(keys), "old=%s", ed);
		rejects("IAM_JWT_VERIFY_KEYS", ENV(DB, env_kv("IAM_JWT_VERIFY_KEYS", keys)), "an Ed25519 key");
		unlink(ed);
	}
	snprintf(keys, sizeof(keys), "a=%s,a=%s", pub, p256b);
	rejects("IAM_JWT_VERIFY_KEYS", ENV(DB, env_kv("IAM_JWT_VERIFY_KEYS", keys)), "a kid used twice");
	snprintf(keys, sizeof(keys), "cur=%s", pub);
	rejects("IAM_JWT_VERIFY_KEYS", ENV(DB, "IAM_JWT_KID=cur", env_kv("IAM_JWT_VERIFY_KEYS", keys)),
			"a kid equal to IAM_JWT_KID");
	rejects("IAM_JWT_VERIFY_KEYS", ENV(DB, env_kv("IAM_JWT_VERIFY_KEYS", pub)), "no kid=");
	rejects("IAM_JWT_VERIFY_KEYS", ENV(DB, "IAM_JWT_VERIFY_KEYS=k=/nonexistent.pem"), "a missing file");
	snprintf(keys, sizeof(keys), "k=%s", hs);
	rejects("IAM_JWT_VERIFY_KEYS", ENV(DB, env_kv("IAM_JWT_VERIFY_KEYS", keys)), "not a PEM key");

	cfg = accepts(ENV(DB, "IAM_CORS_ORIGINS=https://admin.example.com, http://localhost:3000,http://[::1]:8081"),
				  "three CORS origins");
	if (cfg != NULL)
		tap_ok(cfg->n_cors_origins == 3 && strcmp(cfg->cors_origins[0], "https://admin.example.com") == 0 &&
			   strcmp(cfg->cors_origins[1], "http://localhost:3000") == 0 &&
			   strcmp(cfg->cors_origins[2], "http://[::1]:8081") == 0, "origins kept, trimmed");
	config_free(cfg);
	rejects("IAM_CORS_ORIGINS", ENV(DB, "IAM_CORS_ORIGINS=*"), "a wildcard");
	rejects("IAM_CORS_ORIGINS", ENV(DB, "IAM_CORS_ORIGINS=https://a.example.com/"), "a trailing slash");
	rejects("IAM_CORS_ORIGINS", ENV(DB, "IAM_CORS_ORIGINS=admin.example.com"), "no scheme");
	rejects("IAM_CORS_ORIGINS", ENV(DB, "IAM_CORS_ORIGINS=https://a.example.com,,https://b.example.com"),
			"an empty entry");
	rejects("IAM_CORS_ORIGINS", ENV(DB, "IAM_CORS_ORIGINS=ftp://a.example.com"), "another scheme");
	rejects("IAM_CORS_ORIGINS", ENV(DB, "IAM_CORS_ORIGINS=https://a.example.com:123456"), "a bad port");

	unlink(p256);
	unlink(p256b);
	unlink(pub);
	unlink(rsa);
	unlink(hs);
	unlink(hs_short);
}

/* test_oidc covers the external identity provider and the token cache size (#6). */
static void
test_oidc(void)
{
	const char *jwks = tmp_path("oidc.json");
	const char *bad = tmp_path("oidc-bad.json");
	EVP_PKEY   *ec = EVP_EC_gen("P-256");
	EVP_PKEY   *rsa = EVP_RSA_gen(2048);
	json_t	   *doc = json_pack("{s:[o,o]}", "keys", auth_jwk(ec, "idp-1"), auth_jwk(rsa, "idp-2"));
	char	   *text = json_dumps(doc, 0);
	Config	   *cfg;

	write_bytes(jwks, text, strlen(text));
	{
		const char *short_point = "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AA\",\"y\":\"AA\",\"kid\":\"k\"}]}";

		write_bytes(bad, short_point, strlen(short_point));
	}
	free(text);
	json_decref(doc);

	cfg = accepts(ENV(DB), "no external provider by default");
	if (cfg != NULL)
		tap_ok(cfg->n_oidc_keys == 0 && cfg->oidc_issuer == NULL && cfg->jwt_cache_size == 10000,
			   "no provider keys; IAM_JWT_CACHE_SIZE 10000");
	config_free(cfg);
	cfg = accepts(ENV(DB, env_kv("IAM_OIDC_JWKS_FILE", jwks), "IAM_OIDC_ISSUER=https://idp.example",
					  "IAM_OIDC_AUDIENCE=client-1", "IAM_JWT_CACHE_SIZE=0"),
				  "a provider's JWKS file, issuer and audience; the token cache off");
	if (cfg != NULL)
		tap_ok(cfg->n_oidc_keys == 2 && strcmp(cfg->oidc_keys[0].kid, "idp-1") == 0 &&
			   EVP_PKEY_eq(cfg->oidc_keys[0].pkey, ec) == 1 && strcmp(cfg->oidc_keys[1].kid, "idp-2") == 0 &&
			   EVP_PKEY_eq(cfg->oidc_keys[1].pkey, rsa) == 1 &&
			   strcmp(cfg->oidc_issuer, "https://idp.example") == 0 &&
			   strcmp(cfg->oidc_audience, "client-1") == 0 && cfg->jwt_cache_size == 0,
			   "both keys read with their kids; issuer, audience, cache size kept");
	config_free(cfg);
	rejects("IAM_OIDC_ISSUER", ENV(DB, env_kv("IAM_OIDC_JWKS_FILE", jwks)), "a JWKS file without issuer");
	rejects("IAM_OIDC_JWKS_FILE", ENV(DB, "IAM_OIDC_ISSUER=https://idp.example"), "an issuer without keys");
	rejects("IAM_OIDC_JWKS_FILE", ENV(DB, env_kv("IAM_OIDC_JWKS_FILE", bad), "IAM_OIDC_ISSUER=https://idp.example"),
			"a JWKS with a malformed key");
	rejects("IAM_OIDC_JWKS_FILE", ENV(DB, "IAM_OIDC_JWKS_FILE=/nonexistent.json", "IAM_OIDC_ISSUER=https://idp.example"),
			"a missing JWKS file");
	rejects("IAM_OIDC_ISSUER", ENV(DB, env_kv("IAM_OIDC_JWKS_FILE", jwks), "IAM_OIDC_ISSUER=https://iam.example",
								   "IAM_JWT_ISSUER=https://iam.example"), "the gateway's own issuer");
	rejects("IAM_JWT_CACHE_SIZE", ENV(DB, "IAM_JWT_CACHE_SIZE=-1"), "a negative cache size");
	unlink(jwks);
	unlink(bad);
	EVP_PKEY_free(ec);
	EVP_PKEY_free(rsa);
}

int
main(void)
{
	if (mkdtemp(tmpdir) == NULL)
	{
		perror("mkdtemp");
		return 1;
	}
	test_defaults();
	test_integers();
	test_database();
	test_redis();
	test_listen();
	test_jwt();
	test_issue5();
	test_oidc();
	rmdir(tmpdir);
	return tap_done();
}
