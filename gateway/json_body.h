/*
 * json_body.h
 *		Checks on a request body before it reaches PostgreSQL.
 */
#ifndef JSON_BODY_H
#define JSON_BODY_H

#include <stdbool.h>
#include <stddef.h>

#define JSON_BODY_MAX_BYTES		(1024 * 1024)	/* larger: 413 */
#define JSON_BODY_MAX_DEPTH		32	/* nested arrays/objects */
#define JSON_BODY_MAX_STRING	(64 * 1024) /* bytes of one string or key */

/*
 * json_body_utf8_valid tells whether buf[0..len) is well-formed UTF-8 (RFC
 * 3629: no overlong forms, no surrogates, nothing above U+10FFFF).
 */
extern bool json_body_utf8_valid(const char *buf, size_t len);

/*
 * json_body_check checks that buf[0..len) is valid UTF-8 JSON whose top
 * level is an object or an array, with no duplicate object key (at any
 * level), nesting at most JSON_BODY_MAX_DEPTH, no string or key longer than
 * JSON_BODY_MAX_STRING bytes, no \u0000 and at most JSON_BODY_MAX_BYTES.
 * Returns 0, or -1 with *detail pointing to a static, client-safe sentence
 * saying which rule was broken.  Nothing to free.
 */
extern int	json_body_check(const char *buf, size_t len, const char **detail);

#endif							/* JSON_BODY_H */
