-- iam--0.6--0.7.sql
-- CREATE EXTENSION iam runs iam--0.1.sql, the upgrades to 0.6 and this file.
-- Issue 9 (make bench): the listings' pages and the user update made cheaper.

\echo Use "CREATE EXTENSION iam" or "ALTER EXTENSION iam UPDATE" to load this file. \quit

------------------------------------------------------------------------------
-- Keyset pages without planning every page (issue 9: page 1,000 as fast as
-- page 1).  The cursors in C (api_cursor.c): decoding one no longer takes a
-- subtransaction to turn its own errors into IA400.  The listings run their
-- query through iam.api_cached_query (api_query_cache.c), which keeps a plan
-- per query shape in each backend where EXECUTE parsed and planned the query
-- for every page: one generic plan for a plain page (the best whatever the
-- values), planned for each call's values with filters.  The page size is
-- written into the text: a LIMIT parameter is planned as a tenth of the
-- table.
------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION iam.api_cursor_encode(sort text, v text, id uuid) RETURNS text
	LANGUAGE C IMMUTABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'iam_api_cursor_encode';
COMMENT ON FUNCTION iam.api_cursor_encode(text, text, uuid) IS
	'Internal: an opaque keyset cursor (base64url of {"s": sort, "v": last sort value, "id": last id})';

CREATE OR REPLACE FUNCTION iam.api_cursor_decode(cursor text, sort text, is_timestamp boolean) RETURNS jsonb
	LANGUAGE C IMMUTABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'iam_api_cursor_decode';
COMMENT ON FUNCTION iam.api_cursor_decode(text, text, boolean) IS
	'Internal: the content of a cursor made by iam.api_cursor_encode for the same sort, NULL for NULL; IA400 for anything else';

CREATE FUNCTION iam.api_cached_query(sql text, args text[], custom_plans boolean DEFAULT false) RETURNS SETOF record
	LANGUAGE C STABLE ROWS 50
	AS 'MODULE_PATHNAME', 'iam_api_cached_query';
COMMENT ON FUNCTION iam.api_cached_query(text, text[], boolean) IS
	'Internal, for the listings only (no role may call it): the rows of the read-only query sql with $1..$n the text elements of args, prepared once per backend and text, with one generic plan (custom_plans: planned for each call''s values); call with a column definition list';
REVOKE ALL ON FUNCTION iam.api_cached_query(text, text[], boolean) FROM PUBLIC;

CREATE OR REPLACE FUNCTION iam.api_users_list(params jsonb, body jsonb) RETURNS iam.api_response
	LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	me			uuid := iam.api_caller();
	pii			boolean;
	lim			int := iam.api_limit(params);
	sort		text := coalesce(params->>'sort', 'created_at');
	descending	boolean := coalesce(params->>'order', 'asc') = 'desc';
	sort_key	text;
	cursor_key	text;
	cur			jsonb;
	q			text;
	conds		text := '';
	items		json[] := '{}';
	last_key	text;
	last_id		uuid;
	more		boolean := false;
	r			record;
BEGIN
	PERFORM iam.api_require(me, 'users.read');
	pii := iam.has_permission(me, 'users.read_pii');
	IF params->>'order' IS NOT NULL AND params->>'order' NOT IN ('asc', 'desc') THEN
		PERFORM iam.api_error('IA400', 'order must be asc or desc', 'Leave order out for asc.');
	END IF;
	-- identifiers only ever come from this list; values travel as parameters
	sort_key := CASE sort WHEN 'created_at' THEN 'u.created_at' WHEN 'name' THEN 'lower(u.name)'
						  WHEN 'email' THEN 'lower(u.email)' END;
	IF sort_key IS NULL THEN
		PERFORM iam.api_error('IA400', 'sort must be one of created_at, name, email', 'Leave sort out for created_at.');
	END IF;
	cursor_key := format('users:%s:%s', sort, CASE WHEN descending THEN 'desc' ELSE 'asc' END);
	cur := iam.api_cursor_decode(params->>'cursor', cursor_key, sort = 'created_at');

	IF params->>'q' IS NOT NULL AND params->>'q' <> '' THEN
		q := '%' || replace(replace(replace(lower(params->>'q'), '\', '\\'), '%', '\%'), '_', '\_') || '%';
		-- without users.read_pii, a search must not reveal masked e-mail addresses
		conds := conds || CASE WHEN pii THEN ' AND (lower(u.name) LIKE $2 OR lower(u.email) LIKE $2)'
							   ELSE ' AND lower(u.name) LIKE $2' END;
	END IF;
	IF params ? 'role' THEN conds := conds || ' AND u.role = $3'; END IF;
	IF params ? 'department' THEN conds := conds || ' AND u.department = $4'; END IF;
	IF params ? 'is_active' THEN conds := conds || ' AND u.is_active = $5::boolean'; END IF;
	IF params ? 'created_after' THEN conds := conds || ' AND u.created_at > $6::timestamptz'; END IF;
	IF params ? 'created_before' THEN conds := conds || ' AND u.created_at < $7::timestamptz'; END IF;
	IF cur IS NOT NULL THEN
		conds := conds || format(' AND (%s, u.id) %s (%s, $9::uuid)', sort_key, CASE WHEN descending THEN '<' ELSE '>' END,
								 CASE WHEN sort = 'created_at' THEN '$8::timestamptz' ELSE '$8' END);
	END IF;

	FOR r IN SELECT * FROM iam.api_cached_query(format(
		'SELECT iam.api_user_json(u, $10::boolean OR u.id = $11::uuid) AS j, %s AS k, u.id FROM iam.users u '
		'WHERE u.org_id = $1::uuid AND u.deleted_at IS NULL%s ORDER BY %s %s, u.id %s LIMIT %s',
		CASE WHEN sort = 'created_at' THEN 'iam.api_ts(u.created_at)' ELSE sort_key END,
		conds, sort_key, CASE WHEN descending THEN 'DESC' ELSE 'ASC' END, CASE WHEN descending THEN 'DESC' ELSE 'ASC' END,
		lim + 1),
		ARRAY[iam.current_org_id()::text, q, params->>'role', params->>'department',
			  ((params->>'is_active')::boolean)::text, iam.api_timestamp(params, 'created_after')::text,
			  iam.api_timestamp(params, 'created_before')::text, cur->>'v', cur->>'id', pii::text, me::text],
		q IS NOT NULL OR params ?| ARRAY['role', 'department', 'is_active', 'created_after', 'created_before'])
		AS t(j json, k text, id uuid)
	LOOP
		IF cardinality(items) = lim THEN
			more := true;
			EXIT;
		END IF;
		items := items || r.j;
		last_key := r.k;
		last_id := r.id;
	END LOOP;

	RETURN ROW(200,
			   json_build_object('data', to_json(items),
								 'next_cursor', CASE WHEN more THEN iam.api_cursor_encode(cursor_key, last_key, last_id) END),
			   CASE WHEN more THEN iam.api_next_link('/users', params,
					ARRAY['q', 'role', 'department', 'is_active', 'created_after', 'created_before', 'sort', 'order', 'limit'],
					iam.api_cursor_encode(cursor_key, last_key, last_id)) END)::iam.api_response;
END
$$;

CREATE OR REPLACE FUNCTION iam.api_audit_logs_list(params jsonb, body jsonb) RETURNS iam.api_response
	LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	me		uuid := iam.api_caller();
	pii		boolean;
	lim		int := iam.api_limit(params);
	cur		jsonb;
	conds	text := '';
	items	json[] := '{}';
	last_key text;
	last_id	uuid;
	more	boolean := false;
	r		record;
BEGIN
	PERFORM iam.api_require(me, 'audit.read');
	pii := iam.has_permission(me, 'users.read_pii');
	cur := iam.api_cursor_decode(params->>'cursor', 'audit-logs', true);
	IF params ? 'actor' THEN conds := conds || ' AND a.user_id = $2::uuid'; END IF;
	IF params ? 'action' THEN conds := conds || ' AND a.action = $3'; END IF;
	IF params ? 'entity_type' THEN conds := conds || ' AND a.entity_type = $4'; END IF;
	IF params ? 'entity_id' THEN conds := conds || ' AND a.entity_id = $5::uuid'; END IF;
	IF params ? 'since' THEN conds := conds || ' AND a.created_at >= $6::timestamptz'; END IF;
	IF params ? 'until' THEN conds := conds || ' AND a.created_at < $7::timestamptz'; END IF;
	IF cur IS NOT NULL THEN conds := conds || ' AND (a.created_at, a.id) < ($8::timestamptz, $9::uuid)'; END IF;
	FOR r IN SELECT * FROM iam.api_cached_query(
		'SELECT json_build_object(''id'', a.id, ''seq'', a.seq, ''action'', a.action, ''actor'', a.user_id, '
		'''entity_type'', a.entity_type, ''entity_id'', a.entity_id, '
		'''changes'', CASE WHEN $10::boolean OR a.entity_type IS DISTINCT FROM ''user'' THEN a.changes '
		'ELSE iam.api_mask_changes(a.changes) END, '
		'''ip_address'', a.ip_address, ''user_agent'', a.user_agent, ''request_id'', a.request_id, '
		'''db_role'', a.db_role, ''created_at'', iam.api_ts(a.created_at)) AS j, '
		'iam.api_ts(a.created_at) AS k, a.id FROM iam.audit_logs a WHERE a.org_id = $1::uuid' || conds
		|| ' ORDER BY a.created_at DESC, a.id DESC LIMIT ' || (lim + 1),
		ARRAY[iam.current_org_id()::text, iam.api_uuid_param(params, 'actor')::text, params->>'action',
			  params->>'entity_type', iam.api_uuid_param(params, 'entity_id')::text,
			  iam.api_timestamp(params, 'since')::text, iam.api_timestamp(params, 'until')::text,
			  cur->>'v', cur->>'id', pii::text],
		params ?| ARRAY['actor', 'action', 'entity_type', 'entity_id', 'since', 'until']) AS t(j json, k text, id uuid)
	LOOP
		IF cardinality(items) = lim THEN
			more := true;
			EXIT;
		END IF;
		items := items || r.j;
		last_key := r.k;
		last_id := r.id;
	END LOOP;
	RETURN ROW(200,
			   json_build_object('data', to_json(items),
								 'next_cursor', CASE WHEN more THEN iam.api_cursor_encode('audit-logs', last_key, last_id) END),
			   CASE WHEN more THEN iam.api_next_link('/audit-logs', params,
					ARRAY['actor', 'action', 'entity_type', 'entity_id', 'since', 'until', 'limit'],
					iam.api_cursor_encode('audit-logs', last_key, last_id)) END)::iam.api_response;
END
$$;

CREATE OR REPLACE FUNCTION iam.api_activity_logs_list(params jsonb, body jsonb) RETURNS iam.api_response
	LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	me		uuid := iam.api_caller();
	lim		int := iam.api_limit(params);
	cur		jsonb;
	conds	text := '';
	items	json[] := '{}';
	last_key text;
	last_id	uuid;
	more	boolean := false;
	r		record;
BEGIN
	PERFORM iam.api_require(me, 'activity.read');
	cur := iam.api_cursor_decode(params->>'cursor', 'activity-logs', true);
	IF params ? 'user' THEN conds := conds || ' AND a.user_id = $2::uuid'; END IF;
	IF params ? 'type' THEN conds := conds || ' AND a.type = $3'; END IF;
	IF params ? 'since' THEN conds := conds || ' AND a.created_at >= $4::timestamptz'; END IF;
	IF params ? 'until' THEN conds := conds || ' AND a.created_at < $5::timestamptz'; END IF;
	IF cur IS NOT NULL THEN conds := conds || ' AND (a.created_at, a.id) < ($6::timestamptz, $7::uuid)'; END IF;
	FOR r IN SELECT * FROM iam.api_cached_query(
		'SELECT json_build_object(''id'', a.id, ''user_id'', a.user_id, ''type'', a.type, '
		'''description'', a.description, ''ip_address'', a.ip_address, ''user_agent'', a.user_agent, '
		'''location'', a.location, ''metadata'', a.metadata, ''created_at'', iam.api_ts(a.created_at)) AS j, '
		'iam.api_ts(a.created_at) AS k, a.id FROM iam.activity_logs a WHERE a.org_id = $1::uuid' || conds
		|| ' ORDER BY a.created_at DESC, a.id DESC LIMIT ' || (lim + 1),
		ARRAY[iam.current_org_id()::text, iam.api_uuid_param(params, 'user')::text, params->>'type',
			  iam.api_timestamp(params, 'since')::text, iam.api_timestamp(params, 'until')::text,
			  cur->>'v', cur->>'id'],
		params ?| ARRAY['user', 'type', 'since', 'until']) AS t(j json, k text, id uuid)
	LOOP
		IF cardinality(items) = lim THEN
			more := true;
			EXIT;
		END IF;
		items := items || r.j;
		last_key := r.k;
		last_id := r.id;
	END LOOP;
	RETURN ROW(200,
			   json_build_object('data', to_json(items),
								 'next_cursor', CASE WHEN more THEN iam.api_cursor_encode('activity-logs', last_key, last_id) END),
			   CASE WHEN more THEN iam.api_next_link('/activity-logs', params,
					ARRAY['user', 'type', 'since', 'until', 'limit'],
					iam.api_cursor_encode('activity-logs', last_key, last_id)) END)::iam.api_response;
END
$$;

------------------------------------------------------------------------------
-- PATCH /users/{id} without a subtransaction when it cannot need one.  0.4
-- ran every update in an exception block, to answer IA409 when a concurrent
-- transaction took the same e-mail address between the check and the
-- write; the block costs a subtransaction (and a subtransaction id) on
-- every update.  Only a new address (users_email_key is on lower(email))
-- can collide, so only such an update runs in the block now.  The two
-- UPDATE statements move to iam.api_users_write, called from both paths.
------------------------------------------------------------------------------
CREATE FUNCTION iam.api_users_write(u iam.users, patched jsonb) RETURNS iam.users
	LANGUAGE plpgsql AS $$
BEGIN
	IF patched->>'role' <> u.role OR (patched->>'is_active')::boolean <> u.is_active THEN
		UPDATE iam.users SET email = patched->>'email', name = patched->>'name', role = patched->>'role',
							 department = patched->>'department', phone = patched->>'phone',
							 profile_image = patched->>'profile_image',
							 employment_equity = patched->>'employment_equity',
							 is_active = (patched->>'is_active')::boolean, metadata = patched->'metadata'
		WHERE id = u.id RETURNING * INTO u;
	ELSE
		-- columns that permission checks read are left out of the SET list,
		-- so that the permission caches stay warm
		UPDATE iam.users SET email = patched->>'email', name = patched->>'name',
							 department = patched->>'department', phone = patched->>'phone',
							 profile_image = patched->>'profile_image',
							 employment_equity = patched->>'employment_equity', metadata = patched->'metadata'
		WHERE id = u.id RETURNING * INTO u;
	END IF;
	RETURN u;
END
$$;
COMMENT ON FUNCTION iam.api_users_write(iam.users, jsonb) IS
	'Internal, for iam.api_users_update: writes the checked merge patch patched over user u (role and is_active only when one of them changes) and returns the row as written';
REVOKE ALL ON FUNCTION iam.api_users_write(iam.users, jsonb) FROM PUBLIC;

CREATE OR REPLACE FUNCTION iam.api_users_update(params jsonb, body jsonb) RETURNS iam.api_response
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	me			uuid := iam.api_caller();
	org			uuid := iam.current_org_id();
	u			iam.users;
	current		jsonb;
	patched		jsonb;
	k			text;
	role_id		uuid;
BEGIN
	PERFORM iam.api_require(me, 'users.update');
	u := iam.api_target_user(params, true);
	PERFORM iam.api_check_if_match(params, iam.api_user_etag(u));
	PERFORM iam.api_body_object(body,
		ARRAY['email', 'name', 'role', 'department', 'phone', 'profile_image', 'employment_equity', 'is_active', 'metadata'],
		ARRAY['id', 'org_id', 'created_at', 'updated_at', 'deleted_at', 'last_login', 'two_factor_enabled',
			  'password', 'password_hash', 'stack_auth_id']);
	FOREACH k IN ARRAY ARRAY['email', 'name', 'role', 'is_active'] LOOP
		IF jsonb_typeof(body->k) = 'null' THEN
			PERFORM iam.api_error('IA422', k || ': cannot be removed', format('Send a new value for %s, or leave it out.', k));
		END IF;
	END LOOP;
	current := jsonb_build_object('email', u.email, 'name', u.name, 'role', u.role, 'department', u.department,
								  'phone', u.phone, 'profile_image', u.profile_image,
								  'employment_equity', u.employment_equity, 'is_active', u.is_active,
								  'metadata', u.metadata);
	patched := iam.api_merge_patch(current, body);
	patched := jsonb_set(patched, '{metadata}', coalesce(patched->'metadata', '{}'));
	PERFORM iam.api_user_fields(patched);

	IF patched->>'role' <> u.role THEN
		SELECT r.id INTO role_id FROM iam.roles r
		WHERE r.name = patched->>'role' AND (r.org_id = org OR r.org_id IS NULL);
		IF role_id IS NULL THEN
			PERFORM iam.api_error('IA422', 'role: unknown role', 'Use a system role (admin, member, auditor) or a role of your organisation.');
		END IF;
		PERFORM iam.api_guard_role(me, 'api_users_update', role_id, patched->>'role',
								   jsonb_build_object('target_user', u.id, 'role', patched->>'role'));
	END IF;
	IF u.id = me AND NOT (patched->>'is_active')::boolean THEN
		PERFORM iam.api_error('IA409', 'you cannot deactivate yourself', 'Ask another administrator.');
	END IF;
	IF lower(patched->>'email') <> lower(u.email) THEN
		IF EXISTS (SELECT FROM iam.users x WHERE lower(x.email) = lower(patched->>'email')) THEN
			PERFORM iam.api_error('IA409', 'email: a user with this e-mail address already exists', 'Use another e-mail address.');
		END IF;
		-- another transaction may take the address between the check and
		-- the write: its unique violation is the same IA409
		BEGIN
			u := iam.api_users_write(u, patched);
		EXCEPTION WHEN unique_violation THEN
			PERFORM iam.api_error('IA409', 'email: a user with this e-mail address already exists', 'Use another e-mail address.');
		END;
	ELSE
		u := iam.api_users_write(u, patched);
	END IF;
	RETURN iam.api_user_response(200, u, me);
END
$$;
COMMENT ON FUNCTION iam.api_users_update(jsonb, jsonb) IS
	'PATCH /users/{id} (users.update): JSON merge patch (RFC 7396) of email, name, role, department, phone, profile_image, employment_equity, is_active, metadata (null removes an optional field; metadata merges); IA412 when If-Match does not match the ETag; a new role needs roles.manage and its every permission (escalation guard, recorded); IA422 for unknown, immutable or bad fields, IA409 for a taken e-mail address (also when another transaction takes it concurrently) or deactivating oneself';
