/*-------------------------------------------------------------------------
 *
 * rbac.h
 *		Permission resolution: the C API other modules of the extension call.
 *
 *-------------------------------------------------------------------------
 */
#ifndef IAM_RBAC_H
#define IAM_RBAC_H

#include "utils/uuid.h"

/*
 * rbac_user_holds answers iam.has_permission(user_id, permission): whether
 * the user holds the permission globally, by the same rules and through the
 * same cache.  False for a NULL argument, an unknown or malformed name, or a
 * user who does not exist, is inactive or deleted.  Allocates nothing the
 * caller must free; errors only as the SQL function would.
 */
extern bool rbac_user_holds(pg_uuid_t *user_id, const char *permission);

/*
 * rbac_permission_name_copy copies name (len bytes, not NUL-terminated) into
 * buf, which holds RBAC_PERMISSION_MAX_LEN + 1 bytes, and returns true when
 * it is a well-formed permission name: 1 to 100 characters out of
 * [a-z0-9_.].  Returns false (buf undefined) otherwise.
 */
extern bool rbac_permission_name_copy(const char *name, int len, char *buf);

#endif							/* IAM_RBAC_H */
