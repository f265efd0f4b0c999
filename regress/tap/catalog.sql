-- catalog.sql: a DBA's \d+ and \df+ explain every object of the extension.
BEGIN;
SELECT plan(5);

SELECT is(array_agg(c.relname::text ORDER BY c.relname), NULL,
		  'every table, view and materialized view in schema iam has a COMMENT')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'iam' AND c.relkind IN ('r', 'p', 'v', 'm')
  AND obj_description(c.oid, 'pg_class') IS NULL;

SELECT is(array_agg(p.oid::regprocedure::text ORDER BY 1), NULL,
		  'every function in schema iam has a COMMENT')
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'iam' AND obj_description(p.oid, 'pg_proc') IS NULL;

SELECT is(array_agg(r.rolname::text ORDER BY 1), NULL, 'the pg_iam database roles have a COMMENT')
FROM pg_roles r
WHERE r.rolname IN ('iam_gateway', 'iam_service', 'iam_auditor')
  AND shobj_description(r.oid, 'pg_authid') IS NULL;

-- columns whose meaning is not obvious from their name must say it
SELECT is(array_agg(format('%s.%s', c.relname, a.attname) ORDER BY 1), NULL,
		  'non-obvious columns have a COMMENT')
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid AND c.relkind IN ('r', 'p', 'v', 'm')
JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'iam'
WHERE a.attnum > 0 AND NOT a.attisdropped
  AND a.attname NOT IN ('id', 'name', 'display_name', 'description', 'created_at', 'updated_at',
						'user_id', 'role_id', 'permission_id', 'granted_at', 'granted_by',
						'created_by', 'ip_address', 'user_agent', 'entity_type', 'entity_id',
						'department', 'phone', 'profile_image', 'last_login', 'two_factor_enabled',
						'last_activity', 'expires_at', 'org_id')
  AND col_description(c.oid, a.attnum) IS NULL;

SELECT is((SELECT extversion FROM pg_extension WHERE extname = 'iam'), '0.7', 'iam is installed at version 0.7');

SELECT * FROM finish();
ROLLBACK;
