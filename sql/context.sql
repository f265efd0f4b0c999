-- context: the request-context settings validate what they are given
\set VERBOSITY terse
SELECT iam.current_org_id() IS NULL AS no_org, iam.current_user_id() IS NULL AS no_user;

BEGIN;
SELECT set_config('iam.org_id', '6f1c4f7e-3a51-4a8f-9a59-0c7f0b7a1d21', true) IS NOT NULL AS set;
SELECT iam.current_org_id();
SELECT set_config('iam.user_id', '11111111-2222-3333-4444-555555555555', true) IS NOT NULL AS set;
SELECT iam.current_user_id();
SELECT set_config('iam.ip', '2001:db8::1', true), set_config('iam.request_id', 'req-42.a_b:c', true);
COMMIT;
-- transaction-local: gone after COMMIT
SELECT iam.current_org_id() IS NULL AS org_reset;

-- malformed values fail where they are set
SELECT set_config('iam.org_id', 'acme', true);
SELECT set_config('iam.org_id', '6f1c4f7e-3a51-4a8f-9a59-0c7f0b7a1d2', true);
SELECT set_config('iam.user_id', '6f1c4f7e+3a51-4a8f-9a59-0c7f0b7a1d21', true);
SELECT set_config('iam.user_id', '''; DROP TABLE iam.users; --', true);
SELECT set_config('iam.ip', '300.1.1.1', true);
SELECT set_config('iam.ip', 'localhost', true);
SELECT set_config('iam.request_id', 'has space', true);
SELECT set_config('iam.request_id', repeat('r', 65), true);
SELECT set_config('iam.user_agent', E'curl\n/8', true);
SELECT set_config('iam.user_agent', repeat('u', 1025), true);
SELECT length(set_config('iam.user_agent', repeat('u', 1024), true)) AS longest_agent;
-- empty means unset
SELECT set_config('iam.org_id', '', true) = '' AS empty_ok;

-- the iam. prefix is reserved: a typo is an error, not a silent new setting
SET iam.orgid = 'x';
