#!/usr/bin/env bash
# auth_oidc.t: tokens of an external identity provider (the seed's Stack
# Auth, or any OIDC issuer).  The test is the provider: it makes an RSA key,
# publishes it as a JWKS file (IAM_OIDC_JWKS_FILE) and signs tokens with
# openssl; the gateway maps their sub to the user whose stack_auth_id it is.
. "$(dirname "$0")/lib.sh"

api_fixtures
ISS=https://idp-$SUFFIX.example
AUD=pg-iam-admin
IDP_KEY=$E2E_TMP/idp.pem
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$IDP_KEY" 2>/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$E2E_TMP/idp-ec.pem" 2>/dev/null
# the JWKS document: the RSA key as n/e, plus an encryption key that must be ignored
python3 - "$(openssl rsa -in "$IDP_KEY" -noout -modulus 2>/dev/null | cut -d= -f2)" >"$E2E_TMP/jwks.json" <<'PY'
import base64, json, sys
def b64u(n): return base64.urlsafe_b64encode(n.to_bytes((n.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()
n = int(sys.argv[1], 16)
print(json.dumps({"keys": [
    {"kty": "RSA", "kid": "idp-1", "use": "sig", "alg": "RS256", "n": b64u(n), "e": b64u(65537)},
    {"kty": "RSA", "kid": "idp-enc", "use": "enc", "n": b64u(n), "e": b64u(65537)}]}))
PY
b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }
# ext_token SUB [ISS] [AUD] [KID] [KEY]: a token of the provider, signed RS256 with openssl
ext_token() {
	local now hdr payload input
	now=$(date +%s)
	if [ -n "${4-idp-1}" ]; then
		hdr=$(jq -cn --arg k "${4-idp-1}" '{alg: "RS256", typ: "JWT", kid: $k}' | b64url)
	else
		hdr=$(printf '{"alg":"RS256","typ":"JWT"}' | b64url)
	fi
	payload=$(jq -cn --arg s "$1" --arg i "${2:-$ISS}" --arg a "${3:-$AUD}" --argjson t "$now" \
		'{iss: $i, sub: $s, aud: $a, iat: $t, exp: ($t + 300), email: "x@idp.example"}' | b64url)
	input="$hdr.$payload"
	printf '%s.%s' "$input" "$(printf '%s' "$input" | openssl dgst -sha256 -sign "${5:-$IDP_KEY}" -binary | b64url)"
}

EXT_SUB="user_$SUFFIX|Stack Auth:42"
sql "UPDATE iam.users SET stack_auth_id = '$EXT_SUB' WHERE id = '$MEMBER_A'" >/dev/null
api_gateway_start IAM_OIDC_JWKS_FILE="$E2E_TMP/jwks.json" IAM_OIDC_ISSUER="$ISS" IAM_OIDC_AUDIENCE="$AUD"
ok $? "gateway with the provider's JWKS file, issuer and audience"

T=$(ext_token "$EXT_SUB")
api GET /users/me "$T"
is "$STATUS" 200 "a provider token: GET /users/me 200"
[ "$(jqr .id)" = "$MEMBER_A" ] && [ "$(jqr .email)" = "member-$SUFFIX@a.example" ]
ok $? "as the user whose stack_auth_id is the token's sub"
api GET "/users/$MEMBER_A" "$T"
is "$STATUS" 200 "in that user's organisation (GET /users/{own id}: 200)"
api GET "/users/$ADMIN_B" "$T"
is_problem 404 not_found "the organisation comes from the user: another organisation's user is not found"
api GET /users/me "$T"
is "$STATUS" 200 "the same token again (verified-token cache): 200"
api GET /users/me "$(ext_token "user_$SUFFIX|nobody")"
is_problem 401 unauthorized "an unknown subject: 401"
api GET /users/me "$(ext_token "$EXT_SUB" "https://other-$SUFFIX.example")"
is_problem 401 invalid_token "another issuer: 401"
api GET /users/me "$(ext_token "$EXT_SUB" "$ISS" other-client)"
is_problem 401 invalid_token "another audience: 401"
api GET /users/me "$(ext_token "$EXT_SUB" "$ISS" "$AUD" "")"
is_problem 401 invalid_token "a token without kid: 401"
api GET /users/me "$(ext_token "$EXT_SUB" "$ISS" "$AUD" idp-enc)"
is_problem 401 invalid_token "the kid of the encryption key: 401"
api GET /users/me "$(ext_token "$EXT_SUB" "$ISS" "$AUD" idp-1 "$E2E_TMP/idp-ec.pem")"
is_problem 401 invalid_token "signed by another key: 401"
FORGED="$(cut -d. -f1 <<<"$T").$(jq -cn --arg s "user_$SUFFIX|nobody" --arg i "$ISS" --arg a "$AUD" \
	'{iss: $i, sub: $s, aud: $a, iat: now | floor, exp: (now + 300 | floor)}' | b64url).$(cut -d. -f3 <<<"$T")"
api GET /users/me "$FORGED"
is_problem 401 invalid_token "a token whose claims were changed: 401"
grep -qF "$EXT_SUB" "$E2E_TMP/gateway.log"
[ $? -ne 0 ]
ok $? "the provider's subject never reaches the gateway log"
sql "UPDATE iam.users SET is_active = false WHERE id = '$MEMBER_A'" >/dev/null
api GET /users/me "$T"
is_problem 401 unauthorized "the user deactivated: the cached token is refused on the next request"
sql "UPDATE iam.users SET is_active = true WHERE id = '$MEMBER_A'" >/dev/null
api GET /users/me "$(mint "$ADMIN_A" "$ORG_A")"
[ "$STATUS" = 200 ] && [ "$(jqr .id)" = "$ADMIN_A" ]
ok $? "the gateway's own tokens still work next to the provider's"
gateway_stop

# without IAM_OIDC_AUDIENCE the provider's aud is not checked
api_gateway_start IAM_OIDC_JWKS_FILE="$E2E_TMP/jwks.json" IAM_OIDC_ISSUER="$ISS" IAM_JWT_CACHE_SIZE=0
api GET /users/me "$(ext_token "$EXT_SUB" "$ISS" some-client)"
is "$STATUS" 200 "no audience configured, cache off: any aud of the provider is accepted"
gateway_stop
gateway_run_config IAM_DATABASE_URL="$IAM_TEST_DATABASE_URL" IAM_OIDC_JWKS_FILE="$E2E_TMP/jwks.json"
[ "$RUN_EXIT" = 2 ] && [[ "$RUN_ERR" == *"IAM_OIDC_ISSUER: required with IAM_OIDC_JWKS_FILE"* ]]
ok $? "a JWKS file without IAM_OIDC_ISSUER stops start-up naming the setting"
done_testing
