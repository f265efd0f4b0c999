#!/usr/bin/env bash
# api_jwt.t: bearer tokens the gateway must refuse, each with 401,
# WWW-Authenticate: Bearer error="invalid_token" and the same detail; and
# the ones it must accept (leeway, rotation key, aud array).  Tokens are
# made here with openssl (HS256), so every claim and header can be bent.
. "$(dirname "$0")/lib.sh"

api_fixtures
S1=$(openssl rand -hex 32); S2=$(openssl rand -hex 32); S3=$(openssl rand -hex 32)
printf '%s' "$S1" >"$E2E_TMP/k1"; printf '%s' "$S2" >"$E2E_TMP/k2"
gateway_start IAM_JWT_ALG=HS256 IAM_JWT_KEY_FILE="$E2E_TMP/k1" IAM_JWT_KID=k1 \
	IAM_JWT_VERIFY_KEYS="k2=$E2E_TMP/k2" IAM_JWT_ISSUER=https://iam.test IAM_JWT_AUDIENCE=admin-ui
ok $? "gateway with HS256, kid k1, rotation key k2, issuer and audience"

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
# sign HEADER PAYLOAD SECRET [DIGEST]: a compact JWS with HMAC
sign() {
	local h p
	h=$(printf '%s' "$1" | b64url); p=$(printf '%s' "$2" | b64url)
	printf '%s.%s.%s' "$h" "$p" "$(printf '%s.%s' "$h" "$p" | openssl dgst -"${4:-sha256}" -mac HMAC -macopt key:"$3" -binary | b64url)"
}
NOW=$(date +%s)
# claims [jq assignments]: the standard claims of ADMIN_A, then changes
claims() {
	jq -cn --arg sub "$ADMIN_A" --arg org "$ORG_A" --argjson now "$NOW" \
		"{sub: \$sub, org: \$org, iss: \"https://iam.test\", aud: \"admin-ui\", iat: \$now, exp: (\$now + 600), jti: \"j$RANDOM\"} ${1:+| $1}"
}
H='{"alg":"HS256","typ":"JWT","kid":"k1"}'

accepted() {	# accepted TOKEN NAME
	api GET /users/me "$1"
	[ "$STATUS" = 200 ] && [ "$(jqr .id)" = "$ADMIN_A" ]
	ok $? "$2: accepted"
	[ "$STATUS" = 200 ] || echo "#   got: $STATUS $BODY"
}
refused() {	# refused TOKEN NAME
	api GET /users/me "$1"
	[ "$STATUS" = 401 ] && [ "$(header WWW-Authenticate)" = 'Bearer error="invalid_token"' ] &&
		[ "$(jqr .detail)" = "The bearer token is not valid." ] && [ "$(jqr .code)" = invalid_token ]
	ok $? "$2: 401 invalid_token, generic detail"
	[ "$STATUS" = 401 ] || echo "#   got: $STATUS $BODY"
}

accepted "$(sign "$H" "$(claims)" "$S1")" "a well-formed token with kid k1"
accepted "$(sign '{"alg":"HS256","typ":"JWT","kid":"k2"}' "$(claims)" "$S2")" "a token of the rotation key k2"
accepted "$(sign "$H" "$(claims '.aud = ["other", "admin-ui"]')" "$S1")" "aud as an array holding ours"
accepted "$(sign "$H" "$(claims ".exp = $NOW - 10")" "$S1")" "expired 10 s ago (within the 30 s leeway)"
accepted "$(sign "$H" "$(claims ".iat = $NOW + 10")" "$S1")" "iat 10 s ahead (within the leeway)"
accepted "$(env -i PATH="$PATH" IAM_JWT_ALG=HS256 IAM_JWT_KEY_FILE="$E2E_TMP/k1" IAM_JWT_KID=k1 \
	IAM_JWT_ISSUER=https://iam.test IAM_JWT_AUDIENCE=admin-ui "$IAM_TEST_GATEWAY" token --sub "$ADMIN_A" --org "$ORG_A" --ttl 60)" \
	"a token from 'iam-gateway token'"

refused "$(sign "$H" "$(claims ".exp = $NOW - 120 | .iat = $NOW - 3600")" "$S1")" "expired"
refused "$(sign "$H" "$(claims ".nbf = $NOW + 300")" "$S1")" "not yet valid (nbf)"
refused "$(sign "$H" "$(claims ".iat = $NOW + 300")" "$S1")" "issued in the future (iat)"
refused "$(sign '{"alg":"HS512","typ":"JWT","kid":"k1"}' "$(claims)" "$S1" sha512)" "wrong alg (HS512)"
refused "$(sign '{"alg":"RS256","typ":"JWT","kid":"k1"}' "$(claims)" "$S1")" "wrong alg (RS256 header, HMAC signature)"
refused "$(printf '%s' '{"alg":"none","typ":"JWT"}' | b64url).$(printf '%s' "$(claims)" | b64url)." "alg none, empty signature"
refused "$(printf '%s' '{"alg":"none"}' | b64url).$(printf '%s' "$(claims)" | b64url).$(printf 'x' | b64url)" "alg none with a signature"
good=$(sign "$H" "$(claims)" "$S1")
sig=${good##*.}; flipped=$([ "${sig:0:1}" = A ] && echo B || echo A)${sig:1}
refused "${good%.*}.$flipped" "bad signature (one character changed)"
refused "$(sign "$H" "$(claims)" "$S3")" "signed with an unknown secret"
refused "$(sign '{"alg":"HS256","typ":"JWT","kid":"k2"}' "$(claims)" "$S1")" "kid k2 with k1's secret"
refused "$(sign "$H" "$(claims '.iss = "https://evil.test"')" "$S1")" "wrong iss"
refused "$(sign "$H" "$(claims 'del(.iss)')" "$S1")" "no iss"
refused "$(sign "$H" "$(claims '.aud = "other"')" "$S1")" "wrong aud"
refused "$(sign "$H" "$(claims '.aud = ["a", "b"]')" "$S1")" "aud array without ours"
refused "$(sign '{"alg":"HS256","typ":"JWT","kid":"k9"}' "$(claims)" "$S1")" "unknown kid"
refused "$(sign "$H" "$(claims 'del(.exp)')" "$S1")" "no exp"
refused "$(sign "$H" "$(claims '.sub = "not-a-uuid"')" "$S1")" "sub not a uuid"
refused "$(sign "$H" "$(claims '.exp = "tomorrow"')" "$S1")" "exp not a number"
dup=$(claims | sed 's/^{/{"sub":"00000000-0000-4000-8000-000000000000",/')
refused "$(sign "$H" "$dup" "$S1")" "a duplicated claim"
refused "$(sign '{"alg":"HS256","alg":"none","kid":"k1"}' "$(claims)" "$S1")" "a duplicated header member"
refused "$(sign '{"alg":"HS256","typ":"JOSE+JSON","kid":"k1"}' "$(claims)" "$S1")" "typ other than JWT"
big=$(printf 'x%.0s' $(seq 1 9000))
refused "$(sign "$H" "$(claims ".pad = \"$big\"")" "$S1")" "oversized (over 8 KiB)"
refused "garbage" "garbage"
refused "a.b.c" "three parts of nothing"
refused "$good.extra" "four parts"
# a token that has a character base64 and base64url spell differently
for _ in $(seq 1 50); do
	alt=$(sign "$H" "$(claims)" "$S1")
	[[ "$alt" == *[-_]* ]] && break
done
refused "$(printf '%s' "$alt" | tr '_-' '/+')" "base64 instead of base64url"
refused "${good}=" "padding"

# another scheme, or nothing after Bearer
request GET /api/v1/users/me -H "Authorization: Basic $(printf 'u:p' | base64)"
[ "$STATUS" = 401 ] && [ "$(header WWW-Authenticate)" = Bearer ]
ok $? "Basic credentials: 401 with WWW-Authenticate: Bearer"
request GET /api/v1/users/me -H "Authorization: Bearer "
is "$STATUS" 401 "an empty bearer token: 401"

# nothing of a token reaches the log
sleep 0.2
grep -qF "${good%%.*}" "$E2E_TMP/gateway.log"
ok $((! $?)) "no token reaches the log"
grep -q '"msg":"bearer token refused","reason":"expired"' "$E2E_TMP/gateway.log"
ok $? "the log says why a token was refused (for operators only)"
gateway_stop
is "$GATEWAY_EXIT" 0 "the gateway stops cleanly"
done_testing
