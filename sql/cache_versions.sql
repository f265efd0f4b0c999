-- cache_versions: the gateway's cache versions in shared memory (#7).  A
-- committed write to an organisation's admin data bumps its slot, a rolled
-- back one does not; a change of every organisation's data (the permission
-- catalogue, system roles, TRUNCATE) bumps the version of everything.  The
-- slot hash is pinned: gateway/tests/test_cache.c expects the same values.
\set VERBOSITY terse
-- FNV-1a (64 bits) of the uuid's 16 bytes, modulo 4096: as the gateway's cache_slot_of
SELECT iam.cache_slot('11111111-1111-4111-8111-111111111111') AS s1,
	   iam.cache_slot('22222222-2222-4222-8222-222222222222') AS s2,
	   iam.cache_slot('00000000-0000-0000-0000-000000000000') AS s0,
	   iam.cache_slot('b5c3a1f0-7d2e-4c8a-9f61-0e4d2a9c7b13') AS s3;

-- pg_temp.version(org): the version of the organisation's slot now
CREATE FUNCTION pg_temp.version(org uuid) RETURNS bigint LANGUAGE sql
	RETURN (SELECT coalesce(c.versions[array_position(c.slots, iam.cache_slot(org))], 0)
			FROM iam.cache_changes(0) c);
CREATE FUNCTION pg_temp.everything() RETURNS bigint LANGUAGE sql
	RETURN (SELECT everything FROM iam.cache_changes(0));

SELECT generation > 0 AS has_generation, next_since >= 0 AS has_since,
	   cardinality(slots) = cardinality(versions) AS paired
FROM iam.cache_changes(0);
-- fixed ids in distinct slots (2901, 4069)
\set org '11111111-1111-4111-8111-111111111111'
\set other '22222222-2222-4222-8222-222222222222'
INSERT INTO iam.organizations (id, name, slug) VALUES (:'org', 'Versions', 'versions');
SELECT pg_temp.version(:'org') > 0 AS creation_bumped;

-- committed: bumped
SELECT pg_temp.version(:'org') AS v0 \gset
UPDATE iam.organizations SET name = 'Versions 2' WHERE id = :'org';
SELECT pg_temp.version(:'org') > :v0 AS committed_update_bumped;

-- rolled back: not bumped, and nothing at all while the transaction is open
SELECT pg_temp.version(:'org') AS v1 \gset
BEGIN;
SELECT iam.create_user(:'org', 'vera@versions.example', 'Vera', 'member', NULL) IS NOT NULL AS created;
SELECT pg_temp.version(:'org') = :v1 AS not_yet_inside;
ROLLBACK;
SELECT pg_temp.version(:'org') = :v1 AS rolled_back_not_bumped;

-- one transaction, several statements: bumped (at least once) at commit
BEGIN;
SELECT iam.create_user(:'org', 'vera@versions.example', 'Vera', 'member', NULL) AS vera \gset
UPDATE iam.users SET department = 'Ops' WHERE id = :'vera';
SELECT pg_temp.version(:'org') = :v1 AS not_before_commit;
COMMIT;
SELECT pg_temp.version(:'org') > :v1 AS bumped_at_commit;

-- a rolled-back savepoint's statement still counts (an extra invalidation)
SELECT pg_temp.version(:'org') AS v2 \gset
BEGIN;
SAVEPOINT s;
UPDATE iam.users SET department = 'Dev' WHERE id = :'vera';
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT pg_temp.version(:'org') > :v2 AS savepoint_rollback_still_bumps;

-- another organisation's write leaves this one's slot alone
INSERT INTO iam.organizations (id, name, slug) VALUES (:'other', 'Other', 'other-versions');
SELECT pg_temp.version(:'org') AS v3 \gset
UPDATE iam.organizations SET name = 'Other 2' WHERE id = :'other';
SELECT pg_temp.version(:'org') = :v3 AS other_org_no_bump;

-- every organisation's data: the version of everything
SELECT pg_temp.everything() AS e0 \gset
INSERT INTO iam.permissions (name, display_name, description, category)
VALUES ('versions.test', 'Test', 'cache versions test', 'users');
SELECT pg_temp.everything() > :e0 AS catalogue_bumps_everything;
SELECT pg_temp.everything() AS e1 \gset
BEGIN;
DELETE FROM iam.permissions WHERE name = 'versions.test';
ROLLBACK;
SELECT pg_temp.everything() = :e1 AS rolled_back_no_bump;
DELETE FROM iam.permissions WHERE name = 'versions.test';

-- polling: since = next_since returns only what changed after it
SELECT next_since AS since FROM iam.cache_changes(0) \gset
SELECT cardinality(slots) AS changed_since FROM iam.cache_changes(:since) WHERE next_since = :since;
UPDATE iam.users SET department = 'Ops 2' WHERE id = :'vera';
SELECT iam.cache_slot(:'org') = ANY (slots) AS polled_change, next_since > :since AS since_moved
FROM iam.cache_changes(:since);
SELECT iam.cache_changes(-1);

-- privileges: the gateway polls, nobody else calls these
SELECT has_function_privilege('iam_gateway', 'iam.cache_changes(bigint)', 'EXECUTE') AS gateway_polls,
	   has_function_privilege('public', 'iam.cache_changes(bigint)', 'EXECUTE') AS public_polls,
	   has_function_privilege('iam_gateway', 'iam.cache_note_change(uuid)', 'EXECUTE') AS gateway_notes,
	   has_function_privilege('public', 'iam.cache_slot(uuid)', 'EXECUTE') AS public_slot;

DELETE FROM iam.organizations WHERE id IN (:'org', :'other');
