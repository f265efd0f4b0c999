/*
 * request_id.c
 *		Request identifiers carried in X-Request-Id.
 *
 * A client (or a proxy in front of us) may bring its own identifier so one
 * request can be followed across services; we keep it only when it is short
 * and made of harmless characters, because it is echoed in a response header
 * and written to the log.  Anything else is replaced by a new identifier:
 * 64 random bits drawn once per thread, then a per-thread counter.  That is
 * unique without a random draw per request (OpenSSL's generator costs a
 * system call each time); an identifier is a label to follow a request
 * by, never a secret, so that the next one of a thread is guessable does
 * not matter.
 */
#include "request_id.h"

#include <stdint.h>
#include <string.h>

#include <openssl/rand.h>

bool
request_id_is_valid(const char *s)
{
	size_t		len;

	if (s == NULL)
		return false;
	for (len = 0; s[len] != '\0'; len++)
	{
		unsigned char c = (unsigned char) s[len];

		if (len >= REQUEST_ID_MAX_LEN)
			return false;
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			  (c >= '0' && c <= '9') ||
			  c == '.' || c == '_' || c == ':' || c == '-'))
			return false;
	}
	return len > 0;
}

int
request_id_generate(char *out)
{
	static const char hex[] = "0123456789abcdef";
	static _Thread_local unsigned char raw[REQUEST_ID_GENERATED_LEN / 2];
	static _Thread_local uint64_t count;

	out[0] = '\0';
	if (count == 0 && RAND_bytes(raw, (int) sizeof(raw) / 2) != 1)
		return -1;
	count++;
	for (size_t i = 0; i < 8; i++)
		raw[sizeof(raw) / 2 + i] = (unsigned char) (count >> (56 - 8 * i));
	for (size_t i = 0; i < sizeof(raw); i++)
	{
		out[2 * i] = hex[raw[i] >> 4];
		out[2 * i + 1] = hex[raw[i] & 0x0f];
	}
	out[2 * sizeof(raw)] = '\0';
	return 0;
}

int
request_id_choose(const char *incoming, char *out)
{
	if (request_id_is_valid(incoming))
	{
		/* valid means at most REQUEST_ID_MAX_LEN bytes, so this fits */
		strcpy(out, incoming);
		return 0;
	}
	return request_id_generate(out);
}
