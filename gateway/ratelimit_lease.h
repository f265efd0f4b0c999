/*
 * ratelimit_lease.h
 *		Tokens of the shared (Redis) limiter that a gateway holds for a key,
 *		so that a busy key's requests are decided in process between round
 *		trips.  Thread-safe.
 */
#ifndef RATELIMIT_LEASE_H
#define RATELIMIT_LEASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ratelimit.h"

typedef struct LeaseTable LeaseTable;

/*
 * lease_table_create returns NULL when out of memory; max_keys bounds
 * memory, ttl_us is how long a lease may be spent.
 */
extern LeaseTable *lease_table_create(size_t max_keys, int64_t ttl_us);
extern void lease_table_free(LeaseTable *t);
extern size_t lease_table_size(LeaseTable *t);

/*
 * A lease is sized by the key's demand here: twice its requests in the
 * last lease lifetime (so a lease lasts about one), at most max_want; a
 * key seen once in that time gets no lease (one token at a time), so an
 * occasional caller leaves nothing to give back.
 *
 * lease_spend spends one token of key's lease and returns true, with *r
 * the decision to report (allowed, remaining as Redis last said plus the
 * tokens still held, the TAT Redis last reported); *want is then 0, or the
 * lease's size when it is half spent and the caller is to ask Redis for
 * more in the background (a refill).  Otherwise it returns false and the
 * caller asks Redis for the request, for *want tokens (1 when another
 * request of this key is asking already), giving back *refund_us of TAT:
 * the unspent tokens of an expired lease, now off the table.
 */
extern bool lease_spend(LeaseTable *t, const char *key, int64_t now_us, int max_want,
						GcraResult *r, int *want, int64_t *refund_us);

/*
 * lease_grant records Redis's answer to an asking for a lease (want > 1):
 * granted tokens for the lease lifetime, each worth interval_us of TAT
 * when given back, one of which the asking request spends itself unless it was a
 * refill; r is the answer (remaining and ahead after the grant).  granted 0
 * (refused, or Redis failed) only ends the asking.  Returns the tokens
 * held for key now.
 */
extern int	lease_grant(LeaseTable *t, const char *key, int64_t now_us,
						int64_t interval_us, const GcraResult *r, int granted,
						bool refill);

/*
 * lease_expire takes the keys idle for a lease lifetime off the table,
 * calling refund(key, refund_us, arg) for each one with tokens left (the
 * lock is not held during the call).
 */
typedef void (*LeaseRefund) (const char *key, int64_t refund_us, void *arg);
extern void lease_expire(LeaseTable *t, int64_t now_us, LeaseRefund refund, void *arg);

#endif							/* RATELIMIT_LEASE_H */
