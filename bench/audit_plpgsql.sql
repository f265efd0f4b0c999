-- bench/audit_plpgsql.sql: the usual way, kept as the baseline of
-- bench/audit.sh.  A PL/pgSQL row trigger that captures the changed columns
-- and chains each row at once: it locks the organisation's chain-head row
-- (SELECT ... FOR UPDATE) until COMMIT, hashes prev_hash || the row, inserts
-- the audit row and moves the head.  Every audited transaction of an
-- organisation therefore waits for the previous one to commit.
CREATE SCHEMA IF NOT EXISTS bench;
CREATE TABLE bench.audit_logs (LIKE iam.audit_logs INCLUDING DEFAULTS INCLUDING INDEXES INCLUDING CONSTRAINTS);
CREATE TABLE bench.chain_heads (
	org_id		uuid PRIMARY KEY,
	seq			bigint NOT NULL,
	row_hash	bytea NOT NULL
);

CREATE FUNCTION bench.audit_plpgsql() RETURNS trigger
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	o		jsonb := to_jsonb(OLD);
	n		jsonb := to_jsonb(NEW);
	ch		jsonb;
	head	record;
	h		bytea;
	id		uuid := gen_random_uuid();
	ts		timestamptz := now();
BEGIN
	SELECT jsonb_object_agg(k, jsonb_build_object('old', CASE WHEN k = 'password_hash' THEN '"[redacted]"' ELSE o->k END,
												  'new', CASE WHEN k = 'password_hash' THEN '"[redacted]"' ELSE n->k END))
	INTO ch
	FROM jsonb_object_keys(n) AS k WHERE n->k IS DISTINCT FROM o->k;
	IF ch IS NULL THEN
		RETURN NULL;
	END IF;
	SELECT seq, row_hash INTO head FROM bench.chain_heads WHERE org_id = NEW.org_id FOR UPDATE;
	IF NOT FOUND THEN
		INSERT INTO bench.chain_heads VALUES (NEW.org_id, 0, '\x0000000000000000000000000000000000000000000000000000000000000000')
			RETURNING seq, row_hash INTO head;
	END IF;
	h := sha256(head.row_hash || convert_to(concat_ws('|', NEW.org_id, head.seq + 1, id, ts, 'user.updated', NEW.id,
													  ch::text, current_setting('iam.user_id', true),
													  current_setting('iam.request_id', true), current_user), 'UTF8'));
	INSERT INTO bench.audit_logs (id, org_id, user_id, action, entity_type, entity_id, changes, request_id,
								  created_at, seq, prev_hash, row_hash)
	VALUES (id, NEW.org_id, NULLIF(current_setting('iam.user_id', true), '')::uuid, 'user.updated', 'user', NEW.id,
			ch, NULLIF(current_setting('iam.request_id', true), ''), ts, head.seq + 1, head.row_hash, h);
	UPDATE bench.chain_heads SET seq = head.seq + 1, row_hash = h WHERE org_id = NEW.org_id;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION bench.audit_plpgsql() IS 'Benchmark baseline: capture and chain under a chain-head row lock';
CREATE TRIGGER audit_plpgsql AFTER UPDATE ON iam.users
	FOR EACH ROW EXECUTE FUNCTION bench.audit_plpgsql();
ALTER TABLE iam.users DISABLE TRIGGER audit_plpgsql;
