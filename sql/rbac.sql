-- rbac: permission resolution.  Primary role, extra roles, inheritance,
-- cycles, scoped and global grants, expiry, inactive and deleted users,
-- organisations, platform.admin, names, NULLs, check_permissions, the
-- caller's RLS context, and a session's own changes and rollbacks.
\set VERBOSITY terse
SELECT iam.create_organization('Rbac A', 'rbac-a') AS a \gset
SELECT iam.create_organization('Rbac B', 'rbac-b') AS b \gset

-- grant_to(role, permissions...) gives a role some permissions
CREATE PROCEDURE pg_temp.grant_to(role uuid, VARIADIC perms text[])
	LANGUAGE sql AS $$
	INSERT INTO iam.role_permissions (role_id, permission_id)
	SELECT role, p.id FROM iam.permissions p WHERE p.name = ANY (perms)
$$;
CREATE FUNCTION pg_temp.perm(name text) RETURNS uuid
	LANGUAGE sql RETURN (SELECT id FROM iam.permissions p WHERE p.name = perm.name);

-- roles of A, three levels of inheritance: chief -> lead -> senior -> editor
INSERT INTO iam.roles (name, display_name, org_id) VALUES ('editor', 'Editor', :'a') RETURNING id AS editor \gset
INSERT INTO iam.roles (name, display_name, org_id) VALUES ('senior', 'Senior', :'a') RETURNING id AS senior \gset
INSERT INTO iam.roles (name, display_name, org_id) VALUES ('lead', 'Lead', :'a') RETURNING id AS lead \gset
INSERT INTO iam.roles (name, display_name, org_id) VALUES ('chief', 'Chief', :'a') RETURNING id AS chief \gset
CALL pg_temp.grant_to(:'editor', 'users.update');
CALL pg_temp.grant_to(:'senior', 'users.delete');
CALL pg_temp.grant_to(:'lead', 'jobs.run');
INSERT INTO iam.role_inheritance (role_id, inherits_role_id) VALUES
	(:'senior', :'editor'), (:'lead', :'senior'), (:'chief', :'lead');
-- a role of B holding everything B's users may do
INSERT INTO iam.roles (name, display_name, org_id) VALUES ('buyer', 'Buyer', :'b') RETURNING id AS buyer \gset
CALL pg_temp.grant_to(:'buyer', 'users.delete', 'reports.read', 'sessions.manage');
SELECT id AS auditor FROM iam.roles WHERE name = 'auditor' AND is_system \gset
SELECT id AS member FROM iam.roles WHERE name = 'member' AND is_system \gset

SELECT iam.create_user(:'a', 'ann@ra.example', 'Ann', 'member', NULL) AS ann \gset
SELECT iam.create_user(:'a', 'ed@ra.example', 'Ed', 'editor', NULL) AS ed \gset
SELECT iam.create_user(:'a', 'chris@ra.example', 'Chris', 'chief', NULL) AS chris \gset
SELECT iam.create_user(:'a', 'xena@ra.example', 'Xena', 'member', NULL) AS xena \gset
SELECT iam.create_user(:'a', 'dana@ra.example', 'Dana', 'member', NULL) AS dana \gset
SELECT iam.create_user(:'a', 'ina@ra.example', 'Ina', 'admin', NULL) AS ina \gset
SELECT iam.create_user(:'a', 'del@ra.example', 'Del', 'admin', NULL) AS del \gset
SELECT iam.create_user(:'a', 'pat@ra.example', 'Pat', 'member', NULL) AS pat \gset
SELECT iam.create_user(:'a', 'sam@ra.example', 'Sam', 'member', NULL) AS sam \gset
SELECT iam.create_user(:'b', 'bob@rb.example', 'Bob', 'buyer', NULL) AS bob \gset
SELECT gen_random_uuid() AS doc1, gen_random_uuid() AS doc2, gen_random_uuid() AS nobody \gset

-- primary role: a system role, and a role of the user's organisation
SELECT iam.has_permission(:'ann', 'users.read') AS ann_reads,
	   iam.has_permission(:'ann', 'org.read') AS ann_reads_org,
	   iam.has_permission(:'ann', 'users.update') AS ann_updates;
SELECT iam.has_permission(:'ed', 'users.update') AS ed_updates,
	   iam.has_permission(:'ed', 'users.read') AS ed_reads;
SELECT iam.has_permission(:'bob', 'users.delete') AS bob_deletes_in_b;

-- inheritance, three levels deep: chief holds jobs.run, users.delete, users.update
SELECT p AS permission, iam.has_permission(:'chris', p) AS chris_holds
FROM unnest(ARRAY['jobs.run', 'users.delete', 'users.update', 'users.read']) AS p ORDER BY p;
SELECT iam.effective_roles(:'chris') AS chris_roles ORDER BY 1;
SELECT iam.user_permissions(:'chris') AS chris_permissions ORDER BY 1;

-- an extra role (user_roles) adds to the primary role
SELECT iam.has_permission(:'xena', 'audit.read') AS xena_audits_before;
INSERT INTO iam.user_roles (user_id, role_id) VALUES (:'xena', :'auditor');
SELECT iam.has_permission(:'xena', 'audit.read') AS xena_audits,
	   iam.has_permission(:'xena', 'users.read') AS xena_still_reads;
SELECT iam.effective_roles(:'xena') AS xena_roles ORDER BY 1;
-- an extra role brings what it inherits
INSERT INTO iam.user_roles (user_id, role_id) VALUES (:'xena', :'lead');
SELECT iam.has_permission(:'xena', 'users.update') AS xena_updates_through_lead;
DELETE FROM iam.user_roles WHERE user_id = :'xena' AND role_id = :'lead';
SELECT iam.has_permission(:'xena', 'users.update') AS xena_updates_after_revoke;

-- cycles are refused (23514), however long, also within one statement or by UPDATE
INSERT INTO iam.role_inheritance (role_id, inherits_role_id) VALUES (:'editor', :'chief');
INSERT INTO iam.role_inheritance (role_id, inherits_role_id) VALUES (:'editor', :'senior');
INSERT INTO iam.role_inheritance (role_id, inherits_role_id) VALUES (:'editor', :'editor');
INSERT INTO iam.roles (name, display_name, org_id) VALUES ('twin_a', 'Twin A', :'a') RETURNING id AS twin_a \gset
INSERT INTO iam.roles (name, display_name, org_id) VALUES ('twin_b', 'Twin B', :'a') RETURNING id AS twin_b \gset
INSERT INTO iam.role_inheritance (role_id, inherits_role_id) VALUES (:'twin_a', :'twin_b'), (:'twin_b', :'twin_a');
UPDATE iam.role_inheritance SET inherits_role_id = :'chief' WHERE role_id = :'senior';
SELECT count(*) AS twin_edges FROM iam.role_inheritance WHERE role_id IN (:'twin_a', :'twin_b');
-- moving an edge is no cycle: the edge it replaces does not count
UPDATE iam.role_inheritance SET inherits_role_id = :'editor' WHERE role_id = :'lead' RETURNING 'moved' AS lead_edge;
UPDATE iam.role_inheritance SET inherits_role_id = :'senior' WHERE role_id = :'lead' RETURNING 'moved back' AS lead_edge;
-- and diamonds are allowed: chief also inherits editor directly
INSERT INTO iam.role_inheritance (role_id, inherits_role_id) VALUES (:'chief', :'editor') RETURNING 'diamond' AS edge;
SELECT iam.has_permission(:'chris', 'users.update') AS chris_updates_twice_over;

-- direct grants: global, and scoped to one resource
INSERT INTO iam.user_permissions (user_id, permission_id) VALUES (:'dana', pg_temp.perm('reports.read'));
INSERT INTO iam.user_permissions (user_id, permission_id, resource_type, resource_id)
	VALUES (:'dana', pg_temp.perm('users.update'), 'document', :'doc1');
SELECT iam.has_permission(:'dana', 'reports.read') AS global_grant,
	   iam.has_permission(:'dana', 'reports.read', 'document', :'doc2') AS global_grant_on_any_resource;
SELECT iam.has_permission(:'dana', 'users.update') AS scoped_grant_globally,
	   iam.has_permission(:'dana', 'users.update', 'document', :'doc1') AS on_its_resource,
	   iam.has_permission(:'dana', 'users.update', 'document', :'doc2') AS on_another_id,
	   iam.has_permission(:'dana', 'users.update', 'folder', :'doc1') AS on_another_type;
-- role permissions are global, so they answer for every resource too
SELECT iam.has_permission(:'ed', 'users.update', 'document', :'doc2') AS role_grant_on_resource;
SELECT iam.user_permissions(:'dana') AS dana_global_permissions ORDER BY 1;

-- expiry: a grant in the past counts for nothing, to the second
INSERT INTO iam.user_permissions (user_id, permission_id, expires_at)
	VALUES (:'dana', pg_temp.perm('jobs.run'), now() - interval '1 second');
INSERT INTO iam.user_permissions (user_id, permission_id, resource_type, resource_id, expires_at)
	VALUES (:'dana', pg_temp.perm('users.delete'), 'document', :'doc1', now());
INSERT INTO iam.user_permissions (user_id, permission_id, expires_at)
	VALUES (:'dana', pg_temp.perm('org.update'), now() + interval '1 hour');
SELECT iam.has_permission(:'dana', 'jobs.run') AS expired_a_second_ago,
	   iam.has_permission(:'dana', 'users.delete', 'document', :'doc1') AS expired_at_grant_time,
	   iam.has_permission(:'dana', 'org.update') AS expires_in_an_hour;
-- an expired role grant takes the roles it inherits with it
INSERT INTO iam.user_roles (user_id, role_id, expires_at) VALUES (:'ann', :'chief', now() - interval '1 second');
SELECT iam.has_permission(:'ann', 'users.update') AS ann_through_expired_chief;
SELECT iam.effective_roles(:'ann') AS ann_roles ORDER BY 1;
-- a grant that expires while cached stops counting at that instant
UPDATE iam.user_roles SET expires_at = now() + interval '2 seconds' WHERE user_id = :'ann' AND role_id = :'chief';
SELECT iam.has_permission(:'ann', 'jobs.run') AS ann_runs_jobs_until_expiry,
	   iam.has_permission(:'ann', 'users.update') AS ann_updates_until_expiry;
SELECT pg_sleep(greatest(0, extract(epoch FROM expires_at - clock_timestamp())::float8))
FROM iam.user_roles WHERE user_id = :'ann' AND role_id = :'chief';
SELECT iam.has_permission(:'ann', 'jobs.run') AS ann_runs_jobs_after_expiry,
	   iam.has_permission(:'ann', 'users.update') AS ann_updates_after_expiry,
	   iam.has_permission(:'ann', 'users.read') AS ann_keeps_primary_role;

-- inactive and deleted users hold nothing, whatever their roles
UPDATE iam.users SET is_active = false WHERE id = :'ina';
UPDATE iam.users SET deleted_at = now() WHERE id = :'del';
SELECT iam.has_permission(:'ina', 'users.read') AS inactive_reads,
	   iam.has_permission(:'del', 'users.read') AS deleted_reads,
	   (SELECT count(*) FROM iam.user_permissions(:'ina')) AS inactive_permissions,
	   (SELECT count(*) FROM iam.effective_roles(:'del')) AS deleted_roles;
UPDATE iam.users SET is_active = true WHERE id = :'ina';
SELECT iam.has_permission(:'ina', 'users.read') AS reactivated_reads;
-- an unknown user holds nothing
SELECT iam.has_permission(:'nobody', 'users.read') AS unknown_user,
	   (SELECT count(*) FROM iam.user_permissions(:'nobody')) AS unknown_user_permissions;

-- organisations: the triggers refuse cross-organisation rows ...
INSERT INTO iam.user_roles (user_id, role_id) VALUES (:'ann', :'buyer');
INSERT INTO iam.role_inheritance (role_id, inherits_role_id) VALUES (:'editor', :'buyer');
UPDATE iam.users SET role = 'buyer' WHERE id = :'ann';
-- ... and rows that slipped past them (triggers off) count for nothing
SET session_replication_role = replica;
INSERT INTO iam.user_roles (user_id, role_id, org_id) VALUES (:'ed', :'buyer', :'a');
INSERT INTO iam.role_inheritance (role_id, inherits_role_id, org_id) VALUES (:'editor', :'buyer', :'a');
INSERT INTO iam.user_permissions (user_id, permission_id, org_id) VALUES (:'ed', pg_temp.perm('audit.read'), :'b');
INSERT INTO iam.users (org_id, email, name, role) VALUES (:'a', 'lost@ra.example', 'Lost', 'buyer') RETURNING id AS lost \gset
RESET session_replication_role;
SELECT iam.rbac_cache_reset();
SELECT iam.has_permission(:'ed', 'reports.read') AS role_of_b_granted_to_a_user,
	   iam.has_permission(:'ed', 'sessions.manage') AS role_of_b_inherited_by_a_role,
	   iam.has_permission(:'ed', 'audit.read') AS grant_row_of_b,
	   iam.has_permission(:'lost', 'users.delete') AS primary_role_of_b,
	   iam.has_permission(:'ed', 'users.update') AS own_role_still_counts;
SELECT iam.effective_roles(:'ed') AS ed_roles ORDER BY 1;
DELETE FROM iam.user_roles WHERE role_id = :'buyer' AND user_id = :'ed';
DELETE FROM iam.role_inheritance WHERE inherits_role_id = :'buyer';
DELETE FROM iam.user_permissions WHERE user_id = :'ed';
DELETE FROM iam.users WHERE id = :'lost';

-- platform.admin: every permission of the catalogue, globally, for every
-- resource of every organisation; unknown names stay false
INSERT INTO iam.user_permissions (user_id, permission_id) VALUES (:'pat', pg_temp.perm('platform.admin'));
SELECT iam.has_permission(:'pat', 'org.update') AS platform_admin_updates_org,
	   iam.has_permission(:'pat', 'sessions.manage', 'document', :'doc2') AS on_any_resource,
	   iam.has_permission(:'pat', 'users.fly') AS unknown_permission;
SELECT (SELECT count(*) FROM iam.user_permissions(:'pat')) = (SELECT count(*) FROM iam.permissions)
	AS platform_admin_lists_everything;
-- the system admin role does not carry it, and only a global grant confers it
SELECT iam.has_permission(:'ina', 'platform.admin') AS org_admin_is_platform_admin;
INSERT INTO iam.user_permissions (user_id, permission_id, resource_type, resource_id)
	VALUES (:'sam', pg_temp.perm('platform.admin'), 'document', :'doc1');
SELECT iam.has_permission(:'sam', 'users.delete') AS scoped_platform_admin_globally,
	   iam.has_permission(:'sam', 'users.delete', 'document', :'doc1') AS scoped_platform_admin_other_permission,
	   iam.has_permission(:'sam', 'platform.admin', 'document', :'doc1') AS scoped_platform_admin_itself;
-- a platform admin who is deactivated holds nothing
UPDATE iam.users SET is_active = false WHERE id = :'pat';
SELECT iam.has_permission(:'pat', 'org.update') AS inactive_platform_admin;
UPDATE iam.users SET is_active = true WHERE id = :'pat';

-- names: unknown, malformed or over-long names are false, not errors
SELECT n AS name, iam.has_permission(:'ann', n) AS held
FROM unnest(ARRAY['users.read', 'users.fly', 'Users.Read', 'users read', 'users.read;', '',
				  'users.' || repeat('x', 94), 'users.' || repeat('x', 95)]) AS n
ORDER BY length(n), n;
SELECT iam.has_permission(:'pat', 'users.' || repeat('x', 95)) AS platform_admin_over_long_name;
SELECT iam.has_permission(:'dana', 'users.update', repeat('d', 51), :'doc1') AS over_long_resource_type;

-- NULL in, NULL out
SELECT iam.has_permission(NULL, 'users.read') IS NULL AS null_user,
	   iam.has_permission(:'ann', NULL) IS NULL AS null_permission,
	   iam.has_permission(:'ann', 'users.read', NULL, :'doc1') IS NULL AS null_type,
	   iam.has_permission(:'ann', 'users.read', 'document', NULL) IS NULL AS null_id,
	   iam.check_permissions(NULL, ARRAY['users.read']) IS NULL AS null_user_array,
	   iam.check_permissions(:'ann', NULL) IS NULL AS null_array;
SELECT count(*) AS null_user_rows FROM iam.user_permissions(NULL);

-- check_permissions: one answer per element, same order and shape
SELECT iam.check_permissions(:'ann', ARRAY['org.update', 'users.read', NULL, 'users.fly', 'Bad', 'org.read'])
	AS ann_checks;
SELECT iam.check_permissions(:'chris', ARRAY['users.update', 'users.delete', 'jobs.run', 'audit.read'])
	AS chris_checks;
SELECT iam.check_permissions(:'ann', '{}'::text[]) AS no_checks;
SELECT iam.check_permissions(:'ann', '[0:1]={users.read,users.delete}'::text[]) AS keeps_bounds;
SELECT iam.check_permissions(:'ann', ARRAY[['users.read', 'org.update'], ['org.read', 'jobs.run']]) AS keeps_shape;
SELECT iam.check_permissions(:'nobody', ARRAY['users.read']) AS unknown_user_checks;

-- the caller's row-level security context never changes an answer
SET ROLE iam_service;
SELECT set_config('iam.org_id', :'b', false) IS NOT NULL AS acting_in_b;
SELECT iam.has_permission(:'chris', 'users.delete') AS chris_seen_from_b,
	   iam.has_permission(:'ann', 'users.update') AS ann_seen_from_b,
	   iam.check_permissions(:'dana', ARRAY['reports.read', 'users.update']) AS dana_seen_from_b;
SELECT count(*) AS rows_of_a_visible_to_service FROM iam.users WHERE org_id = :'a';
SELECT set_config('iam.org_id', '', false) IS NOT NULL AS no_org;
SELECT iam.has_permission(:'chris', 'jobs.run') AS chris_without_org;
RESET ROLE;
SET ROLE iam_gateway;
SELECT iam.has_permission(:'bob', 'sessions.manage') AS bob_seen_by_gateway,
	   iam.has_permission(:'bob', 'sessions.manage', 'document', :'doc1') AS bob_on_resource;
-- diagnostics are for the DBA, not the gateway
SELECT iam.explain_permission(:'bob', 'sessions.manage');
RESET ROLE;

-- a search_path of the caller's cannot redefine the operators the checks use
CREATE SCHEMA rbac_evil;
CREATE FUNCTION rbac_evil.always(uuid, uuid) RETURNS boolean LANGUAGE sql AS 'SELECT true';
CREATE OPERATOR rbac_evil.= (LEFTARG = uuid, RIGHTARG = uuid, FUNCTION = rbac_evil.always);
SET search_path = rbac_evil, public, pg_catalog;
SELECT iam.rbac_cache_reset();
SELECT iam.has_permission(:'ann', 'users.delete') AS ann_deletes_with_evil_path,
	   iam.has_permission(:'dana', 'users.update', 'document', :'doc2') AS dana_with_evil_path;
RESET search_path;
DROP SCHEMA rbac_evil CASCADE;

-- a session sees its own uncommitted changes, and forgets them on rollback
SELECT iam.has_permission(:'ann', 'users.delete') AS before_tx;
BEGIN;
INSERT INTO iam.user_permissions (user_id, permission_id) VALUES (:'ann', pg_temp.perm('users.delete'));
SELECT iam.has_permission(:'ann', 'users.delete') AS own_uncommitted_grant;
SAVEPOINT s;
UPDATE iam.users SET is_active = false WHERE id = :'ann';
SELECT iam.has_permission(:'ann', 'users.delete') AS after_deactivation_in_savepoint;
ROLLBACK TO SAVEPOINT s;
SELECT iam.has_permission(:'ann', 'users.delete') AS after_rollback_to_savepoint;
ROLLBACK;
SELECT iam.has_permission(:'ann', 'users.delete') AS after_rollback;
BEGIN;
INSERT INTO iam.user_permissions (user_id, permission_id) VALUES (:'ann', pg_temp.perm('users.delete'));
COMMIT;
SELECT iam.has_permission(:'ann', 'users.delete') AS after_commit;
-- an error inside the transaction that made a change rolls it back too
BEGIN;
DELETE FROM iam.user_permissions WHERE user_id = :'ann';
SELECT iam.has_permission(:'ann', 'users.delete') AS revoked_in_tx;
SELECT 1 / 0;
ROLLBACK;
SELECT iam.has_permission(:'ann', 'users.delete') AS after_failed_revoke;

