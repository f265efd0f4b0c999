-- iam--0.1.sql: the first release of pg_iam's schema.
--
-- Tables of the seed design (column-compatible, timestamps widened to
-- timestamptz), extended with user_roles, role_inheritance, resource-scoped
-- and expiring grants, hash-chain columns on audit_logs, row-level security on
-- every tenant-owned table, the system roles and the permission catalogue.
-- Never edit this file once released: changes go in iam--0.1--0.2.sql.

\echo Use "CREATE EXTENSION iam CASCADE" to load this file. \quit

------------------------------------------------------------------------------
-- Database roles.  Roles are cluster-wide objects, so they outlive DROP
-- EXTENSION and are created only when absent.
------------------------------------------------------------------------------
DO $roles$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'iam_gateway') THEN
		CREATE ROLE iam_gateway LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOBYPASSRLS;
	END IF;
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'iam_service') THEN
		CREATE ROLE iam_service NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
	END IF;
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'iam_auditor') THEN
		CREATE ROLE iam_auditor NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
	END IF;
END
$roles$;

COMMENT ON ROLE iam_gateway IS 'pg_iam: the HTTP gateway''s login; may only EXECUTE the API functions';
COMMENT ON ROLE iam_service IS 'pg_iam: other services; permission checks and tenant-scoped reads (grant it to a service''s login role)';
COMMENT ON ROLE iam_auditor IS 'pg_iam: read-only access to the audit and activity logs of the organisation in iam.org_id';

------------------------------------------------------------------------------
-- Request context.  Callers set iam.user_id, iam.org_id, iam.request_id,
-- iam.ip and iam.user_agent with set_config(..., true); the extension's C code
-- validates them when it is loaded (see context.c).
------------------------------------------------------------------------------
CREATE FUNCTION iam.current_org_id() RETURNS uuid
	LANGUAGE sql STABLE PARALLEL SAFE
	RETURN NULLIF(pg_catalog.current_setting('iam.org_id', true), '')::uuid;
COMMENT ON FUNCTION iam.current_org_id() IS
	'Organisation of the current request (setting iam.org_id), or NULL when unset; every row-level security policy is keyed on it';

CREATE FUNCTION iam.current_user_id() RETURNS uuid
	LANGUAGE sql STABLE PARALLEL SAFE
	RETURN NULLIF(pg_catalog.current_setting('iam.user_id', true), '')::uuid;
COMMENT ON FUNCTION iam.current_user_id() IS
	'User acting in the current request (setting iam.user_id), or NULL when unset';

------------------------------------------------------------------------------
-- C functions (extension/*.c)
------------------------------------------------------------------------------
CREATE FUNCTION iam.touch_updated_at() RETURNS trigger
	LANGUAGE c AS 'MODULE_PATHNAME', 'iam_touch_updated_at';
COMMENT ON FUNCTION iam.touch_updated_at() IS
	'BEFORE UPDATE row trigger: sets updated_at to the transaction time when any other column changed, and leaves it alone for an update that changes nothing';

CREATE FUNCTION iam.password_hash(password text, email text DEFAULT NULL, name text DEFAULT NULL) RETURNS text
	LANGUAGE c VOLATILE PARALLEL SAFE AS 'MODULE_PATHNAME', 'iam_password_hash';
COMMENT ON FUNCTION iam.password_hash(text, text, text) IS
	'Checks the password policy (length, not the email or name) and returns an argon2id hash in PHC string form, with the cost of iam.argon2_* settings; 22023 on a policy violation';

CREATE FUNCTION iam.password_verify(hash text, password text) RETURNS boolean
	LANGUAGE c STRICT VOLATILE PARALLEL SAFE AS 'MODULE_PATHNAME', 'iam_password_verify';
COMMENT ON FUNCTION iam.password_verify(text, text) IS
	'True when password matches an argon2id PHC hash (constant-time comparison inside libargon2); false for a mismatch or an unrecognised hash';

------------------------------------------------------------------------------
-- Organisations
------------------------------------------------------------------------------
CREATE TABLE iam.organizations (
	id			uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	name		varchar(255) NOT NULL CHECK (btrim(name) <> ''),
	slug		varchar(100) NOT NULL UNIQUE
				CHECK (slug ~ '^[a-z0-9]([a-z0-9-]*[a-z0-9])?$'),
	settings	jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(settings) = 'object'),
	created_at	timestamptz NOT NULL DEFAULT now(),
	updated_at	timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE iam.organizations IS 'Tenants: every tenant-owned row carries the id of one of these';
COMMENT ON COLUMN iam.organizations.slug IS 'URL-safe unique short name: lower-case letters, digits and inner hyphens';
COMMENT ON COLUMN iam.organizations.settings IS 'Organisation settings as a JSON object';

------------------------------------------------------------------------------
-- Permission catalogue (global, not tenant-owned)
------------------------------------------------------------------------------
CREATE TABLE iam.permissions (
	id				uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	name			varchar(100) NOT NULL UNIQUE
					CHECK (name ~ '^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$'),
	display_name	varchar(100) NOT NULL CHECK (btrim(display_name) <> ''),
	description		text,
	category		varchar(50) NOT NULL
					CHECK (category IN ('users', 'roles', 'permissions', 'audit', 'activity',
										'reports', 'jobs', 'org', 'sessions', 'platform')),
	is_system		boolean NOT NULL DEFAULT false,
	created_at		timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE iam.permissions IS 'Permission catalogue, shared by all organisations; names are area.verb';
COMMENT ON COLUMN iam.permissions.name IS 'area.verb, e.g. users.read; lower-case letters, digits and underscores';
COMMENT ON COLUMN iam.permissions.category IS 'Area the permission belongs to; one of a fixed list';
COMMENT ON COLUMN iam.permissions.is_system IS 'Installed by the extension; not to be removed';

------------------------------------------------------------------------------
-- Roles: system roles have org_id NULL and are visible to every organisation
------------------------------------------------------------------------------
CREATE TABLE iam.roles (
	id				uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	name			varchar(50) NOT NULL CHECK (name ~ '^[a-z][a-z0-9_]*$'),
	display_name	varchar(100) NOT NULL CHECK (btrim(display_name) <> ''),
	description		text,
	is_system		boolean NOT NULL DEFAULT false,
	org_id			uuid REFERENCES iam.organizations (id) ON DELETE CASCADE,
	created_at		timestamptz NOT NULL DEFAULT now(),
	updated_at		timestamptz NOT NULL DEFAULT now(),
	CHECK (is_system = (org_id IS NULL))
);
CREATE UNIQUE INDEX roles_org_name_key ON iam.roles (org_id, name) NULLS NOT DISTINCT;
CREATE INDEX roles_name_idx ON iam.roles (name);
COMMENT ON TABLE iam.roles IS 'Roles: system roles (org_id NULL, is_system) are shared by all organisations; others belong to one';
COMMENT ON COLUMN iam.roles.name IS 'Role key, unique within its organisation; users.role refers to it';
COMMENT ON COLUMN iam.roles.is_system IS 'True exactly for the shared roles installed by the extension (admin, member, auditor)';
COMMENT ON COLUMN iam.roles.org_id IS 'Owning organisation; NULL for system roles';

------------------------------------------------------------------------------
-- Users
------------------------------------------------------------------------------
CREATE TABLE iam.users (
	id					uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	email				varchar(255) NOT NULL
						CHECK (email ~ '^[^@[:space:][:cntrl:]]+@[^@[:space:][:cntrl:].]+(\.[^@[:space:][:cntrl:].]+)+$'),
	name				varchar(255) NOT NULL CHECK (btrim(name) <> ''),
	password_hash		varchar(255),
	role				varchar(50) NOT NULL DEFAULT 'member',
	department			varchar(100),
	is_active			boolean NOT NULL DEFAULT true,
	two_factor_enabled	boolean NOT NULL DEFAULT false,
	profile_image		text,
	phone				varchar(20) CHECK (phone ~ '^\+?[0-9 ().-]{3,20}$'),
	employment_equity	varchar(50),
	org_id				uuid NOT NULL REFERENCES iam.organizations (id) ON DELETE CASCADE,
	stack_auth_id		varchar(100),
	created_at			timestamptz NOT NULL DEFAULT now(),
	updated_at			timestamptz NOT NULL DEFAULT now(),
	deleted_at			timestamptz,
	last_login			timestamptz,
	metadata			jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(metadata) = 'object'),
	UNIQUE (id, org_id)
);
CREATE UNIQUE INDEX users_email_key ON iam.users (lower(email));
CREATE UNIQUE INDEX users_stack_auth_id_key ON iam.users (stack_auth_id) WHERE stack_auth_id IS NOT NULL;
-- listings: keyset pagination by each sort key, then the filters
CREATE INDEX users_org_created_idx ON iam.users (org_id, created_at, id);
CREATE INDEX users_org_name_idx ON iam.users (org_id, lower(name), id);
CREATE INDEX users_org_email_idx ON iam.users (org_id, lower(email), id);
CREATE INDEX users_org_role_idx ON iam.users (org_id, role, created_at);
CREATE INDEX users_org_department_idx ON iam.users (org_id, department, created_at);
CREATE INDEX users_org_active_idx ON iam.users (org_id, is_active, created_at);
-- free-text search on name and email (q=) stays index-backed at a million users
CREATE INDEX users_name_trgm_idx ON iam.users USING gin (lower(name) gin_trgm_ops);
CREATE INDEX users_email_trgm_idx ON iam.users USING gin (lower(email) gin_trgm_ops);
COMMENT ON TABLE iam.users IS 'People who sign in; soft-deleted by setting deleted_at';
COMMENT ON COLUMN iam.users.email IS 'Sign-in address, unique across all organisations regardless of case';
COMMENT ON COLUMN iam.users.password_hash IS 'argon2id PHC string (bcrypt accepted from earlier systems); NULL for accounts without a password (SSO, invited)';
COMMENT ON COLUMN iam.users.role IS 'Primary role: name of a system role or of a role of the same organisation';
COMMENT ON COLUMN iam.users.is_active IS 'False disables the account: an inactive user holds no permission';
COMMENT ON COLUMN iam.users.employment_equity IS 'Employment-equity category as reported by HR (free text, PII)';
COMMENT ON COLUMN iam.users.stack_auth_id IS 'Subject of this user at the external identity provider, if any';
COMMENT ON COLUMN iam.users.deleted_at IS 'Soft-delete time; a deleted user holds no permission and is hidden from listings';
COMMENT ON COLUMN iam.users.metadata IS 'Free-form JSON object attached by clients';

------------------------------------------------------------------------------
-- Grants
------------------------------------------------------------------------------
CREATE TABLE iam.role_permissions (
	id				uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	role_id			uuid NOT NULL REFERENCES iam.roles (id) ON DELETE CASCADE,
	permission_id	uuid NOT NULL REFERENCES iam.permissions (id) ON DELETE CASCADE,
	org_id			uuid REFERENCES iam.organizations (id) ON DELETE CASCADE,
	created_at		timestamptz NOT NULL DEFAULT now(),
	UNIQUE (role_id, permission_id)
);
CREATE INDEX role_permissions_permission_idx ON iam.role_permissions (permission_id);
CREATE INDEX role_permissions_org_idx ON iam.role_permissions (org_id, role_id);
COMMENT ON TABLE iam.role_permissions IS 'Permissions a role holds';
COMMENT ON COLUMN iam.role_permissions.org_id IS 'Organisation of the role (NULL for system roles); filled in from the role';

CREATE TABLE iam.user_roles (
	id			uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	user_id		uuid NOT NULL,
	role_id		uuid NOT NULL REFERENCES iam.roles (id) ON DELETE CASCADE,
	org_id		uuid NOT NULL,
	granted_at	timestamptz NOT NULL DEFAULT now(),
	granted_by	uuid REFERENCES iam.users (id) ON DELETE SET NULL,
	expires_at	timestamptz,
	UNIQUE (user_id, role_id),
	FOREIGN KEY (user_id, org_id) REFERENCES iam.users (id, org_id) ON DELETE CASCADE
);
CREATE INDEX user_roles_role_idx ON iam.user_roles (role_id);
CREATE INDEX user_roles_org_idx ON iam.user_roles (org_id, user_id);
COMMENT ON TABLE iam.user_roles IS 'Roles a user holds beyond the primary users.role';
COMMENT ON COLUMN iam.user_roles.expires_at IS 'The grant counts for nothing from this instant on; NULL for no expiry';

CREATE TABLE iam.user_permissions (
	id				uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	user_id			uuid NOT NULL,
	permission_id	uuid NOT NULL REFERENCES iam.permissions (id) ON DELETE CASCADE,
	granted_at		timestamptz NOT NULL DEFAULT now(),
	granted_by		uuid REFERENCES iam.users (id) ON DELETE SET NULL,
	org_id			uuid NOT NULL,
	resource_type	varchar(50) CHECK (resource_type ~ '^[a-z][a-z0-9_]*$'),
	resource_id		uuid,
	expires_at		timestamptz,
	CHECK ((resource_type IS NULL) = (resource_id IS NULL)),
	FOREIGN KEY (user_id, org_id) REFERENCES iam.users (id, org_id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX user_permissions_grant_key
	ON iam.user_permissions (user_id, permission_id, resource_type, resource_id) NULLS NOT DISTINCT;
CREATE INDEX user_permissions_permission_idx ON iam.user_permissions (permission_id);
CREATE INDEX user_permissions_resource_idx ON iam.user_permissions (org_id, resource_type, resource_id)
	WHERE resource_type IS NOT NULL;
COMMENT ON TABLE iam.user_permissions IS 'Permissions granted to a user directly, globally or on one resource';
COMMENT ON COLUMN iam.user_permissions.resource_type IS 'With resource_id: the grant holds only for that resource; both NULL for a global grant';
COMMENT ON COLUMN iam.user_permissions.resource_id IS 'Id of the resource the grant is scoped to';
COMMENT ON COLUMN iam.user_permissions.expires_at IS 'The grant counts for nothing from this instant on; NULL for no expiry';

CREATE TABLE iam.role_inheritance (
	id					uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	role_id				uuid NOT NULL REFERENCES iam.roles (id) ON DELETE CASCADE,
	inherits_role_id	uuid NOT NULL REFERENCES iam.roles (id) ON DELETE CASCADE,
	org_id				uuid REFERENCES iam.organizations (id) ON DELETE CASCADE,
	created_at			timestamptz NOT NULL DEFAULT now(),
	created_by			uuid REFERENCES iam.users (id) ON DELETE SET NULL,
	UNIQUE (role_id, inherits_role_id),
	CHECK (role_id <> inherits_role_id)
);
CREATE INDEX role_inheritance_parent_idx ON iam.role_inheritance (inherits_role_id);
CREATE INDEX role_inheritance_org_idx ON iam.role_inheritance (org_id);
COMMENT ON TABLE iam.role_inheritance IS 'role_id holds every permission of inherits_role_id (transitively)';
COMMENT ON COLUMN iam.role_inheritance.inherits_role_id IS 'Role whose permissions role_id inherits';
COMMENT ON COLUMN iam.role_inheritance.org_id IS 'Organisation of role_id (NULL when both roles are system roles); filled in from the role';

------------------------------------------------------------------------------
-- Sessions
------------------------------------------------------------------------------
CREATE TABLE iam.user_sessions (
	id				uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	user_id			uuid NOT NULL,
	token			varchar(500),
	token_hash		bytea UNIQUE CHECK (octet_length(token_hash) = 32),
	org_id			uuid NOT NULL,
	ip_address		varchar(45),
	user_agent		text,
	expires_at		timestamptz NOT NULL,
	created_at		timestamptz NOT NULL DEFAULT now(),
	last_activity	timestamptz NOT NULL DEFAULT now(),
	revoked_at		timestamptz,
	FOREIGN KEY (user_id, org_id) REFERENCES iam.users (id, org_id) ON DELETE CASCADE,
	CHECK (expires_at > created_at)
);
CREATE INDEX user_sessions_user_idx ON iam.user_sessions (org_id, user_id, created_at);
CREATE INDEX user_sessions_expiry_idx ON iam.user_sessions (expires_at) WHERE revoked_at IS NULL;
COMMENT ON TABLE iam.user_sessions IS 'Signed-in sessions; a refresh token is stored only as its SHA-256 digest';
COMMENT ON COLUMN iam.user_sessions.token IS 'Legacy column of the seed design; pg_iam never stores a token in clear and leaves it NULL';
COMMENT ON COLUMN iam.user_sessions.token_hash IS 'SHA-256 digest of the current refresh token';
COMMENT ON COLUMN iam.user_sessions.revoked_at IS 'Set when the session is revoked; its tokens are refused from then on';

------------------------------------------------------------------------------
-- Logs.  No foreign keys: a log row must outlive the rows it mentions.
------------------------------------------------------------------------------
CREATE TABLE iam.audit_logs (
	id			uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	user_id		uuid,
	org_id		uuid,
	action		varchar(100) NOT NULL CHECK (action ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$'),
	entity_type	varchar(50),
	entity_id	uuid,
	changes		jsonb,
	ip_address	varchar(45),
	user_agent	text,
	created_at	timestamptz NOT NULL DEFAULT now(),
	request_id	varchar(64),
	db_role		name NOT NULL DEFAULT current_user,
	seq			bigint,
	prev_hash	bytea CHECK (octet_length(prev_hash) = 32),
	row_hash	bytea CHECK (octet_length(row_hash) = 32),
	CHECK ((seq IS NULL) = (row_hash IS NULL))
);
CREATE UNIQUE INDEX audit_logs_chain_key ON iam.audit_logs (org_id, seq) NULLS NOT DISTINCT WHERE seq IS NOT NULL;
CREATE INDEX audit_logs_org_created_idx ON iam.audit_logs (org_id, created_at, id);
CREATE INDEX audit_logs_org_user_idx ON iam.audit_logs (org_id, user_id, created_at);
CREATE INDEX audit_logs_org_action_idx ON iam.audit_logs (org_id, action, created_at);
CREATE INDEX audit_logs_entity_idx ON iam.audit_logs (org_id, entity_type, entity_id, created_at);
CREATE INDEX audit_logs_unsealed_idx ON iam.audit_logs (created_at) WHERE seq IS NULL;
COMMENT ON TABLE iam.audit_logs IS 'Append-only record of every change to admin data, hash-chained per organisation';
COMMENT ON COLUMN iam.audit_logs.user_id IS 'Acting user (iam.user_id of the request), NULL for a change made without request context';
COMMENT ON COLUMN iam.audit_logs.org_id IS 'Organisation whose chain holds the row; NULL for changes to shared objects';
COMMENT ON COLUMN iam.audit_logs.action IS 'entity.verb, e.g. user.created, role.permission_granted';
COMMENT ON COLUMN iam.audit_logs.changes IS 'Changed columns only, as {"column": {"old": ..., "new": ...}}; secrets appear as "[redacted]"';
COMMENT ON COLUMN iam.audit_logs.request_id IS 'iam.request_id of the request that made the change';
COMMENT ON COLUMN iam.audit_logs.db_role IS 'Database role that made the change (the actor of a psql session without request context)';
COMMENT ON COLUMN iam.audit_logs.seq IS 'Position in the organisation''s chain, gapless from 1; NULL until sealed';
COMMENT ON COLUMN iam.audit_logs.prev_hash IS 'row_hash of the previous row of the chain (32 zero bytes for the first)';
COMMENT ON COLUMN iam.audit_logs.row_hash IS 'SHA-256(prev_hash || canonical serialisation of the row)';

CREATE TABLE iam.activity_logs (
	id			uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	user_id		uuid,
	org_id		uuid,
	type		varchar(50) NOT NULL CHECK (type ~ '^[a-z][a-z0-9_]*$'),
	description	text,
	ip_address	varchar(45),
	user_agent	text,
	location	varchar(100),
	metadata	jsonb,
	created_at	timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX activity_logs_org_created_idx ON iam.activity_logs (org_id, created_at, id);
CREATE INDEX activity_logs_org_user_idx ON iam.activity_logs (org_id, user_id, created_at);
CREATE INDEX activity_logs_org_type_idx ON iam.activity_logs (org_id, type, created_at);
COMMENT ON TABLE iam.activity_logs IS 'Security-relevant events: logins, failures, lockouts, denials, escalation attempts';
COMMENT ON COLUMN iam.activity_logs.type IS 'Event kind, e.g. login, login_failed, lockout, permission_denied';
COMMENT ON COLUMN iam.activity_logs.metadata IS 'Event details as JSON (never a secret)';
COMMENT ON COLUMN iam.activity_logs.location IS 'Approximate place of the client, when known';

------------------------------------------------------------------------------
-- Integrity triggers
------------------------------------------------------------------------------
CREATE TRIGGER organizations_touch BEFORE UPDATE ON iam.organizations
	FOR EACH ROW EXECUTE FUNCTION iam.touch_updated_at();
CREATE TRIGGER roles_touch BEFORE UPDATE ON iam.roles
	FOR EACH ROW EXECUTE FUNCTION iam.touch_updated_at();
CREATE TRIGGER users_touch BEFORE UPDATE ON iam.users
	FOR EACH ROW EXECUTE FUNCTION iam.touch_updated_at();

CREATE FUNCTION iam.users_check_role() RETURNS trigger
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF NOT EXISTS (SELECT FROM iam.roles r
				   WHERE r.name = NEW.role AND (r.org_id IS NULL OR r.org_id = NEW.org_id)) THEN
		RAISE EXCEPTION 'role "%" does not exist in the user''s organisation', NEW.role
			USING ERRCODE = 'foreign_key_violation',
				  HINT = 'Use a system role (admin, member, auditor) or create the role first.';
	END IF;
	RETURN NEW;
END
$$;
COMMENT ON FUNCTION iam.users_check_role() IS
	'Trigger: users.role must name a system role or a role of the user''s own organisation';
CREATE TRIGGER users_check_role BEFORE INSERT OR UPDATE OF role, org_id ON iam.users
	FOR EACH ROW EXECUTE FUNCTION iam.users_check_role();

-- A grant row takes the organisation of the user or role it belongs to, and
-- may never tie together objects of two organisations.
CREATE FUNCTION iam.grants_check_tenant() RETURNS trigger
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	owner_org	uuid;
	other_org	uuid;
	other_id	uuid;
BEGIN
	CASE TG_TABLE_NAME
	WHEN 'user_roles' THEN
		SELECT org_id INTO owner_org FROM iam.users WHERE id = NEW.user_id;
		other_id := NEW.role_id;
	WHEN 'user_permissions' THEN
		SELECT org_id INTO owner_org FROM iam.users WHERE id = NEW.user_id;
	WHEN 'role_permissions' THEN
		SELECT org_id INTO owner_org FROM iam.roles WHERE id = NEW.role_id;
	WHEN 'role_inheritance' THEN
		SELECT org_id INTO owner_org FROM iam.roles WHERE id = NEW.role_id;
		other_id := NEW.inherits_role_id;
	END CASE;

	IF owner_org IS NULL AND TG_TABLE_NAME IN ('user_roles', 'user_permissions') THEN
		RAISE EXCEPTION 'user does not exist'
			USING ERRCODE = 'foreign_key_violation', HINT = 'Grant to an existing user of your organisation.';
	END IF;
	IF NEW.org_id IS NULL THEN
		NEW.org_id := owner_org;
	ELSIF NEW.org_id IS DISTINCT FROM owner_org THEN
		RAISE EXCEPTION '% row names an organisation other than its owner''s', TG_TABLE_NAME
			USING ERRCODE = 'check_violation',
				  HINT = 'Leave org_id NULL: it is filled in from the user or role.';
	END IF;

	IF other_id IS NOT NULL THEN
		SELECT org_id INTO other_org FROM iam.roles WHERE id = other_id;
		IF other_org IS NOT NULL AND other_org IS DISTINCT FROM owner_org THEN
			RAISE EXCEPTION 'role belongs to another organisation'
				USING ERRCODE = 'check_violation',
					  HINT = 'Only system roles and roles of the same organisation can be granted or inherited.';
		END IF;
	END IF;
	RETURN NEW;
END
$$;
COMMENT ON FUNCTION iam.grants_check_tenant() IS
	'Trigger on grant tables: fills org_id from the owning user or role and refuses to link objects of two organisations';
CREATE TRIGGER user_roles_check_tenant BEFORE INSERT OR UPDATE ON iam.user_roles
	FOR EACH ROW EXECUTE FUNCTION iam.grants_check_tenant();
CREATE TRIGGER user_permissions_check_tenant BEFORE INSERT OR UPDATE ON iam.user_permissions
	FOR EACH ROW EXECUTE FUNCTION iam.grants_check_tenant();
CREATE TRIGGER role_permissions_check_tenant BEFORE INSERT OR UPDATE ON iam.role_permissions
	FOR EACH ROW EXECUTE FUNCTION iam.grants_check_tenant();
CREATE TRIGGER role_inheritance_check_tenant BEFORE INSERT OR UPDATE ON iam.role_inheritance
	FOR EACH ROW EXECUTE FUNCTION iam.grants_check_tenant();

------------------------------------------------------------------------------
-- Row-level security: a session sees only the organisation in iam.org_id.
-- Enabled and forced on every tenant-owned table; superusers and the table
-- owner's BYPASSRLS roles are the only exceptions PostgreSQL allows.
------------------------------------------------------------------------------
DO $rls$
DECLARE
	t text;
BEGIN
	FOREACH t IN ARRAY ARRAY['users', 'user_roles', 'user_permissions', 'user_sessions',
							 'audit_logs', 'activity_logs']
	LOOP
		EXECUTE format('ALTER TABLE iam.%I ENABLE ROW LEVEL SECURITY', t);
		EXECUTE format('ALTER TABLE iam.%I FORCE ROW LEVEL SECURITY', t);
		EXECUTE format('CREATE POLICY tenant_isolation ON iam.%I USING (org_id = iam.current_org_id()) '
					   'WITH CHECK (org_id = iam.current_org_id())', t);
	END LOOP;

	-- shared system rows (org_id NULL) are readable by every organisation,
	-- writable by none through RLS
	FOREACH t IN ARRAY ARRAY['roles', 'role_permissions', 'role_inheritance']
	LOOP
		EXECUTE format('ALTER TABLE iam.%I ENABLE ROW LEVEL SECURITY', t);
		EXECUTE format('ALTER TABLE iam.%I FORCE ROW LEVEL SECURITY', t);
		EXECUTE format('CREATE POLICY tenant_read ON iam.%I FOR SELECT '
					   'USING (org_id IS NULL OR org_id = iam.current_org_id())', t);
		EXECUTE format('CREATE POLICY tenant_write ON iam.%I USING (org_id = iam.current_org_id()) '
					   'WITH CHECK (org_id = iam.current_org_id())', t);
	END LOOP;
END
$rls$;

ALTER TABLE iam.organizations ENABLE ROW LEVEL SECURITY;
ALTER TABLE iam.organizations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON iam.organizations
	USING (id = iam.current_org_id()) WITH CHECK (id = iam.current_org_id());

------------------------------------------------------------------------------
-- Helpers of the contract (DESIGN.md): what `make up` uses for demo data
------------------------------------------------------------------------------
CREATE FUNCTION iam.create_organization(name text, slug text) RETURNS uuid
	LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
	BEGIN ATOMIC
		INSERT INTO iam.organizations (name, slug)
			VALUES (create_organization.name, create_organization.slug)
			RETURNING id;
	END;
COMMENT ON FUNCTION iam.create_organization(text, text) IS
	'Creates an organisation and returns its id; 23505 when the slug is taken, 23514 for an empty name or malformed slug';

CREATE FUNCTION iam.set_password(user_id uuid, password text) RETURNS void
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	u	record;
BEGIN
	IF user_id IS NULL OR password IS NULL THEN
		RAISE EXCEPTION 'user_id and password must not be NULL'
			USING ERRCODE = 'null_value_not_allowed',
				  HINT = 'To remove a password, update iam.users.password_hash directly.';
	END IF;
	SELECT email, name INTO u FROM iam.users WHERE id = set_password.user_id FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'user % does not exist', user_id
			USING ERRCODE = 'no_data_found', HINT = 'Pass the id of an existing user.';
	END IF;
	UPDATE iam.users SET password_hash = iam.password_hash(password, u.email, u.name)
		WHERE id = set_password.user_id;
END
$$;
COMMENT ON FUNCTION iam.set_password(uuid, text) IS
	'Sets a user''s password (argon2id) after checking the password policy; 22023 names the rule a password breaks';

CREATE FUNCTION iam.create_user(org_id uuid, email text, name text, role text, password text) RETURNS uuid
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	new_id	uuid;
BEGIN
	INSERT INTO iam.users (org_id, email, name, role)
		VALUES (create_user.org_id, create_user.email, create_user.name,
				coalesce(create_user.role, 'member'))
		RETURNING id INTO new_id;
	IF password IS NOT NULL THEN
		PERFORM iam.set_password(new_id, password);
	END IF;
	RETURN new_id;
END
$$;
COMMENT ON FUNCTION iam.create_user(uuid, text, text, text, text) IS
	'Creates a user (role NULL means member; password NULL leaves the account without one) and returns its id';

------------------------------------------------------------------------------
-- Catalogue and system roles
------------------------------------------------------------------------------
INSERT INTO iam.permissions (name, display_name, description, category, is_system) VALUES
	('users.read', 'Read users', 'List and view users of the organisation', 'users', true),
	('users.create', 'Create users', 'Create and invite users', 'users', true),
	('users.update', 'Update users', 'Change users'' profiles and status', 'users', true),
	('users.delete', 'Delete users', 'Soft-delete and restore users', 'users', true),
	('users.read_pii', 'Read personal data', 'See unmasked e-mail addresses and phone numbers', 'users', true),
	('roles.read', 'Read roles', 'List and view roles', 'roles', true),
	('roles.manage', 'Manage roles', 'Create, change and delete roles and grant them', 'roles', true),
	('permissions.grant', 'Grant permissions', 'Grant and revoke permissions held by oneself', 'permissions', true),
	('audit.read', 'Read audit trail', 'View and verify the audit trail', 'audit', true),
	('activity.read', 'Read activity', 'View logins, failures, lockouts and denials', 'activity', true),
	('reports.read', 'Read reports', 'View dashboards and reports', 'reports', true),
	('jobs.run', 'Run jobs', 'Start imports and exports and follow their progress', 'jobs', true),
	('org.read', 'Read organisation', 'View the organisation and its settings', 'org', true),
	('org.update', 'Update organisation', 'Change the organisation''s name and settings', 'org', true),
	('sessions.manage', 'Manage sessions', 'View and revoke other users'' sessions', 'sessions', true),
	('platform.admin', 'Platform administration', 'Act across organisations; the only cross-organisation permission', 'platform', true);

INSERT INTO iam.roles (name, display_name, description, is_system) VALUES
	('admin', 'Administrator', 'Every permission within the organisation', true),
	('member', 'Member', 'Sees the organisation, its users and roles', true),
	('auditor', 'Auditor', 'Reads the audit trail, activity and reports', true);

INSERT INTO iam.role_permissions (role_id, permission_id)
	SELECT r.id, p.id
	FROM iam.roles r
	JOIN iam.permissions p ON
		CASE r.name
			WHEN 'admin' THEN p.name <> 'platform.admin'
			WHEN 'member' THEN p.name IN ('users.read', 'roles.read', 'org.read')
			WHEN 'auditor' THEN p.name IN ('users.read', 'roles.read', 'org.read', 'audit.read',
										   'activity.read', 'reports.read')
		END
	WHERE r.is_system;

------------------------------------------------------------------------------
-- Privileges: nothing for PUBLIC; each pg_iam role gets what its job needs.
------------------------------------------------------------------------------
REVOKE ALL ON ALL TABLES IN SCHEMA iam FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA iam FROM PUBLIC;
-- row-level security policies call these with the querying role's rights
GRANT EXECUTE ON FUNCTION iam.current_org_id(), iam.current_user_id() TO PUBLIC;

GRANT USAGE ON SCHEMA iam TO iam_gateway, iam_service, iam_auditor;

GRANT SELECT ON iam.organizations, iam.roles, iam.permissions, iam.role_permissions,
	iam.user_roles, iam.user_permissions, iam.role_inheritance TO iam_service;
GRANT SELECT (id, email, name, role, department, is_active, two_factor_enabled, profile_image,
			  phone, employment_equity, org_id, stack_auth_id, created_at, updated_at,
			  deleted_at, last_login, metadata) ON iam.users TO iam_service;

GRANT SELECT ON iam.audit_logs, iam.activity_logs TO iam_auditor;
