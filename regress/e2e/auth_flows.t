#!/usr/bin/env bash
# auth_flows.t: sign-in over HTTP with the gateway issuing the tokens:
# login, refresh rotation and reuse detection, logout and instant
# revocation, sessions, lockout (window shortened by configuration), bcrypt
# upgrade, TOTP 2FA with codes computed here (and a replay refused),
# password reset and invitations, JWKS checked with openssl, key rotation.
. "$(dirname "$0")/lib.sh"

api_fixtures
PW='correct horse battery staple'
sql "SELECT iam.set_password('$ADMIN_A', '$PW')" >/dev/null
EMAIL=admin-$SUFFIX@a.example
JWT_KEY=$E2E_TMP/k1.pem
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$JWT_KEY" 2>/dev/null
# the rate limiter (auth: 10 a minute) would stop this many sign-ins; it has its own tests
GW=(IAM_RATE_LIMIT=off)
gateway_start "${GW[@]}" IAM_JWT_KEY_FILE="$JWT_KEY" IAM_JWT_KID=k1 IAM_ACCESS_TTL=600
ok $? "gateway with an ES256 key (kid k1)"

login() {	# login EMAIL PASSWORD [TOTP]
	local body
	body=$(jq -cn --arg e "$1" --arg p "$2" --arg t "${3:-}" '{email: $e, password: $p} + (if $t == "" then {} else {totp: $t} end)')
	api_json POST /auth/login - "$body"
}
# revoked TOKEN NAME: TOKEN's next request is refused (GET /auth/sessions is
# never served from the response cache, so the database decides)
revoked() { api GET /auth/sessions "$1"; is_problem 401 unauthorized "$2"; }
claims_of() { cut -d. -f2 <<<"$1" | tr '_-' '/+' | awk '{ while (length($0) % 4) $0 = $0 "="; print }' | base64 -d 2>/dev/null; }

# ---- login ----
login "$EMAIL" "$PW"
is "$STATUS" 200 "login: 200"
AT=$(jqr .access_token); RT=$(jqr .refresh_token)
[ "$(jqr .token_type)" = Bearer ] && [ "$(jqr .expires_in)" = 600 ] && [ ${#RT} -eq 43 ]
ok $? "login: token_type Bearer, expires_in from IAM_ACCESS_TTL, a 256-bit refresh token"
C=$(claims_of "$AT")
SID=$(jq -r .sid <<<"$C")
[ "$(jq -r .sub <<<"$C")" = "$ADMIN_A" ] && [ "$(jq -r .org <<<"$C")" = "$ORG_A" ] &&
	[ "$(jq -r '.exp - .iat' <<<"$C")" = 600 ] && [ -n "$(jq -r .jti <<<"$C")" ] &&
	[ "$(sql "SELECT count(*) FROM iam.user_sessions WHERE id = '$SID' AND user_id = '$ADMIN_A'")" = 1 ]
ok $? "access token claims: sub, org, sid of a new session, iat/exp, jti"
[ "$(sql "SELECT count(*) FROM iam.user_sessions WHERE id = '$SID' AND token_hash = sha256(convert_to('$RT', 'UTF8')) AND token IS NULL")" = 1 ]
ok $? "only the SHA-256 digest of the refresh token is stored"
[ "$(sql "SELECT last_login IS NOT NULL FROM iam.users WHERE id = '$ADMIN_A'")" = t ]
ok $? "last_login is set"
api GET /users/me "$AT"
is "$STATUS" 200 "the access token works"
login "$EMAIL" "wrong password here"
is_problem 401 invalid_credentials "wrong password: 401"
D1=$(jqr .detail)
login "nobody-$SUFFIX@a.example" "$PW"
is_problem 401 invalid_credentials "unknown e-mail: 401"
is "$(jqr .detail)" "$D1" "unknown e-mail and wrong password answer alike"
[ "$(sql "SELECT count(*) FROM iam.activity_logs WHERE user_id = '$ADMIN_A' AND type = 'login'")" -ge 1 ] &&
	[ "$(sql "SELECT count(*) FROM iam.activity_logs WHERE user_id = '$ADMIN_A' AND type = 'login_failed'")" -ge 1 ]
ok $? "activity rows for the success and the failure"
login "$EMAIL" "$PW"
AT2=$(jqr .access_token)
SID2=$(jq -r .sid <<<"$(claims_of "$AT2")")

# ---- refresh: rotation and reuse ----
api_json POST /auth/refresh - "{\"refresh_token\":\"$RT\"}"
is "$STATUS" 200 "refresh: 200"
RT_NEW=$(jqr .refresh_token); AT_NEW=$(jqr .access_token)
[ "$RT_NEW" != "$RT" ] && [ "$(jq -r .sid <<<"$(claims_of "$AT_NEW")")" = "$SID" ]
ok $? "refresh: a new refresh token, same session"
api GET /users/me "$AT_NEW"
is "$STATUS" 200 "the refreshed access token works"
api_json POST /auth/refresh - "{\"refresh_token\":\"$RT\"}"
is_problem 401 invalid_grant "reuse of the rotated refresh token: 401"
[ "$(sql "SELECT revoked_reason FROM iam.user_sessions WHERE id = '$SID'")" = token_reuse ] &&
	[ "$(sql "SELECT count(*) FROM iam.activity_logs WHERE user_id = '$ADMIN_A' AND type = 'token_reuse_detected'")" = 1 ]
ok $? "reuse revokes the session and writes token_reuse_detected"
api_json POST /auth/refresh - "{\"refresh_token\":\"$RT_NEW\"}"
is_problem 401 invalid_grant "the newest refresh token of the revoked family is refused too"
revoked "$AT_NEW" "the revoked family's access token is refused on the next request"
api_json POST /auth/refresh - '{"refresh_token":"nonsense"}'
is_problem 401 invalid_grant "an unknown refresh token: 401"

# ---- sessions, logout ----
login "$EMAIL" "$PW"
AT3=$(jqr .access_token); SID3=$(jq -r .sid <<<"$(claims_of "$AT3")")
api GET /auth/sessions "$AT3"
[ "$STATUS" = 200 ] && [ "$(jqr "[.data[] | select(.current)] | length")" = 1 ] &&
	[ "$(jqr "[.data[] | select(.current)][0].id")" = "$SID3" ] &&
	[ "$(jqr "[.data[] | select(.id == \"$SID2\")] | length")" = 1 ] &&
	[ "$(jqr "[.data[] | select(.id == \"$SID\")] | length")" = 0 ]
ok $? "GET /auth/sessions: live sessions, the current one flagged, revoked ones absent"
[ "$(jqr '.data[0] | has("ip_address") and has("user_agent") and has("created_at") and has("last_activity")')" = true ]
ok $? "sessions carry ip, user agent, created, last activity"
api DELETE "/auth/sessions/$SID2" "$AT3"
is "$STATUS" 204 "DELETE /auth/sessions/{id}: 204"
revoked "$AT2" "the deleted session's access token is refused on the next request"
api DELETE "/auth/sessions/$SID2" "$AT3"
is_problem 404 not_found "deleting it again: 404"
login "$EMAIL" "$PW"; AT4=$(jqr .access_token)
login "$EMAIL" "$PW"; AT5=$(jqr .access_token)
api POST /auth/sessions/revoke-others "$AT3"
[ "$STATUS" = 200 ] && [ "$(jqr .revoked)" -ge 2 ]
ok $? "revoke-others: the count of sessions revoked"
api GET /auth/sessions "$AT4"; s4=$STATUS
api GET /auth/sessions "$AT3"; s3=$STATUS
[ "$s4" = 401 ] && [ "$s3" = 200 ]
ok $? "revoke-others: the others refused, the current one still works"
api POST /auth/logout "$AT3"
is "$STATUS" 204 "logout: 204"
revoked "$AT3" "after logout the access token is refused on the next request"
SVC=$(mint "$ADMIN_A" "$ORG_A")
api GET /users/me "$SVC"
is "$STATUS" 200 "a service token without sid (iam-gateway token) stays valid"
[ "$(jq -r 'has("sid")' <<<"$(claims_of "$SVC")")" = false ]
ok $? "iam-gateway token without --sid puts no sid in the token"

# ---- lockout, with the window shortened by configuration ----
LOCK_EMAIL=member-$SUFFIX@a.example
sql "SELECT iam.set_password('$MEMBER_A', '$PW')" >/dev/null
sql "ALTER DATABASE iam SET iam.lockout_window = '4s'" >/dev/null
gateway_stop
gateway_start "${GW[@]}" IAM_JWT_KEY_FILE="$JWT_KEY" IAM_JWT_KID=k1 IAM_ACCESS_TTL=600
for i in 1 2 3 4 5; do login "$LOCK_EMAIL" "not the password $i"; done
is_problem 401 invalid_credentials "the fifth wrong password: still 401"
login "$LOCK_EMAIL" "$PW"
is_problem 429 locked "locked: the right password is refused with 429"
RA=$(header Retry-After)
[[ "$RA" =~ ^[0-9]+$ ]] && [ "$RA" -ge 1 ] && [ "$RA" -le 4 ]
ok $? "429 carries Retry-After within the window"
[ "$(sql "SELECT count(*) FROM iam.activity_logs WHERE user_id = '$MEMBER_A' AND type = 'lockout'")" = 1 ]
ok $? "a lockout activity row"
for _ in $(seq 1 30); do
	sleep 0.5
	login "$LOCK_EMAIL" "$PW"
	[ "$STATUS" = 200 ] && break
done
is "$STATUS" 200 "after the window the right password signs in"
sql "ALTER DATABASE iam RESET iam.lockout_window" >/dev/null

# ---- bcrypt hashes from the Node stack are upgraded ----
BC=$(python3 -W ignore -c "import crypt; print(crypt.crypt('legacy password 1', crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)))")
sql "UPDATE iam.users SET password_hash = '$BC' WHERE id = '$MEMBER_B'" >/dev/null
login "secret-$SUFFIX@b.example" "legacy password 1"
is "$STATUS" 200 "a bcrypt hash signs in"
[[ "$(sql "SELECT password_hash FROM iam.users WHERE id = '$MEMBER_B'")" == '$argon2id$'* ]]
ok $? "and is rehashed to argon2id"
login "secret-$SUFFIX@b.example" "legacy password 1"
is "$STATUS" 200 "the rehashed password signs in"
sql "UPDATE iam.users SET password_hash = '\$2y\$${BC:4}' WHERE id = '$MEMBER_B'" >/dev/null
login "secret-$SUFFIX@b.example" "legacy password 1"
is "$STATUS" 200 "a \$2y\$ hash signs in too"

# ---- TOTP ----
login "$EMAIL" "$PW"; AT=$(jqr .access_token)
api POST /auth/2fa/setup "$AT"
is "$STATUS" 200 "2fa setup: 200"
SECRET=$(jqr .secret)
[[ "$(jqr .otpauth_uri)" == otpauth://totp/*"secret=$SECRET"* ]] && [ ${#SECRET} -eq 32 ]
ok $? "2fa setup: a base32 secret and its otpauth URI"
totp() {	# totp OFFSET_STEPS: the code of now + offset steps, computed here (RFC 6238)
	python3 - "$SECRET" "$1" <<'PY'
import base64, hashlib, hmac, struct, sys, time
key = base64.b32decode(sys.argv[1] + "=" * (-len(sys.argv[1]) % 8))
step = int(time.time()) // 30 + int(sys.argv[2])
mac = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
o = mac[19] & 15
print("%06d" % ((struct.unpack(">I", mac[o:o + 4])[0] & 0x7fffffff) % 1000000))
PY
}
# a code near a step boundary could expire between here and the server: wait it out
[ $(( $(date +%s) % 30 )) -lt 27 ] || sleep 4
api_json POST /auth/2fa/verify "$AT" '{"code":"000000"}'
[ "$(totp 0)" = 000000 ] || is_problem 422 unprocessable "2fa verify with a wrong code: 422"
api_json POST /auth/2fa/verify "$AT" "{\"code\":\"$(totp 0)\"}"
is "$STATUS" 200 "2fa verify with the current code: 200"
RC1=$(jqr '.recovery_codes[0]'); RC2=$(jqr '.recovery_codes[1]')
[ "$(jqr '.recovery_codes | length')" = 10 ] && [ "$(jqr '.recovery_codes | unique | length')" = 10 ]
ok $? "ten distinct recovery codes"
[ "$(sql "SELECT two_factor_enabled FROM iam.users WHERE id = '$ADMIN_A'")" = t ] &&
	[ "$(sql "SELECT count(*) FROM iam.user_totp WHERE user_id = '$ADMIN_A' AND NOT ('\\x' || encode(sha256(convert_to(replace('$RC1', '-', ''), 'UTF8')), 'hex'))::bytea <> ALL (recovery_code_hashes)")" = 1 ]
ok $? "2FA on; recovery codes stored as digests"
api POST /auth/2fa/setup "$AT"
is_problem 409 conflict "setup again while on: 409"
login "$EMAIL" "$PW"
is_problem 401 totp_required "login without a code: 401 totp_required"
# the code used for verify was step now: the next step's code signs in, then its replay fails
NEXT=$(totp 1)
login "$EMAIL" "$PW" "$NEXT"
is "$STATUS" 200 "login with a valid TOTP code: 200"
login "$EMAIL" "$PW" "$NEXT"
is_problem 401 invalid_credentials "the same code again (replay): refused"
login "$EMAIL" "$PW" "$(totp 0)"
is_problem 401 invalid_credentials "an earlier step's code after a later one: refused"
login "$EMAIL" "$PW" "$RC1"
is "$STATUS" 200 "a recovery code signs in"
login "$EMAIL" "$PW" "$RC1"
is_problem 401 invalid_credentials "a used recovery code is refused"
! grep -qF "$SECRET" "$E2E_TMP/gateway.log"
ok $? "the TOTP secret never reaches the gateway log"
[ "$(sql "SELECT count(*) FROM iam.audit_logs WHERE changes::text LIKE '%$SECRET%'")" = 0 ] &&
	[ "$(sql "SELECT count(*) FROM iam.activity_logs WHERE metadata::text LIKE '%$SECRET%'")" = 0 ]
ok $? "nor the audit or activity logs"

# ---- password reset ----
api_json POST /auth/password-reset - "{\"email\":\"$LOCK_EMAIL\"}"
is "$STATUS" 202 "password reset request: 202"
api_json POST /auth/password-reset - "{\"email\":\"nobody-$SUFFIX@a.example\"}"
is "$STATUS" 202 "for an unknown address too"
login "$LOCK_EMAIL" "$PW"; MAT=$(jqr .access_token)
RESET=$(sql "SELECT payload->>'token' FROM iam.email_outbox WHERE to_address = '$LOCK_EMAIL' AND template = 'password_reset' ORDER BY created_at DESC LIMIT 1")
[ ${#RESET} -eq 43 ] && [ "$(sql "SELECT count(*) FROM iam.auth_tokens WHERE token_hash = sha256(convert_to('$RESET', 'UTF8')) AND used_at IS NULL")" = 1 ]
ok $? "the reset message is queued in iam.email_outbox; only the token digest is stored"
api_json POST /auth/password-reset/confirm - "{\"token\":\"$RESET\",\"password\":\"short\"}"
is_problem 422 unprocessable "a new password under the policy: 422"
like "$(jqr .detail)" "password.*short" "the 422 names the rule"
NEWPW='a brand new passphrase'
api_json POST /auth/password-reset/confirm - "{\"token\":\"$RESET\",\"password\":\"$NEWPW\"}"
is "$STATUS" 204 "reset confirmed: 204"
revoked "$MAT" "a reset revokes every session"
api_json POST /auth/password-reset/confirm - "{\"token\":\"$RESET\",\"password\":\"$NEWPW again\"}"
is_problem 400 bad_request "the reset token is single-use"
login "$LOCK_EMAIL" "$NEWPW"
is "$STATUS" 200 "the new password signs in"

# ---- invitations ----
login "$EMAIL" "$PW" "$RC2"; AT=$(jqr .access_token)
INV=invitee-$SUFFIX@a.example
api_json POST /auth/invitations "$AT" "{\"email\":\"$INV\",\"name\":\"Invitee\"}"
is "$STATUS" 201 "invitation: 201"
ITOK=$(sql "SELECT payload->>'token' FROM iam.email_outbox WHERE to_address = '$INV' AND template = 'invitation'")
api_json POST /auth/invitations/accept - "{\"token\":\"$ITOK\",\"password\":\"$INV\"}"
is_problem 422 unprocessable "a password equal to the e-mail address: 422"
api_json POST /auth/invitations/accept - "{\"token\":\"$ITOK\",\"password\":\"invited and welcome\"}"
is "$STATUS" 204 "invitation accepted: 204"
login "$INV" "invited and welcome"
is "$STATUS" 200 "the invited user signs in"

# ---- JWKS: a gateway-issued token verifies with openssl ----
request GET /.well-known/jwks.json
is "$STATUS" 200 "GET /.well-known/jwks.json: 200"
[ "$(jqr '.keys | length')" = 1 ] && [ "$(jqr '.keys[0].kid')" = k1 ] && [ "$(jqr '.keys[0].kty')" = EC ] &&
	[ "$(jqr '.keys[0] | has("d")')" = false ]
ok $? "one EC public key with kid k1, no private part"
verify_with_jwks() {	# verify_with_jwks TOKEN KID: openssl verifies TOKEN with the JWKS key KID
	local jwk
	jwk=$(jq -c --arg k "$2" '.keys[] | select(.kid == $k)' <<<"$BODY")
	python3 - "$jwk" "$1" "$E2E_TMP" <<'PY' || return 1
import base64, json, sys
def d(s): return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
jwk, tok, tmp = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
spki = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200") + b"\x04" + d(jwk["x"]) + d(jwk["y"])
open(tmp + "/pub.der", "wb").write(spki)
h, p, s = tok.split(".")
open(tmp + "/input", "wb").write((h + "." + p).encode())
sig = d(s)
def der_int(b):
    b = b.lstrip(b"\x00") or b"\x00"
    if b[0] & 0x80: b = b"\x00" + b
    return b"\x02" + bytes([len(b)]) + b
body = der_int(sig[:32]) + der_int(sig[32:])
open(tmp + "/sig.der", "wb").write(b"\x30" + bytes([len(body)]) + body)
PY
	openssl dgst -sha256 -verify <(openssl pkey -pubin -inform DER -in "$E2E_TMP/pub.der" 2>/dev/null) \
		-signature "$E2E_TMP/sig.der" "$E2E_TMP/input" >/dev/null 2>&1
}
login "$INV" "invited and welcome"; OLD_AT=$(jqr .access_token); OLD_RT=$(jqr .refresh_token)
request GET /.well-known/jwks.json
verify_with_jwks "$OLD_AT" k1
ok $? "openssl verifies a gateway-issued access token with the published key"
printf 'x' >>"$E2E_TMP/input"
! openssl dgst -sha256 -verify <(openssl pkey -pubin -inform DER -in "$E2E_TMP/pub.der" 2>/dev/null) \
	-signature "$E2E_TMP/sig.der" "$E2E_TMP/input" >/dev/null 2>&1
ok $? "and refuses the token once altered"

# ---- key rotation: a new signing key, the old one still verifies ----
openssl pkey -in "$JWT_KEY" -pubout -out "$E2E_TMP/k1.pub" 2>/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$E2E_TMP/k2.pem" 2>/dev/null
gateway_stop
gateway_start "${GW[@]}" IAM_JWT_KEY_FILE="$E2E_TMP/k2.pem" IAM_JWT_KID=k2 IAM_JWT_VERIFY_KEYS="k1=$E2E_TMP/k1.pub"
api GET /users/me "$OLD_AT"
is "$STATUS" 200 "after rotation a token signed by the old key is still accepted"
api_json POST /auth/refresh - "{\"refresh_token\":\"$OLD_RT\"}"
NEW_AT=$(jqr .access_token)
[ "$STATUS" = 200 ] && [ "$(cut -d. -f1 <<<"$NEW_AT" | tr '_-' '/+' | awk '{ while (length($0) % 4) $0 = $0 "="; print }' | base64 -d | jq -r .kid)" = k2 ]
ok $? "new tokens are signed by the new key (kid k2)"
request GET /.well-known/jwks.json
[ "$(jqr '[.keys[].kid] | sort | join(",")')" = k1,k2 ]
ok $? "JWKS publishes both keys"
verify_with_jwks "$NEW_AT" k2
ok $? "openssl verifies the new token with the published k2"

# ---- rotation across algorithms: ES256 -> RS256, the ES256 tokens still valid ----
b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }
openssl pkey -in "$E2E_TMP/k2.pem" -pubout -out "$E2E_TMP/k2.pub" 2>/dev/null
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$E2E_TMP/k3.pem" 2>/dev/null
login "$INV" "invited and welcome"; K2_RT=$(jqr .refresh_token)
gateway_stop
gateway_start "${GW[@]}" IAM_JWT_ALG=RS256 IAM_JWT_KEY_FILE="$E2E_TMP/k3.pem" IAM_JWT_KID=k3 \
	IAM_JWT_VERIFY_KEYS="k1=$E2E_TMP/k1.pub,k2=$E2E_TMP/k2.pub"
ok $? "gateway signing RS256 (kid k3) with the EC keys k1 and k2 for verification"
api GET /users/me "$OLD_AT"; s1=$STATUS
api GET /users/me "$NEW_AT"; s2=$STATUS
[ "$s1" = 200 ] && [ "$s2" = 200 ]
ok $? "after the switch to RS256, ES256 tokens of k1 and k2 are still accepted"
api_json POST /auth/refresh - "{\"refresh_token\":\"$K2_RT\"}"
RS_AT=$(jqr .access_token)
RS_HDR=$(cut -d. -f1 <<<"$RS_AT" | tr '_-' '/+' | awk '{ while (length($0) % 4) $0 = $0 "="; print }' | base64 -d)
[ "$STATUS" = 200 ] && [ "$(jq -r .alg <<<"$RS_HDR")" = RS256 ] && [ "$(jq -r .kid <<<"$RS_HDR")" = k3 ]
ok $? "new tokens are RS256 with kid k3"
api GET /users/me "$RS_AT"
is "$STATUS" 200 "the RS256 token is accepted"
request GET /.well-known/jwks.json
[ "$(jqr '[.keys[] | .kid + ":" + .alg + ":" + .kty] | sort | join(",")')" = "k1:ES256:EC,k2:ES256:EC,k3:RS256:RSA" ]
ok $? "JWKS publishes all three keys, each with its alg and kid"
python3 - "$(jq -c '.keys[] | select(.kid == "k3")' <<<"$BODY")" "$E2E_TMP" <<'PY'
import base64, json, sys
def d(s): return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
def der_len(n): return bytes([n]) if n < 128 else bytes([0x80 | ((n.bit_length() + 7) // 8)]) + n.to_bytes((n.bit_length() + 7) // 8, "big")
def der_int(b):
    b = b.lstrip(b"\x00") or b"\x00"
    if b[0] & 0x80: b = b"\x00" + b
    return b"\x02" + der_len(len(b)) + b
jwk = json.loads(sys.argv[1])
body = der_int(d(jwk["n"])) + der_int(d(jwk["e"]))
open(sys.argv[2] + "/k3.der", "wb").write(b"\x30" + der_len(len(body)) + body)
PY
cut -d. -f1,2 <<<"$RS_AT" | tr -d '\n' >"$E2E_TMP/rs.input"
cut -d. -f3 <<<"$RS_AT" | tr '_-' '/+' | awk '{ while (length($0) % 4) $0 = $0 "="; print }' | base64 -d >"$E2E_TMP/rs.sig"
openssl dgst -sha256 -verify <(openssl rsa -RSAPublicKey_in -inform DER -in "$E2E_TMP/k3.der" -pubout 2>/dev/null) \
	-signature "$E2E_TMP/rs.sig" "$E2E_TMP/rs.input" >/dev/null 2>&1
ok $? "openssl verifies the RS256 token with the published k3 (n, e)"
# a token cannot pick the algorithm of a key: RS256 under the EC key's kid
FORGED_H=$(printf '{"alg":"RS256","typ":"JWT","kid":"k1"}' | b64url)
FORGED_IN="$FORGED_H.$(cut -d. -f2 <<<"$RS_AT")"
FORGED="$FORGED_IN.$(printf '%s' "$FORGED_IN" | openssl dgst -sha256 -sign "$E2E_TMP/k3.pem" -binary | b64url)"
api GET /users/me "$FORGED"
is_problem 401 invalid_token "an RS256 token naming the EC key k1 is refused"
grep -q '"msg":"bearer token refused","reason":"bad_alg"' "$E2E_TMP/gateway.log"
ok $? "refused for its algorithm (bad_alg), not tried against the RSA key"

gateway_stop
is "$GATEWAY_EXIT" 0 "the gateway stops cleanly"
done_testing
