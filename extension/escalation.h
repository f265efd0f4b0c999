/*-------------------------------------------------------------------------
 *
 * escalation.h
 *		Durable record of refused privilege escalations.
 *
 *-------------------------------------------------------------------------
 */
#ifndef IAM_ESCALATION_H
#define IAM_ESCALATION_H

#include "postgres.h"

/* entry point of the dynamic background worker; called by the postmaster */
extern PGDLLEXPORT void escalation_worker_main(Datum main_arg);

#endif							/* IAM_ESCALATION_H */
