-- privileges.sql: what each pg_iam database role may and may not do.
BEGIN;
SELECT plan(21 + 2 * (SELECT count(*)::int FROM pg_tables WHERE schemaname = 'iam'
					   AND tablename NOT IN ('routes', 'rate_limit_classes')));

SELECT has_role('iam_gateway');
SELECT has_role('iam_service');
SELECT has_role('iam_auditor');
SELECT ok(rolcanlogin, 'iam_gateway can log in') FROM pg_roles WHERE rolname = 'iam_gateway';
SELECT ok(NOT rolsuper AND NOT rolbypassrls AND NOT rolcreaterole AND NOT rolcreatedb,
		  rolname || ': no superuser, BYPASSRLS, CREATEROLE or CREATEDB')
FROM pg_roles WHERE rolname IN ('iam_gateway', 'iam_service', 'iam_auditor') ORDER BY rolname;

-- the gateway may not read or write any table directly, except read its
-- route declarations
SELECT ok(NOT has_table_privilege('iam_gateway', format('iam.%I', tablename),
								  'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER'),
		  'iam_gateway has no privilege on iam.' || tablename)
FROM pg_tables WHERE schemaname = 'iam' AND tablename NOT IN ('routes', 'rate_limit_classes') ORDER BY tablename;
SELECT ok(has_table_privilege('iam_gateway', format('iam.%I', tablename), 'SELECT')
		  AND NOT has_table_privilege('iam_gateway', format('iam.%I', tablename),
									  'INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER'),
		  'iam_gateway may only read iam.' || tablename)
FROM pg_tables WHERE schemaname = 'iam' AND tablename IN ('routes', 'rate_limit_classes') ORDER BY tablename;
SET LOCAL ROLE iam_gateway;
SELECT throws_ok(format('SELECT count(*) FROM iam.%I', tablename), '42501', NULL,
				 'iam_gateway: SELECT on iam.' || tablename || ' is refused')
FROM pg_tables WHERE schemaname = 'iam' AND tablename NOT IN ('routes', 'rate_limit_classes') ORDER BY tablename;
SELECT throws_ok($$SELECT iam.password_hash('a long enough password')$$, '42501', NULL,
				 'iam_gateway cannot call internal functions');
SELECT throws_ok($$SELECT iam.create_organization('Evil', 'evil')$$, '42501', NULL,
				 'iam_gateway cannot create organisations directly');
RESET ROLE;

-- services read tenant data, never password hashes or sessions
SELECT ok(has_table_privilege('iam_service', 'iam.roles', 'SELECT'), 'iam_service reads roles');
SELECT ok(has_column_privilege('iam_service', 'iam.users', 'email', 'SELECT'), 'iam_service reads users.email');
SELECT ok(NOT has_column_privilege('iam_service', 'iam.users', 'password_hash', 'SELECT'),
		  'iam_service cannot read users.password_hash');
SELECT ok(NOT has_table_privilege('iam_service', 'iam.user_sessions', 'SELECT'),
		  'iam_service cannot read sessions');
SELECT ok(NOT has_table_privilege('iam_service', 'iam.users', 'INSERT, UPDATE, DELETE'),
		  'iam_service cannot write users directly');

-- auditors read the logs and nothing else
SELECT ok(has_table_privilege('iam_auditor', 'iam.audit_logs', 'SELECT')
		  AND has_table_privilege('iam_auditor', 'iam.activity_logs', 'SELECT'), 'iam_auditor reads the logs');
SELECT ok(NOT has_table_privilege('iam_auditor', 'iam.audit_logs', 'INSERT, UPDATE, DELETE, TRUNCATE'),
		  'iam_auditor cannot write the audit trail');
SELECT ok(NOT has_table_privilege('iam_auditor', 'iam.users', 'SELECT'), 'iam_auditor cannot read users');

-- PUBLIC gets nothing but the two context readers that RLS policies call
SELECT is(array_agg(p.oid::regprocedure::text ORDER BY 1),
		  ARRAY['iam.current_org_id()', 'iam.current_user_id()'],
		  'PUBLIC may execute only the context readers')
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'iam' AND has_function_privilege('public', p.oid, 'EXECUTE');
SELECT is(count(*), 0::bigint, 'PUBLIC has no table privilege in schema iam')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'iam'
WHERE c.relkind IN ('r', 'p', 'v', 'm')
  AND has_table_privilege('public', c.oid, 'SELECT, INSERT, UPDATE, DELETE');

SELECT * FROM finish();
ROLLBACK;
