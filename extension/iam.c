/*-------------------------------------------------------------------------
 *
 * iam.c
 *		Entry point of the pg_iam extension: the module magic and _PG_init,
 *		which hands over to each module's initialiser.  Nothing else lives
 *		here.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/guc.h"

#include "audit_sealer.h"
#include "auth.h"
#include "cache_version.h"
#include "context.h"
#include "password.h"
#include "rbac_cache.h"
#include "refresh_worker.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

/*
 * _PG_init runs once per backend that loads the library: at postmaster start
 * when iam is in shared_preload_libraries, otherwise on the first call of one
 * of its C functions.
 */
void
_PG_init(void)
{
	ContextInit();
	PasswordInit();
	AuthInit();
	RbacCacheInit();
	AuditSealerInit();
	RefreshWorkerInit();
	CacheVersionInit();

	/* every iam.* setting is defined above: a typo such as iam.orgid errors */
	MarkGUCPrefixReserved("iam");
}
