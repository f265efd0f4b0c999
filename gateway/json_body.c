/*
 * json_body.c
 *		Request-body hygiene: what the gateway refuses before any SQL runs.
 *
 * jansson parses (with JSON_REJECT_DUPLICATES: by default it keeps the last
 * of two equal keys silently, and PostgreSQL's jsonb would do the same, so a
 * body could mean one thing to a reviewer and another to the database); the
 * bounds on depth and string size are checked on the parsed tree.  The body
 * text itself is what goes to PostgreSQL, byte for byte: the tree is only
 * inspected and thrown away.
 */
#include "json_body.h"

#include <stdint.h>

#include <jansson.h>

bool
json_body_utf8_valid(const char *buf, size_t len)
{
	const unsigned char *s = (const unsigned char *) buf;
	size_t		i = 0;

	while (i < len)
	{
		unsigned char c = s[i];
		size_t		n;
		uint32_t	cp;

		if (c < 0x80)
		{
			i++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF)
			n = 2, cp = c & 0x1F;
		else if (c >= 0xE0 && c <= 0xEF)
			n = 3, cp = c & 0x0F;
		else if (c >= 0xF0 && c <= 0xF4)
			n = 4, cp = c & 0x07;
		else
			return false;
		if (n > len - i)
			return false;
		for (size_t k = 1; k < n; k++)
		{
			if ((s[i + k] & 0xC0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3F);
		}
		if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
			(cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
			return false;
		i += n;
	}
	return true;
}

/*
 * walk checks depth and string sizes below v (at depth depth, the top level
 * being 1).  Recursion is bounded: it stops at JSON_BODY_MAX_DEPTH + 1.
 */
static int
walk(const json_t *v, int depth, const char **detail)
{
	const char *key;
	json_t	   *child;
	size_t		i;

	switch (json_typeof(v))
	{
		case JSON_OBJECT:
		case JSON_ARRAY:
			if (depth > JSON_BODY_MAX_DEPTH)
			{
				*detail = "The request body is nested more than 32 levels deep.";
				return -1;
			}
			if (json_is_object(v))
			{
				/* json_object_foreach needs a non-const object */
				json_object_foreach((json_t *) v, key, child)
				{
					if (json_object_iter_key_len(json_object_key_to_iter(key)) > JSON_BODY_MAX_STRING)
					{
						*detail = "A key in the request body is longer than 64 KiB.";
						return -1;
					}
					if (walk(child, depth + 1, detail) != 0)
						return -1;
				}
			}
			else
			{
				json_array_foreach(v, i, child)
				{
					if (walk(child, depth + 1, detail) != 0)
						return -1;
				}
			}
			return 0;
		case JSON_STRING:
			if (json_string_length(v) > JSON_BODY_MAX_STRING)
			{
				*detail = "A string in the request body is longer than 64 KiB.";
				return -1;
			}
			return 0;
		default:
			return 0;
	}
}

int
json_body_check(const char *buf, size_t len, const char **detail)
{
	json_error_t jerr;
	json_t	   *root;
	int			rc;

	if (len > JSON_BODY_MAX_BYTES)
	{
		*detail = "The request body is larger than 1 MiB.";
		return -1;
	}
	if (!json_body_utf8_valid(buf, len))
	{
		*detail = "The request body is not valid UTF-8.";
		return -1;
	}
	/* jansson refuses \u0000 unless JSON_ALLOW_NUL, as jsonb does */
	root = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (root == NULL)
	{
		if (json_error_code(&jerr) == json_error_duplicate_key)
			*detail = "The request body has a duplicate object key.";
		else if (json_error_code(&jerr) == json_error_stack_overflow)
			*detail = "The request body is nested more than 32 levels deep.";
		else
			*detail = "The request body is not valid JSON.";
		return -1;
	}
	if (!json_is_object(root) && !json_is_array(root))
	{
		json_decref(root);
		*detail = "The request body must be a JSON object or array.";
		return -1;
	}
	rc = walk(root, 1, detail);
	json_decref(root);
	return rc;
}
