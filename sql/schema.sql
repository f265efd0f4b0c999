-- schema: constraints, keys and the updated_at trigger of iam 0.1
\set VERBOSITY terse
CREATE EXTENSION iam CASCADE;

-- the catalogue and system roles are there after CREATE EXTENSION
SELECT name, category FROM iam.permissions ORDER BY name;
SELECT r.name, r.is_system, count(rp.*) AS permissions
FROM iam.roles r LEFT JOIN iam.role_permissions rp ON rp.role_id = r.id
GROUP BY r.name, r.is_system ORDER BY r.name;
SELECT count(*) AS admin_has_platform_admin
FROM iam.role_permissions rp JOIN iam.roles r ON r.id = rp.role_id
JOIN iam.permissions p ON p.id = rp.permission_id
WHERE r.name = 'admin' AND p.name = 'platform.admin';

SELECT iam.create_organization('Org A', 'org-a') AS a \gset
SELECT iam.create_organization('Org B', 'org-b') AS b \gset

-- organisations: empty name, bad slug, taken slug
SELECT iam.create_organization('  ', 'blank');
SELECT iam.create_organization('Bad', 'Bad Slug');
SELECT iam.create_organization('Bad', '-bad');
SELECT iam.create_organization('Again', 'org-a');
INSERT INTO iam.organizations (name, slug, settings) VALUES ('Arr', 'arr', '[1]');

-- users: e-mail unique in any case, and well-formed
SELECT iam.create_user(:'a', 'ann@example.com', 'Ann', 'member', NULL) AS ann \gset
SELECT iam.create_user(:'a', 'ANN@Example.COM', 'Ann Again', 'member', NULL);
SELECT iam.create_user(:'b', 'Ann@example.com', 'Ann in B', 'member', NULL);
SELECT iam.create_user(:'a', 'not-an-email', 'X', 'member', NULL);
SELECT iam.create_user(:'a', 'two@@example.com', 'X', 'member', NULL);
SELECT iam.create_user(:'a', 'no-dot@example', 'X', 'member', NULL);
SELECT iam.create_user(:'a', 'sp ace@example.com', 'X', 'member', NULL);
SELECT iam.create_user(:'a', 'x@example.com', '', 'member', NULL);
INSERT INTO iam.users (org_id, email, name, phone) VALUES (:'a', 'p@example.com', 'P', 'call me');
INSERT INTO iam.users (org_id, email, name, metadata) VALUES (:'a', 'm@example.com', 'M', '"text"');
-- foreign keys: unknown organisation, unknown role
SELECT iam.create_user('00000000-0000-0000-0000-000000000001', 'o@example.com', 'O', 'member', NULL);
SELECT iam.create_user(:'a', 'r@example.com', 'R', 'superhero', NULL);
SELECT count(*) AS users_in_a FROM iam.users WHERE org_id = :'a';

-- roles: names, per-organisation uniqueness, a role of B is not usable in A
INSERT INTO iam.roles (name, display_name, org_id) VALUES ('editor', 'Editor', :'a') RETURNING name;
INSERT INTO iam.roles (name, display_name, org_id) VALUES ('editor', 'Editor', :'a');
INSERT INTO iam.roles (name, display_name, org_id) VALUES ('editor', 'Editor in B', :'b');
INSERT INTO iam.roles (name, display_name, org_id) VALUES ('Bad Name', 'X', :'a');
INSERT INTO iam.roles (name, display_name, org_id, is_system) VALUES ('sneaky', 'X', :'a', true);
INSERT INTO iam.roles (name, display_name) VALUES ('orphan', 'X');
SELECT iam.create_user(:'a', 'ed@example.com', 'Ed', 'editor', NULL) IS NOT NULL AS editor_in_a;
INSERT INTO iam.roles (name, display_name, org_id) VALUES ('buyer', 'Buyer', :'b');
SELECT iam.create_user(:'a', 'bu@example.com', 'Bu', 'buyer', NULL);

-- permissions: name shape and category
INSERT INTO iam.permissions (name, display_name, category) VALUES ('documents.read', 'Read documents', 'gardening');
INSERT INTO iam.permissions (name, display_name, category) VALUES ('Documents', 'Read documents', 'users');
INSERT INTO iam.permissions (name, display_name, category) VALUES ('users.read', 'Again', 'users');

-- grants take the organisation of their owner and never cross organisations
SELECT id AS editor_a FROM iam.roles WHERE name = 'editor' AND org_id = :'a' \gset
SELECT id AS editor_b FROM iam.roles WHERE name = 'editor' AND org_id = :'b' \gset
SELECT id AS member_role FROM iam.roles WHERE name = 'member' AND is_system \gset
SELECT id AS p_read FROM iam.permissions WHERE name = 'users.read' \gset
INSERT INTO iam.user_roles (user_id, role_id) VALUES (:'ann', :'editor_a') RETURNING org_id = :'a' AS org_filled_in;
INSERT INTO iam.user_roles (user_id, role_id) VALUES (:'ann', :'member_role') RETURNING org_id = :'a' AS system_role_ok;
INSERT INTO iam.user_roles (user_id, role_id) VALUES (:'ann', :'editor_b');
INSERT INTO iam.user_roles (user_id, role_id, org_id) VALUES (:'ann', :'editor_a', :'b');
INSERT INTO iam.role_inheritance (role_id, inherits_role_id) VALUES (:'editor_a', :'editor_b');
INSERT INTO iam.role_inheritance (role_id, inherits_role_id) VALUES (:'editor_a', :'editor_a');
INSERT INTO iam.role_inheritance (role_id, inherits_role_id) VALUES (:'editor_a', :'member_role') RETURNING org_id = :'a' AS inherits_system_role;
INSERT INTO iam.role_permissions (role_id, permission_id) VALUES (:'editor_b', :'p_read') RETURNING org_id = :'b' AS role_org_filled_in;
-- resource scope: both or neither; one grant per (user, permission, resource)
INSERT INTO iam.user_permissions (user_id, permission_id, resource_type) VALUES (:'ann', :'p_read', 'document');
INSERT INTO iam.user_permissions (user_id, permission_id) VALUES (:'ann', :'p_read') RETURNING org_id = :'a' AS global_grant;
INSERT INTO iam.user_permissions (user_id, permission_id) VALUES (:'ann', :'p_read');
INSERT INTO iam.user_permissions (user_id, permission_id, resource_type, resource_id)
	VALUES (:'ann', :'p_read', 'document', '00000000-0000-0000-0000-00000000002a') RETURNING resource_type;
INSERT INTO iam.user_permissions (user_id, permission_id, resource_type, resource_id)
	VALUES (:'ann', :'p_read', 'document', '00000000-0000-0000-0000-00000000002a');
-- an unknown user
INSERT INTO iam.user_permissions (user_id, permission_id) VALUES ('00000000-0000-0000-0000-000000000002', :'p_read');

-- sessions: a token digest is 32 bytes; expiry after creation
INSERT INTO iam.user_sessions (user_id, org_id, token_hash, expires_at)
	VALUES (:'ann', :'a', '\x00', now() + interval '1 day');
INSERT INTO iam.user_sessions (user_id, org_id, expires_at) VALUES (:'ann', :'a', now() - interval '1 day');
INSERT INTO iam.user_sessions (user_id, org_id, expires_at) VALUES (:'ann', :'b', now() + interval '1 day');

-- logs: action and type shapes (audit rows are appended only by the
-- extension's own path, since 0.3)
SELECT iam.audit_append('Created!', 'user', NULL, :'a', NULL);
-- (the message names the month's partition: only the SQLSTATE is stable)
\set VERBOSITY sqlstate
INSERT INTO iam.activity_logs (org_id, type) VALUES (:'a', 'Log In');
\set VERBOSITY terse

-- updated_at moves on a real change (a later transaction), not on a no-op
SELECT updated_at AS before FROM iam.users WHERE id = :'ann' \gset
UPDATE iam.users SET name = name WHERE id = :'ann';
SELECT updated_at = :'before' AS unchanged_after_noop FROM iam.users WHERE id = :'ann';
UPDATE iam.users SET department = 'Sales' WHERE id = :'ann';
SELECT updated_at > :'before' AS moved_after_change, updated_at > created_at AS after_created
FROM iam.users WHERE id = :'ann';
SELECT updated_at AS before FROM iam.roles WHERE id = :'editor_a' \gset
UPDATE iam.roles SET description = 'Edits things' WHERE id = :'editor_a';
SELECT updated_at > :'before' AS role_moved FROM iam.roles WHERE id = :'editor_a';
SELECT updated_at AS before FROM iam.organizations WHERE id = :'a' \gset
UPDATE iam.organizations SET settings = '{"theme": "dark"}' WHERE id = :'a';
SELECT updated_at > :'before' AS org_moved FROM iam.organizations WHERE id = :'a';

-- the trigger function refuses to be misused
SELECT iam.touch_updated_at();
CREATE TABLE public.no_updated_at (id int);
CREATE TRIGGER t BEFORE UPDATE ON public.no_updated_at FOR EACH ROW EXECUTE FUNCTION iam.touch_updated_at();
INSERT INTO public.no_updated_at VALUES (1);
UPDATE public.no_updated_at SET id = 2;
CREATE TRIGGER t2 AFTER INSERT ON public.no_updated_at FOR EACH ROW EXECUTE FUNCTION iam.touch_updated_at();
INSERT INTO public.no_updated_at VALUES (3);
DROP TABLE public.no_updated_at;
