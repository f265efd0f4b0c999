/*-------------------------------------------------------------------------
 *
 * audit_sealer.h
 *		The sealer: a static background worker sealing the audit trail, and
 *		the notice given when none serves the current database.
 *
 *-------------------------------------------------------------------------
 */
#ifndef IAM_AUDIT_SEALER_H
#define IAM_AUDIT_SEALER_H

extern void AuditSealerInit(void);

/* NOTICE, once per session, when unsealed rows wait and no sealer serves */
extern void audit_sealer_check(int64 unsealed);

extern PGDLLEXPORT void audit_sealer_main(Datum main_arg);

#endif							/* IAM_AUDIT_SEALER_H */
