-- rbac_upgrade: an installation of 0.1 with data reaches 0.2 with ALTER
-- EXTENSION iam UPDATE, and its users' permissions resolve at once.  In a
-- database of its own, dropped at the end.
\set VERBOSITY terse
\set regress_db :DBNAME
CREATE DATABASE iam_upgrade_regress;
\c iam_upgrade_regress
SET client_min_messages = warning;
CREATE EXTENSION iam VERSION '0.1' CASCADE;
SELECT to_regprocedure('iam.has_permission(uuid, text)') IS NULL AS no_checks_in_0_1;
SELECT iam.create_organization('Upgrade', 'upgrade') AS org \gset
INSERT INTO iam.roles (name, display_name, org_id) VALUES ('ring_a', 'Ring A', :'org') RETURNING id AS ring_a \gset
INSERT INTO iam.roles (name, display_name, org_id) VALUES ('ring_b', 'Ring B', :'org') RETURNING id AS ring_b \gset
INSERT INTO iam.role_permissions (role_id, permission_id)
	SELECT :'ring_b', id FROM iam.permissions WHERE name = 'audit.read';
SELECT iam.create_user(:'org', 'old@up.example', 'Old', 'ring_a', NULL) AS old \gset
-- 0.1 let a cycle in; 0.2 lives with it (and refuses new ones)
INSERT INTO iam.role_inheritance (role_id, inherits_role_id) VALUES (:'ring_a', :'ring_b'), (:'ring_b', :'ring_a');
ALTER EXTENSION iam UPDATE TO '0.2';
SELECT extversion FROM pg_extension WHERE extname = 'iam';
SELECT iam.has_permission(:'old', 'audit.read') AS audits,
	   iam.has_permission(:'old', 'users.delete') AS deletes;
SELECT iam.effective_roles(:'old') AS roles ORDER BY 1;
SELECT granted, reason, path FROM iam.explain_permission(:'old', 'audit.read') ORDER BY path;
INSERT INTO iam.roles (name, display_name, org_id) VALUES ('ring_c', 'Ring C', :'org') RETURNING id AS ring_c \gset
INSERT INTO iam.role_inheritance (role_id, inherits_role_id) VALUES (:'ring_b', :'ring_c') RETURNING 'edge out of the ring' AS edge;
INSERT INTO iam.role_inheritance (role_id, inherits_role_id) VALUES (:'ring_c', :'ring_a');
-- the update brings what a fresh install has
SELECT count(*) AS rbac_triggers FROM pg_trigger WHERE tgname IN ('rbac_invalidate', 'role_inheritance_refuse_cycle');
SELECT count(*) AS new_functions FROM pg_proc WHERE pronamespace = 'iam'::regnamespace
	AND proname IN ('has_permission', 'check_permissions', 'user_permissions', 'effective_roles',
					'explain_permission', 'rbac_cache_stats', 'rbac_cache_reset', 'rbac_invalidate',
					'role_inheritance_refuse_cycle');
\c :regress_db
DROP DATABASE iam_upgrade_regress;
