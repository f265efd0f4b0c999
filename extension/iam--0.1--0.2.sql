-- iam--0.1--0.2.sql: pg_iam 0.2.
--
-- Permission resolution (issue 3): iam.has_permission and friends, written
-- in C (rbac.c, rbac_cache.c, rbac_explain.c, rbac_cycle.c) over a
-- per-backend cache that PostgreSQL's invalidation machinery keeps exact.
-- CREATE EXTENSION iam runs iam--0.1.sql and then this file.

\echo Use "CREATE EXTENSION iam" or "ALTER EXTENSION iam UPDATE" to load this file. \quit

------------------------------------------------------------------------------
-- Permission checks.  They read the RBAC tables as the tables' owner (so
-- the caller's row-level security context and table privileges never change
-- an answer), with search_path pinned to pg_catalog, pg_temp, and with the
-- latest snapshot: an answer reflects what is committed now plus the
-- session's own changes, also inside a REPEATABLE READ transaction (a
-- revocation takes effect at once).  PARALLEL UNSAFE: they take snapshots
-- and keep a per-backend cache.
------------------------------------------------------------------------------
CREATE FUNCTION iam.has_permission(user_id uuid, permission text) RETURNS boolean
	LANGUAGE c STRICT STABLE PARALLEL UNSAFE
	AS 'MODULE_PATHNAME', 'iam_has_permission';
COMMENT ON FUNCTION iam.has_permission(uuid, text) IS
	'Whether the user holds the permission globally: through the primary role (users.role: the organisation''s role of that name, else the system role), unexpired user_roles, roles inherited transitively through role_inheritance, or an unexpired global user_permissions grant. '
	'Inactive and deleted users hold nothing; rows of another organisation count for nothing; a grant counts until expires_at (compared with the statement start). '
	'platform.admin is the only cross-organisation permission: a user holding it globally holds every permission of the catalogue, globally, in every organisation. '
	'Unknown names, and names over 100 characters or with characters outside [a-z0-9_.], give false; NULL arguments give NULL. Answered from a per-backend cache (iam.rbac_cache_stats)';

CREATE FUNCTION iam.has_permission(user_id uuid, permission text, resource_type text, resource_id uuid)
	RETURNS boolean
	LANGUAGE c STRICT STABLE PARALLEL UNSAFE
	AS 'MODULE_PATHNAME', 'iam_has_permission_on';
COMMENT ON FUNCTION iam.has_permission(uuid, text, text, uuid) IS
	'Whether the user holds the permission on one resource: a global grant (any path of the two-argument form, including platform.admin) or an unexpired user_permissions grant scoped to exactly this resource_type and resource_id; otherwise as the two-argument form';

CREATE FUNCTION iam.check_permissions(user_id uuid, permissions text[]) RETURNS boolean[]
	LANGUAGE c STRICT STABLE PARALLEL UNSAFE
	AS 'MODULE_PATHNAME', 'iam_check_permissions';
COMMENT ON FUNCTION iam.check_permissions(uuid, text[]) IS
	'iam.has_permission(user_id, p) for every element p, in one call: an array of the same shape and order (NULL for a NULL element)';

CREATE FUNCTION iam.user_permissions(user_id uuid) RETURNS SETOF text
	LANGUAGE c STRICT STABLE PARALLEL UNSAFE ROWS 20
	AS 'MODULE_PATHNAME', 'iam_user_permissions';
COMMENT ON FUNCTION iam.user_permissions(uuid) IS
	'Names of the permissions the user holds globally now (unexpired, by the rules of iam.has_permission; every permission for a platform.admin), in name order; resource-scoped grants are not listed';

CREATE FUNCTION iam.effective_roles(user_id uuid) RETURNS SETOF text
	LANGUAGE c STRICT STABLE PARALLEL UNSAFE ROWS 5
	AS 'MODULE_PATHNAME', 'iam_effective_roles';
COMMENT ON FUNCTION iam.effective_roles(uuid) IS
	'Names of the roles the user holds now: the primary role, unexpired user_roles and every role they inherit, transitively; none for an inactive or deleted user';

CREATE FUNCTION iam.explain_permission(user_id uuid, permission text,
									   OUT granted boolean, OUT reason text, OUT via text,
									   OUT path text, OUT expires_at timestamptz)
	RETURNS SETOF record
	LANGUAGE c STRICT STABLE PARALLEL UNSAFE ROWS 3
	AS 'MODULE_PATHNAME', 'iam_explain_permission';
COMMENT ON FUNCTION iam.explain_permission(uuid, text) IS
	'Why a user holds a permission globally, or why not, for support staff: one row per path that grants it (granted true, reason ''granted'', via primary role / granted role / direct grant, path such as "primary role editor -> inherits member -> users.read" (with a Unicode arrow in a UTF8 database), expires_at the earliest expiry on the path); '
	'when nothing grants it, one row per path that does not count (reason expired, other organisation or other resource) or one row with the reason: invalid permission name, unknown user, user deleted, user inactive, unknown permission, no grant. '
	'Reads the tables directly, not the cache. Not granted to any pg_iam role: GRANT EXECUTE to your support role';

CREATE FUNCTION iam.explain_permission(user_id uuid, permission text, resource_type text, resource_id uuid,
									   OUT granted boolean, OUT reason text, OUT via text,
									   OUT path text, OUT expires_at timestamptz)
	RETURNS SETOF record
	LANGUAGE c STRICT STABLE PARALLEL UNSAFE ROWS 3
	AS 'MODULE_PATHNAME', 'iam_explain_permission';
COMMENT ON FUNCTION iam.explain_permission(uuid, text, text, uuid) IS
	'iam.explain_permission for one resource: scoped grants on exactly this resource count too (via scoped grant); grants on other resources show as reason other resource';

------------------------------------------------------------------------------
-- The per-backend cache (rbac_cache.c).  iam.rbac_cache_max_users bounds
-- it; every change to an RBAC table invalidates it in every backend at
-- commit (and in the changing session at once, and again on rollback).
------------------------------------------------------------------------------
CREATE FUNCTION iam.rbac_cache_stats(OUT cached_users bigint, OUT bytes bigint, OUT hits bigint,
									 OUT misses bigint, OUT rebuilds bigint)
	RETURNS record
	LANGUAGE c VOLATILE PARALLEL UNSAFE
	AS 'MODULE_PATHNAME', 'iam_rbac_cache_stats';
COMMENT ON FUNCTION iam.rbac_cache_stats() IS
	'This backend''s permission cache: users cached (0 while stale), bytes allocated by it, checks answered from it (hits), users loaded (misses), and full rebuilds after an invalidation';

CREATE FUNCTION iam.rbac_cache_reset() RETURNS void
	LANGUAGE c VOLATILE PARALLEL UNSAFE
	AS 'MODULE_PATHNAME', 'iam_rbac_cache_reset';
COMMENT ON FUNCTION iam.rbac_cache_reset() IS
	'Empties this backend''s permission cache and zeroes its counters; needed only after changing RBAC tables with triggers disabled (session_replication_role = replica)';

CREATE FUNCTION iam.rbac_invalidate() RETURNS trigger
	LANGUAGE c AS 'MODULE_PATHNAME', 'iam_rbac_invalidate';
COMMENT ON FUNCTION iam.rbac_invalidate() IS
	'Statement-level AFTER trigger on the RBAC tables: queues a relcache invalidation of the table, which empties the permission cache of this session at the next command and of every session at commit';

DO $triggers$
DECLARE
	t text;
BEGIN
	FOREACH t IN ARRAY ARRAY['roles', 'permissions', 'role_permissions', 'user_roles',
							 'user_permissions', 'role_inheritance']
	LOOP
		EXECUTE format('CREATE TRIGGER rbac_invalidate AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE '
					   'ON iam.%I FOR EACH STATEMENT EXECUTE FUNCTION iam.rbac_invalidate()', t);
		EXECUTE format('COMMENT ON TRIGGER rbac_invalidate ON iam.%I IS %L', t,
					   'Invalidates the permission caches of all sessions when the statement commits');
	END LOOP;
END
$triggers$;
-- only the columns of users that permission checks read
CREATE TRIGGER rbac_invalidate
	AFTER INSERT OR DELETE OR TRUNCATE OR UPDATE OF id, role, is_active, deleted_at, org_id ON iam.users
	FOR EACH STATEMENT EXECUTE FUNCTION iam.rbac_invalidate();
COMMENT ON TRIGGER rbac_invalidate ON iam.users IS
	'Invalidates the permission caches of all sessions when a statement that adds or removes users or changes id, role, is_active, deleted_at or org_id commits';

------------------------------------------------------------------------------
-- Role inheritance must stay acyclic (rbac_cycle.c)
------------------------------------------------------------------------------
CREATE FUNCTION iam.role_inheritance_refuse_cycle() RETURNS trigger
	LANGUAGE c AS 'MODULE_PATHNAME', 'iam_role_inheritance_refuse_cycle';
COMMENT ON FUNCTION iam.role_inheritance_refuse_cycle() IS
	'BEFORE INSERT OR UPDATE row trigger on role_inheritance: refuses, with 23514, an edge whose inherited role already inherits the inheriting one (directly or transitively); writers of edges take turns on a SHARE UPDATE EXCLUSIVE lock so two transactions cannot close a cycle together';
CREATE TRIGGER role_inheritance_refuse_cycle
	BEFORE INSERT OR UPDATE OF role_id, inherits_role_id ON iam.role_inheritance
	FOR EACH ROW EXECUTE FUNCTION iam.role_inheritance_refuse_cycle();
COMMENT ON TRIGGER role_inheritance_refuse_cycle ON iam.role_inheritance IS
	'Refuses an inheritance edge that would close a cycle (23514)';

------------------------------------------------------------------------------
-- Privileges: the checks for services and the gateway; diagnostics for the
-- DBA (superuser) unless granted on purpose; nothing for PUBLIC.
------------------------------------------------------------------------------
REVOKE ALL ON FUNCTION
	iam.has_permission(uuid, text),
	iam.has_permission(uuid, text, text, uuid),
	iam.check_permissions(uuid, text[]),
	iam.user_permissions(uuid),
	iam.effective_roles(uuid),
	iam.explain_permission(uuid, text),
	iam.explain_permission(uuid, text, text, uuid),
	iam.rbac_cache_stats(),
	iam.rbac_cache_reset(),
	iam.rbac_invalidate(),
	iam.role_inheritance_refuse_cycle()
	FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
	iam.has_permission(uuid, text),
	iam.has_permission(uuid, text, text, uuid),
	iam.check_permissions(uuid, text[]),
	iam.user_permissions(uuid),
	iam.effective_roles(uuid)
	TO iam_service, iam_gateway;

------------------------------------------------------------------------------
-- Grant functions.  They act as the user in iam.user_id, require roles.manage
-- or permissions.grant, and never hand out a permission the acting user does
-- not hold itself (directly, through a role, or through inheritance).  Every
-- refusal is 42501 and leaves a privilege_escalation_attempt row in
-- activity_logs that survives the failing transaction (escalation.c).
------------------------------------------------------------------------------
CREATE FUNCTION iam.record_escalation_attempt(event jsonb) RETURNS boolean
	LANGUAGE c STRICT VOLATILE AS 'MODULE_PATHNAME', 'iam_record_escalation_attempt';
COMMENT ON FUNCTION iam.record_escalation_attempt(jsonb) IS
	'Writes a privilege_escalation_attempt activity row in a transaction of its own (a short-lived background worker), so it survives the refusal that follows; event keys: user_id, org_id, description, ip, user_agent, metadata. False (and a server-log entry) when no worker could record it';

-- System role names are reserved: an organisation's role may not shadow one.
CREATE FUNCTION iam.roles_check_reserved_name() RETURNS trigger
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF NEW.org_id IS NOT NULL AND EXISTS (SELECT FROM iam.roles
										  WHERE org_id IS NULL AND name = NEW.name) THEN
		RAISE EXCEPTION 'role name "%" is reserved for a system role', NEW.name
			USING ERRCODE = 'unique_violation', HINT = 'Choose another name.';
	END IF;
	RETURN NEW;
END
$$;
COMMENT ON FUNCTION iam.roles_check_reserved_name() IS
	'Trigger: an organisation''s role may not take the name of a system role (admin, member, auditor)';
CREATE TRIGGER roles_check_reserved_name BEFORE INSERT OR UPDATE OF name, org_id ON iam.roles
	FOR EACH ROW EXECUTE FUNCTION iam.roles_check_reserved_name();

CREATE FUNCTION iam.role_permission_names(role_id uuid) RETURNS SETOF text
	LANGUAGE sql STABLE STRICT SECURITY DEFINER SET search_path = pg_catalog, pg_temp
	BEGIN ATOMIC
		WITH RECURSIVE closure(id) AS (
			SELECT role_permission_names.role_id
			UNION
			SELECT ri.inherits_role_id FROM iam.role_inheritance ri JOIN closure c ON ri.role_id = c.id
		)
		SELECT DISTINCT p.name::text
		FROM closure c
		JOIN iam.role_permissions rp ON rp.role_id = c.id
		JOIN iam.permissions p ON p.id = rp.permission_id
		ORDER BY 1;
	END;
COMMENT ON FUNCTION iam.role_permission_names(uuid) IS
	'Permissions a role holds, its own and those inherited through role_inheritance';

-- refuse_grant records the attempt durably, then raises 42501.
CREATE FUNCTION iam.refuse_grant(fn text, message text, missing text, details jsonb) RETURNS void
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	actor	uuid := iam.current_user_id();
BEGIN
	PERFORM iam.record_escalation_attempt(jsonb_build_object(
		'user_id', actor,
		'org_id', (SELECT org_id FROM iam.users WHERE id = actor),
		'description', fn || ': ' || message,
		'ip', nullif(current_setting('iam.ip', true), ''),
		'user_agent', nullif(current_setting('iam.user_agent', true), ''),
		'metadata', jsonb_strip_nulls(details || jsonb_build_object(
			'function', fn, 'missing', missing,
			'request_id', nullif(current_setting('iam.request_id', true), '')))));
	RAISE EXCEPTION '%', message
		USING ERRCODE = 'insufficient_privilege',
			  HINT = CASE WHEN missing IS NOT NULL
						  THEN format('The acting user needs %s to do this.', missing)
						  ELSE 'Act within your own organisation.' END;
END
$$;
COMMENT ON FUNCTION iam.refuse_grant(text, text, text, jsonb) IS
	'Internal: records a privilege_escalation_attempt for the acting user, then raises 42501 with message';

-- grant_actor returns the acting user's organisation after checking that
-- iam.user_id names an active user who holds needed.
CREATE FUNCTION iam.grant_actor(fn text, needed text, details jsonb) RETURNS uuid
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	actor	uuid := iam.current_user_id();
	org		uuid;
BEGIN
	IF actor IS NULL THEN
		RAISE EXCEPTION 'no acting user'
			USING ERRCODE = 'insufficient_privilege',
				  HINT = 'Set iam.user_id with set_config(''iam.user_id'', ..., true) first.';
	END IF;
	SELECT u.org_id INTO org FROM iam.users u WHERE u.id = actor;
	IF NOT iam.has_permission(actor, needed) THEN
		PERFORM iam.refuse_grant(fn, format('permission denied: %s requires %s', fn, needed), needed, details);
	END IF;
	RETURN org;
END
$$;
COMMENT ON FUNCTION iam.grant_actor(text, text, jsonb) IS
	'Internal: the acting user''s organisation, after checking that the acting user holds the permission a grant function needs';

-- grant_target_org returns the organisation of a user the actor may manage.
CREATE FUNCTION iam.grant_target_org(fn text, actor_org uuid, target uuid, details jsonb) RETURNS uuid
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	org		uuid;
BEGIN
	SELECT u.org_id INTO org FROM iam.users u WHERE u.id = target AND u.deleted_at IS NULL;
	IF org IS NULL THEN
		RAISE EXCEPTION 'the user is not a user of your organisation'
			USING ERRCODE = 'insufficient_privilege', HINT = 'Name an existing user of your organisation.';
	END IF;
	IF org <> actor_org AND NOT iam.has_permission(iam.current_user_id(), 'platform.admin') THEN
		PERFORM iam.refuse_grant(fn, 'the user is not a user of your organisation', NULL, details);
	END IF;
	RETURN org;
END
$$;
COMMENT ON FUNCTION iam.grant_target_org(text, uuid, uuid, jsonb) IS
	'Internal: organisation of a user the acting user may grant to (its own, or any with platform.admin); 42501 otherwise';

-- grant_role_row returns a role the actor may manage, by id.
CREATE FUNCTION iam.grant_role_row(fn text, actor_org uuid, role uuid, details jsonb) RETURNS iam.roles
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	r		iam.roles;
BEGIN
	SELECT * INTO r FROM iam.roles WHERE id = role;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'the role is not a role of your organisation'
			USING ERRCODE = 'insufficient_privilege', HINT = 'Name an existing role of your organisation.';
	END IF;
	IF r.org_id IS NULL OR r.org_id <> actor_org THEN
		IF NOT iam.has_permission(iam.current_user_id(), 'platform.admin') THEN
			PERFORM iam.refuse_grant(fn,
				CASE WHEN r.org_id IS NULL
					 THEN format('system role %s can only be changed with platform.admin', r.name)
					 ELSE 'the role is not a role of your organisation' END,
				CASE WHEN r.org_id IS NULL THEN 'platform.admin' END, details);
		END IF;
	END IF;
	RETURN r;
END
$$;
COMMENT ON FUNCTION iam.grant_role_row(text, uuid, uuid, jsonb) IS
	'Internal: a role the acting user may change (its organisation''s; system roles only with platform.admin); 42501 otherwise';

-- grant_require_held refuses unless the actor holds every one of perms.
CREATE FUNCTION iam.grant_require_held(fn text, perms text[], what text, details jsonb,
									   resource_type text DEFAULT NULL, resource_id uuid DEFAULT NULL)
	RETURNS void
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	actor	uuid := iam.current_user_id();
	missing	text;
BEGIN
	SELECT p INTO missing FROM unnest(perms) AS p
	WHERE NOT (CASE WHEN resource_type IS NULL THEN iam.has_permission(actor, p)
					ELSE iam.has_permission(actor, p, resource_type, resource_id) END)
	ORDER BY p LIMIT 1;
	IF missing IS NOT NULL THEN
		PERFORM iam.refuse_grant(fn, format('cannot grant %s: the acting user does not hold %s', what, missing),
								 missing, details);
	END IF;
END
$$;
COMMENT ON FUNCTION iam.grant_require_held(text, text[], text, jsonb, text, uuid) IS
	'Internal: 42501 naming the first of perms that the acting user does not hold (escalation guard)';

CREATE FUNCTION iam.permission_id(permission text) RETURNS uuid
	LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	pid		uuid;
BEGIN
	IF permission IS NULL OR permission !~ '^[a-z0-9_.]{1,100}$' THEN
		RAISE EXCEPTION 'malformed permission name'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Permission names are area.verb: at most 100 characters of a-z, 0-9, _ and .';
	END IF;
	SELECT id INTO pid FROM iam.permissions WHERE name = permission;
	IF pid IS NULL THEN
		RAISE EXCEPTION 'unknown permission "%"', permission
			USING ERRCODE = 'invalid_parameter_value', HINT = 'See iam.permissions for the catalogue.';
	END IF;
	RETURN pid;
END
$$;
COMMENT ON FUNCTION iam.permission_id(text) IS
	'Id of a permission by name; 22023 for a malformed or unknown name';

CREATE FUNCTION iam.grant_role(user_id uuid, role text, expires_at timestamptz DEFAULT NULL) RETURNS void
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
	details	jsonb := jsonb_build_object('target_user', user_id, 'role', role);
	actor_org uuid := iam.grant_actor('grant_role', 'roles.manage', details);
	org		uuid := iam.grant_target_org('grant_role', actor_org, user_id, details);
	rid		uuid;
BEGIN
	IF expires_at IS NOT NULL AND expires_at <= now() THEN
		RAISE EXCEPTION 'expires_at is in the past'
			USING ERRCODE = 'invalid_parameter_value', HINT = 'Pass a future instant, or NULL for no expiry.';
	END IF;
	SELECT r.id INTO rid FROM iam.roles r
	WHERE r.name = grant_role.role AND (r.org_id = org OR r.org_id IS NULL);
	IF rid IS NULL AND EXISTS (SELECT FROM iam.roles r WHERE r.name = grant_role.role) THEN
		PERFORM iam.refuse_grant('grant_role', 'the role is not a role of the user''s organisation', NULL, details);
	ELSIF rid IS NULL THEN
		RAISE EXCEPTION 'role "%" does not exist', role
			USING ERRCODE = 'invalid_parameter_value', HINT = 'Use a system role or a role of the user''s organisation.';
	END IF;
	PERFORM iam.grant_require_held('grant_role', ARRAY(SELECT iam.role_permission_names(rid)),
								   format('role %s', role), details);
	INSERT INTO iam.user_roles (user_id, role_id, granted_by, expires_at)
		VALUES (grant_role.user_id, rid, iam.current_user_id(), grant_role.expires_at)
		ON CONFLICT ON CONSTRAINT user_roles_user_id_role_id_key
		DO UPDATE SET expires_at = EXCLUDED.expires_at, granted_by = EXCLUDED.granted_by,
					  granted_at = now();
END
$$;
COMMENT ON FUNCTION iam.grant_role(uuid, text, timestamptz) IS
	'Grants a role (system role or one of the user''s organisation) to a user, acting as iam.user_id: needs roles.manage and every permission the role holds; re-granting updates the expiry';

CREATE FUNCTION iam.revoke_role(user_id uuid, role text) RETURNS boolean
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
	details	jsonb := jsonb_build_object('target_user', user_id, 'role', role);
	actor_org uuid := iam.grant_actor('revoke_role', 'roles.manage', details);
	org		uuid := iam.grant_target_org('revoke_role', actor_org, user_id, details);
BEGIN
	DELETE FROM iam.user_roles ur USING iam.roles r
	WHERE ur.user_id = revoke_role.user_id AND ur.role_id = r.id AND r.name = revoke_role.role
	  AND (r.org_id = org OR r.org_id IS NULL);
	RETURN FOUND;
END
$$;
COMMENT ON FUNCTION iam.revoke_role(uuid, text) IS
	'Revokes an extra role (user_roles) from a user, acting as iam.user_id: needs roles.manage; false when the user did not hold it';

CREATE FUNCTION iam.grant_permission(user_id uuid, permission text, resource_type text DEFAULT NULL,
									 resource_id uuid DEFAULT NULL, expires_at timestamptz DEFAULT NULL)
	RETURNS void
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
	details	jsonb := jsonb_build_object('target_user', user_id, 'permission', permission,
									   'resource_type', resource_type, 'resource_id', resource_id);
	actor_org uuid := iam.grant_actor('grant_permission', 'permissions.grant', details);
	pid		uuid := iam.permission_id(permission);
BEGIN
	PERFORM iam.grant_target_org('grant_permission', actor_org, user_id, details);
	IF (resource_type IS NULL) <> (resource_id IS NULL) THEN
		RAISE EXCEPTION 'resource_type and resource_id go together'
			USING ERRCODE = 'invalid_parameter_value', HINT = 'Pass both for a scoped grant, neither for a global one.';
	END IF;
	IF expires_at IS NOT NULL AND expires_at <= now() THEN
		RAISE EXCEPTION 'expires_at is in the past'
			USING ERRCODE = 'invalid_parameter_value', HINT = 'Pass a future instant, or NULL for no expiry.';
	END IF;
	PERFORM iam.grant_require_held('grant_permission', ARRAY[permission], permission, details,
								   resource_type, resource_id);
	INSERT INTO iam.user_permissions (user_id, permission_id, granted_by, resource_type, resource_id, expires_at)
		VALUES (grant_permission.user_id, pid, iam.current_user_id(), grant_permission.resource_type,
				grant_permission.resource_id, grant_permission.expires_at)
		ON CONFLICT (user_id, permission_id, resource_type, resource_id)
		DO UPDATE SET expires_at = EXCLUDED.expires_at, granted_by = EXCLUDED.granted_by,
					  granted_at = now();
END
$$;
COMMENT ON FUNCTION iam.grant_permission(uuid, text, text, uuid, timestamptz) IS
	'Grants a permission to a user directly, globally or on one resource, acting as iam.user_id: needs permissions.grant and the permission itself (on that resource); re-granting updates the expiry';

CREATE FUNCTION iam.revoke_permission(user_id uuid, permission text, resource_type text DEFAULT NULL,
									  resource_id uuid DEFAULT NULL) RETURNS boolean
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
	details	jsonb := jsonb_build_object('target_user', user_id, 'permission', permission,
									   'resource_type', resource_type, 'resource_id', resource_id);
	actor_org uuid := iam.grant_actor('revoke_permission', 'permissions.grant', details);
	pid		uuid := iam.permission_id(permission);
BEGIN
	PERFORM iam.grant_target_org('revoke_permission', actor_org, user_id, details);
	DELETE FROM iam.user_permissions up
	WHERE up.user_id = revoke_permission.user_id AND up.permission_id = pid
	  AND up.resource_type IS NOT DISTINCT FROM revoke_permission.resource_type
	  AND up.resource_id IS NOT DISTINCT FROM revoke_permission.resource_id;
	RETURN FOUND;
END
$$;
COMMENT ON FUNCTION iam.revoke_permission(uuid, text, text, uuid) IS
	'Revokes a direct grant (global, or on the given resource), acting as iam.user_id: needs permissions.grant; false when there was no such grant';

CREATE FUNCTION iam.set_role_permissions(role_id uuid, permissions text[]) RETURNS void
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
	details	jsonb := jsonb_build_object('role_id', role_id, 'permissions', permissions);
	actor_org uuid := iam.grant_actor('set_role_permissions', 'roles.manage', details);
	r		iam.roles := iam.grant_role_row('set_role_permissions', actor_org, role_id, details);
	wanted	uuid[];
BEGIN
	IF permissions IS NULL OR array_position(permissions, NULL) IS NOT NULL THEN
		RAISE EXCEPTION 'permissions must be an array of names without NULLs'
			USING ERRCODE = 'null_value_not_allowed', HINT = 'Pass ''{}'' to remove every permission.';
	END IF;
	wanted := ARRAY(SELECT iam.permission_id(p) FROM unnest(permissions) AS p);
	-- only what the role does not hold yet is being granted
	PERFORM iam.grant_require_held('set_role_permissions',
		ARRAY(SELECT DISTINCT p FROM unnest(permissions) AS p
			  WHERE NOT EXISTS (SELECT FROM iam.role_permissions rp JOIN iam.permissions pp ON pp.id = rp.permission_id
								WHERE rp.role_id = r.id AND pp.name = p)),
		format('permissions to role %s', r.name), details);
	DELETE FROM iam.role_permissions rp WHERE rp.role_id = r.id AND rp.permission_id <> ALL (wanted);
	INSERT INTO iam.role_permissions (role_id, permission_id)
		SELECT r.id, w FROM unnest(wanted) AS w
		ON CONFLICT (role_id, permission_id) DO NOTHING;
END
$$;
COMMENT ON FUNCTION iam.set_role_permissions(uuid, text[]) IS
	'Replaces a role''s own permissions with the given names, acting as iam.user_id: needs roles.manage and every permission added; system roles need platform.admin';

CREATE FUNCTION iam.add_role_inheritance(role_id uuid, inherits_role_id uuid) RETURNS void
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
	details	jsonb := jsonb_build_object('role_id', role_id, 'inherits_role_id', inherits_role_id);
	actor_org uuid := iam.grant_actor('add_role_inheritance', 'roles.manage', details);
	r		iam.roles := iam.grant_role_row('add_role_inheritance', actor_org, role_id, details);
	parent	iam.roles;
BEGIN
	SELECT * INTO parent FROM iam.roles WHERE id = inherits_role_id;
	IF NOT FOUND OR (parent.org_id IS NOT NULL AND parent.org_id IS DISTINCT FROM r.org_id) THEN
		PERFORM iam.refuse_grant('add_role_inheritance', 'the inherited role is not a role of your organisation',
								 NULL, details);
	END IF;
	PERFORM iam.grant_require_held('add_role_inheritance',
								   ARRAY(SELECT iam.role_permission_names(parent.id)),
								   format('role %s the permissions of %s', r.name, parent.name), details);
	INSERT INTO iam.role_inheritance (role_id, inherits_role_id, created_by)
		VALUES (r.id, parent.id, iam.current_user_id())
		ON CONFLICT (role_id, inherits_role_id) DO NOTHING;
END
$$;
COMMENT ON FUNCTION iam.add_role_inheritance(uuid, uuid) IS
	'Makes role_id inherit every permission of inherits_role_id, acting as iam.user_id: needs roles.manage and every permission inherited; a cycle is refused';

CREATE FUNCTION iam.remove_role_inheritance(role_id uuid, inherits_role_id uuid) RETURNS boolean
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
	details	jsonb := jsonb_build_object('role_id', role_id, 'inherits_role_id', inherits_role_id);
	actor_org uuid := iam.grant_actor('remove_role_inheritance', 'roles.manage', details);
	r		iam.roles := iam.grant_role_row('remove_role_inheritance', actor_org, role_id, details);
BEGIN
	DELETE FROM iam.role_inheritance ri
	WHERE ri.role_id = r.id AND ri.inherits_role_id = remove_role_inheritance.inherits_role_id;
	RETURN FOUND;
END
$$;
COMMENT ON FUNCTION iam.remove_role_inheritance(uuid, uuid) IS
	'Stops role_id inheriting from inherits_role_id, acting as iam.user_id: needs roles.manage; false when there was no such link';

REVOKE ALL ON FUNCTION iam.record_escalation_attempt(jsonb), iam.roles_check_reserved_name(),
	iam.role_permission_names(uuid), iam.refuse_grant(text, text, text, jsonb),
	iam.grant_actor(text, text, jsonb), iam.grant_target_org(text, uuid, uuid, jsonb),
	iam.grant_role_row(text, uuid, uuid, jsonb), iam.grant_require_held(text, text[], text, jsonb, text, uuid),
	iam.permission_id(text), iam.grant_role(uuid, text, timestamptz), iam.revoke_role(uuid, text),
	iam.grant_permission(uuid, text, text, uuid, timestamptz), iam.revoke_permission(uuid, text, text, uuid),
	iam.set_role_permissions(uuid, text[]), iam.add_role_inheritance(uuid, uuid),
	iam.remove_role_inheritance(uuid, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION iam.grant_role(uuid, text, timestamptz), iam.revoke_role(uuid, text),
	iam.grant_permission(uuid, text, text, uuid, timestamptz), iam.revoke_permission(uuid, text, text, uuid),
	iam.set_role_permissions(uuid, text[]), iam.add_role_inheritance(uuid, uuid),
	iam.remove_role_inheritance(uuid, uuid), iam.role_permission_names(uuid) TO iam_service, iam_gateway;
