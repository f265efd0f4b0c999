-- rbac_cache_local: this backend's permission cache.  Its counters, its LRU
-- bound (iam.rbac_cache_max_users), and that a change to each RBAC table,
-- by any kind of statement, reaches it at the next command of this session.
-- (Other sessions, commit and rollback: specs/rbac_cache.spec.)
\set VERBOSITY terse
SELECT iam.create_organization('Cache A', 'cache-a') AS a \gset
SELECT iam.create_organization('Cache B', 'cache-b') AS b \gset
CREATE FUNCTION pg_temp.perm(name text) RETURNS uuid
	LANGUAGE sql RETURN (SELECT id FROM iam.permissions p WHERE p.name = perm.name);
CREATE FUNCTION pg_temp.stats() RETURNS TABLE (cached_users bigint, hits bigint, misses bigint, rebuilds bigint)
	LANGUAGE sql AS 'SELECT cached_users, hits, misses, rebuilds FROM iam.rbac_cache_stats()';
CREATE FUNCTION pg_temp.rebuilds() RETURNS bigint
	LANGUAGE sql RETURN (SELECT rebuilds FROM iam.rbac_cache_stats());
SELECT iam.create_user(:'a', 'u1@ca.example', 'U1', 'member', NULL) AS u1 \gset
SELECT iam.create_user(:'a', 'u2@ca.example', 'U2', 'member', NULL) AS u2 \gset
SELECT iam.create_user(:'a', 'u3@ca.example', 'U3', 'member', NULL) AS u3 \gset
SELECT iam.create_user(:'b', 'bob@cb.example', 'Bob', 'admin', NULL) AS bob \gset
INSERT INTO iam.roles (name, display_name, org_id) VALUES ('editor', 'Editor', :'a') RETURNING id AS editor \gset
INSERT INTO iam.role_permissions (role_id, permission_id) VALUES (:'editor', pg_temp.perm('users.update'));
SELECT iam.create_user(:'a', 'ed@ca.example', 'Ed', 'editor', NULL) AS ed \gset
SELECT id AS auditor FROM iam.roles WHERE name = 'auditor' AND is_system \gset
SELECT gen_random_uuid() AS u5, gen_random_uuid() AS doc \gset

-- counters: one miss loads a user, the next check of it is a hit
SELECT iam.rbac_cache_reset();
SELECT * FROM pg_temp.stats();
SELECT iam.has_permission(:'u1', 'users.read') AS first, iam.has_permission(:'u1', 'org.read') AS second;
SELECT * FROM pg_temp.stats();
SELECT bytes > 0 AS holds_memory FROM iam.rbac_cache_stats();
-- names that are malformed or unknown are answered without touching the cache
SELECT iam.has_permission(:'u2', 'Bad Name') AS malformed, iam.has_permission(:'u2', 'users.fly') AS unknown;
SELECT * FROM pg_temp.stats();

-- at most iam.rbac_cache_max_users users, the least recently used evicted:
-- u1 u2 u3 (evicts u1) u2 (hit) u1 (evicts u3) u2 (hit) u3 (evicts u1)
SET iam.rbac_cache_max_users = 2;
SELECT iam.rbac_cache_reset();
SELECT bool_and(iam.has_permission(u, 'users.read')) AS all_read
FROM unnest(ARRAY[:'u1', :'u2', :'u3', :'u2', :'u1', :'u2', :'u3']::uuid[]) WITH ORDINALITY AS t(u, n);
SELECT * FROM pg_temp.stats();
-- 0 disables the cache; answers stay right
SET iam.rbac_cache_max_users = 0;
SELECT iam.rbac_cache_reset();
SELECT iam.has_permission(:'u1', 'users.read') AS reads, iam.has_permission(:'u1', 'users.delete') AS deletes;
SELECT * FROM pg_temp.stats();
RESET iam.rbac_cache_max_users;
-- only a superuser sets the bound
SET ROLE iam_service;
SET iam.rbac_cache_max_users = 5;
RESET ROLE;
-- a thousand users fit in a few hundred kilobytes
INSERT INTO iam.users (org_id, email, name) SELECT :'a', 'many' || i || '@ca.example', 'Many ' || i
FROM generate_series(1, 1000) AS i;
SELECT iam.rbac_cache_reset();
SELECT count(*) FILTER (WHERE iam.has_permission(id, 'users.read')) AS readers
FROM iam.users WHERE email LIKE 'many%';
SELECT cached_users, bytes / cached_users < 512 AS under_512_bytes_per_user FROM iam.rbac_cache_stats();
DELETE FROM iam.users WHERE email LIKE 'many%';

-- every change to an RBAC table reaches the cache at the next command.
-- users: the columns checks read invalidate, others do not
SELECT iam.has_permission(:'u1', 'users.delete') AS before_role_change, pg_temp.rebuilds() AS rebuilds \gset
UPDATE iam.users SET name = 'U One', department = 'Sales' WHERE id = :'u1';
SELECT iam.has_permission(:'u1', 'users.read') AS after_name_change, pg_temp.rebuilds() = :rebuilds AS no_rebuild;
UPDATE iam.users SET role = 'admin' WHERE id = :'u1';
SELECT iam.has_permission(:'u1', 'users.delete') AS after_role_change, pg_temp.rebuilds() = :rebuilds + 1 AS one_rebuild;
UPDATE iam.users SET is_active = false WHERE id = :'u1';
SELECT iam.has_permission(:'u1', 'users.delete') AS after_deactivation;
UPDATE iam.users SET is_active = true, deleted_at = now() WHERE id = :'u1';
SELECT iam.has_permission(:'u1', 'users.delete') AS after_soft_delete;
UPDATE iam.users SET deleted_at = NULL, role = 'member' WHERE id = :'u1';
SELECT iam.has_permission(:'u1', 'users.delete') AS after_restore_as_member,
	   iam.has_permission(:'u1', 'users.read') AS restored_reads;
-- a user asked about before it exists, then inserted, then deleted
SELECT iam.has_permission(:'u5', 'users.read') AS before_insert;
INSERT INTO iam.users (id, org_id, email, name) VALUES (:'u5', :'a', 'u5@ca.example', 'U5');
SELECT iam.has_permission(:'u5', 'users.read') AS after_insert;
DELETE FROM iam.users WHERE id = :'u5';
SELECT iam.has_permission(:'u5', 'users.read') AS after_delete;
-- roles: the primary role is looked up by name
SELECT iam.has_permission(:'ed', 'users.update') AS ed_before_rename;
UPDATE iam.roles SET name = 'writer' WHERE id = :'editor';
SELECT iam.has_permission(:'ed', 'users.update') AS ed_after_rename;
UPDATE iam.roles SET name = 'editor' WHERE id = :'editor';
SELECT iam.has_permission(:'ed', 'users.update') AS ed_after_rename_back;
-- permissions: a new permission joins the dictionary; renames and deletes count
INSERT INTO iam.permissions (name, display_name, category) VALUES ('reports.export', 'Export reports', 'reports');
INSERT INTO iam.role_permissions (role_id, permission_id) VALUES (:'editor', pg_temp.perm('reports.export'));
SELECT iam.has_permission(:'ed', 'reports.export') AS new_permission;
UPDATE iam.permissions SET name = 'reports.download' WHERE name = 'reports.export';
SELECT iam.has_permission(:'ed', 'reports.export') AS old_name, iam.has_permission(:'ed', 'reports.download') AS new_name;
DELETE FROM iam.permissions WHERE name = 'reports.download';
SELECT iam.has_permission(:'ed', 'reports.download') AS deleted_permission;
-- role_permissions
DELETE FROM iam.role_permissions WHERE role_id = :'editor';
SELECT iam.has_permission(:'ed', 'users.update') AS after_role_permission_delete;
INSERT INTO iam.role_permissions (role_id, permission_id) VALUES (:'editor', pg_temp.perm('users.update'));
SELECT iam.has_permission(:'ed', 'users.update') AS after_role_permission_insert;
-- user_roles: insert, update of expiry, delete
INSERT INTO iam.user_roles (user_id, role_id) VALUES (:'u2', :'auditor');
SELECT iam.has_permission(:'u2', 'audit.read') AS after_user_role_insert;
UPDATE iam.user_roles SET expires_at = now() WHERE user_id = :'u2';
SELECT iam.has_permission(:'u2', 'audit.read') AS after_user_role_expiry;
UPDATE iam.user_roles SET expires_at = NULL WHERE user_id = :'u2';
SELECT iam.has_permission(:'u2', 'audit.read') AS after_expiry_lifted;
DELETE FROM iam.user_roles WHERE user_id = :'u2';
SELECT iam.has_permission(:'u2', 'audit.read') AS after_user_role_delete;
-- user_permissions: insert, rescoping, delete, truncate
INSERT INTO iam.user_permissions (user_id, permission_id) VALUES (:'u3', pg_temp.perm('jobs.run'));
SELECT iam.has_permission(:'u3', 'jobs.run') AS after_grant;
UPDATE iam.user_permissions SET resource_type = 'document', resource_id = :'doc' WHERE user_id = :'u3';
SELECT iam.has_permission(:'u3', 'jobs.run') AS globally_after_rescoping,
	   iam.has_permission(:'u3', 'jobs.run', 'document', :'doc') AS on_document_after_rescoping;
DELETE FROM iam.user_permissions WHERE user_id = :'u3';
SELECT iam.has_permission(:'u3', 'jobs.run', 'document', :'doc') AS after_revoke;
INSERT INTO iam.user_permissions (user_id, permission_id) VALUES (:'u3', pg_temp.perm('jobs.run'));
BEGIN;
TRUNCATE iam.user_permissions;
SELECT iam.has_permission(:'u3', 'jobs.run') AS after_truncate;
ROLLBACK;
SELECT iam.has_permission(:'u3', 'jobs.run') AS after_truncate_rolled_back;
-- role_inheritance
INSERT INTO iam.role_inheritance (role_id, inherits_role_id) VALUES (:'editor', :'auditor');
SELECT iam.has_permission(:'ed', 'audit.read') AS after_inheritance_insert;
DELETE FROM iam.role_inheritance WHERE role_id = :'editor';
SELECT iam.has_permission(:'ed', 'audit.read') AS after_inheritance_delete;
-- cascades: deleting a role, deleting an organisation
INSERT INTO iam.user_roles (user_id, role_id) VALUES (:'u2', :'editor');
SELECT iam.has_permission(:'u2', 'users.update') AS u2_before_role_delete;
DELETE FROM iam.roles WHERE id = :'editor';
SELECT iam.has_permission(:'u2', 'users.update') AS u2_after_role_delete,
	   iam.has_permission(:'ed', 'users.update') AS ed_after_role_delete;
SELECT iam.has_permission(:'bob', 'users.delete') AS bob_before_org_delete;
DELETE FROM iam.organizations WHERE id = :'b';
SELECT iam.has_permission(:'bob', 'users.delete') AS bob_after_org_delete;
