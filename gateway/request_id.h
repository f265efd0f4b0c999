/*
 * request_id.h
 *		Request identifiers: keep a well-formed incoming X-Request-Id, or
 *		make a new, unique one.
 */
#ifndef REQUEST_ID_H
#define REQUEST_ID_H

#include <stdbool.h>

/* Longest identifier accepted from a client, and the buffer size to hold one. */
#define REQUEST_ID_MAX_LEN		64
#define REQUEST_ID_BUFSIZE		(REQUEST_ID_MAX_LEN + 1)

/* Length of a generated identifier: 16 bytes in lower-case hex. */
#define REQUEST_ID_GENERATED_LEN	32

/*
 * request_id_is_valid tells whether s matches ^[A-Za-z0-9._:-]{1,64}$.
 * A NULL s is not valid.  Nothing is allocated.
 */
extern bool request_id_is_valid(const char *s);

/*
 * request_id_generate writes 32 lower-case hex characters and a NUL into out
 * (at least REQUEST_ID_BUFSIZE bytes, owned by the caller): the calling
 * thread's random prefix and its count of identifiers so far, unique for
 * the process and across processes.  Returns 0, or -1 when RAND_bytes
 * fails; out then holds an empty string.
 */
extern int	request_id_generate(char *out);

/*
 * request_id_choose copies incoming into out when it is valid, otherwise
 * generates a new identifier there.  incoming may be NULL; out is the
 * caller's buffer of REQUEST_ID_BUFSIZE bytes.  Returns 0, or -1 when a new
 * identifier was needed and could not be generated.
 */
extern int	request_id_choose(const char *incoming, char *out);

#endif							/* REQUEST_ID_H */
