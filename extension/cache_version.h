/*-------------------------------------------------------------------------
 *
 * cache_version.h
 *		Versions of the gateway's response cache, per organisation slot, in
 *		shared memory: bumped after commit, polled by the gateway.
 *
 *-------------------------------------------------------------------------
 */
#ifndef IAM_CACHE_VERSION_H
#define IAM_CACHE_VERSION_H

/*
 * Slots of the version table.  An organisation's slot is FNV-1a (64 bits)
 * of the 16 bytes of its uuid, modulo CACHE_VERSION_SLOTS; the gateway
 * (gateway/cache.c, cache_slot_of) computes the same.
 */
#define CACHE_VERSION_SLOTS 4096

extern void CacheVersionInit(void);

#endif							/* IAM_CACHE_VERSION_H */
