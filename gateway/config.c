/*
 * config.c
 *		Configuration from the environment.
 *
 * Everything is checked here, once, before the first socket is bound, so a
 * typo stops start-up with one line naming the setting instead of surfacing
 * later as a failing request.  The settings that may hold passwords
 * (IAM_DATABASE_URL, IAM_READ_DATABASE_URLS, IAM_REDIS_URL) are never
 * echoed, not even the libpq parser's message about them, which quotes the
 * offending text.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <libpq-fe.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>

#include "jwk.h"

#define DEFAULT_LISTEN				"127.0.0.1:8080"
#define DEFAULT_REDIS_PORT			6379
#define MAX_THREADS					256
#define THREADS_PER_CPU				4	/* default IAM_THREADS per online CPU */
#define HS256_MIN_SECRET			32
#define RS256_MIN_BITS				2048
#define KEY_FILE_MAX_BYTES			(1024 * 1024)
#define CLAIM_MAX_BYTES				1024
#define QUOTED_MAX					64	/* bytes of a bad value we echo */

#define REDIS_URL_FORM	"redis://[[user]:password@]host[:port][/db]"
#define SECRET_NOTE		"value not shown: it may hold a password"

/*
 * config_error sets *errmsg to a newly allocated message.  On allocation
 * failure *errmsg is NULL, which config_load's callers report as such.
 */
static void config_error(char **errmsg, const char *fmt,...)
			__attribute__((format(printf, 2, 3)));

static void
config_error(char **errmsg, const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	if (vasprintf(errmsg, fmt, ap) < 0)
		*errmsg = NULL;
	va_end(ap);
}

/*
 * quote writes value into buf as "value", with control and non-ASCII bytes
 * shown as '?' and long values cut, so an echoed value keeps the message on
 * one printable line.  Only for settings that cannot hold secrets.
 */
static const char *
quote(const char *value, char *buf, size_t size)
{
	size_t		i;
	size_t		o = 0;

	buf[o++] = '"';
	for (i = 0; value[i] != '\0' && o + 5 < size; i++)
	{
		unsigned char c = (unsigned char) value[i];

		if (i == QUOTED_MAX)
		{
			memcpy(buf + o, "...", 3);
			o += 3;
			break;
		}
		buf[o++] = (c < 0x20 || c >= 0x7F) ? '?' : (char) c;
	}
	buf[o++] = '"';
	buf[o] = '\0';
	return buf;
}

#define QUOTE_BUFSIZE	(QUOTED_MAX + 8)

/* env_get returns the value of name in envp, or NULL when absent or empty. */
static const char *
env_get(const char *const *envp, const char *name)
{
	size_t		len = strlen(name);

	for (; envp != NULL && *envp != NULL; envp++)
	{
		if (strncmp(*envp, name, len) == 0 && (*envp)[len] == '=')
		{
			const char *value = *envp + len + 1;

			return value[0] != '\0' ? value : NULL;
		}
	}
	return NULL;
}

/*
 * parse_int_strict parses all of s as a decimal integer in [min, max]:
 * no leading blanks, no trailing characters, no overflow.
 */
static bool
parse_int_strict(const char *s, long min, long max, long *out)
{
	char	   *end;
	long		v;

	if (!(isdigit((unsigned char) s[0]) ||
		  ((s[0] == '-' || s[0] == '+') && isdigit((unsigned char) s[1]))))
		return false;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return false;
	*out = v;
	return true;
}

/* config_int reads integer setting name, or def when unset. */
static int
config_int(const char *const *envp, const char *name, int def, int min,
		   int max, int *out, char **errmsg)
{
	const char *value = env_get(envp, name);
	long		v;
	char		q[QUOTE_BUFSIZE];

	if (value == NULL)
	{
		*out = def;
		return 0;
	}
	if (!parse_int_strict(value, min, max, &v))
	{
		config_error(errmsg, "%s: %s is not an integer between %d and %d",
					 name, quote(value, q, sizeof(q)), min, max);
		return -1;
	}
	*out = (int) v;
	return 0;
}

/*
 * config_strdup copies value into *out for the setting name; -1 with
 * "NAME: out of memory" in *errmsg when it cannot.
 */
static int
config_strdup(const char *name, const char *value, char **out, char **errmsg)
{
	if ((*out = strdup(value)) == NULL)
	{
		config_error(errmsg, "%s: out of memory", name);
		return -1;
	}
	return 0;
}

/* config_text copies an optional free-text setting (a JWT claim). */
static int
config_text(const char *const *envp, const char *name, char **out,
			char **errmsg)
{
	const char *value = env_get(envp, name);
	json_t	   *probe;
	size_t		i;

	*out = NULL;
	if (value == NULL)
		return 0;
	/* json_string refuses invalid UTF-8, which could not go into a JWT */
	probe = json_string(value);
	if (probe == NULL || strlen(value) > CLAIM_MAX_BYTES)
	{
		json_decref(probe);
		config_error(errmsg, "%s: must be UTF-8 text of at most %d bytes",
					 name, CLAIM_MAX_BYTES);
		return -1;
	}
	json_decref(probe);
	for (i = 0; value[i] != '\0'; i++)
	{
		if ((unsigned char) value[i] < 0x20 || value[i] == 0x7F)
		{
			config_error(errmsg, "%s: must not contain control characters",
						 name);
			return -1;
		}
	}
	return config_strdup(name, value, out, errmsg);
}

/* conninfo_is_valid asks libpq whether s parses, discarding its message. */
static bool
conninfo_is_valid(const char *s)
{
	char	   *err = NULL;
	PQconninfoOption *opts = PQconninfoParse(s, &err);

	/* err quotes the input, which may contain a password: never show it */
	if (err != NULL)
		PQfreemem(err);
	if (opts == NULL)
		return false;
	PQconninfoFree(opts);
	return true;
}

static int
config_database(const char *const *envp, Config *cfg, char **errmsg)
{
	const char *value = env_get(envp, "IAM_DATABASE_URL");

	if (value == NULL)
	{
		config_error(errmsg, "IAM_DATABASE_URL: not set (e.g. postgresql://iam@localhost:5432/iam)");
		return -1;
	}
	if (!conninfo_is_valid(value))
	{
		config_error(errmsg, "IAM_DATABASE_URL: not a valid PostgreSQL connection URI or key=value string (" SECRET_NOTE ")");
		return -1;
	}
	return config_strdup("IAM_DATABASE_URL", value, &cfg->database_url, errmsg);
}

/*
 * config_read_databases splits IAM_READ_DATABASE_URLS at commas.  A libpq
 * multi-host URI (which uses commas itself) cannot be an entry here; list
 * each replica on its own instead.
 */
static int
config_read_databases(const char *const *envp, Config *cfg, char **errmsg)
{
	const char *value = env_get(envp, "IAM_READ_DATABASE_URLS");
	const char *p;
	int			n = 1;

	if (value == NULL)
		value = "";
	for (p = value; *p != '\0'; p++)
		if (*p == ',')
			n++;
	cfg->read_database_urls = calloc((size_t) n + 1, sizeof(char *));
	if (cfg->read_database_urls == NULL)
	{
		config_error(errmsg, "IAM_READ_DATABASE_URLS: out of memory");
		return -1;
	}
	if (value[0] == '\0')
		return 0;

	p = value;
	for (int i = 0; i < n; i++)
	{
		const char *end = strchr(p, ',');
		size_t		len = end != NULL ? (size_t) (end - p) : strlen(p);
		char	   *entry;

		while (len > 0 && isspace((unsigned char) *p))
			p++, len--;
		while (len > 0 && isspace((unsigned char) p[len - 1]))
			len--;
		if (len == 0)
		{
			config_error(errmsg, "IAM_READ_DATABASE_URLS: entry %d is empty (expected comma-separated connection URIs)", i + 1);
			return -1;
		}
		if ((entry = strndup(p, len)) == NULL)
		{
			config_error(errmsg, "IAM_READ_DATABASE_URLS: out of memory");
			return -1;
		}
		cfg->read_database_urls[cfg->n_read_database_urls++] = entry;
		if (!conninfo_is_valid(entry))
		{
			config_error(errmsg, "IAM_READ_DATABASE_URLS: entry %d is not a valid PostgreSQL connection URI or key=value string (" SECRET_NOTE ")", i + 1);
			return -1;
		}
		p = end != NULL ? end + 1 : p + len;
	}
	return 0;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * percent_decode returns a new string holding s[0..len) with %XX decoded, or
 * NULL (with *bad set when the encoding, not memory, was at fault).
 */
static char *
percent_decode(const char *s, size_t len, bool *bad)
{
	char	   *out = malloc(len + 1);
	size_t		i,
				o = 0;

	*bad = false;
	if (out == NULL)
		return NULL;
	for (i = 0; i < len; i++)
	{
		if (s[i] == '%')
		{
			/* %00 would cut the string short; refuse it with bad escapes */
			if (i + 2 >= len || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0 ||
				(s[i + 1] == '0' && s[i + 2] == '0'))
			{
				OPENSSL_cleanse(out, len + 1);
				free(out);
				*bad = true;
				return NULL;
			}
			out[o++] = (char) (hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
			i += 2;
		}
		else
			out[o++] = s[i];
	}
	out[o] = '\0';
	return out;
}

/* redis_error reports a bad IAM_REDIS_URL without echoing it. */
#define redis_error(errmsg, what) \
	config_error(errmsg, "IAM_REDIS_URL: %s (expected " REDIS_URL_FORM "; " SECRET_NOTE ")", what)

static bool
is_host_name(const char *s, size_t len)
{
	size_t		i;

	for (i = 0; i < len; i++)
	{
		if (!(isalnum((unsigned char) s[i]) || s[i] == '.' || s[i] == '-' ||
			  s[i] == '_'))
			return false;
	}
	return len > 0;
}

/*
 * config_redis parses IAM_REDIS_URL.  The user information ends at the last
 * '@', so a password holding '@' or '/' works even unencoded; %XX escapes
 * in it are decoded.
 */
static int
config_redis(const char *const *envp, Config *cfg, char **errmsg)
{
	const char *value = env_get(envp, "IAM_REDIS_URL");
	const char *rest;
	const char *at;
	const char *hp;
	const char *hp_end;
	const char *host;
	size_t		host_len;
	const char *after;
	long		v;
	bool		bad;

	if (value == NULL)
		return 0;
	cfg->redis_enabled = true;
	cfg->redis.port = DEFAULT_REDIS_PORT;
	if (strncasecmp(value, "rediss://", 9) == 0)
	{
		redis_error(errmsg, "TLS (rediss://) is not supported");
		return -1;
	}
	if (strncasecmp(value, "redis://", 8) != 0)
	{
		redis_error(errmsg, "must start with redis://");
		return -1;
	}
	rest = value + 8;

	if ((at = strrchr(rest, '@')) != NULL)
	{
		const char *colon = memchr(rest, ':', (size_t) (at - rest));

		if (colon == NULL)
		{
			redis_error(errmsg, "the part before '@' must be user:password or :password");
			return -1;
		}
		if (colon > rest &&
			(cfg->redis.username = percent_decode(rest, (size_t) (colon - rest), &bad)) == NULL)
			goto decode_failed;
		if (at > colon + 1 &&
			(cfg->redis.password = percent_decode(colon + 1, (size_t) (at - colon - 1), &bad)) == NULL)
			goto decode_failed;
		hp = at + 1;
	}
	else
		hp = rest;

	hp_end = hp + strcspn(hp, "/");
	if (strpbrk(hp, "?#") != NULL)
	{
		redis_error(errmsg, "query strings and fragments are not supported");
		return -1;
	}
	if (hp[0] == '[')
	{
		const char *close = memchr(hp, ']', (size_t) (hp_end - hp));
		char		addr[INET6_ADDRSTRLEN];
		struct in6_addr a6;

		host = hp + 1;
		host_len = close != NULL ? (size_t) (close - host) : 0;
		if (close == NULL || host_len >= sizeof(addr) ||
			(memcpy(addr, host, host_len), addr[host_len] = '\0',
			 inet_pton(AF_INET6, addr, &a6) != 1))
		{
			redis_error(errmsg, "the host is not a valid [IPv6] address");
			return -1;
		}
		after = close + 1;
	}
	else
	{
		host = hp;
		host_len = strcspn(hp, ":/");
		if (!is_host_name(host, host_len))
		{
			redis_error(errmsg, host_len == 0 ? "the host is missing" :
						"the host is not a valid host name or address");
			return -1;
		}
		after = host + host_len;
	}
	if ((cfg->redis.host = strndup(host, host_len)) == NULL)
	{
		config_error(errmsg, "IAM_REDIS_URL: out of memory");
		return -1;
	}

	if (after < hp_end)
	{
		char		port[8];
		size_t		len = (size_t) (hp_end - after - 1);

		if (after[0] != ':' || len == 0 || len >= sizeof(port) ||
			(memcpy(port, after + 1, len), port[len] = '\0',
			 !parse_int_strict(port, 1, 65535, &v)))
		{
			redis_error(errmsg, "the port is not an integer between 1 and 65535");
			return -1;
		}
		cfg->redis.port = (int) v;
	}
	if (*hp_end == '/' && hp_end[1] != '\0')
	{
		if (!parse_int_strict(hp_end + 1, 0, 65535, &v))
		{
			redis_error(errmsg, "the database is not an integer between 0 and 65535");
			return -1;
		}
		cfg->redis.db = (int) v;
	}
	return 0;

decode_failed:
	if (bad)
		redis_error(errmsg, "the user or password has a bad %XX escape");
	else
		config_error(errmsg, "IAM_REDIS_URL: out of memory");
	return -1;
}

/* config_listen parses IAM_LISTEN: "a.b.c.d:port" or "[v6]:port". */
static int
config_listen(const char *const *envp, Config *cfg, char **errmsg)
{
	const char *value = env_get(envp, "IAM_LISTEN");
	char		host[INET6_ADDRSTRLEN];
	const char *host_start;
	size_t		host_len;
	const char *port;
	long		v;
	char		q[QUOTE_BUFSIZE];
	char		norm[INET6_ADDRSTRLEN + 16];
	bool		v6;

	if (value == NULL)
		value = DEFAULT_LISTEN;
	v6 = value[0] == '[';
	if (v6)
	{
		const char *close = strchr(value, ']');

		host_start = value + 1;
		host_len = close != NULL ? (size_t) (close - host_start) : 0;
		port = close != NULL && close[1] == ':' ? close + 2 : NULL;
	}
	else
	{
		const char *colon = strchr(value, ':');

		host_start = value;
		host_len = colon != NULL ? (size_t) (colon - value) : 0;
		port = colon != NULL && strchr(colon + 1, ':') == NULL ? colon + 1 : NULL;
	}
	if (port == NULL || host_len == 0 || host_len >= sizeof(host))
	{
		config_error(errmsg, "IAM_LISTEN: %s is not host:port (e.g. 127.0.0.1:8080 or [::1]:8080)",
					 quote(value, q, sizeof(q)));
		return -1;
	}
	memcpy(host, host_start, host_len);
	host[host_len] = '\0';

	memset(&cfg->listen_addr, 0, sizeof(cfg->listen_addr));
	if (v6)
	{
		struct sockaddr_in6 *sa = (struct sockaddr_in6 *) &cfg->listen_addr;

		sa->sin6_family = AF_INET6;
		cfg->listen_addrlen = sizeof(*sa);
		if (inet_pton(AF_INET6, host, &sa->sin6_addr) != 1)
			goto bad_address;
		inet_ntop(AF_INET6, &sa->sin6_addr, host, sizeof(host));
	}
	else
	{
		struct sockaddr_in *sa = (struct sockaddr_in *) &cfg->listen_addr;

		sa->sin_family = AF_INET;
		cfg->listen_addrlen = sizeof(*sa);
		if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
			goto bad_address;
		inet_ntop(AF_INET, &sa->sin_addr, host, sizeof(host));
	}
	if (!parse_int_strict(port, 1, 65535, &v))
	{
		config_error(errmsg, "IAM_LISTEN: %s has no port between 1 and 65535",
					 quote(value, q, sizeof(q)));
		return -1;
	}
	if (v6)
		((struct sockaddr_in6 *) &cfg->listen_addr)->sin6_port = htons((uint16_t) v);
	else
		((struct sockaddr_in *) &cfg->listen_addr)->sin_port = htons((uint16_t) v);

	snprintf(norm, sizeof(norm), v6 ? "[%s]:%ld" : "%s:%ld", host, v);
	return config_strdup("IAM_LISTEN", norm, &cfg->listen, errmsg);

bad_address:
	config_error(errmsg, "IAM_LISTEN: %s is not a numeric IPv4 address or [IPv6] address with a port (e.g. 127.0.0.1:8080 or [::1]:8080)",
				 quote(value, q, sizeof(q)));
	return -1;
}

const char *
config_jwt_alg_name(ConfigJwtAlg alg)
{
	switch (alg)
	{
		case CONFIG_JWT_HS256:
			return "HS256";
		case CONFIG_JWT_ES256:
			return "ES256";
		case CONFIG_JWT_RS256:
			return "RS256";
	}
	return "?";
}

static int
config_jwt_alg(const char *const *envp, Config *cfg, char **errmsg)
{
	const char *value = env_get(envp, "IAM_JWT_ALG");
	char		q[QUOTE_BUFSIZE];

	/* algorithm names are case-sensitive in JOSE (RFC 7518) */
	if (value == NULL || strcmp(value, "ES256") == 0)
		cfg->jwt_alg = CONFIG_JWT_ES256;
	else if (strcmp(value, "HS256") == 0)
		cfg->jwt_alg = CONFIG_JWT_HS256;
	else if (strcmp(value, "RS256") == 0)
		cfg->jwt_alg = CONFIG_JWT_RS256;
	else
	{
		config_error(errmsg, "IAM_JWT_ALG: %s is not one of HS256, ES256, RS256",
					 quote(value, q, sizeof(q)));
		return -1;
	}
	return 0;
}

/*
 * read_key_file reads all of path into a new buffer (*out, *len) that the
 * caller wipes and frees.  Returns 0, or -1 with *errmsg set.
 */
static int
read_key_file(const char *setting, const char *path, unsigned char **out,
			  size_t *len, char **errmsg)
{
	char		q[QUOTE_BUFSIZE];
	struct stat st;
	unsigned char *buf;
	size_t		got = 0;
	int			fd;

	quote(path, q, sizeof(q));
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
	{
		config_error(errmsg, "%s: cannot read %s: %s", setting, q,
					 strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
		st.st_size > KEY_FILE_MAX_BYTES)
	{
		config_error(errmsg, "%s: %s is not a regular file of at most %d bytes", setting,
					 q, KEY_FILE_MAX_BYTES);
		close(fd);
		return -1;
	}
	if ((buf = malloc((size_t) st.st_size + 1)) == NULL)
	{
		config_error(errmsg, "%s: out of memory", setting);
		close(fd);
		return -1;
	}
	while (got < (size_t) st.st_size)
	{
		ssize_t		n = read(fd, buf + got, (size_t) st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
		{
			config_error(errmsg, "%s: cannot read %s: %s", setting, q,
						 n < 0 ? strerror(errno) : "file shrank while reading");
			OPENSSL_cleanse(buf, got);
			free(buf);
			close(fd);
			return -1;
		}
		got += (size_t) n;
	}
	close(fd);
	*out = buf;
	*len = got;
	return 0;
}

/* no_passphrase stops OpenSSL from prompting on the terminal. */
static int
no_passphrase(char *buf, int size, int rwflag, void *arg)
{
	(void) buf;
	(void) size;
	(void) rwflag;
	*(bool *) arg = true;
	return -1;
}

/* check_pkey verifies that pkey suits alg (ES256: P-256; RS256: RSA ≥ 2048). */
static int
check_pkey(const char *setting, EVP_PKEY *pkey, ConfigJwtAlg alg,
		   const char *q, char **errmsg)
{
	const char *type = EVP_PKEY_get0_type_name(pkey);

	if (type == NULL)
		type = "unknown";
	if (alg == CONFIG_JWT_ES256)
	{
		char		group[80];
		size_t		group_len = 0;
		int			nid = NID_undef;

		if (!EVP_PKEY_is_a(pkey, "EC"))
		{
			config_error(errmsg, "%s: %s holds an %s key, but IAM_JWT_ALG=ES256 needs an EC key on P-256", setting,
						 q, type);
			return -1;
		}
		if (EVP_PKEY_get_group_name(pkey, group, sizeof(group), &group_len) == 1)
		{
			nid = OBJ_txt2nid(group);
			if (nid == NID_undef)
				nid = EC_curve_nist2nid(group);
		}
		else
			strcpy(group, "an unknown curve");
		if (nid != NID_X9_62_prime256v1)
		{
			config_error(errmsg, "%s: %s holds an EC key on %s, but IAM_JWT_ALG=ES256 needs P-256 (prime256v1)", setting,
						 q, group);
			return -1;
		}
	}
	else
	{
		if (!EVP_PKEY_is_a(pkey, "RSA"))
		{
			config_error(errmsg, "%s: %s holds an %s key, but IAM_JWT_ALG=RS256 needs an RSA key", setting,
						 q, type);
			return -1;
		}
		if (EVP_PKEY_get_bits(pkey) < RS256_MIN_BITS)
		{
			config_error(errmsg, "%s: %s holds a %d-bit RSA key; IAM_JWT_ALG=RS256 needs at least %d bits", setting,
						 q, EVP_PKEY_get_bits(pkey), RS256_MIN_BITS);
			return -1;
		}
	}
	return 0;
}

/*
 * config_jwt_key loads IAM_JWT_KEY_FILE for the chosen algorithm: the raw
 * bytes as the HS256 secret (nothing is trimmed, a trailing newline is part
 * of the secret), or an unencrypted PEM private key for ES256/RS256.
 */
static int
config_jwt_key(const char *const *envp, Config *cfg, char **errmsg)
{
	const char *path = env_get(envp, "IAM_JWT_KEY_FILE");
	unsigned char *data;
	size_t		len;
	char		q[QUOTE_BUFSIZE];
	BIO		   *bio;
	bool		encrypted = false;

	if (path == NULL)
		return 0;
	if ((cfg->jwt_key_file = strdup(path)) == NULL)
	{
		config_error(errmsg, "IAM_JWT_KEY_FILE: out of memory");
		return -1;
	}
	if (read_key_file("IAM_JWT_KEY_FILE", path, &data, &len, errmsg) != 0)
		return -1;
	quote(path, q, sizeof(q));

	if (cfg->jwt_alg == CONFIG_JWT_HS256)
	{
		if (len < HS256_MIN_SECRET)
		{
			config_error(errmsg, "IAM_JWT_KEY_FILE: %s holds %zu bytes; an HS256 secret needs at least %d",
						 q, len, HS256_MIN_SECRET);
			OPENSSL_cleanse(data, len);
			free(data);
			return -1;
		}
		cfg->jwt_secret = data;
		cfg->jwt_secret_len = len;
		return 0;
	}

	bio = BIO_new_mem_buf(data, (int) len);
	if (bio != NULL)
	{
		cfg->jwt_pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, &encrypted);
		BIO_free(bio);
	}
	OPENSSL_cleanse(data, len);
	free(data);
	ERR_clear_error();
	if (cfg->jwt_pkey == NULL)
	{
		if (encrypted)
			config_error(errmsg, "IAM_JWT_KEY_FILE: %s is encrypted; give an unencrypted PEM private key",
						 q);
		else
			config_error(errmsg, "IAM_JWT_KEY_FILE: %s is not a PEM private key (IAM_JWT_ALG=%s)",
						 q, config_jwt_alg_name(cfg->jwt_alg));
		return -1;
	}
	return check_pkey("IAM_JWT_KEY_FILE", cfg->jwt_pkey, cfg->jwt_alg, q, errmsg);
}

/* is_kid tells whether s is a usable key id: 1..64 of [A-Za-z0-9._-]. */
static bool
is_kid(const char *s, size_t len)
{
	if (len == 0 || len > 64)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!(isalnum((unsigned char) s[i]) || s[i] == '.' || s[i] == '_' || s[i] == '-'))
			return false;
	return true;
}

static int
config_jwt_kid(const char *const *envp, Config *cfg, char **errmsg)
{
	const char *value = env_get(envp, "IAM_JWT_KID");
	char		q[QUOTE_BUFSIZE];

	if (value == NULL)
		return 0;
	if (!is_kid(value, strlen(value)))
	{
		config_error(errmsg, "IAM_JWT_KID: %s is not 1 to 64 of the characters A-Z a-z 0-9 . _ -",
					 quote(value, q, sizeof(q)));
		return -1;
	}
	return config_strdup("IAM_JWT_KID", value, &cfg->jwt_kid, errmsg);
}

/*
 * load_verify_key reads one IAM_JWT_VERIFY_KEYS file: the raw secret for
 * HS256, else a PEM public key (or a private key, whose public half is
 * used), EC P-256 or RSA whatever IAM_JWT_ALG is.
 */
static int
load_verify_key(Config *cfg, ConfigJwtKey *k, const char *path, char **errmsg)
{
	static const char setting[] = "IAM_JWT_VERIFY_KEYS";
	unsigned char *data;
	size_t		len;
	char		q[QUOTE_BUFSIZE];
	BIO		   *bio;
	bool		encrypted = false;

	if (read_key_file(setting, path, &data, &len, errmsg) != 0)
		return -1;
	quote(path, q, sizeof(q));
	if (cfg->jwt_alg == CONFIG_JWT_HS256)
	{
		if (len < HS256_MIN_SECRET)
		{
			config_error(errmsg, "%s: %s holds %zu bytes; an HS256 secret needs at least %d",
						 setting, q, len, HS256_MIN_SECRET);
			OPENSSL_cleanse(data, len);
			free(data);
			return -1;
		}
		k->secret = data;
		k->secret_len = len;
		return 0;
	}
	if ((bio = BIO_new_mem_buf(data, (int) len)) != NULL)
	{
		k->pkey = PEM_read_bio_PUBKEY(bio, NULL, no_passphrase, &encrypted);
		if (k->pkey == NULL)
		{
			BIO_free(bio);
			bio = BIO_new_mem_buf(data, (int) len);
			if (bio != NULL)
				k->pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, &encrypted);
		}
		BIO_free(bio);
	}
	OPENSSL_cleanse(data, len);
	free(data);
	ERR_clear_error();
	if (k->pkey == NULL)
	{
		config_error(errmsg, "%s: %s is not a PEM public key (IAM_JWT_ALG=%s)",
					 setting, q, config_jwt_alg_name(cfg->jwt_alg));
		return -1;
	}
	/*
	 * A key's type fixes the algorithm it verifies (jwt.c pins it), so the
	 * keys may be of another type than the signing key: a rotation from
	 * ES256 to RS256 keeps the ES256 tokens valid.
	 */
	if (EVP_PKEY_is_a(k->pkey, "RSA"))
		return check_pkey(setting, k->pkey, CONFIG_JWT_RS256, q, errmsg);
	if (!EVP_PKEY_is_a(k->pkey, "EC"))
	{
		const char *type = EVP_PKEY_get0_type_name(k->pkey);

		config_error(errmsg, "%s: %s holds an %s key; give EC P-256 (ES256) or RSA (RS256) public keys",
					 setting, q, type != NULL ? type : "unknown");
		return -1;
	}
	return check_pkey(setting, k->pkey, CONFIG_JWT_ES256, q, errmsg);
}

/* config_jwt_verify_keys parses IAM_JWT_VERIFY_KEYS: kid=/path[,kid=/path...]. */
static int
config_jwt_verify_keys(const char *const *envp, Config *cfg, char **errmsg)
{
	const char *value = env_get(envp, "IAM_JWT_VERIFY_KEYS");
	const char *p;
	int			n = 1;

	if (value == NULL)
		return 0;
	for (p = value; *p != '\0'; p++)
		if (*p == ',')
			n++;
	if ((cfg->jwt_verify_keys = calloc((size_t) n, sizeof(ConfigJwtKey))) == NULL)
	{
		config_error(errmsg, "IAM_JWT_VERIFY_KEYS: out of memory");
		return -1;
	}
	p = value;
	for (int i = 0; i < n; i++)
	{
		const char *end = strchr(p, ',');
		size_t		len = end != NULL ? (size_t) (end - p) : strlen(p);
		const char *eq;
		ConfigJwtKey *k = &cfg->jwt_verify_keys[cfg->n_jwt_verify_keys];
		char	   *path;
		const char *next = end != NULL ? end + 1 : p + len;

		while (len > 0 && isspace((unsigned char) *p))
			p++, len--;
		while (len > 0 && isspace((unsigned char) p[len - 1]))
			len--;
		eq = memchr(p, '=', len);
		if (eq == NULL || !is_kid(p, (size_t) (eq - p)) || eq + 1 == p + len)
		{
			config_error(errmsg, "IAM_JWT_VERIFY_KEYS: entry %d is not kid=/path/to/key.pem", i + 1);
			return -1;
		}
		if ((k->kid = strndup(p, (size_t) (eq - p))) == NULL)
		{
			config_error(errmsg, "IAM_JWT_VERIFY_KEYS: out of memory");
			return -1;
		}
		cfg->n_jwt_verify_keys++;
		if ((path = strndup(eq + 1, (size_t) (p + len - eq - 1))) == NULL)
		{
			config_error(errmsg, "IAM_JWT_VERIFY_KEYS: out of memory");
			return -1;
		}
		for (int j = 0; j < cfg->n_jwt_verify_keys - 1; j++)
			if (strcmp(cfg->jwt_verify_keys[j].kid, k->kid) == 0 ||
				(cfg->jwt_kid != NULL && strcmp(cfg->jwt_kid, k->kid) == 0))
			{
				config_error(errmsg, "IAM_JWT_VERIFY_KEYS: kid \"%s\" is used twice", k->kid);
				free(path);
				return -1;
			}
		if (cfg->jwt_kid != NULL && strcmp(cfg->jwt_kid, k->kid) == 0)
		{
			config_error(errmsg, "IAM_JWT_VERIFY_KEYS: kid \"%s\" is also IAM_JWT_KID", k->kid);
			free(path);
			return -1;
		}
		if (load_verify_key(cfg, k, path, errmsg) != 0)
		{
			free(path);
			return -1;
		}
		free(path);
		p = next;
	}
	return 0;
}

/*
 * config_oidc loads the external identity provider: IAM_OIDC_JWKS_FILE (a
 * JWKS document of EC P-256 / RSA public keys, each with a kid),
 * IAM_OIDC_ISSUER (required with it) and IAM_OIDC_AUDIENCE (optional).
 */
static int
config_oidc(const char *const *envp, Config *cfg, char **errmsg)
{
	static const char setting[] = "IAM_OIDC_JWKS_FILE";
	const char *path = env_get(envp, setting);
	unsigned char *data;
	size_t		len;
	char		q[QUOTE_BUFSIZE];
	char		why[256];
	JwkKey	   *keys = NULL;
	size_t		n = 0;

	if (config_text(envp, "IAM_OIDC_ISSUER", &cfg->oidc_issuer, errmsg) != 0 ||
		config_text(envp, "IAM_OIDC_AUDIENCE", &cfg->oidc_audience, errmsg) != 0)
		return -1;
	if (path == NULL)
	{
		if (cfg->oidc_issuer != NULL || cfg->oidc_audience != NULL)
		{
			config_error(errmsg, "%s: not set, but IAM_OIDC_ISSUER or IAM_OIDC_AUDIENCE is; "
						 "give the provider's keys as a JWKS file", setting);
			return -1;
		}
		return 0;
	}
	if (cfg->oidc_issuer == NULL)
	{
		config_error(errmsg, "IAM_OIDC_ISSUER: required with IAM_OIDC_JWKS_FILE (the provider's iss)");
		return -1;
	}
	/* the issuer decides which keys a token is checked with: they must differ */
	if (cfg->jwt_issuer != NULL && strcmp(cfg->jwt_issuer, cfg->oidc_issuer) == 0)
	{
		config_error(errmsg, "IAM_OIDC_ISSUER: equal to IAM_JWT_ISSUER; the provider's tokens must be told apart by iss");
		return -1;
	}
	if ((cfg->oidc_jwks_file = strdup(path)) == NULL)
	{
		config_error(errmsg, "%s: out of memory", setting);
		return -1;
	}
	if (read_key_file(setting, path, &data, &len, errmsg) != 0)
		return -1;
	quote(path, q, sizeof(q));
	if (jwk_set_parse((const char *) data, len, &keys, &n, why, sizeof(why)) != 0)
	{
		config_error(errmsg, "%s: %s: %s", setting, q, why);
		free(data);
		return -1;
	}
	free(data);
	if ((cfg->oidc_keys = calloc(n, sizeof(ConfigJwtKey))) == NULL)
	{
		jwk_keys_free(keys, n);
		config_error(errmsg, "%s: out of memory", setting);
		return -1;
	}
	/* the keys move into the Config; the array goes */
	for (size_t i = 0; i < n; i++)
	{
		cfg->oidc_keys[i].kid = keys[i].kid;
		cfg->oidc_keys[i].pkey = keys[i].pkey;
	}
	cfg->n_oidc_keys = (int) n;
	free(keys);
	return 0;
}

/* is_origin accepts http(s)://host[:port] with nothing after it. */
static bool
is_origin(const char *s, size_t len)
{
	size_t		i;
	size_t		host_start;

	if (len > 8 && strncmp(s, "https://", 8) == 0)
		i = 8;
	else if (len > 7 && strncmp(s, "http://", 7) == 0)
		i = 7;
	else
		return false;
	host_start = i;
	if (s[i] == '[')
	{
		while (i < len && s[i] != ']')
			if (!(isxdigit((unsigned char) s[i++]) || s[i - 1] == ':' || s[i - 1] == '['))
				return false;
		if (i == len)
			return false;
		i++;
	}
	else
		while (i < len && (isalnum((unsigned char) s[i]) || s[i] == '.' || s[i] == '-'))
			i++;
	if (i == host_start)
		return false;
	if (i < len && s[i] == ':')
	{
		size_t		digits = 0;

		for (i++; i < len && isdigit((unsigned char) s[i]); i++)
			digits++;
		if (digits == 0 || digits > 5)
			return false;
	}
	return i == len;
}

/* config_cors reads IAM_CORS_ORIGINS: exact origins, comma-separated. */
static int
config_cors(const char *const *envp, Config *cfg, char **errmsg)
{
	const char *value = env_get(envp, "IAM_CORS_ORIGINS");
	const char *p;
	int			n = 1;

	if (value == NULL)
		return 0;
	for (p = value; *p != '\0'; p++)
		if (*p == ',')
			n++;
	if ((cfg->cors_origins = calloc((size_t) n, sizeof(char *))) == NULL)
	{
		config_error(errmsg, "IAM_CORS_ORIGINS: out of memory");
		return -1;
	}
	p = value;
	for (int i = 0; i < n; i++)
	{
		const char *end = strchr(p, ',');
		size_t		len = end != NULL ? (size_t) (end - p) : strlen(p);
		char		q[QUOTE_BUFSIZE];
		char		entry[QUOTED_MAX + 1];
		const char *next = end != NULL ? end + 1 : p + len;

		while (len > 0 && isspace((unsigned char) *p))
			p++, len--;
		while (len > 0 && isspace((unsigned char) p[len - 1]))
			len--;
		if (!is_origin(p, len) || len > 255)
		{
			snprintf(entry, sizeof(entry), "%.*s", (int) (len < QUOTED_MAX ? len : QUOTED_MAX), p);
			config_error(errmsg, "IAM_CORS_ORIGINS: entry %d (%s) is not an origin like https://admin.example.com or http://localhost:3000",
						 i + 1, quote(entry, q, sizeof(q)));
			return -1;
		}
		if ((cfg->cors_origins[cfg->n_cors_origins++] = strndup(p, len)) == NULL)
		{
			config_error(errmsg, "IAM_CORS_ORIGINS: out of memory");
			return -1;
		}
		p = next;
	}
	return 0;
}

/* config_switch reads an on|off setting (also true/false, 1/0). */
static int
config_switch(const char *const *envp, const char *name, bool def, bool *out,
			  char **errmsg)
{
	const char *value = env_get(envp, name);
	char		q[QUOTE_BUFSIZE];

	*out = def;
	if (value == NULL)
		return 0;
	if (strcasecmp(value, "on") == 0 || strcasecmp(value, "true") == 0 || strcmp(value, "1") == 0)
		*out = true;
	else if (strcasecmp(value, "off") == 0 || strcasecmp(value, "false") == 0 || strcmp(value, "0") == 0)
		*out = false;
	else
	{
		config_error(errmsg, "%s: %s is not on or off", name, quote(value, q, sizeof(q)));
		return -1;
	}
	return 0;
}

/*
 * config_limits reads the rate-limit, load-shedding and cache settings (#7):
 * IAM_RATE_LIMIT, IAM_RATE_LIMIT_FAIL (open|closed), IAM_TRUSTED_PROXIES
 * (comma-separated addresses or CIDR networks), IAM_REDIS_TIMEOUT_MS,
 * IAM_MAX_DB_WAITERS, IAM_CACHE, IAM_CACHE_TTL, IAM_CACHE_L1_MB,
 * IAM_CACHE_POLL_MS.
 */
static int
config_limits(const char *const *envp, Config *cfg, char **errmsg)
{
	const char *fail = env_get(envp, "IAM_RATE_LIMIT_FAIL");
	const char *proxies = env_get(envp, "IAM_TRUSTED_PROXIES");
	char		q[QUOTE_BUFSIZE];

	if (config_switch(envp, "IAM_RATE_LIMIT", true, &cfg->rate_limit, errmsg) != 0 ||
		config_switch(envp, "IAM_CACHE", true, &cfg->cache, errmsg) != 0 ||
		config_int(envp, "IAM_REDIS_TIMEOUT_MS", 200, 10, 10000,
				   &cfg->redis_timeout_ms, errmsg) != 0 ||
		config_int(envp, "IAM_RATE_LIMIT_LEASE_MS", 1000, 0, 60000,
				   &cfg->rate_limit_lease_ms, errmsg) != 0 ||
		config_int(envp, "IAM_MAX_DB_WAITERS", 4 * cfg->db_pool_size, 0, 1000000,
				   &cfg->max_db_waiters, errmsg) != 0 ||
		config_int(envp, "IAM_CACHE_TTL", 60, 1, 86400, &cfg->cache_ttl, errmsg) != 0 ||
		config_int(envp, "IAM_CACHE_L1_MB", 64, 1, 65536, &cfg->cache_l1_mb, errmsg) != 0 ||
		config_int(envp, "IAM_CACHE_POLL_MS", 20, 1, 10000, &cfg->cache_poll_ms, errmsg) != 0)
		return -1;
	if (fail != NULL && strcmp(fail, "open") != 0 && strcmp(fail, "closed") != 0)
	{
		config_error(errmsg, "IAM_RATE_LIMIT_FAIL: %s is not open or closed",
					 quote(fail, q, sizeof(q)));
		return -1;
	}
	cfg->rate_limit_fail_closed = fail != NULL && strcmp(fail, "closed") == 0;
	while (proxies != NULL && *proxies != '\0')
	{
		size_t		len = strcspn(proxies, ",");
		char		item[INET6_ADDRSTRLEN + 8];
		char	   *slash;
		ConfigCidr	c;
		ConfigCidr *grown;
		long		bits = -1;

		while (len > 0 && *proxies == ' ')
			proxies++, len--;
		if (len == 0 || len >= sizeof(item))
			goto bad;
		memcpy(item, proxies, len);
		item[len] = '\0';
		while (len > 0 && item[len - 1] == ' ')
			item[--len] = '\0';
		memset(&c, 0, sizeof(c));
		if ((slash = strchr(item, '/')) != NULL)
		{
			*slash = '\0';
			if (!parse_int_strict(slash + 1, 0, 128, &bits))
				goto bad;
		}
		if (inet_pton(AF_INET, item, c.addr) == 1)
			c.family = AF_INET;
		else if (inet_pton(AF_INET6, item, c.addr) == 1)
			c.family = AF_INET6;
		else
			goto bad;
		c.bits = bits >= 0 ? (int) bits : (c.family == AF_INET ? 32 : 128);
		if (c.bits > (c.family == AF_INET ? 32 : 128))
			goto bad;
		if ((grown = realloc(cfg->trusted_proxies,
							 sizeof(ConfigCidr) * (size_t) (cfg->n_trusted_proxies + 1))) == NULL)
		{
			config_error(errmsg, "IAM_TRUSTED_PROXIES: out of memory");
			return -1;
		}
		cfg->trusted_proxies = grown;
		cfg->trusted_proxies[cfg->n_trusted_proxies++] = c;
		proxies += strcspn(proxies, ",");
		if (*proxies == ',')
			proxies++;
	}
	return 0;
bad:
	config_error(errmsg, "IAM_TRUSTED_PROXIES: %s is not a comma-separated list of addresses or networks (10.0.0.0/8, ::1)",
				 quote(env_get(envp, "IAM_TRUSTED_PROXIES"), q, sizeof(q)));
	return -1;
}

static int
default_threads(void)
{
	long		n = sysconf(_SC_NPROCESSORS_ONLN);

	/*
	 * A request thread spends most of its time waiting for PostgreSQL's
	 * answer: with one thread per core, two cores serve only two requests
	 * at a time and stay half idle (bench/http.sh, bench/results/compare.md:
	 * 21,107 cached GET /users/me per second on two cores at eight threads).
	 */
	if (n < 1)
		n = 1;
	return n * THREADS_PER_CPU > MAX_THREADS ? MAX_THREADS : (int) n * THREADS_PER_CPU;
}

Config *
config_load(const char *const *envp, char **errmsg)
{
	Config	   *cfg = calloc(1, sizeof(Config));

	*errmsg = NULL;
	if (cfg == NULL)
	{
		config_error(errmsg, "configuration: out of memory");
		return NULL;
	}
	if (config_database(envp, cfg, errmsg) != 0 ||
		config_read_databases(envp, cfg, errmsg) != 0 ||
		config_redis(envp, cfg, errmsg) != 0 ||
		config_listen(envp, cfg, errmsg) != 0 ||
		config_jwt_alg(envp, cfg, errmsg) != 0 ||
		config_jwt_key(envp, cfg, errmsg) != 0 ||
		config_text(envp, "IAM_JWT_ISSUER", &cfg->jwt_issuer, errmsg) != 0 ||
		config_text(envp, "IAM_JWT_AUDIENCE", &cfg->jwt_audience, errmsg) != 0 ||
		config_int(envp, "IAM_ACCESS_TTL", 3600, 1, 30 * 86400,
				   &cfg->access_ttl, errmsg) != 0 ||
		config_int(envp, "IAM_REFRESH_TTL", 604800, 1, 366 * 86400,
				   &cfg->refresh_ttl, errmsg) != 0 ||
		config_int(envp, "IAM_THREADS", default_threads(), 1, MAX_THREADS,
				   &cfg->threads, errmsg) != 0 ||
		config_int(envp, "IAM_DB_POOL_SIZE", cfg->threads, 1, 1024,
				   &cfg->db_pool_size, errmsg) != 0 ||
		config_int(envp, "IAM_IDLE_TIMEOUT", 30, 1, 86400,
				   &cfg->idle_timeout, errmsg) != 0 ||
		config_int(envp, "IAM_CONNECTION_TIMEOUT", cfg->idle_timeout, 1, 86400,
				   &cfg->idle_timeout, errmsg) != 0 ||
		config_int(envp, "IAM_JWT_LEEWAY", 30, 0, 3600,
				   &cfg->jwt_leeway, errmsg) != 0 ||
		config_jwt_kid(envp, cfg, errmsg) != 0 ||
		config_jwt_verify_keys(envp, cfg, errmsg) != 0 ||
		config_int(envp, "IAM_JWT_CACHE_SIZE", 10000, 0, 1000000,
				   &cfg->jwt_cache_size, errmsg) != 0 ||
		config_oidc(envp, cfg, errmsg) != 0 ||
		config_cors(envp, cfg, errmsg) != 0 ||
		config_int(envp, "IAM_SHUTDOWN_TIMEOUT", 10, 0, 3600,
				   &cfg->shutdown_timeout, errmsg) != 0 ||
		config_limits(envp, cfg, errmsg) != 0)
	{
		config_free(cfg);
		return NULL;
	}
	if (cfg->refresh_ttl < cfg->access_ttl)
	{
		config_error(errmsg, "IAM_REFRESH_TTL: %d is shorter than IAM_ACCESS_TTL (%d)",
					 cfg->refresh_ttl, cfg->access_ttl);
		config_free(cfg);
		return NULL;
	}
	return cfg;
}

/* free_secret wipes and frees a NUL-terminated string that may be secret. */
static void
free_secret(char *s)
{
	if (s != NULL)
	{
		OPENSSL_cleanse(s, strlen(s));
		free(s);
	}
}

void
config_free(Config *cfg)
{
	if (cfg == NULL)
		return;
	free_secret(cfg->database_url);
	if (cfg->read_database_urls != NULL)
	{
		for (int i = 0; i < cfg->n_read_database_urls; i++)
			free_secret(cfg->read_database_urls[i]);
		free(cfg->read_database_urls);
	}
	free(cfg->redis.host);
	free_secret(cfg->redis.username);
	free_secret(cfg->redis.password);
	free(cfg->listen);
	free(cfg->jwt_key_file);
	EVP_PKEY_free(cfg->jwt_pkey);
	if (cfg->jwt_secret != NULL)
	{
		OPENSSL_cleanse(cfg->jwt_secret, cfg->jwt_secret_len);
		free(cfg->jwt_secret);
	}
	free(cfg->jwt_issuer);
	free(cfg->jwt_audience);
	free(cfg->jwt_kid);
	for (int i = 0; i < cfg->n_jwt_verify_keys; i++)
	{
		ConfigJwtKey *k = &cfg->jwt_verify_keys[i];

		free(k->kid);
		EVP_PKEY_free(k->pkey);
		if (k->secret != NULL)
		{
			OPENSSL_cleanse(k->secret, k->secret_len);
			free(k->secret);
		}
	}
	free(cfg->jwt_verify_keys);
	free(cfg->oidc_jwks_file);
	for (int i = 0; i < cfg->n_oidc_keys; i++)
	{
		free(cfg->oidc_keys[i].kid);
		EVP_PKEY_free(cfg->oidc_keys[i].pkey);
	}
	free(cfg->oidc_keys);
	free(cfg->oidc_issuer);
	free(cfg->oidc_audience);
	for (int i = 0; i < cfg->n_cors_origins; i++)
		free(cfg->cors_origins[i]);
	free(cfg->cors_origins);
	free(cfg->trusted_proxies);
	free(cfg);
}
