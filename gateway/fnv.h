/*
 * fnv.h
 *		FNV-1a, 64 bits: the hash of the gateway's in-process tables (the
 *		response cache's LRU, the in-process rate limiter) and, over an
 *		organisation's 16 uuid bytes, of the cache-version slots, where it
 *		must match extension/cache_version.c.
 */
#ifndef FNV_H
#define FNV_H

#include <stdint.h>

#define FNV1A_OFFSET_BASIS	14695981039346656037ULL
#define FNV1A_PRIME			1099511628211ULL

/* fnv1a_add folds one byte into h */
static inline uint64_t
fnv1a_add(uint64_t h, unsigned char byte)
{
	return (h ^ byte) * FNV1A_PRIME;
}

/* fnv1a_str hashes a NUL-terminated string */
static inline uint64_t
fnv1a_str(const char *s)
{
	uint64_t	h = FNV1A_OFFSET_BASIS;

	for (; *s != '\0'; s++)
		h = fnv1a_add(h, (unsigned char) *s);
	return h;
}

#endif							/* FNV_H */
