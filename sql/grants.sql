-- grants: the grant functions act as iam.user_id, need roles.manage or
-- permissions.grant, refuse privilege escalation, and record every refusal
-- durably in activity_logs.
\set VERBOSITY terse
SELECT iam.create_organization('Grant A', 'grant-a') AS a \gset
SELECT iam.create_organization('Grant B', 'grant-b') AS b \gset
SELECT iam.create_user(:'a', 'root@ga.example', 'Root', 'admin', NULL) AS admin \gset
SELECT iam.create_user(:'a', 'mia@ga.example', 'Mia', 'member', NULL) AS mia \gset
SELECT iam.create_user(:'a', 'max@ga.example', 'Max', 'member', NULL) AS max \gset
SELECT iam.create_user(:'a', 'gone@ga.example', 'Gone', 'member', NULL) AS gone \gset
UPDATE iam.users SET deleted_at = now() WHERE id = :'gone';
SELECT iam.create_user(:'b', 'bob@gb.example', 'Bob', 'admin', NULL) AS bob \gset
-- a manager who may manage roles but holds little else
INSERT INTO iam.roles (name, display_name, org_id) VALUES ('manager', 'Manager', :'a') RETURNING id AS manager_role \gset
INSERT INTO iam.role_permissions (role_id, permission_id)
	SELECT :'manager_role', id FROM iam.permissions
	WHERE name IN ('roles.manage', 'permissions.grant', 'users.read', 'roles.read', 'org.read');
UPDATE iam.users SET role = 'manager' WHERE id = :'max';
INSERT INTO iam.roles (name, display_name, org_id) VALUES ('editor', 'Editor', :'a') RETURNING id AS editor_role \gset
INSERT INTO iam.roles (name, display_name, org_id) VALUES ('buyer', 'Buyer', :'b') RETURNING id AS buyer_role \gset
SELECT id AS admin_role FROM iam.roles WHERE name = 'admin' AND is_system \gset
SELECT id AS member_role FROM iam.roles WHERE name = 'member' AND is_system \gset

CREATE FUNCTION pg_temp.attempts() RETURNS bigint LANGUAGE sql
	RETURN (SELECT count(*) FROM iam.activity_logs WHERE type = 'privilege_escalation_attempt');
CREATE FUNCTION pg_temp.act_as(u uuid) RETURNS boolean LANGUAGE sql
	RETURN set_config('iam.user_id', coalesce(u::text, ''), false) IS NOT NULL;

-- without an acting user nothing is granted
SELECT iam.grant_role(:'mia', 'member');

-- a member holds neither roles.manage nor permissions.grant
SELECT pg_temp.act_as(:'mia');
SELECT iam.grant_role(:'mia', 'admin');
SELECT iam.grant_permission(:'mia', 'users.delete');
SELECT iam.set_role_permissions(:'editor_role', ARRAY['users.read']);
SELECT pg_temp.attempts() AS attempts_after_member;

-- the manager may grant what it holds, nothing more
SELECT pg_temp.act_as(:'max');
SELECT iam.grant_role(:'mia', 'member');
SELECT iam.has_permission(:'mia', 'roles.read') AS mia_still_reads_roles;
SELECT iam.grant_role(:'mia', 'admin');
SELECT iam.grant_role(:'max', 'admin');
SELECT iam.grant_permission(:'mia', 'users.read');
SELECT iam.grant_permission(:'mia', 'users.delete');
SELECT iam.grant_permission(:'max', 'platform.admin');
SELECT iam.set_role_permissions(:'editor_role', ARRAY['users.read', 'roles.read']);
SELECT iam.set_role_permissions(:'editor_role', ARRAY['users.read', 'users.update']);
SELECT iam.role_permission_names(:'editor_role') AS editor_has;
-- escalation through inheritance: editor inheriting admin would hand out admin
SELECT iam.add_role_inheritance(:'editor_role', :'admin_role');
SELECT iam.add_role_inheritance(:'editor_role', :'member_role');
SELECT iam.role_permission_names(:'editor_role') AS editor_now_has;
-- and through a role that holds more than the granter
SELECT iam.set_role_permissions(:'manager_role', ARRAY['roles.manage', 'permissions.grant', 'users.read',
														'roles.read', 'org.read', 'users.delete']);
SELECT pg_temp.attempts() AS attempts_after_manager;

-- system roles change only with platform.admin, even for an admin
SELECT pg_temp.act_as(:'admin');
SELECT iam.set_role_permissions(:'member_role', ARRAY['users.read']);
SELECT iam.add_role_inheritance(:'member_role', :'editor_role');

-- other organisations: users and roles of B are out of reach
SELECT iam.grant_role(:'bob', 'member');
SELECT iam.grant_permission(:'bob', 'users.read');
SELECT iam.revoke_role(:'bob', 'admin');
SELECT iam.set_role_permissions(:'buyer_role', ARRAY['users.read']);
SELECT iam.add_role_inheritance(:'editor_role', :'buyer_role');
SELECT iam.grant_role(:'mia', 'buyer');
SELECT iam.grant_role(:'mia', 'no_such_role');
SELECT iam.grant_role(:'gone', 'member');
SELECT iam.grant_role('00000000-0000-0000-0000-000000000077', 'member');
SELECT count(*) AS rows_written_in_b FROM iam.user_roles WHERE org_id = :'b';

-- bad input
SELECT iam.grant_permission(:'mia', 'users.Read');
SELECT iam.grant_permission(:'mia', repeat('a', 101));
SELECT iam.grant_permission(:'mia', 'users.fly');
SELECT iam.grant_permission(:'mia', 'users.read', 'document', NULL);
SELECT iam.grant_role(:'mia', 'editor', now() - interval '1 second');
SELECT iam.set_role_permissions(:'editor_role', ARRAY['users.read', NULL]);

-- a refusal's record survives the failed transaction; the grant does not
SELECT pg_temp.attempts() AS before \gset
BEGIN;
SELECT pg_temp.act_as(:'max');
SELECT iam.grant_permission(:'mia', 'org.read');
SELECT iam.grant_role(:'mia', 'admin');
ROLLBACK;
SELECT pg_temp.attempts() - :before AS recorded_despite_rollback;
SELECT count(*) AS rolled_back_grant FROM iam.user_permissions up JOIN iam.permissions p ON p.id = up.permission_id
WHERE up.user_id = :'mia' AND p.name = 'org.read';
SELECT type, description, user_id = :'max' AS by_max, org_id = :'a' AS in_a,
	   metadata->>'function' AS function, metadata->>'missing' AS missing
FROM iam.activity_logs WHERE type = 'privilege_escalation_attempt'
ORDER BY created_at DESC, description LIMIT 1;

-- what an admin may do
SELECT pg_temp.act_as(:'admin');
SELECT iam.set_role_permissions(:'editor_role', ARRAY['users.read', 'roles.read', 'users.update']);
SELECT iam.has_permission(:'mia', 'users.update') AS mia_edits_before;
SELECT iam.grant_role(:'mia', 'editor', now() + interval '1 day');
SELECT iam.has_permission(:'mia', 'users.update') AS mia_edits;
SELECT iam.grant_permission(:'mia', 'users.delete', 'document', '00000000-0000-0000-0000-00000000002a');
SELECT iam.has_permission(:'mia', 'users.delete', 'document', '00000000-0000-0000-0000-00000000002a') AS on_doc,
	   iam.has_permission(:'mia', 'users.delete') AS globally;
SELECT ur.granted_by = :'admin' AS granted_by_admin, ur.expires_at > now() AS expires_later
FROM iam.user_roles ur JOIN iam.roles r ON r.id = ur.role_id WHERE ur.user_id = :'mia' AND r.name = 'editor';
SELECT iam.revoke_role(:'mia', 'editor') AS revoked, iam.revoke_role(:'mia', 'editor') AS again;
SELECT iam.has_permission(:'mia', 'users.update') AS mia_edits_after_revoke;
SELECT iam.revoke_permission(:'mia', 'users.delete', 'document', '00000000-0000-0000-0000-00000000002a') AS revoked;
SELECT iam.remove_role_inheritance(:'editor_role', :'member_role') AS unlinked;
-- a system role name cannot be shadowed by an organisation's role
INSERT INTO iam.roles (name, display_name, org_id) VALUES ('admin', 'Fake admin', :'a');
SELECT pg_temp.act_as(NULL);

-- platform.admin reaches across organisations and may change system roles
INSERT INTO iam.user_permissions (user_id, permission_id)
	SELECT :'admin', id FROM iam.permissions WHERE name = 'platform.admin';
SELECT pg_temp.act_as(:'admin');
SELECT iam.grant_role(:'bob', 'buyer');
SELECT iam.effective_roles(:'bob') AS bob_roles ORDER BY 1;
SELECT iam.set_role_permissions(:'member_role', ARRAY['users.read', 'roles.read', 'org.read']);
SELECT iam.role_permission_names(:'member_role') AS member_keeps;
SELECT pg_temp.act_as(NULL);
