/*-------------------------------------------------------------------------
 *
 * rbac_cache.h
 *		Per-backend cache of resolved permissions, invalidated by relcache
 *		invalidations of the RBAC tables.
 *
 *-------------------------------------------------------------------------
 */
#ifndef IAM_RBAC_CACHE_H
#define IAM_RBAC_CACHE_H

#include "datatype/timestamp.h"
#include "lib/ilist.h"
#include "utils/uuid.h"

/* iam.permissions.name is varchar(100); user_permissions.resource_type varchar(50) */
#define RBAC_PERMISSION_MAX_LEN		100
#define RBAC_RESOURCE_TYPE_MAX_LEN	50

/* A grant on one resource (user_permissions with resource_type/resource_id). */
typedef struct RbacScopedGrant
{
	int			bit;			/* permission, as its dictionary bit */
	pg_uuid_t	resource_id;
	char		resource_type[RBAC_RESOURCE_TYPE_MAX_LEN + 1];
} RbacScopedGrant;

/*
 * What one user holds at the moment, as resolved by rbac.c.  Entries in the
 * cache live in its memory context; a transient entry (returned when the
 * cache could not keep it) lives in the caller's.  Either is valid until the
 * next call into this module.
 */
typedef struct RbacUserEntry
{
	pg_uuid_t	user_id;		/* hash key: must be first */
	dlist_node	lru_node;		/* most recently used at the head */
	TimestampTz valid_until;	/* earliest expiry of a grant counted, or DT_NOEND */
	bool		platform_admin; /* holds platform.admin globally */
	int			nscoped;
	RbacScopedGrant *scoped;
	uint64		bits[FLEXIBLE_ARRAY_MEMBER];	/* global permissions */
} RbacUserEntry;

extern void RbacCacheInit(void);

extern bool rbac_cache_is_valid(void);
extern uint64 rbac_cache_generation(void);
extern uint64 rbac_cache_begin_rebuild(void);
extern void rbac_cache_finish_rebuild(uint64 generation, char **names, int count);

extern int	rbac_cache_permission_bit(const char *name);
extern int	rbac_cache_permission_count(void);
extern const char *rbac_cache_permission_name(int bit);

extern RbacUserEntry *rbac_cache_new_entry(const pg_uuid_t *user_id);
extern RbacUserEntry *rbac_cache_find(const pg_uuid_t *user_id, TimestampTz now);
extern RbacUserEntry *rbac_cache_store(uint64 generation, RbacUserEntry *entry);

/* Whether entry holds bit globally (bit must be >= 0). */
static inline bool
rbac_entry_has_bit(const RbacUserEntry *entry, int bit)
{
	return (entry->bits[bit / 64] & (UINT64CONST(1) << (bit % 64))) != 0;
}

#endif							/* IAM_RBAC_CACHE_H */
