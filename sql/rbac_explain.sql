-- rbac_explain: iam.explain_permission says which paths grant a permission,
-- or why none does, and always agrees with iam.has_permission.
\set VERBOSITY terse
SELECT iam.create_organization('Explain A', 'explain-a') AS a \gset
SELECT iam.create_organization('Explain B', 'explain-b') AS b \gset
CREATE FUNCTION pg_temp.perm(name text) RETURNS uuid
	LANGUAGE sql RETURN (SELECT id FROM iam.permissions p WHERE p.name = perm.name);
CREATE PROCEDURE pg_temp.grant_to(role uuid, VARIADIC perms text[])
	LANGUAGE sql AS $$
	INSERT INTO iam.role_permissions (role_id, permission_id)
	SELECT role, p.id FROM iam.permissions p WHERE p.name = ANY (perms)
$$;
-- explain(user, permission): iam.explain_permission with expires_at reduced to
-- whether there is one (a test prints no times)
CREATE FUNCTION pg_temp.explain(u uuid, p text)
	RETURNS TABLE (granted boolean, reason text, via text, path text, expires boolean)
	LANGUAGE sql AS $$
	SELECT e.granted, e.reason, e.via, e.path, e.expires_at IS NOT NULL FROM iam.explain_permission(u, p) e
$$;
SELECT gen_random_uuid() AS doc1, gen_random_uuid() AS doc2, gen_random_uuid() AS nobody \gset

INSERT INTO iam.roles (name, display_name, org_id) VALUES ('editor', 'Editor', :'a') RETURNING id AS editor \gset
INSERT INTO iam.roles (name, display_name, org_id) VALUES ('senior', 'Senior', :'a') RETURNING id AS senior \gset
INSERT INTO iam.roles (name, display_name, org_id) VALUES ('chief', 'Chief', :'a') RETURNING id AS chief \gset
INSERT INTO iam.roles (name, display_name, org_id) VALUES ('ops', 'Operations', :'a') RETURNING id AS ops \gset
INSERT INTO iam.roles (name, display_name, org_id) VALUES ('buyer', 'Buyer', :'b') RETURNING id AS buyer \gset
CALL pg_temp.grant_to(:'editor', 'users.update');
CALL pg_temp.grant_to(:'ops', 'platform.admin');
CALL pg_temp.grant_to(:'buyer', 'reports.read');
-- chief -> senior -> editor and, directly, chief -> editor: two paths
INSERT INTO iam.role_inheritance (role_id, inherits_role_id) VALUES
	(:'senior', :'editor'), (:'chief', :'senior'), (:'chief', :'editor');
SELECT id AS auditor FROM iam.roles WHERE name = 'auditor' AND is_system \gset

SELECT iam.create_user(:'a', 'chris@xa.example', 'Chris', 'chief', NULL) AS chris \gset
SELECT iam.create_user(:'a', 'xena@xa.example', 'Xena', 'member', NULL) AS xena \gset
SELECT iam.create_user(:'a', 'dana@xa.example', 'Dana', 'member', NULL) AS dana \gset
SELECT iam.create_user(:'a', 'ina@xa.example', 'Ina', 'admin', NULL) AS ina \gset
SELECT iam.create_user(:'a', 'del@xa.example', 'Del', 'admin', NULL) AS del \gset
SELECT iam.create_user(:'a', 'olga@xa.example', 'Olga', 'ops', NULL) AS olga \gset
SELECT iam.create_user(:'b', 'bob@xb.example', 'Bob', 'buyer', NULL) AS bob \gset
INSERT INTO iam.user_roles (user_id, role_id) VALUES (:'xena', :'auditor');
INSERT INTO iam.user_roles (user_id, role_id, expires_at) VALUES (:'xena', :'senior', now() - interval '1 day');
INSERT INTO iam.user_permissions (user_id, permission_id) VALUES (:'dana', pg_temp.perm('reports.read'));
INSERT INTO iam.user_permissions (user_id, permission_id, resource_type, resource_id)
	VALUES (:'dana', pg_temp.perm('users.update'), 'document', :'doc1');
INSERT INTO iam.user_permissions (user_id, permission_id, expires_at)
	VALUES (:'dana', pg_temp.perm('jobs.run'), now() - interval '1 second');
INSERT INTO iam.user_permissions (user_id, permission_id, expires_at)
	VALUES (:'dana', pg_temp.perm('org.update'), now() + interval '1 day');
UPDATE iam.users SET is_active = false WHERE id = :'ina';
UPDATE iam.users SET deleted_at = now() WHERE id = :'del';

-- every path that grants it: primary role, through inheritance, both ways
SELECT * FROM pg_temp.explain(:'chris', 'users.update') ORDER BY path;
-- a granted role, next to the primary role
SELECT * FROM pg_temp.explain(:'xena', 'audit.read') ORDER BY path;
SELECT * FROM pg_temp.explain(:'xena', 'users.read') ORDER BY path;
-- direct grants, with and without expiry
SELECT * FROM pg_temp.explain(:'dana', 'reports.read') ORDER BY path;
SELECT * FROM pg_temp.explain(:'dana', 'org.update') ORDER BY path;
-- platform.admin through a role implies every permission
SELECT * FROM pg_temp.explain(:'olga', 'sessions.manage') ORDER BY path;
SELECT * FROM pg_temp.explain(:'olga', 'platform.admin') ORDER BY path;

-- why not: expired grants, an expired role grant and what it inherits
SELECT * FROM pg_temp.explain(:'dana', 'jobs.run') ORDER BY path;
SELECT * FROM pg_temp.explain(:'xena', 'users.update') ORDER BY path;
-- a grant scoped to a resource does not answer the global question ...
SELECT granted, reason, via, replace(path, :'doc1', '<doc1>') AS path
FROM iam.explain_permission(:'dana', 'users.update') ORDER BY path;
-- ... answers for its resource, and not for another
SELECT granted, reason, via, replace(path, :'doc1', '<doc1>') AS path
FROM iam.explain_permission(:'dana', 'users.update', 'document', :'doc1') ORDER BY path;
SELECT granted, reason, via, replace(path, :'doc1', '<doc1>') AS path
FROM iam.explain_permission(:'dana', 'users.update', 'document', :'doc2') ORDER BY path;
-- a global grant answers for any resource
SELECT granted, reason, via, path
FROM iam.explain_permission(:'dana', 'reports.read', 'folder', :'doc2') ORDER BY path;
-- the user, the name, the catalogue
SELECT * FROM pg_temp.explain(:'ina', 'users.read') ORDER BY path;
SELECT * FROM pg_temp.explain(:'del', 'users.read') ORDER BY path;
SELECT * FROM pg_temp.explain(:'nobody', 'users.read') ORDER BY path;
SELECT * FROM pg_temp.explain(:'chris', 'users.fly') ORDER BY path;
SELECT * FROM pg_temp.explain(:'chris', 'Users Read') ORDER BY path;
SELECT length(path) AS echo_length FROM iam.explain_permission(:'chris', repeat('x', 5000));
SELECT * FROM pg_temp.explain(:'chris', 'audit.read') ORDER BY path;
-- rows of another organisation (only with triggers off) are named as such
SET session_replication_role = replica;
INSERT INTO iam.user_roles (user_id, role_id, org_id) VALUES (:'chris', :'buyer', :'a');
INSERT INTO iam.user_permissions (user_id, permission_id, org_id) VALUES (:'chris', pg_temp.perm('jobs.run'), :'b');
RESET session_replication_role;
SELECT * FROM pg_temp.explain(:'chris', 'reports.read') ORDER BY path;
SELECT * FROM pg_temp.explain(:'chris', 'jobs.run') ORDER BY path;
-- NULL in, no rows out
SELECT count(*) AS null_rows FROM iam.explain_permission(NULL, 'users.read');

-- explain and has_permission agree on every user, permission and resource
-- asked about (the cache is emptied: rows were written with triggers off)
SELECT iam.rbac_cache_reset();
WITH users AS (SELECT id FROM iam.users WHERE org_id IN (:'a', :'b') UNION ALL SELECT :'nobody'::uuid),
	 names AS (SELECT name::text FROM iam.permissions UNION ALL VALUES ('users.fly'), ('Bad Name')),
	 resources AS (SELECT NULL::uuid AS id UNION ALL VALUES (:'doc1'::uuid), (:'doc2'::uuid)),
	 answers AS (
		SELECT u.id, n.name, r.id AS resource,
			   CASE WHEN r.id IS NULL THEN iam.has_permission(u.id, n.name)
					ELSE iam.has_permission(u.id, n.name, 'document', r.id) END AS held,
			   (SELECT bool_or(e.granted)
				FROM iam.explain_permission(u.id, n.name, 'document', r.id) e) AS explained_on,
			   (SELECT bool_or(e.granted) FROM iam.explain_permission(u.id, n.name) e) AS explained
		FROM users u, names n, resources r)
SELECT count(*) AS questions,
	   count(*) FILTER (WHERE held) AS granted,
	   count(*) FILTER (WHERE held IS DISTINCT FROM CASE WHEN resource IS NULL THEN explained ELSE explained_on END)
		AS disagreements
FROM answers;
