/*-------------------------------------------------------------------------
 *
 * api_format.c
 *		The REST API's hot formatting in C: iam.api_ts(timestamptz), an
 *		instant as RFC 3339 in UTC; iam.api_user_json(iam.users, boolean),
 *		a user as the API shows it, and iam.api_user_etag(iam.users), its
 *		ETag; iam.api_urlencode(text) and iam.api_next_link(...), the Link
 *		header of a page.
 *
 * They were SQL functions (iam--0.3--0.4.sql), called for every listing
 * row, every user response and every page, and as SQL functions they cost
 * more than their work: to_char parses its format on every call, the URL
 * encoder ran a query per value, and a handler that plans its query on
 * each call (the user listing, whose filters and sort make it dynamic
 * SQL) read back and inlined their stored bodies every time.  Measured
 * with track_functions on a listing page of 50: 830 us a page, of which
 * 258 us built the Link header; a PATCH of a user: 724 us, of which
 * 128 us computed its ETag twice.  The output is byte for byte what the SQL
 * versions produced (sql/api_format.sql compares them).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "common/md5.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/json.h"
#include "utils/array.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"
#include "utils/uuid.h"

PG_FUNCTION_INFO_V1(iam_api_ts);
PG_FUNCTION_INFO_V1(iam_api_user_json);
PG_FUNCTION_INFO_V1(iam_api_user_etag);
PG_FUNCTION_INFO_V1(iam_api_urlencode);
PG_FUNCTION_INFO_V1(iam_api_next_link);

/* The columns of iam.users that the API shows, in the order it shows them. */
typedef enum UserField
{
	UF_ID, UF_EMAIL, UF_NAME, UF_ROLE, UF_DEPARTMENT, UF_PHONE, UF_PROFILE_IMAGE,
	UF_EMPLOYMENT_EQUITY, UF_IS_ACTIVE, UF_TWO_FACTOR_ENABLED, UF_METADATA,
	UF_LAST_LOGIN, UF_CREATED_AT, UF_UPDATED_AT, UF_DELETED_AT,
	UF_COUNT
} UserField;

static const char *const user_field_names[UF_COUNT] = {
	"id", "email", "name", "role", "department", "phone", "profile_image",
	"employment_equity", "is_active", "two_factor_enabled", "metadata",
	"last_login", "created_at", "updated_at", "deleted_at",
};

/* Where those columns are in the row type, found once per calling expression. */
typedef struct UserLayout
{
	Oid			typid;
	int32		typmod;
	int			natts;
	int			attnum[UF_COUNT];	/* 1-based */
} UserLayout;

/*
 * append_ts writes ts as YYYY-MM-DDTHH:MI:SS.USZ in UTC, as
 * to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') does
 * (a year of more than four digits in full, a year BC without its sign);
 * false for -infinity and infinity, for which to_char gives NULL.
 */
static bool
append_ts(StringInfo buf, TimestampTz ts)
{
	struct pg_tm tm;
	fsec_t		fsec;
	int			year;

	if (TIMESTAMP_NOT_FINITE(ts) || timestamp2tm(ts, NULL, &tm, &fsec, NULL, NULL) != 0)
		return false;
	year = tm.tm_year > 0 ? tm.tm_year : -(tm.tm_year - 1);
	appendStringInfo(buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ",
					 year, tm.tm_mon, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int) fsec);
	return true;
}

Datum
iam_api_ts(PG_FUNCTION_ARGS)
{
	StringInfoData buf;

	initStringInfo(&buf);
	if (!append_ts(&buf, PG_GETARG_TIMESTAMPTZ(0)))
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text_with_len(buf.data, buf.len));
}

/* user_layout finds (or recalls) the iam.users columns in the row's type. */
static UserLayout *
user_layout(FunctionCallInfo fcinfo, HeapTupleHeader row, TupleDesc *tupdesc)
{
	Oid			typid = HeapTupleHeaderGetTypeId(row);
	int32		typmod = HeapTupleHeaderGetTypMod(row);
	UserLayout *l = fcinfo->flinfo->fn_extra;

	*tupdesc = lookup_rowtype_tupdesc(typid, typmod);
	if (l != NULL && l->typid == typid && l->typmod == typmod && l->natts == (*tupdesc)->natts)
		return l;
	if (l == NULL)
		l = MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, sizeof(UserLayout));
	l->typid = typid;
	l->typmod = typmod;
	l->natts = (*tupdesc)->natts;
	for (int f = 0; f < UF_COUNT; f++)
	{
		l->attnum[f] = 0;
		for (int i = 0; i < (*tupdesc)->natts; i++)
		{
			Form_pg_attribute att = TupleDescAttr(*tupdesc, i);

			if (!att->attisdropped && strcmp(NameStr(att->attname), user_field_names[f]) == 0)
			{
				l->attnum[f] = i + 1;
				break;
			}
		}
		if (l->attnum[f] == 0)
		{
			ReleaseTupleDesc(*tupdesc);
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("iam.api_user_json: the row has no column \"%s\"", user_field_names[f]),
					 errhint("Pass a row of iam.users.")));
		}
	}
	fcinfo->flinfo->fn_extra = l;
	return l;
}

/* append_masked_email: j***@example.com, or *** when there is no local part. */
static void
append_masked_email(StringInfo buf, const char *email)
{
	const char *at = NULL;
	int			first = pg_mblen(email);

	for (const char *p = email; *p != '\0'; p += pg_mblen(p))
		if (*p == '@')
		{
			at = p;
			break;
		}
	if (at != NULL && at > email)
	{
		StringInfoData m;

		initStringInfo(&m);
		appendBinaryStringInfo(&m, email, first);
		appendStringInfoString(&m, "***");
		appendStringInfoString(&m, at);
		escape_json(buf, m.data);
		pfree(m.data);
	}
	else
		escape_json(buf, "***");
}

/* append_masked_phone: every digit but the last two replaced by '*'. */
static void
append_masked_phone(StringInfo buf, const char *phone)
{
	char	   *m = pstrdup(phone);
	int			digits = 0;

	for (const char *p = m; *p != '\0'; p++)
		digits += *p >= '0' && *p <= '9';
	for (char *p = m; *p != '\0' && digits > 2; p++)
		if (*p >= '0' && *p <= '9')
		{
			*p = '*';
			digits--;
		}
	escape_json(buf, m);
	pfree(m);
}

static void
append_uuid(StringInfo buf, Datum d)
{
	static const char hex[] = "0123456789abcdef";
	const pg_uuid_t *u = DatumGetUUIDP(d);
	char		s[39];
	int			o = 0;

	s[o++] = '"';
	for (int i = 0; i < UUID_LEN; i++)
	{
		if (i == 4 || i == 6 || i == 8 || i == 10)
			s[o++] = '-';
		s[o++] = hex[u->data[i] >> 4];
		s[o++] = hex[u->data[i] & 0x0f];
	}
	s[o++] = '"';
	appendBinaryStringInfo(buf, s, o);
}

Datum
iam_api_user_json(PG_FUNCTION_ARGS)
{
	bool		unmasked = !PG_ARGISNULL(1) && PG_GETARG_BOOL(1);
	HeapTupleHeader row = PG_ARGISNULL(0) ? NULL : PG_GETARG_HEAPTUPLEHEADER(0);
	TupleDesc	tupdesc = NULL;
	UserLayout *l = NULL;
	HeapTupleData tuple;
	StringInfoData buf;

	if (row != NULL)
	{
		l = user_layout(fcinfo, row, &tupdesc);
		tuple.t_len = HeapTupleHeaderGetDatumLength(row);
		ItemPointerSetInvalid(&tuple.t_self);
		tuple.t_tableOid = InvalidOid;
		tuple.t_data = row;
	}
	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	for (int f = 0; f < UF_COUNT; f++)
	{
		bool		isnull = true;
		Datum		v = (Datum) 0;

		if (f > 0)
			appendStringInfoString(&buf, ", ");
		escape_json(&buf, user_field_names[f]);
		appendStringInfoString(&buf, " : ");
		if (row != NULL)
			v = heap_getattr(&tuple, l->attnum[f], tupdesc, &isnull);
		if (f == UF_EMPLOYMENT_EQUITY && !unmasked)
			isnull = true;		/* never shown masked */
		if (isnull)
		{
			appendStringInfoString(&buf, "null");
			continue;
		}
		switch (f)
		{
			case UF_ID:
				append_uuid(&buf, v);
				break;
			case UF_IS_ACTIVE:
			case UF_TWO_FACTOR_ENABLED:
				appendStringInfoString(&buf, DatumGetBool(v) ? "true" : "false");
				break;
			case UF_METADATA:
				{
					Jsonb	   *jb = DatumGetJsonbP(v);

					(void) JsonbToCString(&buf, &jb->root, VARSIZE(jb));
					break;
				}
			case UF_LAST_LOGIN:
			case UF_CREATED_AT:
			case UF_UPDATED_AT:
			case UF_DELETED_AT:
				{
					StringInfoData ts;

					initStringInfo(&ts);
					if (append_ts(&ts, DatumGetTimestampTz(v)))
						escape_json(&buf, ts.data);
					else
						appendStringInfoString(&buf, "null");
					pfree(ts.data);
					break;
				}
			default:
				{
					char	   *s = TextDatumGetCString(v);

					if (f == UF_EMAIL && !unmasked)
						append_masked_email(&buf, s);
					else if (f == UF_PHONE && !unmasked)
						append_masked_phone(&buf, s);
					else
						escape_json(&buf, s);
					pfree(s);
				}
		}
	}
	appendStringInfoChar(&buf, '}');
	if (tupdesc != NULL)
		ReleaseTupleDesc(tupdesc);
	PG_RETURN_TEXT_P(cstring_to_text_with_len(buf.data, buf.len));
}

/*
 * iam.api_user_etag(u): '"' || md5(id || '/' || extract(epoch FROM
 * updated_at) || '/' || jsonb_build_array(email, name, role, department,
 * phone, profile_image, employment_equity, is_active, two_factor_enabled,
 * metadata, deleted_at IS NULL)::text) || '"', as iam--0.3--0.4.sql
 * defined it, so that ETags handed out before the upgrade still match.
 */
Datum
iam_api_user_etag(PG_FUNCTION_ARGS)
{
	static const UserField shown[] = {
		UF_EMAIL, UF_NAME, UF_ROLE, UF_DEPARTMENT, UF_PHONE, UF_PROFILE_IMAGE,
		UF_EMPLOYMENT_EQUITY, UF_IS_ACTIVE, UF_TWO_FACTOR_ENABLED, UF_METADATA,
	};
	HeapTupleHeader row = PG_GETARG_HEAPTUPLEHEADER(0);
	TupleDesc	tupdesc;
	UserLayout *l = user_layout(fcinfo, row, &tupdesc);
	HeapTupleData tuple;
	StringInfoData buf;
	char		md5[33];		/* 32 hex digits */
	const char *errstr = NULL;
	bool		isnull;
	Datum		v;

	tuple.t_len = HeapTupleHeaderGetDatumLength(row);
	ItemPointerSetInvalid(&tuple.t_self);
	tuple.t_tableOid = InvalidOid;
	tuple.t_data = row;
	initStringInfo(&buf);

	/* NULL id or updated_at: the SQL version's || gave NULL */
	v = heap_getattr(&tuple, l->attnum[UF_ID], tupdesc, &isnull);
	if (isnull)
		goto null;
	append_uuid(&buf, v);
	/* without the quotes append_uuid adds for JSON */
	memmove(buf.data, buf.data + 1, 36);
	buf.len = 36;
	appendStringInfoChar(&buf, '/');
	v = heap_getattr(&tuple, l->attnum[UF_UPDATED_AT], tupdesc, &isnull);
	if (isnull)
		goto null;
	appendStringInfoString(&buf, DatumGetCString(DirectFunctionCall1(numeric_out,
																	  DirectFunctionCall2(extract_timestamptz, CStringGetTextDatum("epoch"), v))));
	appendStringInfoString(&buf, "/[");
	for (size_t i = 0; i < lengthof(shown); i++)
	{
		if (i > 0)
			appendStringInfoString(&buf, ", ");
		v = heap_getattr(&tuple, l->attnum[shown[i]], tupdesc, &isnull);
		if (isnull)
			appendStringInfoString(&buf, "null");
		else if (shown[i] == UF_IS_ACTIVE || shown[i] == UF_TWO_FACTOR_ENABLED)
			appendStringInfoString(&buf, DatumGetBool(v) ? "true" : "false");
		else if (shown[i] == UF_METADATA)
		{
			Jsonb	   *jb = DatumGetJsonbP(v);

			(void) JsonbToCString(&buf, &jb->root, VARSIZE(jb));
		}
		else
			escape_json(&buf, TextDatumGetCString(v));
	}
	(void) heap_getattr(&tuple, l->attnum[UF_DELETED_AT], tupdesc, &isnull);
	appendStringInfoString(&buf, isnull ? ", true]" : ", false]");

	if (!pg_md5_hash(buf.data, buf.len, md5, &errstr))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute an ETag: %s", errstr),
				 errhint("This is a bug or an out-of-memory condition; try again.")));
	ReleaseTupleDesc(tupdesc);
	resetStringInfo(&buf);
	appendStringInfo(&buf, "\"%s\"", md5);
	PG_RETURN_TEXT_P(cstring_to_text_with_len(buf.data, buf.len));

null:
	ReleaseTupleDesc(tupdesc);
	PG_RETURN_NULL();
}

/* append_urlencoded: RFC 3986 unreserved bytes as they are, the rest %XX. */
static void
append_urlencoded(StringInfo buf, const char *s, int len)
{
	static const char hex[] = "0123456789ABCDEF";

	for (int i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if ((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			c == '-' || c == '.' || c == '_' || c == '~')
			appendStringInfoChar(buf, (char) c);
		else
		{
			appendStringInfoChar(buf, '%');
			appendStringInfoChar(buf, hex[c >> 4]);
			appendStringInfoChar(buf, hex[c & 0x0f]);
		}
	}
}

Datum
iam_api_urlencode(PG_FUNCTION_ARGS)
{
	text	   *s = PG_GETARG_TEXT_PP(0);
	StringInfoData buf;

	initStringInfo(&buf);
	append_urlencoded(&buf, VARDATA_ANY(s), VARSIZE_ANY_EXHDR(s));
	PG_RETURN_TEXT_P(cstring_to_text_with_len(buf.data, buf.len));
}

/*
 * field_text is params->>name: a string as it is, a number or boolean as
 * its text, an object or array as JSON; NULL when absent or JSON null.
 */
static char *
field_text(Jsonb *params, const char *name)
{
	JsonbValue	vbuf;
	JsonbValue *v;

	if (params == NULL || !JB_ROOT_IS_OBJECT(params) ||
		(v = getKeyJsonValueFromContainer(&params->root, name, strlen(name), &vbuf)) == NULL)
		return NULL;
	switch (v->type)
	{
		case jbvString:
			return pnstrdup(v->val.string.val, v->val.string.len);
		case jbvBool:
			return pstrdup(v->val.boolean ? "true" : "false");
		case jbvNumeric:
			return DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
		case jbvBinary:
			return JsonbToCString(NULL, v->val.binary.data, v->val.binary.len);
		default:
			return NULL;
	}
}

/*
 * iam.api_next_link(path, params, names, cursor): {"Link":
 * "</api/v1<path>?<name>=<value>&...cursor=<cursor>>; rel=\"next\""}, with
 * the parameters of names present in params, in that order, their values
 * percent-encoded.
 */
Datum
iam_api_next_link(PG_FUNCTION_ARGS)
{
	Jsonb	   *params = PG_ARGISNULL(1) ? NULL : PG_GETARG_JSONB_P(1);
	StringInfoData link;
	StringInfoData obj;

	initStringInfo(&link);
	appendStringInfoString(&link, "</api/v1");
	if (!PG_ARGISNULL(0))
		appendStringInfoString(&link, text_to_cstring(PG_GETARG_TEXT_PP(0)));
	appendStringInfoChar(&link, '?');
	if (!PG_ARGISNULL(2))
	{
		Datum	   *names;
		bool	   *nulls;
		int			n;

		deconstruct_array(PG_GETARG_ARRAYTYPE_P(2), TEXTOID, -1, false, TYPALIGN_INT,
						  &names, &nulls, &n);
		for (int i = 0; i < n; i++)
		{
			char	   *name;
			char	   *value;

			if (nulls[i])
				continue;
			name = TextDatumGetCString(names[i]);
			if ((value = field_text(params, name)) == NULL)
				continue;
			appendStringInfo(&link, "%s=", name);
			append_urlencoded(&link, value, strlen(value));
			appendStringInfoChar(&link, '&');
		}
	}
	appendStringInfoString(&link, "cursor=");
	if (!PG_ARGISNULL(3))
		appendStringInfoString(&link, text_to_cstring(PG_GETARG_TEXT_PP(3)));
	appendStringInfoString(&link, ">; rel=\"next\"");

	initStringInfo(&obj);
	appendStringInfoString(&obj, "{\"Link\": ");
	escape_json(&obj, link.data);
	appendStringInfoChar(&obj, '}');
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(obj.data)));
}
