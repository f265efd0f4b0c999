/*-------------------------------------------------------------------------
 *
 * catalog.h
 *		Look-ups of the extension's own objects.
 *
 *-------------------------------------------------------------------------
 */
#ifndef IAM_CATALOG_H
#define IAM_CATALOG_H

#include "postgres.h"

extern Oid	iam_table_owner(const char *relname);

#endif							/* IAM_CATALOG_H */
