/*-------------------------------------------------------------------------
 *
 * audit_chain.c
 *		The hash chain of iam.audit_logs, one per organisation (the rows with
 *		org_id NULL, changes to shared objects, form one more chain):
 *		sealing (iam.audit_seal(), also run by the sealer worker),
 *		verification (iam.audit_verify) and the erasure of personal data
 *		inside sealed rows (iam.audit_erase_entity) without breaking it.
 *
 *		Writers only append unsealed rows (seq, prev_hash, row_hash NULL) to
 *		iam.audit_inbox, a child of iam.audit_logs without indexes, and never
 *		wait for one another.  Sealing takes a transaction-level advisory
 *		lock (AUDIT_SEAL_LOCK), so one sealer at a time reads the committed
 *		unsealed rows, in created_at, id order, and gives each the next seq
 *		of its organisation's chain, prev_hash = the row_hash of the chain's
 *		head and row_hash as below; it moves inbox rows into iam.audit_logs
 *		proper with those values (rows that version 0.3 appended to
 *		iam.audit_logs itself are updated in place).  Each statement of the sealer
 *		runs on a fresh READ COMMITTED snapshot taken after the lock, so it
 *		sees the heads the previous sealer committed: no fork, gap or
 *		duplicate seq (the unique index on (org_id, seq) is the backstop).
 *		A row committed after the sealer's snapshot is sealed by the next
 *		pass.
 *
 *		Canonical serialisation (version 1).  row_hash = SHA-256(M) where M
 *		is the concatenation of:
 *		  - the 12 ASCII bytes "iam.audit.v1";
 *		  - prev_hash: 32 bytes (32 zero bytes for seq 1);
 *		  - the fields below, in this order, each encoded as one byte 0x00
 *			when NULL, else one byte 0x01, its length in bytes as a 4-byte
 *			big-endian unsigned integer, and the bytes:
 *			 1. org_id		16 bytes of the uuid (RFC 4122 byte order)
 *			 2. seq			8 bytes, big-endian two's complement
 *			 3. id			16 bytes
 *			 4. created_at	8 bytes, big-endian, microseconds since
 *							1970-01-01 00:00:00 UTC (no time zone, no DateStyle)
 *			 5. user_id		16 bytes
 *			 6. action		UTF-8 text
 *			 7. entity_type UTF-8 text
 *			 8. entity_id	16 bytes
 *			 9. changes		32 bytes: the changes digest below
 *			10. ip_address	UTF-8 text
 *			11. user_agent	UTF-8 text
 *			12. request_id	UTF-8 text
 *			13. db_role		UTF-8 text
 *		Changes digest: for a JSON object, SHA-256 of the concatenation, over
 *		its keys in jsonb order (shorter keys first, then bytewise), of the
 *		key's length (4 bytes, big-endian), the key's UTF-8 bytes and the
 *		entry digest of its value; the entry digest is SHA-256 of the
 *		value's jsonb text form (PostgreSQL's jsonb output, e.g.
 *		{"new": "b", "old": "a"}, which (changes->'key')::text returns), or,
 *		for an erasure marker {"erased": "<64 hex digits>"}, the 32 bytes the
 *		digits spell.  Any other JSON value: SHA-256 of its jsonb text form.
 *
 *		Erasure replaces the value of a personal-data column inside changes
 *		by a marker carrying the value's entry digest, so the chain still
 *		verifies; the verifier accepts a marker only on the personal-data
 *		columns below.  Content can thus be hidden, never altered.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

/* SHA256_Init and friends: deprecated in OpenSSL 3, not removed */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "audit.h"
#include "audit_chain.h"
#include "catalog.h"
#include "audit_sealer.h"

#define HASH_LEN 32
#define SEAL_BATCH 10000
#define VERIFY_FETCH 10000
/* pg_advisory_xact_lock(AUDIT_SEAL_LOCK_KEY1, AUDIT_SEAL_LOCK_KEY2) */
#define AUDIT_SEAL_LOCK_KEY1 1229016397	/* "IAM" */
#define AUDIT_SEAL_LOCK_KEY2 1

/* microseconds between 1970-01-01 and 2000-01-01, PostgreSQL's epoch */
#define UNIX_TO_PG_EPOCH_USECS \
	((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY)

/* columns whose values iam.erase_user may replace by an erasure marker */
static const char *const personal_columns[] = {
	"email", "name", "phone", "profile_image", "metadata",
	"employment_equity", "stack_auth_id"
};

/* the columns of a row that the hash covers, in SELECT order */
#define ROW_COLUMNS \
	"id, org_id, seq, created_at, user_id, action, entity_type, entity_id, " \
	"changes, ip_address, user_agent, request_id, db_role, prev_hash, row_hash"
enum
{
	COL_ID = 1, COL_ORG, COL_SEQ, COL_CREATED, COL_USER, COL_ACTION, COL_ENTITY_TYPE,
	COL_ENTITY_ID, COL_CHANGES, COL_IP, COL_UA, COL_REQUEST, COL_ROLE, COL_PREV, COL_HASH,
	COL_IN_INBOX, COL_TID		/* the sealer's query adds them */
};

/* one row of ROW_COLUMNS (plus the sealer's two), deformed once */
typedef struct RowView
{
	Datum		values[COL_TID];
	bool		nulls[COL_TID];
} RowView;

static void
row_view(RowView *r, HeapTuple tuple, TupleDesc desc)
{
	Assert(desc->natts == COL_HASH || desc->natts == COL_TID);
	heap_deform_tuple(tuple, desc, r->values, r->nulls);
}

static inline Datum
row_get(const RowView *r, int col, bool *isnull)
{
	*isnull = r->nulls[col - 1];
	return r->values[col - 1];
}

/* one chain head while sealing */
typedef struct ChainHead
{
	pg_uuid_t	org_id;			/* hash key (all zeros with is_null) */
	bool		is_null;		/* also part of the key */
	int64		seq;
	uint8		hash[HASH_LEN];
} ChainHead;

typedef struct ChainKey
{
	pg_uuid_t	org_id;
	bool		is_null;
} ChainKey;

static SPIPlanPtr head_plan = NULL;
static SPIPlanPtr head_null_plan = NULL;
static Oid	head_plan_rel = InvalidOid;	/* the relation the head plans read */

PG_FUNCTION_INFO_V1(iam_audit_seal);
PG_FUNCTION_INFO_V1(iam_audit_verify);
PG_FUNCTION_INFO_V1(iam_audit_erase_entity);

/*
 * SHA-256 through OpenSSL's one-shot digest functions, on a context that
 * lives on the caller's stack: audit_verify computes several digests per row
 * and the EVP interface behind pg_cryptohash looks the algorithm up again at
 * every initialisation, which cost more than the hashing itself.
 */
static SHA256_CTX *
sha256_begin(SHA256_CTX *ctx)
{
	if (SHA256_Init(ctx) != 1)
		elog(ERROR, "could not initialise SHA-256");
	return ctx;
}

static void
sha256_add(SHA256_CTX *ctx, const void *data, size_t len)
{
	if (SHA256_Update(ctx, data, len) != 1)
		elog(ERROR, "could not compute SHA-256");
}

static void
sha256_end(SHA256_CTX *ctx, uint8 *out)
{
	if (SHA256_Final(out, ctx) != 1)
		elog(ERROR, "could not compute SHA-256");
}

static void
put_be32(uint8 *p, uint32 v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

static void
put_be64(uint8 *p, uint64 v)
{
	put_be32(p, (uint32) (v >> 32));
	put_be32(p + 4, (uint32) v);
}

/* add_field adds one field of the canonical serialisation (NULL: data NULL) */
static void
add_field(SHA256_CTX *ctx, const void *data, uint32 len)
{
	uint8		head[5];

	if (data == NULL)
	{
		head[0] = 0;
		sha256_add(ctx, head, 1);
		return;
	}
	head[0] = 1;
	put_be32(head + 1, len);
	sha256_add(ctx, head, 5);
	sha256_add(ctx, data, len);
}

static bool
is_personal_column(const char *key, int len)
{
	for (int i = 0; i < (int) lengthof(personal_columns); i++)
		if ((int) strlen(personal_columns[i]) == len && memcmp(personal_columns[i], key, len) == 0)
			return true;
	return false;
}

/*
 * marker_digest: if v is an erasure marker {"erased": "<64 hex>"}, stores
 * the digest it carries in out and returns true.
 */
static bool
marker_digest(JsonbValue *v, uint8 *out)
{
	JsonbValue *erased;
	JsonbValue	key;

	if (v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data) ||
		JsonContainerSize(v->val.binary.data) != 1)
		return false;
	key.type = jbvString;
	key.val.string.val = "erased";
	key.val.string.len = 6;
	erased = findJsonbValueFromContainer(v->val.binary.data, JB_FOBJECT, &key);
	if (erased == NULL || erased->type != jbvString || erased->val.string.len != HASH_LEN * 2)
		return false;
	for (int i = 0; i < HASH_LEN * 2; i++)
		if (!isxdigit((unsigned char) erased->val.string.val[i]))
			return false;
	hex_decode(erased->val.string.val, HASH_LEN * 2, (char *) out);
	return true;
}

/* value_text returns the jsonb text form of one JSON value */
static char *
value_text(JsonbValue *v)
{
	if (v->type == jbvBinary)
		return JsonbToCString(NULL, v->val.binary.data, v->val.binary.len);
	return JsonbToCString(NULL, &JsonbValueToJsonb(v)->root, 0);
}

/* changes_digest computes the changes digest (see the file header). */
static void
changes_digest(Jsonb *changes, uint8 *out)
{
	SHA256_CTX	ctxbuf;
	SHA256_CTX *ctx = sha256_begin(&ctxbuf);
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;

	if (!JB_ROOT_IS_OBJECT(changes))
	{
		char	   *text = JsonbToCString(NULL, &changes->root, VARSIZE(changes));

		sha256_add(ctx, text, strlen(text));
		sha256_end(ctx, out);
		return;
	}
	it = JsonbIteratorInit(&changes->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		uint8		lenbuf[4];
		uint8		entry[HASH_LEN];

		if (tok != WJB_KEY)
			continue;
		put_be32(lenbuf, v.val.string.len);
		sha256_add(ctx, lenbuf, 4);
		sha256_add(ctx, v.val.string.val, v.val.string.len);
		tok = JsonbIteratorNext(&it, &v, true);
		Assert(tok == WJB_VALUE);
		if (!marker_digest(&v, entry))
		{
			char	   *text = value_text(&v);
			SHA256_CTX	ectxbuf;
			SHA256_CTX *ectx = sha256_begin(&ectxbuf);

			sha256_add(ectx, text, strlen(text));
			sha256_end(ectx, entry);
			pfree(text);
		}
		sha256_add(ctx, entry, HASH_LEN);
	}
	sha256_end(ctx, out);
}

/*
 * misplaced_marker returns the first key of changes holding an erasure
 * marker although it is not a personal-data column, or NULL.
 */
static char *
misplaced_marker(Jsonb *changes)
{
	JsonbIterator *it;
	JsonbValue	k,
				v;
	JsonbIteratorToken tok;
	uint8		entry[HASH_LEN];

	if (!JB_ROOT_IS_OBJECT(changes))
		return NULL;
	it = JsonbIteratorInit(&changes->root);
	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		if (tok != WJB_KEY)
			continue;
		tok = JsonbIteratorNext(&it, &v, true);
		if (marker_digest(&v, entry) && !is_personal_column(k.val.string.val, k.val.string.len))
			return pnstrdup(k.val.string.val, k.val.string.len);
	}
	return NULL;
}

static const void *
uuid_or_null(const RowView *r, int col)
{
	bool		isnull;
	Datum		d = row_get(r, col, &isnull);

	return isnull ? NULL : DatumGetUUIDP(d)->data;
}

static void
add_text_field(SHA256_CTX *ctx, const RowView *r, int col)
{
	bool		isnull;
	Datum		d = row_get(r, col, &isnull);

	if (isnull)
		add_field(ctx, NULL, 0);
	else
	{
		text	   *t = DatumGetTextPP(d);

		add_field(ctx, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
	}
}

/*
 * row_hash computes the row_hash of tuple (columns as in ROW_COLUMNS) at
 * position seq after prev.  *problem, when not NULL on return, names a column
 * that carries an erasure marker but holds no personal data.
 */
static void
row_hash(const RowView *r, int64 seq, const uint8 *prev,
		 uint8 *out, char **problem)
{
	SHA256_CTX	ctxbuf;
	SHA256_CTX *ctx = sha256_begin(&ctxbuf);
	uint8		buf[8];
	uint8		digest[HASH_LEN];
	bool		isnull;
	Datum		d;

	*problem = NULL;
	sha256_add(ctx, "iam.audit.v1", 12);
	sha256_add(ctx, prev, HASH_LEN);
	add_field(ctx, uuid_or_null(r, COL_ORG), UUID_LEN);
	put_be64(buf, (uint64) seq);
	add_field(ctx, buf, 8);
	add_field(ctx, uuid_or_null(r, COL_ID), UUID_LEN);
	d = row_get(r, COL_CREATED, &isnull);
	if (isnull)
		add_field(ctx, NULL, 0);
	else
	{
		put_be64(buf, (uint64) (DatumGetTimestampTz(d) + UNIX_TO_PG_EPOCH_USECS));
		add_field(ctx, buf, 8);
	}
	add_field(ctx, uuid_or_null(r, COL_USER), UUID_LEN);
	add_text_field(ctx, r, COL_ACTION);
	add_text_field(ctx, r, COL_ENTITY_TYPE);
	add_field(ctx, uuid_or_null(r, COL_ENTITY_ID), UUID_LEN);
	d = row_get(r, COL_CHANGES, &isnull);
	if (isnull)
		add_field(ctx, NULL, 0);
	else
	{
		Jsonb	   *changes = DatumGetJsonbP(d);

		changes_digest(changes, digest);
		*problem = misplaced_marker(changes);
		add_field(ctx, digest, HASH_LEN);
	}
	add_text_field(ctx, r, COL_IP);
	add_text_field(ctx, r, COL_UA);
	add_text_field(ctx, r, COL_REQUEST);
	d = row_get(r, COL_ROLE, &isnull);
	if (isnull)
		add_field(ctx, NULL, 0);
	else
		add_field(ctx, NameStr(*DatumGetName(d)), strlen(NameStr(*DatumGetName(d))));
	sha256_end(ctx, out);
}

bool
audit_chain_installed(void)
{
	Oid			nsp = get_namespace_oid("iam", true);

	return OidIsValid(nsp) && OidIsValid(get_relname_relid("audit_logs", nsp));
}

static void
take_seal_lock(void)
{
	char		sql[128];

	snprintf(sql, sizeof(sql), "SELECT pg_catalog.pg_advisory_xact_lock(%d, %d)",
			 AUDIT_SEAL_LOCK_KEY1, AUDIT_SEAL_LOCK_KEY2);
	if (SPI_execute(sql, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not take the audit sealer's lock");
}

static void
require_read_committed(const char *fn)
{
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("%s must run at READ COMMITTED", fn),
				 errdetail("It must see the chain heads committed by the previous sealer."),
				 errhint("Call it outside a REPEATABLE READ or SERIALIZABLE transaction.")));
}

/*
 * sealed_relation names the relation to read the sealed rows from, for a
 * query that asks for seq IS NOT NULL: from 0.6 iam.audit_logs, partitioned
 * (the condition leaves the inbox out, and row-level security applies to
 * the caller of iam.audit_verify as before), before it iam.audit_logs
 * without its inbox child.  *relid receives the oid of iam.audit_logs.
 */
static const char *
sealed_relation(Oid *relid)
{
	*relid = get_relname_relid("audit_logs", get_namespace_oid("iam", false));
	if (get_rel_relkind(*relid) == RELKIND_PARTITIONED_TABLE)
		return "iam.audit_logs";
	return "ONLY iam.audit_logs";
}

/* load_head reads the head (highest seq) of one chain */
static void
load_head(ChainHead *head)
{
	Datum		arg[1];
	int			rc;
	Oid			rel;
	const char *from = sealed_relation(&rel);

	/* prepared once per session, again when ALTER EXTENSION moved the rows */
	if (head_plan == NULL || rel != head_plan_rel)
	{
		Oid			argtypes[1] = {UUIDOID};
		Oid			internal = get_namespace_oid("iam_internal", true);
		bool		anchors = OidIsValid(internal) && OidIsValid(get_relname_relid("audit_anchors", internal));
		SPIPlanPtr	p1,
					p2;

		/*
		 * From 0.6 the head may have been dropped by retention: its anchor
		 * then carries it on
		 */
		if (anchors)
		{
			p1 = SPI_prepare(psprintf("SELECT seq, row_hash FROM ("
									  "(SELECT seq, row_hash FROM %s "
									  "WHERE org_id = $1 AND seq IS NOT NULL ORDER BY seq DESC LIMIT 1) "
									  "UNION ALL SELECT seq, row_hash FROM iam_internal.audit_anchors "
									  "WHERE org_id = $1) AS h ORDER BY seq DESC LIMIT 1", from),
							 1, argtypes);
			p2 = SPI_prepare(psprintf("SELECT seq, row_hash FROM ("
									  "(SELECT seq, row_hash FROM %s "
									  "WHERE org_id IS NULL AND seq IS NOT NULL ORDER BY seq DESC LIMIT 1) "
									  "UNION ALL SELECT seq, row_hash FROM iam_internal.audit_anchors "
									  "WHERE org_id IS NULL) AS h ORDER BY seq DESC LIMIT 1", from),
							 0, NULL);
		}
		else
		{
			p1 = SPI_prepare(psprintf("SELECT seq, row_hash FROM %s "
									  "WHERE org_id = $1 AND seq IS NOT NULL ORDER BY seq DESC LIMIT 1",
									  from),
							 1, argtypes);
			p2 = SPI_prepare(psprintf("SELECT seq, row_hash FROM %s "
									  "WHERE org_id IS NULL AND seq IS NOT NULL ORDER BY seq DESC LIMIT 1",
									  from),
							 0, NULL);
		}

		if (p1 == NULL || p2 == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(p1);
		SPI_keepplan(p2);
		if (head_plan != NULL)
		{
			SPI_freeplan(head_plan);
			SPI_freeplan(head_null_plan);
		}
		head_plan = p1;
		head_null_plan = p2;
		head_plan_rel = rel;
	}
	arg[0] = UUIDPGetDatum(&head->org_id);
	rc = head->is_null ? SPI_execute_plan(head_null_plan, NULL, NULL, false, 1)
		: SPI_execute_plan(head_plan, arg, NULL, false, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "reading a chain head failed: %s", SPI_result_code_string(rc));
	if (SPI_processed == 0)
	{
		head->seq = 0;
		memset(head->hash, 0, HASH_LEN);
	}
	else
	{
		bool		isnull;
		bytea	   *h;

		head->seq = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		h = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
		if (isnull || VARSIZE_ANY_EXHDR(h) != HASH_LEN)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("the head of an audit chain has no valid row_hash"),
					 errhint("Run iam.audit_verify() to find the damage.")));
		memcpy(head->hash, VARDATA_ANY(h), HASH_LEN);
	}
	SPI_freetuptable(SPI_tuptable);
}

static bytea *
make_bytea(const uint8 *data, int len)
{
	bytea	   *b = palloc(VARHDRSZ + len);

	SET_VARSIZE(b, VARHDRSZ + len);
	memcpy(VARDATA(b), data, len);
	return b;
}

/* the chain values the sealer gives to a set of rows, as array arguments */
typedef struct SealSet
{
	int			n;
	Datum	   *ids;
	Datum	   *seqs;
	Datum	   *prevs;
	Datum	   *hashes;
	Datum	   *tids;			/* where the rows are: the inbox's are deleted by tid */
} SealSet;

static void
seal_set_init(SealSet *set, uint64 capacity)
{
	set->n = 0;
	set->ids = palloc(sizeof(Datum) * capacity);
	set->seqs = palloc(sizeof(Datum) * capacity);
	set->prevs = palloc(sizeof(Datum) * capacity);
	set->hashes = palloc(sizeof(Datum) * capacity);
	set->tids = palloc(sizeof(Datum) * capacity);
}

/*
 * seal_set_write runs sql with the set as $1..$4, and the rows' tids as $5
 * when with_tids (a TID scan: the cost of a batch does not grow with the
 * inbox); it must write every row.
 */
static void
seal_set_write(const SealSet *set, const char *sql, int expected_rc, bool with_tids)
{
	Datum		args[5];
	Oid			argtypes[5] = {UUIDARRAYOID, INT8ARRAYOID, BYTEAARRAYOID, BYTEAARRAYOID, TIDARRAYOID};
	int			rc;

	if (set->n == 0)
		return;
	args[0] = PointerGetDatum(construct_array(set->ids, set->n, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR));
	args[1] = PointerGetDatum(construct_array(set->seqs, set->n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	args[2] = PointerGetDatum(construct_array(set->prevs, set->n, BYTEAOID, -1, false, TYPALIGN_INT));
	args[3] = PointerGetDatum(construct_array(set->hashes, set->n, BYTEAOID, -1, false, TYPALIGN_INT));
	if (with_tids)
		args[4] = PointerGetDatum(construct_array(set->tids, set->n, TIDOID, sizeof(ItemPointerData),
												  false, TYPALIGN_SHORT));
	rc = SPI_execute_with_args(sql, with_tids ? 5 : 4, argtypes, args, NULL, false, 0);
	if (rc != expected_rc || SPI_processed != (uint64) set->n)
		elog(ERROR, "sealing audit rows failed: %s, " UINT64_FORMAT " of %d rows",
			 SPI_result_code_string(rc), SPI_processed, set->n);
}

/*
 * seal_batch seals one batch of unsealed rows fetched from the sealer's
 * cursor.  Rows of the inbox move into iam.audit_logs in one statement, in
 * seq order so that the heap follows the chain (which keeps verification
 * sequential).
 */
static void
seal_batch(HTAB *heads, SPITupleTable *tuptable, uint64 n)
{
	SealSet		moved,
				in_place;

	seal_set_init(&moved, n);
	seal_set_init(&in_place, n);
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	tuple = tuptable->vals[i];
		ChainKey	key;
		ChainHead  *head;
		bool		found;
		bool		isnull;
		Datum		org;
		uint8		hash[HASH_LEN];
		char	   *problem;
		RowView		rv;
		SealSet    *set;

		memset(&key, 0, sizeof(key));
		row_view(&rv, tuple, tuptable->tupdesc);
		org = row_get(&rv, COL_ORG, &isnull);
		key.is_null = isnull;
		if (!isnull)
			memcpy(&key.org_id, DatumGetUUIDP(org), sizeof(pg_uuid_t));
		head = hash_search(heads, &key, HASH_ENTER, &found);
		if (!found)
			load_head(head);

		row_hash(&rv, head->seq + 1, head->hash, hash, &problem);
		set = DatumGetBool(row_get(&rv, COL_IN_INBOX, &isnull)) ? &moved : &in_place;
		set->ids[set->n] = row_get(&rv, COL_ID, &isnull);
		set->seqs[set->n] = Int64GetDatum(head->seq + 1);
		set->prevs[set->n] = PointerGetDatum(make_bytea(head->hash, HASH_LEN));
		set->hashes[set->n] = PointerGetDatum(make_bytea(hash, HASH_LEN));
		set->tids[set->n] = row_get(&rv, COL_TID, &isnull);
		set->n++;
		head->seq++;
		memcpy(head->hash, hash, HASH_LEN);
	}

	seal_set_write(&moved,
				   "WITH v AS (SELECT * FROM unnest($1, $2, $3, $4) AS v (id, seq, prev_hash, row_hash)), "
				   "moved AS (DELETE FROM iam.audit_inbox WHERE ctid = ANY ($5) RETURNING *) "
				   "INSERT INTO iam.audit_logs (id, user_id, org_id, action, entity_type, entity_id, "
				   "changes, ip_address, user_agent, created_at, request_id, db_role, "
				   "seq, prev_hash, row_hash) "
				   "SELECT m.id, m.user_id, m.org_id, m.action, m.entity_type, m.entity_id, "
				   "m.changes, m.ip_address, m.user_agent, m.created_at, m.request_id, m.db_role, "
				   "v.seq, v.prev_hash, v.row_hash "
				   "FROM moved m JOIN v ON v.id = m.id ORDER BY v.seq",
				   SPI_OK_INSERT, true);
	seal_set_write(&in_place,
				   "UPDATE ONLY iam.audit_logs a SET seq = v.seq, prev_hash = v.prev_hash, "
				   "row_hash = v.row_hash "
				   "FROM unnest($1, $2, $3, $4) AS v (id, seq, prev_hash, row_hash) "
				   "WHERE a.id = v.id AND a.seq IS NULL",
				   SPI_OK_UPDATE, false);
}

int64
audit_chain_seal(void)
{
	HASHCTL		ctl;
	HTAB	   *heads;
	volatile int64 total = 0;
	int64		n;
	Oid			save_userid;
	int			save_sec_context;
	AuditWriteMode save_mode;

	require_read_committed("iam.audit_seal()");
	take_seal_lock();

	ctl.keysize = sizeof(ChainKey);
	ctl.entrysize = sizeof(ChainHead);
	ctl.hcxt = CurrentMemoryContext;
	heads = hash_create("iam audit chain heads", 64, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(iam_table_owner("audit_logs"),
						   save_sec_context | SECURITY_LOCAL_USERID_CHANGE | SECURITY_NOFORCE_RLS);
	save_mode = audit_set_write_mode(AUDIT_WRITE_SEAL);
	PG_TRY();
	{
		/*
		 * One sorted read of everything committed now, fetched in batches:
		 * a backlog is sorted once, not once per batch.  Rows committed
		 * after the cursor's snapshot wait for the next pass.
		 */
		Portal		portal = SPI_cursor_open_with_args(NULL,
													   "SELECT " ROW_COLUMNS ", "
													   "tableoid <> 'iam.audit_logs'::pg_catalog.regclass, ctid "
													   "FROM iam.audit_logs WHERE seq IS NULL "
													   "ORDER BY created_at, id",
													   0, NULL, NULL, NULL, false, 0);

		do
		{
			SPITupleTable *batch;

			SPI_cursor_fetch(portal, true, SEAL_BATCH);
			batch = SPI_tuptable;
			n = SPI_processed;
			if (n > 0)
				seal_batch(heads, batch, n);
			SPI_freetuptable(batch);
			total += n;
		} while (n == SEAL_BATCH);
		SPI_cursor_close(portal);
	}
	PG_FINALLY();
	{
		audit_set_write_mode(save_mode);
		SetUserIdAndSecContext(save_userid, save_sec_context);
	}
	PG_END_TRY();
	hash_destroy(heads);
	return total;
}

/*
 * iam.audit_seal() seals everything committed (and the caller's own
 * uncommitted rows) now; returns the number of rows sealed.
 */
Datum
iam_audit_seal(PG_FUNCTION_ARGS)
{
	int64		n;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	n = audit_chain_seal();
	SPI_finish();
	PG_RETURN_INT64(n);
}

static pg_uuid_t *
copy_uuid(const pg_uuid_t *u)
{
	pg_uuid_t  *c = palloc(sizeof(pg_uuid_t));

	*c = *u;
	return c;
}

/* per-chain state of audit_verify */
typedef struct VerifyState
{
	bool		started;
	bool		org_null;
	pg_uuid_t	org;
	int64		sealed;
	int64		expect;			/* next seq expected */
	uint8		prev[HASH_LEN];
	bool		ok;
	int64		first_bad;
	char	   *detail;
	int64		anchor;			/* seq of the last row dropped by retention */
	bool		have_cp_hash;	/* row_hash at the checkpoint seq, when seen */
	uint8		cp_hash[HASH_LEN];
} VerifyState;

static char *
seq_detail(const char *fmt, int64 seq)
{
	return psprintf(fmt, seq);
}

static void
emit_chain(ReturnSetInfo *rsinfo, VerifyState *st, int64 cp_seq, bytea *cp_hash,
		   int64 unsealed)
{
	Datum		values[6];
	bool		nulls[6] = {false, false, false, false, false, false};

	if (st->ok && cp_seq > 0)
	{
		if (st->expect - 1 < cp_seq)
		{
			st->ok = false;
			st->first_bad = st->expect;
			st->detail = psprintf("the chain ends at seq " INT64_FORMAT " before the checkpoint at seq "
								  INT64_FORMAT ": rows were removed from its tail",
								  st->expect - 1, cp_seq);
		}
		else if (cp_hash != NULL &&
				 (VARSIZE_ANY_EXHDR(cp_hash) != HASH_LEN || !st->have_cp_hash ||
				  memcmp(VARDATA_ANY(cp_hash), st->cp_hash, HASH_LEN) != 0))
		{
			st->ok = false;
			st->first_bad = cp_seq;
			st->detail = seq_detail("row_hash at seq " INT64_FORMAT " differs from the checkpoint", cp_seq);
		}
	}
	values[0] = BoolGetDatum(st->ok);
	nulls[1] = st->ok;
	values[1] = Int64GetDatum(st->first_bad);
	nulls[2] = st->detail == NULL;
	values[2] = st->detail ? CStringGetTextDatum(st->detail) : (Datum) 0;
	nulls[3] = st->org_null;
	values[3] = UUIDPGetDatum(&st->org);
	values[4] = Int64GetDatum(st->sealed);
	values[5] = Int64GetDatum(unsealed);
	audit_sealer_check(unsealed);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/* check_row verifies one sealed row against the chain state */
static void
check_row(VerifyState *st, HeapTuple tuple, TupleDesc desc, int64 cp_seq)
{
	RowView		rv;
	bool		isnull;
	int64		seq;
	Datum		d;
	bytea	   *prev,
			   *stored;
	uint8		computed[HASH_LEN];
	char	   *problem;

	row_view(&rv, tuple, desc);
	seq = DatumGetInt64(row_get(&rv, COL_SEQ, &isnull));
	st->sealed++;
	/*
	 * a row sealed before the anchor yet kept, its month being retained (a
	 * transaction that committed across the turn of a month): the chain
	 * is verified from the anchor on
	 */
	if (seq <= st->anchor)
		return;
	if (!st->ok)
		return;
	if (seq != st->expect)
	{
		st->ok = false;
		st->first_bad = st->expect;
		st->detail = seq > st->expect ?
			psprintf("seq " INT64_FORMAT " is missing: the next row has seq " INT64_FORMAT, st->expect, seq) :
			seq_detail("seq " INT64_FORMAT " appears twice", seq);
		return;
	}
	d = row_get(&rv, COL_PREV, &isnull);
	prev = isnull ? NULL : DatumGetByteaPP(d);
	if (prev == NULL || VARSIZE_ANY_EXHDR(prev) != HASH_LEN ||
		memcmp(VARDATA_ANY(prev), st->prev, HASH_LEN) != 0)
	{
		st->ok = false;
		st->first_bad = seq;
		st->detail = seq_detail("prev_hash of seq " INT64_FORMAT " is not the row_hash of the row before it", seq);
		return;
	}
	row_hash(&rv, seq, st->prev, computed, &problem);
	d = row_get(&rv, COL_HASH, &isnull);
	stored = isnull ? NULL : DatumGetByteaPP(d);
	if (stored == NULL || VARSIZE_ANY_EXHDR(stored) != HASH_LEN ||
		memcmp(VARDATA_ANY(stored), computed, HASH_LEN) != 0)
	{
		st->ok = false;
		st->first_bad = seq;
		st->detail = seq_detail("row_hash of seq " INT64_FORMAT " does not match the row's content", seq);
		return;
	}
	if (problem != NULL)
	{
		st->ok = false;
		st->first_bad = seq;
		st->detail = psprintf("seq " INT64_FORMAT " has an erasure marker on column \"%s\", which holds no personal data",
							  seq, problem);
		return;
	}
	if (seq == cp_seq)
	{
		st->have_cp_hash = true;
		memcpy(st->cp_hash, VARDATA_ANY(stored), HASH_LEN);
	}
	memcpy(st->prev, VARDATA_ANY(stored), HASH_LEN);
	st->expect = seq + 1;
}

/* unsealed_count: unsealed rows of one chain */
static int64
unsealed_count(bool org_null, pg_uuid_t *org)
{
	Datum		arg[1];
	Oid			argtypes[1] = {UUIDOID};
	int			rc;
	bool		isnull;
	int64		n;

	arg[0] = UUIDPGetDatum(org);
	rc = org_null ?
		SPI_execute("SELECT count(*) FROM iam.audit_logs WHERE seq IS NULL AND org_id IS NULL", true, 0) :
		SPI_execute_with_args("SELECT count(*) FROM iam.audit_logs WHERE seq IS NULL AND org_id = $1",
							  1, argtypes, arg, NULL, true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "counting unsealed rows failed");
	n = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_freetuptable(SPI_tuptable);
	return n;
}

/*
 * load_anchor starts the chain after its anchor, when retention dropped its
 * oldest partitions (iam_internal.audit_anchors, from 0.6; read as the
 * trail's owner, as no other role may).
 */
static void
load_anchor(VerifyState *st)
{
	Oid			nsp = get_namespace_oid("iam_internal", true);
	Datum		arg[1];
	Oid			argtypes[1] = {UUIDOID};
	Oid			save_userid;
	int			save_sec_context;
	volatile int rc = 0;

	if (!OidIsValid(nsp) || !OidIsValid(get_relname_relid("audit_anchors", nsp)))
		return;
	arg[0] = UUIDPGetDatum(&st->org);
	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(iam_table_owner("audit_logs"),
						   save_sec_context | SECURITY_LOCAL_USERID_CHANGE | SECURITY_NOFORCE_RLS);
	PG_TRY();
	{
		rc = st->org_null ?
			SPI_execute("SELECT seq, row_hash FROM iam_internal.audit_anchors WHERE org_id IS NULL", true, 1) :
			SPI_execute_with_args("SELECT seq, row_hash FROM iam_internal.audit_anchors WHERE org_id = $1",
								  1, argtypes, arg, NULL, true, 1);
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(save_userid, save_sec_context);
	}
	PG_END_TRY();
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "reading the audit anchors failed");
	if (SPI_processed == 1)
	{
		bool		isnull;
		bytea	   *h;

		st->anchor = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		h = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
		if (isnull || VARSIZE_ANY_EXHDR(h) != HASH_LEN)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("the anchor of an audit chain has no valid row_hash"),
					 errhint("Restore iam_internal.audit_anchors from a backup.")));
		st->expect = st->anchor + 1;
		memcpy(st->prev, VARDATA_ANY(h), HASH_LEN);
	}
	SPI_freetuptable(SPI_tuptable);
}

static void
start_chain(VerifyState *st, bool org_null, const pg_uuid_t *org)
{
	memset(st, 0, sizeof(*st));
	st->started = true;
	st->org_null = org_null;
	if (org != NULL)
		st->org = *org;
	st->expect = 1;
	st->ok = true;
	load_anchor(st);
}

/*
 * iam.audit_verify(org_id uuid DEFAULT NULL, checkpoint_seq bigint DEFAULT
 * NULL, checkpoint_hash bytea DEFAULT NULL) returns one row per chain (every
 * chain, or org_id's): ok, first_bad_seq, detail, org_id, sealed, unsealed.
 * The rows it may read are those the caller's row-level security shows.
 */
Datum
iam_audit_verify(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	bool		one = !PG_ARGISNULL(0);
	pg_uuid_t  *want = one ? PG_GETARG_UUID_P(0) : NULL;
	int64		cp_seq = PG_ARGISNULL(1) ? 0 : PG_GETARG_INT64(1);
	bytea	   *cp_hash = PG_ARGISNULL(2) ? NULL : PG_GETARG_BYTEA_PP(2);
	VerifyState st;
	Portal		portal;
	SPIPlanPtr	plan;
	Datum		arg[1];
	Oid			argtypes[1] = {UUIDOID};
	MemoryContext rowcxt;
	List	   *orgs_seen = NIL;
	ListCell   *lc;
	Oid			rel;
	const char *from;

	if (cp_seq < 0 || (!PG_ARGISNULL(1) && cp_seq == 0) || (cp_hash != NULL && PG_ARGISNULL(1)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("checkpoint_seq must be a positive seq and accompanies checkpoint_hash"),
				 errhint("Pass the seq and row_hash iam.audit_checkpoint() returned.")));
	if (cp_seq > 0 && !one)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a checkpoint belongs to one organisation's chain"),
				 errhint("Pass the org_id the checkpoint was taken for.")));

	InitMaterializedSRF(fcinfo, 0);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	from = sealed_relation(&rel);
	if (one)
	{
		arg[0] = UUIDPGetDatum(want);
		plan = SPI_prepare(psprintf("SELECT " ROW_COLUMNS " FROM %s "
									"WHERE org_id = $1 AND seq IS NOT NULL ORDER BY seq", from),
						   1, argtypes);
	}
	else
		plan = SPI_prepare(psprintf("SELECT " ROW_COLUMNS " FROM %s "
									"WHERE seq IS NOT NULL ORDER BY org_id, seq", from), 0, NULL);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	portal = SPI_cursor_open(NULL, plan, one ? arg : NULL, NULL, true);

	rowcxt = AllocSetContextCreate(CurrentMemoryContext, "iam audit verify row",
								   ALLOCSET_DEFAULT_SIZES);
	st.started = false;
	if (one)
		start_chain(&st, false, want);
	for (;;)
	{
		SPITupleTable *batch;
		uint64		nrows;

		SPI_cursor_fetch(portal, true, VERIFY_FETCH);
		/* unsealed_count() below runs queries of its own: keep the batch */
		batch = SPI_tuptable;
		nrows = SPI_processed;
		if (nrows == 0)
			break;
		for (uint64 i = 0; i < nrows; i++)
		{
			HeapTuple	tuple = batch->vals[i];
			TupleDesc	desc = batch->tupdesc;
			bool		isnull;
			Datum		org = SPI_getbinval(tuple, desc, COL_ORG, &isnull);
			MemoryContext old;

			if (!one && (!st.started || st.org_null != isnull ||
						 (!isnull && memcmp(&st.org, DatumGetUUIDP(org), UUID_LEN) != 0)))
			{
				if (st.started)
				{
					orgs_seen = lappend(orgs_seen, st.org_null ? NULL : copy_uuid(&st.org));
					emit_chain(rsinfo, &st, 0, NULL, unsealed_count(st.org_null, &st.org));
				}
				start_chain(&st, isnull, isnull ? NULL : DatumGetUUIDP(org));
			}
			old = MemoryContextSwitchTo(rowcxt);
			check_row(&st, tuple, desc, cp_seq);
			MemoryContextSwitchTo(old);
			MemoryContextReset(rowcxt);
		}
		SPI_freetuptable(batch);
	}
	SPI_cursor_close(portal);

	if (one)
		emit_chain(rsinfo, &st, cp_seq, cp_hash, unsealed_count(false, want));
	else
	{
		int			rc;

		if (st.started)
		{
			orgs_seen = lappend(orgs_seen, st.org_null ? NULL : copy_uuid(&st.org));
			emit_chain(rsinfo, &st, 0, NULL, unsealed_count(st.org_null, &st.org));
		}
		/* chains with unsealed rows only */
		rc = SPI_execute("SELECT org_id, count(*) FROM iam.audit_logs WHERE seq IS NULL GROUP BY org_id",
						 true, 0);
		if (rc != SPI_OK_SELECT)
			elog(ERROR, "counting unsealed rows failed");
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			bool		isnull,
						seen = false;
			Datum		org = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
			int64		n = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
			VerifyState empty;

			(void) SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
			foreach(lc, orgs_seen)
			{
				pg_uuid_t  *o = lfirst(lc);

				if ((o == NULL && isnull) ||
					(o != NULL && !isnull && memcmp(o, DatumGetUUIDP(org), UUID_LEN) == 0))
					seen = true;
			}
			if (seen)
				continue;
			start_chain(&empty, isnull, isnull ? NULL : DatumGetUUIDP(org));
			emit_chain(rsinfo, &empty, 0, NULL, n);
		}
	}
	SPI_finish();
	return (Datum) 0;
}

/* push_marker pushes {"erased": "<hex of the entry digest of v>"} */
static JsonbValue *
push_marker(JsonbParseState **state, JsonbValue *v)
{
	uint8		entry[HASH_LEN];
	char	   *hex = palloc(HASH_LEN * 2 + 1);	/* the parse state keeps it */
	JsonbValue	k,
				s;
	char	   *text;
	SHA256_CTX	ctxbuf;
	SHA256_CTX *ctx;

	if (marker_digest(v, entry))
		return pushJsonbValue(state, WJB_VALUE, v); /* already erased */
	text = value_text(v);
	ctx = sha256_begin(&ctxbuf);
	sha256_add(ctx, text, strlen(text));
	sha256_end(ctx, entry);
	hex_encode((char *) entry, HASH_LEN, hex);
	hex[HASH_LEN * 2] = '\0';
	pushJsonbValue(state, WJB_BEGIN_OBJECT, NULL);
	k.type = jbvString;
	k.val.string.val = "erased";
	k.val.string.len = 6;
	pushJsonbValue(state, WJB_KEY, &k);
	s.type = jbvString;
	s.val.string.val = hex;
	s.val.string.len = HASH_LEN * 2;
	pushJsonbValue(state, WJB_VALUE, &s);
	return pushJsonbValue(state, WJB_END_OBJECT, NULL);
}

/* erase_changes returns changes with every personal-data value replaced */
static Jsonb *
erase_changes(Jsonb *changes, bool *changed)
{
	JsonbParseState *state = NULL;
	JsonbIterator *it;
	JsonbValue	v,
			   *res = NULL;
	JsonbIteratorToken tok;
	bool		erase_next = false;
	uint8		entry[HASH_LEN];

	*changed = false;
	if (!JB_ROOT_IS_OBJECT(changes))
		return changes;
	it = JsonbIteratorInit(&changes->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			erase_next = is_personal_column(v.val.string.val, v.val.string.len);
			res = pushJsonbValue(&state, tok, &v);
		}
		else if (tok == WJB_VALUE && erase_next)
		{
			if (!marker_digest(&v, entry))
				*changed = true;
			res = push_marker(&state, &v);
		}
		else
			res = pushJsonbValue(&state, tok, tok == WJB_BEGIN_OBJECT || tok == WJB_END_OBJECT ? NULL : &v);
	}
	return JsonbValueToJsonb(res);
}

/*
 * iam.audit_erase_entity(entity_type text, entity_id uuid) replaces the
 * personal data inside the changes of every audit row about that entity by
 * erasure markers; returns how many rows it changed.  Used by
 * iam.erase_user; not granted to any role.
 */
Datum
iam_audit_erase_entity(PG_FUNCTION_ARGS)
{
	Datum		args[2];
	Oid			argtypes[2] = {TEXTOID, UUIDOID};
	Oid			upd_types[2] = {UUIDOID, JSONBOID};
	int			rc;
	volatile int64 changed_rows = 0;
	Oid			save_userid;
	int			save_sec_context;
	AuditWriteMode save_mode;
	SPITupleTable *found;
	uint64		nfound;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("entity_type and entity_id must not be NULL"),
				 errhint("Pass the entity whose personal data is to be erased.")));
	args[0] = PG_GETARG_DATUM(0);
	args[1] = PG_GETARG_DATUM(1);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	require_read_committed("iam.audit_erase_entity()");
	/* serialise with the sealer: both update rows of the trail */
	take_seal_lock();

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(iam_table_owner("audit_logs"),
						   save_sec_context | SECURITY_LOCAL_USERID_CHANGE | SECURITY_NOFORCE_RLS);
	save_mode = audit_set_write_mode(AUDIT_WRITE_REDACT);
	PG_TRY();
	{
		rc = SPI_execute_with_args("SELECT id, changes FROM iam.audit_logs "
								   "WHERE entity_type = $1 AND entity_id = $2 AND changes IS NOT NULL "
								   "ORDER BY created_at, id",
								   2, argtypes, args, NULL, false, 0);
		if (rc != SPI_OK_SELECT)
			elog(ERROR, "reading audit rows failed");
		found = SPI_tuptable;
		nfound = SPI_processed;
		for (uint64 i = 0; i < nfound; i++)
		{
			bool		isnull,
						changed;
			Datum		upd[2];
			Jsonb	   *erased;

			upd[0] = SPI_getbinval(found->vals[i], found->tupdesc, 1, &isnull);
			erased = erase_changes(DatumGetJsonbP(SPI_getbinval(found->vals[i], found->tupdesc, 2, &isnull)),
								   &changed);
			if (!changed)
				continue;
			upd[1] = JsonbPGetDatum(erased);
			rc = SPI_execute_with_args("UPDATE iam.audit_logs SET changes = $2 WHERE id = $1",
									   2, upd_types, upd, NULL, false, 0);
			if (rc != SPI_OK_UPDATE)
				elog(ERROR, "erasing an audit row failed");
			changed_rows++;
		}
	}
	PG_FINALLY();
	{
		audit_set_write_mode(save_mode);
		SetUserIdAndSecContext(save_userid, save_sec_context);
	}
	PG_END_TRY();
	SPI_finish();
	PG_RETURN_INT64(changed_rows);
}
