/*-------------------------------------------------------------------------
 *
 * audit.h
 *		The audit trail's write gate: which of the extension's own code paths
 *		is writing to the trail (iam.audit_logs, iam.audit_inbox) at the moment (audit.c refuses every
 *		other write), and the append path shared by the capture trigger and
 *		iam.audit_append().
 *
 *-------------------------------------------------------------------------
 */
#ifndef IAM_AUDIT_H
#define IAM_AUDIT_H

#include "utils/jsonb.h"
#include "utils/uuid.h"

/* the only writes iam.audit_logs accepts, each from one code path */
typedef enum AuditWriteMode
{
	AUDIT_WRITE_NONE = 0,		/* every write refused */
	AUDIT_WRITE_APPEND,			/* audit.c: a new, unsealed row in the inbox */
	AUDIT_WRITE_SEAL,			/* audit_chain.c: rows moved out of the inbox
								 * with seq and hashes (or sealed in place) */
	AUDIT_WRITE_REDACT,			/* audit_chain.c: erasure markers in changes */
	AUDIT_WRITE_PARTITION		/* audit_partition.c: sealed rows moved from
								 * the default partition into a new month's */
} AuditWriteMode;

/* Sets the current mode and returns the previous one, to restore after. */
extern AuditWriteMode audit_set_write_mode(AuditWriteMode mode);

#endif							/* IAM_AUDIT_H */
