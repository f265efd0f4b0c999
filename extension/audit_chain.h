/*-------------------------------------------------------------------------
 *
 * audit_chain.h
 *		The per-organisation hash chain of iam.audit_logs: sealing (used by
 *		the sealer worker and iam.audit_seal()).
 *
 *-------------------------------------------------------------------------
 */
#ifndef IAM_AUDIT_CHAIN_H
#define IAM_AUDIT_CHAIN_H

/*
 * audit_chain_seal seals every unsealed row the caller's snapshots show and
 * returns how many.  The caller has connected to SPI, in a transaction at
 * READ COMMITTED; the function takes the sealer's advisory lock, which is
 * held until the transaction ends.
 */
extern int64 audit_chain_seal(void);

/* Whether schema iam holds audit_logs in this database. */
extern bool audit_chain_installed(void);

#endif							/* IAM_AUDIT_CHAIN_H */
