-- rbac.sql: who may call the permission engine, how its functions are
-- declared, and the triggers that keep its cache and the inheritance graph
-- honest.
BEGIN;
SELECT plan(52);

CREATE TEMP TABLE checks (f regprocedure);
INSERT INTO checks VALUES
	('iam.has_permission(uuid, text)'), ('iam.has_permission(uuid, text, text, uuid)'),
	('iam.check_permissions(uuid, text[])'), ('iam.user_permissions(uuid)'), ('iam.effective_roles(uuid)');
CREATE TEMP TABLE diagnostics (f regprocedure);
INSERT INTO diagnostics VALUES
	('iam.explain_permission(uuid, text)'), ('iam.explain_permission(uuid, text, text, uuid)'),
	('iam.rbac_cache_stats()'), ('iam.rbac_cache_reset()'), ('iam.rbac_invalidate()'),
	('iam.role_inheritance_refuse_cycle()');

-- services and the gateway call the checks; nobody else calls anything
SELECT ok(has_function_privilege(r, f, 'EXECUTE'), format('%s may execute %s', r, f))
FROM checks, unnest(ARRAY['iam_gateway', 'iam_service']) AS r ORDER BY r, f::text;
SELECT ok(NOT has_function_privilege(r, f, 'EXECUTE'), format('%s may not execute %s', r, f))
FROM diagnostics, unnest(ARRAY['iam_auditor', 'iam_gateway', 'iam_service']) AS r ORDER BY r, f::text;
SELECT is(count(*), 0::bigint, 'PUBLIC may execute none of the RBAC functions')
FROM (SELECT f FROM checks UNION ALL SELECT f FROM diagnostics) x
WHERE has_function_privilege('public', f, 'EXECUTE');

-- the SQL-callable engine: strict, stable, parallel unsafe (it takes
-- snapshots and keeps a per-backend cache), and not SECURITY DEFINER
-- (the C code reads as the tables' owner by itself)
SELECT ok(p.proisstrict AND p.provolatile = 's' AND p.proparallel = 'u' AND NOT p.prosecdef,
		  p.oid::regprocedure || ' is STRICT STABLE PARALLEL UNSAFE, not SECURITY DEFINER')
FROM pg_proc p
WHERE p.oid IN (SELECT f FROM checks UNION ALL SELECT f FROM diagnostics
				WHERE f::text LIKE 'iam.explain_permission%')
ORDER BY 1;

-- invalidation triggers: one per RBAC table, statement-level, AFTER
SELECT has_trigger('iam', t, 'rbac_invalidate', 'iam.' || t || ' invalidates the permission caches')
FROM unnest(ARRAY['permissions', 'role_inheritance', 'role_permissions', 'roles',
				  'user_permissions', 'user_roles', 'users']) AS t ORDER BY t;
SELECT is(array_agg(c.relname::text ORDER BY c.relname), NULL,
		  'every rbac_invalidate trigger is AFTER ... FOR EACH STATEMENT and enabled')
FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid
WHERE g.tgname = 'rbac_invalidate'
  AND ((g.tgtype & (1 | 2 | 64)) <> 0 OR g.tgenabled <> 'O');
SELECT is((SELECT array_agg(a.attname::text ORDER BY a.attname)
		   FROM pg_trigger g JOIN pg_attribute a ON a.attrelid = g.tgrelid AND a.attnum = ANY (g.tgattr)
		   WHERE g.tgrelid = 'iam.users'::regclass AND g.tgname = 'rbac_invalidate'),
		  ARRAY['deleted_at', 'id', 'is_active', 'org_id', 'role'],
		  'users: only the columns the checks read invalidate');
SELECT has_trigger('iam', 'role_inheritance', 'role_inheritance_refuse_cycle', 'role_inheritance refuses cycles');
SELECT is(current_setting('iam.rbac_cache_max_users'), '10000', 'iam.rbac_cache_max_users defaults to 10000');

-- same answers for the gateway, acting in another organisation, as for the DBA
SELECT iam.create_organization('Tap A', 'tap-a') AS a \gset
SELECT iam.create_organization('Tap B', 'tap-b') AS b \gset
SELECT iam.create_user(:'a', 'tap@ta.example', 'Tap', 'auditor', NULL) AS tap \gset
CREATE TEMP TABLE dba_answers AS
SELECT iam.has_permission(:'tap', 'audit.read') AS audits,
	   iam.check_permissions(:'tap', ARRAY['users.read', 'users.delete']) AS checks,
	   ARRAY(SELECT iam.user_permissions(:'tap') ORDER BY 1) AS permissions;
GRANT SELECT ON dba_answers TO iam_gateway;
SET LOCAL ROLE iam_gateway;
SELECT set_config('iam.org_id', :'b', true) IS NOT NULL AS acting_in_b \gset
SELECT is(iam.has_permission(:'tap', 'audit.read'), (SELECT audits FROM dba_answers),
		  'the gateway acting in B gets the DBA''s has_permission answer about a user of A');
SELECT is(iam.check_permissions(:'tap', ARRAY['users.read', 'users.delete']), (SELECT checks FROM dba_answers),
		  'the gateway acting in B gets the DBA''s check_permissions answer');
SELECT is(ARRAY(SELECT iam.user_permissions(:'tap') ORDER BY 1), (SELECT permissions FROM dba_answers),
		  'the gateway acting in B gets the DBA''s user_permissions answer');
SELECT throws_ok(format('SELECT * FROM iam.explain_permission(%L, %L)', :'tap', 'audit.read'),
				 '42501', NULL, 'the gateway cannot call explain_permission');
RESET ROLE;

-- a cycle is refused with 23514 and a message that says so
INSERT INTO iam.roles (name, display_name, org_id) VALUES ('tap_x', 'X', :'a') RETURNING id AS x \gset
INSERT INTO iam.roles (name, display_name, org_id) VALUES ('tap_y', 'Y', :'a') RETURNING id AS y \gset
INSERT INTO iam.role_inheritance (role_id, inherits_role_id) VALUES (:'x', :'y');
SELECT throws_ok(format('INSERT INTO iam.role_inheritance (role_id, inherits_role_id) VALUES (%L, %L)', :'y', :'x'),
				 '23514', 'role inheritance would create a cycle', 'an inheritance cycle is refused with 23514');

SELECT * FROM finish();
ROLLBACK;
