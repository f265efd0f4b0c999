-- iam--0.2--0.3.sql: the audit trail (audit.c, audit_chain.c, audit_sealer.c).
--
-- Every change to admin data is captured by a C row trigger into
-- iam.audit_logs, which refuses any other write; a sealer (background worker,
-- or iam.audit_seal()) chains the rows per organisation with SHA-256;
-- iam.audit_verify checks the chains; iam.erase_user erases a user's
-- personal data, inside the trail too, keeping the chains verifiable.
-- CREATE EXTENSION iam runs iam--0.1.sql, iam--0.1--0.2.sql and this file.

\echo Use "CREATE EXTENSION iam" or "ALTER EXTENSION iam UPDATE" to load this file. \quit

------------------------------------------------------------------------------
-- Change capture
------------------------------------------------------------------------------
CREATE FUNCTION iam.audit_capture() RETURNS trigger
	LANGUAGE c AS 'MODULE_PATHNAME', 'iam_audit_capture';
COMMENT ON FUNCTION iam.audit_capture() IS
	'AFTER INSERT OR UPDATE OR DELETE row trigger, arguments (entity_type, entity_id_column, org_id_column or '''', insert_verb, update_verb, delete_verb): appends one unsealed iam.audit_logs row per changed row with the changed columns only (secrets as "[redacted]") and the request context; an UPDATE that changes nothing appends nothing';

DO $capture$
DECLARE
	t record;
BEGIN
	FOR t IN SELECT * FROM (VALUES
		('organizations', 'organization', 'id', 'id', 'created', 'updated', 'deleted'),
		('users', 'user', 'id', 'org_id', 'created', 'updated', 'deleted'),
		('roles', 'role', 'id', 'org_id', 'created', 'updated', 'deleted'),
		('permissions', 'permission', 'id', '', 'created', 'updated', 'deleted'),
		('role_permissions', 'role', 'role_id', 'org_id', 'permission_granted', 'permission_grant_updated', 'permission_revoked'),
		('user_roles', 'user', 'user_id', 'org_id', 'role_granted', 'role_grant_updated', 'role_revoked'),
		('user_permissions', 'user', 'user_id', 'org_id', 'permission_granted', 'permission_grant_updated', 'permission_revoked'),
		('role_inheritance', 'role', 'role_id', 'org_id', 'inheritance_added', 'inheritance_updated', 'inheritance_removed'))
		AS v (tab, entity, id_col, org_col, ins, upd, del)
	LOOP
		EXECUTE format('CREATE TRIGGER audit_capture AFTER INSERT OR UPDATE OR DELETE ON iam.%I '
					   'FOR EACH ROW EXECUTE FUNCTION iam.audit_capture(%L, %L, %L, %L, %L, %L)',
					   t.tab, t.entity, t.id_col, t.org_col, t.ins, t.upd, t.del);
		EXECUTE format('COMMENT ON TRIGGER audit_capture ON iam.%I IS %L', t.tab,
					   format('Records every change of a row in iam.audit_logs as %s.%s / %s.%s / %s.%s',
							  t.entity, t.ins, t.entity, t.upd, t.entity, t.del));
	END LOOP;
END
$capture$;

CREATE FUNCTION iam.audit_append(action text, entity_type text, entity_id uuid, org_id uuid, changes jsonb)
	RETURNS void LANGUAGE c AS 'MODULE_PATHNAME', 'iam_audit_append';
COMMENT ON FUNCTION iam.audit_append(text, text, uuid, uuid, jsonb) IS
	'Appends an audit event that is not a row change (e.g. user.erased) with the request context; used by the extension''s own functions, granted to no role';

------------------------------------------------------------------------------
-- Immutability: only the extension's code paths write the trail
------------------------------------------------------------------------------
CREATE FUNCTION iam.audit_guard() RETURNS trigger
	LANGUAGE c AS 'MODULE_PATHNAME', 'iam_audit_guard';
COMMENT ON FUNCTION iam.audit_guard() IS
	'BEFORE trigger on iam.audit_logs: refuses (42501) INSERT, UPDATE, DELETE and TRUNCATE for every role, the owner included, except the appends, seals and erasures made by the extension''s own C code';
CREATE TRIGGER audit_guard BEFORE INSERT OR UPDATE OR DELETE ON iam.audit_logs
	FOR EACH ROW EXECUTE FUNCTION iam.audit_guard();
COMMENT ON TRIGGER audit_guard ON iam.audit_logs IS
	'The audit trail is append-only: only pg_iam''s triggers append, only its sealer seals, only iam.erase_user erases';
CREATE TRIGGER audit_guard_truncate BEFORE TRUNCATE ON iam.audit_logs
	FOR EACH STATEMENT EXECUTE FUNCTION iam.audit_guard();
COMMENT ON TRIGGER audit_guard_truncate ON iam.audit_logs IS
	'The audit trail is append-only: TRUNCATE is refused for every role';

------------------------------------------------------------------------------
-- Hash chain: sealing, status, verification
------------------------------------------------------------------------------
CREATE FUNCTION iam.audit_seal() RETURNS bigint
	LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'iam_audit_seal';
COMMENT ON FUNCTION iam.audit_seal() IS
	'Seals every committed unsealed audit row now (seq, prev_hash, row_hash per organisation) and returns how many; the sealer worker does this every iam.audit_seal_interval when iam is preloaded, otherwise schedule this with pg_cron. READ COMMITTED only';

CREATE VIEW iam.audit_status AS
	SELECT count(*) AS unsealed,
		   min(created_at) AS oldest_unsealed,
		   coalesce(pg_catalog.now() - min(created_at), interval '0') AS lag
	FROM iam.audit_logs WHERE seq IS NULL;
COMMENT ON VIEW iam.audit_status IS
	'Audit rows waiting for the sealer: how many, the oldest one''s created_at and its age (the sealing lag; stays below iam.audit_seal_interval plus a pass when the sealer keeps up)';
COMMENT ON COLUMN iam.audit_status.unsealed IS 'Audit rows committed or in progress that have no seq yet';
COMMENT ON COLUMN iam.audit_status.oldest_unsealed IS 'created_at of the oldest unsealed row';
COMMENT ON COLUMN iam.audit_status.lag IS 'Age of the oldest unsealed row at the start of this transaction; 0 when everything is sealed';

CREATE FUNCTION iam.audit_verify(org_id uuid DEFAULT NULL, checkpoint_seq bigint DEFAULT NULL,
								 checkpoint_hash bytea DEFAULT NULL)
	RETURNS TABLE (ok boolean, first_bad_seq bigint, detail text, org_id uuid, sealed bigint, unsealed bigint)
	LANGUAGE c STABLE CALLED ON NULL INPUT AS 'MODULE_PATHNAME', 'iam_audit_verify';
COMMENT ON FUNCTION iam.audit_verify(uuid, bigint, bytea) IS
	'Recomputes the hash chain of every organisation (or of org_id) over its sealed rows: one row per chain with ok, the first bad seq and what is wrong (gap, broken link, altered content, misplaced erasure marker), the sealed and unsealed counts; with a checkpoint from iam.audit_checkpoint also detects a truncated tail. Reads what the caller''s row-level security shows';

CREATE FUNCTION iam.audit_checkpoint(org_id uuid, OUT seq bigint, OUT row_hash bytea)
	LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF audit_checkpoint.org_id IS NULL THEN
		SELECT a.seq, a.row_hash INTO seq, row_hash FROM iam.audit_logs a
		WHERE a.org_id IS NULL AND a.seq IS NOT NULL ORDER BY a.seq DESC LIMIT 1;
	ELSE
		SELECT a.seq, a.row_hash INTO seq, row_hash FROM iam.audit_logs a
		WHERE a.org_id = audit_checkpoint.org_id AND a.seq IS NOT NULL ORDER BY a.seq DESC LIMIT 1;
	END IF;
END
$$;
COMMENT ON FUNCTION iam.audit_checkpoint(uuid) IS
	'Head of an organisation''s chain (org_id NULL: the chain of shared objects): its seq and row_hash, to be stored outside the database and passed back to iam.audit_verify(org_id, seq, row_hash), which then also detects rows removed from the tail; NULLs while nothing is sealed';

------------------------------------------------------------------------------
-- GDPR erasure
------------------------------------------------------------------------------
CREATE FUNCTION iam.audit_erase_entity(entity_type text, entity_id uuid) RETURNS bigint
	LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'iam_audit_erase_entity';
COMMENT ON FUNCTION iam.audit_erase_entity(text, uuid) IS
	'Replaces the personal data (email, name, phone, profile_image, metadata, employment_equity, stack_auth_id) inside the changes of every audit row about an entity by erasure markers that keep each value''s digest, so the chain still verifies; returns the rows changed. Used by iam.erase_user, granted to no role';

CREATE FUNCTION iam.erase_user(user_id uuid) RETURNS void
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	u			record;
	sessions	bigint;
	rows		bigint;
BEGIN
	SELECT id, org_id INTO u FROM iam.users WHERE id = erase_user.user_id FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'user % does not exist', user_id
			USING ERRCODE = 'no_data_found', HINT = 'Pass the id of an existing user.';
	END IF;
	UPDATE iam.users SET email = 'erased-' || id || '@erased.invalid', name = 'Erased user',
						 phone = NULL, profile_image = NULL, metadata = '{}', employment_equity = NULL,
						 stack_auth_id = NULL, password_hash = NULL, is_active = false,
						 deleted_at = coalesce(deleted_at, now())
		WHERE id = u.id;
	UPDATE iam.user_sessions SET revoked_at = now() WHERE user_sessions.user_id = u.id AND revoked_at IS NULL;
	GET DIAGNOSTICS sessions = ROW_COUNT;
	-- after the update above, whose own audit row holds the old values too
	rows := iam.audit_erase_entity('user', u.id);
	PERFORM iam.audit_append('user.erased', 'user', u.id, u.org_id,
							 jsonb_build_object('sessions_revoked', jsonb_build_object('old', NULL, 'new', sessions),
												'audit_rows_erased', jsonb_build_object('old', NULL, 'new', rows)));
END
$$;
COMMENT ON FUNCTION iam.erase_user(uuid) IS
	'GDPR erasure: anonymises the user''s personal data (email, name, phone, profile image, metadata, employment equity, external id, password), deactivates the account, revokes its sessions and erases its personal data inside the audit trail through the sanctioned path that keeps the chain verifiable; records user.erased. Granted to no role: a DBA''s call';

------------------------------------------------------------------------------
-- Privileges
------------------------------------------------------------------------------
REVOKE ALL ON FUNCTION iam.audit_capture(), iam.audit_append(text, text, uuid, uuid, jsonb),
	iam.audit_guard(), iam.audit_seal(), iam.audit_verify(uuid, bigint, bytea),
	iam.audit_checkpoint(uuid), iam.audit_erase_entity(text, uuid), iam.erase_user(uuid) FROM PUBLIC;
REVOKE ALL ON iam.audit_status FROM PUBLIC;
GRANT EXECUTE ON FUNCTION iam.audit_verify(uuid, bigint, bytea), iam.audit_checkpoint(uuid)
	TO iam_auditor, iam_gateway;
GRANT SELECT ON iam.audit_status TO iam_auditor, iam_gateway;
