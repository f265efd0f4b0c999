/*
 * config.h
 *		The gateway's settings, read once from the environment at start-up.
 */
#ifndef CONFIG_H
#define CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include <openssl/evp.h>

typedef enum ConfigJwtAlg
{
	CONFIG_JWT_HS256,
	CONFIG_JWT_ES256,
	CONFIG_JWT_RS256
} ConfigJwtAlg;

/* Where Redis is, parsed from IAM_REDIS_URL. */
typedef struct ConfigRedis
{
	char	   *host;			/* without IPv6 brackets */
	int			port;
	char	   *username;		/* NULL unless given (Redis 6 ACL user) */
	char	   *password;		/* NULL unless given */
	int			db;
} ConfigRedis;

/* A trusted proxy network (IAM_TRUSTED_PROXIES): address and prefix length. */
typedef struct ConfigCidr
{
	int			family;			/* AF_INET or AF_INET6 */
	unsigned char addr[16];
	int			bits;
} ConfigCidr;

/* One extra JWT verification key (IAM_JWT_VERIFY_KEYS), for key rotation. */
typedef struct ConfigJwtKey
{
	char	   *kid;
	EVP_PKEY   *pkey;			/* ES256/RS256 public (or private) key */
	unsigned char *secret;		/* HS256 secret */
	size_t		secret_len;
} ConfigJwtKey;

/*
 * Config is read-only once loaded and shared by every thread.  Strings are
 * NUL-terminated and owned by the Config; config_free releases them.
 */
typedef struct Config
{
	char	   *database_url;	/* secret: holds a password; never log it */
	char	  **read_database_urls; /* NULL-terminated; empty when unset */
	int			n_read_database_urls;

	bool		redis_enabled;	/* IAM_REDIS_URL set */
	ConfigRedis redis;

	char	   *listen;			/* normalised "host:port" / "[v6]:port" */
	struct sockaddr_storage listen_addr;
	socklen_t	listen_addrlen;

	ConfigJwtAlg jwt_alg;
	char	   *jwt_key_file;	/* NULL when unset */
	EVP_PKEY   *jwt_pkey;		/* ES256/RS256 private key, or NULL */
	unsigned char *jwt_secret;	/* HS256 secret, or NULL */
	size_t		jwt_secret_len;
	char	   *jwt_issuer;		/* NULL when unset */
	char	   *jwt_audience;	/* NULL when unset */
	char	   *jwt_kid;		/* kid of the signing key; NULL when unset */
	int			jwt_leeway;		/* seconds of clock skew allowed */
	ConfigJwtKey *jwt_verify_keys;	/* IAM_JWT_VERIFY_KEYS */
	int			n_jwt_verify_keys;
	int			jwt_cache_size; /* IAM_JWT_CACHE_SIZE: verified tokens kept; 0: off */

	/* an external identity provider (IAM_OIDC_*); n_oidc_keys 0: none */
	char	   *oidc_jwks_file; /* NULL when unset */
	ConfigJwtKey *oidc_keys;	/* kid and public key of each usable JWK */
	int			n_oidc_keys;
	char	   *oidc_issuer;	/* required with a JWKS file */
	char	   *oidc_audience;	/* NULL: aud not checked */

	char	  **cors_origins;	/* exact origins allowed; none when unset */
	int			n_cors_origins;

	int			access_ttl;		/* seconds */
	int			refresh_ttl;	/* seconds */
	int			threads;
	int			db_pool_size;
	int			idle_timeout;	/* seconds: IAM_CONNECTION_TIMEOUT (alias IAM_IDLE_TIMEOUT) */
	int			shutdown_timeout;	/* seconds */

	/* rate limiting, load shedding and the response cache (#7) */
	bool		rate_limit;		/* IAM_RATE_LIMIT on|off */
	bool		rate_limit_fail_closed; /* IAM_RATE_LIMIT_FAIL closed: 503 without Redis */
	ConfigCidr *trusted_proxies;	/* IAM_TRUSTED_PROXIES */
	int			n_trusted_proxies;
	int			redis_timeout_ms;	/* IAM_REDIS_TIMEOUT_MS: connect and command */
	int			rate_limit_lease_ms;	/* IAM_RATE_LIMIT_LEASE_MS; 0: no leases */
	int			max_db_waiters; /* IAM_MAX_DB_WAITERS; 0: unbounded */
	bool		cache;			/* IAM_CACHE on|off */
	int			cache_ttl;		/* IAM_CACHE_TTL seconds */
	int			cache_l1_mb;	/* IAM_CACHE_L1_MB */
	int			cache_poll_ms;	/* IAM_CACHE_POLL_MS: versions polled this often */
} Config;

/*
 * config_load reads the IAM_* settings from envp, an environ-style array of
 * "NAME=value" strings ended by NULL (the first match wins, as with getenv).
 * A setting that is absent or empty takes its default.
 *
 * Returns a Config the caller releases with config_free.  On a missing or bad
 * setting (or out of memory) returns NULL and sets *errmsg to one line that
 * names the setting, e.g. `IAM_THREADS: "abc" is not an integer between 1
 * and 256`; the caller frees *errmsg with free() (it is NULL only when even
 * the message could not be allocated).  Messages never contain
 * the value of IAM_DATABASE_URL, IAM_READ_DATABASE_URLS or IAM_REDIS_URL,
 * which may hold passwords.
 */
extern Config *config_load(const char *const *envp, char **errmsg);

/*
 * config_free releases cfg and everything it owns, wiping the JWT secret and
 * the passwords first.  cfg may be NULL.
 */
extern void config_free(Config *cfg);

/* config_jwt_alg_name returns "HS256", "ES256" or "RS256" (static storage). */
extern const char *config_jwt_alg_name(ConfigJwtAlg alg);

#endif							/* CONFIG_H */
