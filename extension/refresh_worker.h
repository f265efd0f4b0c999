/*-------------------------------------------------------------------------
 *
 * refresh_worker.h
 *		The refresh worker: a static background worker that refreshes the
 *		report views on their periods and creates activity_logs partitions
 *		ahead of time.
 *
 *-------------------------------------------------------------------------
 */
#ifndef IAM_REFRESH_WORKER_H
#define IAM_REFRESH_WORKER_H

extern void RefreshWorkerInit(void);

extern PGDLLEXPORT void refresh_worker_main(Datum main_arg);

#endif							/* IAM_REFRESH_WORKER_H */
