/*-------------------------------------------------------------------------
 *
 * api_cursor.c
 *		The REST API's keyset cursors: iam.api_cursor_encode(sort, v, id)
 *		makes one, iam.api_cursor_decode(cursor, sort, is_timestamp) reads
 *		one back or refuses it with IA400.
 *
 * A cursor is base64url, without padding, of the text of the jsonb
 * {"s": sort, "v": last sort value, "id": last id}: opaque to clients, and
 * carrying nothing they could not see anyway.  Both were SQL (PL/pgSQL for
 * decoding, iam--0.3--0.4.sql), and decoding caught its own errors in an
 * exception block: a subtransaction, two regular expressions and a jsonb
 * parse for every page after the first, about 35 us of a 600 us page
 * (track_functions, GET /users with a cursor).  Here, in a UTF-8
 * database, nothing it is given raises anything but IA400: the JSON is
 * parsed by the non-throwing parser and the timestamp by the steps of
 * timestamptz_in, minus the ereport.  The encoding is byte for byte the SQL
 * version's, so cursors clients hold stay valid (sql/api_cursor.sql
 * compares them).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>

#include "common/base64.h"
#include "common/jsonapi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

PG_FUNCTION_INFO_V1(iam_api_cursor_encode);
PG_FUNCTION_INFO_V1(iam_api_cursor_decode);

#define ERRCODE_IAM_BAD_REQUEST		MAKE_SQLSTATE('I', 'A', '4', '0', '0')
#define CURSOR_MAX_LEN				500

/* what the JSON parser found at the top level of a cursor */
typedef struct CursorParse
{
	int			depth;			/* of objects; nothing nests in a cursor */
	char	  **field;			/* where the current field's string goes */
	char	   *s;
	char	   *v;
	char	   *id;
	bool		bad;
} CursorParse;

static void
cursor_object_start(void *state)
{
	CursorParse *p = state;

	if (p->depth++ > 0)
		p->bad = true;
}

static void
cursor_object_end(void *state)
{
	((CursorParse *) state)->depth--;
}

static void
cursor_array_start(void *state)
{
	((CursorParse *) state)->bad = true;
}

/* each of s, v and id once, nothing else */
static void
cursor_field_start(void *state, char *fname, bool isnull)
{
	CursorParse *p = state;

	p->field = strcmp(fname, "s") == 0 ? &p->s : strcmp(fname, "v") == 0 ? &p->v :
		strcmp(fname, "id") == 0 ? &p->id : NULL;
	if (p->field == NULL || *p->field != NULL)
		p->bad = true;
}

/* a string value of a field (a top-level scalar has no field) */
static void
cursor_scalar(void *state, char *token, JsonTokenType tokentype)
{
	CursorParse *p = state;

	if (p->depth != 1 || p->field == NULL || tokentype != JSON_TOKEN_STRING)
		p->bad = true;
	else
		*p->field = token;
}

/* an id as uuid_in and the SQL version's pattern accept it: 8-4-4-4-12 hex */
static bool
uuid_text_valid(const char *s)
{
	for (int i = 0; i < 36; i++)
	{
		bool		dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? s[i] != '-' : !isxdigit((unsigned char) s[i]))
			return false;
	}
	return s[36] == '\0';
}

/* timestamptz_in's parsing and range checks, answering instead of raising */
static bool
timestamptz_text_valid(const char *s)
{
	char		workbuf[MAXDATELEN + MAXDATEFIELDS];
	char	   *field[MAXDATEFIELDS];
	int			ftype[MAXDATEFIELDS];
	int			nf;
	int			dtype;
	struct pg_tm tt;
	fsec_t		fsec;
	int			tz;
	Timestamp	result;

	if (ParseDateTime(s, workbuf, sizeof(workbuf), field, ftype, MAXDATEFIELDS, &nf) != 0 ||
		DecodeDateTime(field, ftype, nf, &dtype, &tt, &fsec, &tz) != 0)
		return false;
	if (dtype == DTK_DATE)
		return tm2timestamp(&tt, fsec, &tz, &result) == 0;
	return dtype == DTK_EPOCH || dtype == DTK_LATE || dtype == DTK_EARLY;
}

/*
 * cursor_parse reads cursor into p; false for anything that is not what
 * iam.api_cursor_encode makes.
 */
static bool
cursor_parse(const char *cursor, CursorParse *p)
{
	size_t		len = strlen(cursor);
	char	   *b64;
	char	   *json;
	int			json_len;
	JsonLexContext *lex;
	JsonSemAction sem = {0};

	if (len == 0 || len > CURSOR_MAX_LEN)
		return false;
	b64 = palloc(len + 4);
	for (size_t i = 0; i < len; i++)
	{
		char		c = cursor[i];

		if (c == '-')
			c = '+';
		else if (c == '_')
			c = '/';
		else if (!isalnum((unsigned char) c) || IS_HIGHBIT_SET(c))
			return false;
		b64[i] = c;
	}
	while (len % 4 != 0)
		b64[len++] = '=';
	json = palloc(pg_b64_dec_len(len) + 1);
	json_len = pg_b64_decode(b64, len, json, pg_b64_dec_len(len));
	if (json_len < 0)
		return false;
	json[json_len] = '\0';
	if (pg_encoding_verifymbstr(PG_UTF8, json, json_len) != json_len)
		return false;
	if (GetDatabaseEncoding() != PG_UTF8)
	{
		json = pg_any_to_server(json, json_len, PG_UTF8);
		json_len = strlen(json);
	}

	memset(p, 0, sizeof(*p));
	sem.semstate = p;
	sem.object_start = cursor_object_start;
	sem.object_end = cursor_object_end;
	sem.array_start = cursor_array_start;
	sem.object_field_start = cursor_field_start;
	sem.scalar = cursor_scalar;
	lex = makeJsonLexContextCstringLen(json, json_len, GetDatabaseEncoding(), true);
	if (pg_parse_json(lex, &sem) != JSON_SUCCESS || p->bad)
		return false;
	return p->s != NULL && p->v != NULL && p->id != NULL && uuid_text_valid(p->id);
}

static void
push_string(JsonbParseState **state, const char *s, JsonbIteratorToken token)
{
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.val = (char *) s;
	v.val.string.len = strlen(s);
	(void) pushJsonbValue(state, token, &v);
}

/*
 * iam.api_cursor_decode(cursor text, sort text, is_timestamp boolean)
 * returns jsonb: {"s", "v", "id"} of a cursor made for sort, NULL for NULL;
 * IA400 for anything else, such as a cursor of another sort or order, or
 * whose v is not a timestamp when is_timestamp.
 */
Datum
iam_api_cursor_decode(PG_FUNCTION_ARGS)
{
	CursorParse p;
	JsonbParseState *state = NULL;
	JsonbValue *object;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	if (PG_ARGISNULL(1) || PG_ARGISNULL(2) ||
		!cursor_parse(text_to_cstring(PG_GETARG_TEXT_PP(0)), &p) ||
		strcmp(p.s, text_to_cstring(PG_GETARG_TEXT_PP(1))) != 0 ||
		(PG_GETARG_BOOL(2) && !timestamptz_text_valid(p.v)))
		ereport(ERROR,
				(errcode(ERRCODE_IAM_BAD_REQUEST),
				 errmsg("invalid cursor"),
				 errhint("Pass the next_cursor of the previous page unchanged, with the same sort and order.")));

	/* jsonb orders keys by length, then bytes: s, v, id */
	(void) pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	push_string(&state, "s", WJB_KEY);
	push_string(&state, p.s, WJB_VALUE);
	push_string(&state, "v", WJB_KEY);
	push_string(&state, p.v, WJB_VALUE);
	push_string(&state, "id", WJB_KEY);
	push_string(&state, p.id, WJB_VALUE);
	object = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	PG_RETURN_POINTER(JsonbValueToJsonb(object));
}

/* append "key": value as jsonb's text output writes it, null for NULL */
static void
append_member(StringInfo buf, const char *key, const char *value)
{
	appendStringInfo(buf, "\"%s\": ", key);
	if (value == NULL)
		appendStringInfoString(buf, "null");
	else
		escape_json(buf, value);
}

/*
 * iam.api_cursor_encode(sort text, v text, id uuid) returns text: the
 * cursor of a page whose last row has sort value v and id id.
 */
Datum
iam_api_cursor_encode(PG_FUNCTION_ARGS)
{
	StringInfoData json;
	char	   *utf8;
	int			utf8_len;
	char	   *b64;
	int			b64_len;
	int			out = 0;

	initStringInfo(&json);
	appendStringInfoChar(&json, '{');
	append_member(&json, "s", PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0)));
	appendStringInfoString(&json, ", ");
	append_member(&json, "v", PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1)));
	appendStringInfoString(&json, ", ");
	append_member(&json, "id", PG_ARGISNULL(2) ? NULL :
				  DatumGetCString(DirectFunctionCall1(uuid_out, PG_GETARG_DATUM(2))));
	appendStringInfoChar(&json, '}');

	utf8 = pg_server_to_any(json.data, json.len, PG_UTF8);
	utf8_len = strlen(utf8);
	b64 = palloc(pg_b64_enc_len(utf8_len) + 1);
	b64_len = pg_b64_encode(utf8, utf8_len, b64, pg_b64_enc_len(utf8_len));
	if (b64_len < 0)
		elog(ERROR, "iam.api_cursor_encode: base64 encoding failed");
	/* base64url: - and _ for + and /, no padding */
	for (int i = 0; i < b64_len && b64[i] != '='; i++)
		b64[out++] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : b64[i];
	PG_RETURN_TEXT_P(cstring_to_text_with_len(b64, out));
}
