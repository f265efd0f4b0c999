-- iam--0.5--0.6.sql
-- CREATE EXTENSION iam runs iam--0.1.sql, the upgrades to 0.5 and this file.

\echo Use "CREATE EXTENSION iam" or "ALTER EXTENSION iam UPDATE" to load this file. \quit

------------------------------------------------------------------------------
-- The reports are cacheable (#7).  A report changes only when its view is
-- refreshed, and every refresh, by the worker, pg_cron or a DBA, records
-- itself in iam.view_refreshes in the refresh's own transaction: a statement
-- trigger there moves the version of everything at that commit, so the next
-- report request after a refresh is fresh in every gateway.
------------------------------------------------------------------------------
UPDATE iam.routes SET cacheable = true WHERE method = 'GET' AND path LIKE '/reports/%';
CREATE TRIGGER cache_bump AFTER INSERT ON iam.view_refreshes
	FOR EACH STATEMENT EXECUTE FUNCTION iam.cache_bump();
COMMENT ON TRIGGER cache_bump ON iam.view_refreshes IS
	'A report view was refreshed: bumps, at commit, the version of everything, so the gateways'' cached report responses are stale';

------------------------------------------------------------------------------
-- The REST API's hot formatting in C (api_format.c): every listing row,
-- every user response and write and every page goes through these, and as SQL
-- functions they cost more than their work (to_char parses its format on
-- each call, the URL encoder ran a query per value; a handler that plans
-- its query on each call, such as the user listing, read back and inlined
-- their bodies each time).  Same output, byte for byte
-- (sql/api_format.sql).
------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION iam.api_ts(ts timestamptz) RETURNS text
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'iam_api_ts';
COMMENT ON FUNCTION iam.api_ts(timestamptz) IS
	'Internal: an instant as RFC 3339 in UTC with microseconds (2026-01-02T03:04:05.000000Z), whatever the session''s TimeZone; NULL for infinity';

CREATE OR REPLACE FUNCTION iam.api_user_json(u iam.users, unmasked boolean) RETURNS json
	LANGUAGE C STABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'iam_api_user_json';
COMMENT ON FUNCTION iam.api_user_json(iam.users, boolean) IS
	'Internal: a user as the API shows it (never the password hash or the external id); unless unmasked, email and phone are masked and employment_equity is null';

CREATE OR REPLACE FUNCTION iam.api_user_etag(u iam.users) RETURNS text
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'iam_api_user_etag';
COMMENT ON FUNCTION iam.api_user_etag(iam.users) IS
	'Internal: the ETag of a user, a quoted digest of its id, updated_at and every field the API shows (so that two changes within one transaction still give two ETags); the same digest as in 0.5, so ETags handed out before an upgrade still match';

CREATE OR REPLACE FUNCTION iam.api_urlencode(s text) RETURNS text
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'iam_api_urlencode';
COMMENT ON FUNCTION iam.api_urlencode(text) IS 'Internal: s percent-encoded for a URL query (RFC 3986 unreserved characters kept)';

CREATE OR REPLACE FUNCTION iam.api_next_link(path text, params jsonb, names text[], cursor text) RETURNS jsonb
	LANGUAGE C STABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'iam_api_next_link';
COMMENT ON FUNCTION iam.api_next_link(text, jsonb, text[], text) IS
	'Internal: the headers {"Link": "</api/v1/path?query&cursor=...>; rel=\"next\""} of a page that has a next one, repeating the query parameters names present in params';

-- iam.api_caller() in C (api_caller.c): the first call of nearly every
-- request; the same checks, run as the caller, planned once per backend.
CREATE OR REPLACE FUNCTION iam.api_caller() RETURNS uuid
	LANGUAGE C STABLE
	AS 'MODULE_PATHNAME', 'iam_api_caller';
COMMENT ON FUNCTION iam.api_caller() IS
	'Internal, first call of every authenticated API function: iam.user_id, after checking that it names an existing, active, not deleted user of iam.org_id and, when iam.session_id is set, that the session is neither revoked nor expired; with iam.external_sub instead (external identity provider), the user whose stack_auth_id it is, written to iam.user_id and iam.org_id; IA401 otherwise';
