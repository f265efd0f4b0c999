/*-------------------------------------------------------------------------
 *
 * context.h
 *		Request context settings (iam.user_id, iam.org_id, ...).
 *
 *-------------------------------------------------------------------------
 */
#ifndef IAM_CONTEXT_H
#define IAM_CONTEXT_H

extern void ContextInit(void);

#endif							/* IAM_CONTEXT_H */
