//! Access tokens: JWTs with the claims `sub, role, iat, nbf, exp, iss, aud, jti` (API.md)
//! and `sid`, the login (refresh-token family) the token belongs to, signed with exactly
//! one algorithm. Verification pins that algorithm, the issuer and the audience, requires
//! every time claim, allows 30 s of clock skew, and refuses a lifetime (`exp - iat`) longer
//! than the configured one plus that skew, whatever key signed it; anything else is
//! [`AuthError::InvalidToken`]. During a key rotation a second, verification-only key (the
//! previous one) is tried after the current one, under the same rules, and only for
//! tokens issued before the rotation: once those have all expired it verifies nothing
//! more. It never signs.

mod verified;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::AuthError;
use crate::config::{AuthSettings, JwtAlgorithm, MIN_SECRET_BYTES};
use crate::domain::user::Role;
use verified::VerifiedTokens;

/// Clock skew tolerated on `exp` and `nbf` (API.md: 30 s at most).
pub const LEEWAY_SECS: u64 = 30;

/// The wire claims. Private: callers see [`AccessClaims`].
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    role: String,
    iat: u64,
    nbf: u64,
    exp: u64,
    iss: String,
    aud: String,
    jti: String,
    sid: String,
}

/// What a verified access token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessClaims {
    /// The user's id.
    pub user_id: i64,
    /// The role granted when the token was issued.
    pub role: Role,
    /// Unique token id.
    pub token_id: String,
    /// The login (refresh-token family) the token was issued for.
    pub session_id: String,
    /// Expiry, seconds since the Unix epoch.
    pub expires_at: u64,
}

/// The key being rotated out: verifies tokens issued before the rotation, never signs.
struct PreviousKey {
    key: DecodingKey,
    /// The rotation instant (`auth.jwt_rotated_at`), seconds since the Unix epoch.
    rotated_at: u64,
    /// Whether the "previous key no longer needed" warning was logged.
    retired_logged: AtomicBool,
}

/// A freshly issued access token.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The compact JWT.
    pub token: SecretString,
    /// Seconds until it expires.
    pub expires_in: u64,
}

/// Signing and verification keys with the rules they enforce.
pub struct TokenKeys {
    algorithm: Algorithm,
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// The key being rotated out: verifies, never signs.
    previous: Option<PreviousKey>,
    issuer: String,
    audience: String,
    ttl_secs: u64,
    /// The verification rules, built once.
    validation: Validation,
    /// Tokens that passed them, so a repeated token is not verified again.
    verified: VerifiedTokens,
}

/// The rules every token is verified by: the algorithm, issuer and audience pinned, every
/// time claim required, [`LEEWAY_SECS`] of clock skew.
fn validation(algorithm: Algorithm, issuer: &str, audience: &str) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub", "sid"]);
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.leeway = LEEWAY_SECS;
    validation
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys")
            .field("algorithm", &self.algorithm)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("has_previous_key", &self.previous.is_some())
            .finish_non_exhaustive()
    }
}

impl TokenKeys {
    /// The keys `auth` configures. With HS256 and no `auth.jwt_secret` (development and
    /// test only; validation refuses it in production) a random secret is made, so tokens
    /// end with the process.
    ///
    /// # Errors
    /// A short secret, or key files that cannot be read or parsed (the message names the
    /// setting, never the key).
    pub fn from_settings(auth: &AuthSettings) -> anyhow::Result<Self> {
        let ttl = auth.access_ttl_secs;
        match auth.jwt_algorithm {
            JwtAlgorithm::Hs256 => {
                let keys = if let Some(secret) = &auth.jwt_secret {
                    Self::hs256(secret, &auth.issuer, &auth.audience, ttl)?
                } else {
                    tracing::warn!(
                        "auth.jwt_secret is not set: signing with a random key; tokens end \
                         with this process"
                    );
                    let random = URL_SAFE_NO_PAD.encode(super::secret::random_bytes::<48>()?);
                    Self::hs256(
                        &SecretString::from(random),
                        &auth.issuer,
                        &auth.audience,
                        ttl,
                    )?
                };
                match &auth.jwt_previous_secret {
                    Some(previous) => keys.with_previous_secret(previous, rotated_at(auth)?),
                    None => Ok(keys),
                }
            }
            JwtAlgorithm::EdDsa | JwtAlgorithm::Rs256 => {
                let read = |path: Option<&PathBuf>, setting: &str| -> anyhow::Result<Vec<u8>> {
                    let path = path.with_context(|| format!("{setting} must be set"))?;
                    std::fs::read(path).with_context(|| format!("reading {setting}"))
                };
                let private = read(
                    auth.jwt_private_key_file.as_ref(),
                    "auth.jwt_private_key_file",
                )?;
                let public = read(
                    auth.jwt_public_key_file.as_ref(),
                    "auth.jwt_public_key_file",
                )?;
                let algorithm = if auth.jwt_algorithm == JwtAlgorithm::EdDsa {
                    Algorithm::EdDSA
                } else {
                    Algorithm::RS256
                };
                let keys = Self::key_pair(
                    algorithm,
                    &private,
                    &public,
                    &auth.issuer,
                    &auth.audience,
                    ttl,
                )?;
                match &auth.jwt_previous_public_key_file {
                    Some(path) => {
                        let previous = std::fs::read(path)
                            .context("reading auth.jwt_previous_public_key_file")?;
                        keys.with_previous_public_key(&previous, rotated_at(auth)?)
                    }
                    None => Ok(keys),
                }
            }
        }
    }

    /// EdDSA (Ed25519) or RS256 keys from PEM: a PKCS#8 private key and its SPKI public
    /// key. Other services can verify tokens with the public key alone.
    ///
    /// # Errors
    /// Another algorithm, or keys that do not parse or do not belong together.
    pub fn key_pair(
        algorithm: Algorithm,
        private_pem: &[u8],
        public_pem: &[u8],
        issuer: &str,
        audience: &str,
        ttl_secs: u64,
    ) -> anyhow::Result<Self> {
        let (encoding, decoding) = match algorithm {
            Algorithm::EdDSA => (
                EncodingKey::from_ed_pem(private_pem),
                DecodingKey::from_ed_pem(public_pem),
            ),
            Algorithm::RS256 => (
                EncodingKey::from_rsa_pem(private_pem),
                DecodingKey::from_rsa_pem(public_pem),
            ),
            _ => anyhow::bail!("auth.jwt_algorithm: key files are for EdDSA and RS256 only"),
        };
        let keys = Self {
            algorithm,
            encoding: encoding.map_err(|_| {
                anyhow::anyhow!(
                    "auth.jwt_private_key_file is not a PEM private key for {algorithm:?}"
                )
            })?,
            decoding: decoding.map_err(|_| {
                anyhow::anyhow!(
                    "auth.jwt_public_key_file is not a PEM public key for {algorithm:?}"
                )
            })?,
            previous: None,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            ttl_secs,
            validation: validation(algorithm, issuer, audience),
            verified: VerifiedTokens::new(LEEWAY_SECS),
        };
        // Catch a mismatched pair at start-up rather than at the first request.
        let probe = keys
            .issue(0, Role::Viewer, "probe")
            .context("signing a probe token")?;
        keys.verify(probe.token.expose_secret()).map_err(|_| {
            anyhow::anyhow!(
                "auth.jwt_public_key_file does not verify tokens signed with auth.jwt_private_key_file"
            )
        })?;
        Ok(keys)
    }

    /// These keys, also accepting HS256 tokens signed with `previous` (the secret being
    /// rotated out; at least 32 bytes) and issued before `rotated_at`. Tokens are still
    /// signed with the current secret.
    ///
    /// # Errors
    /// Keys that are not HS256, a previous secret shorter than [`MIN_SECRET_BYTES`], or the
    /// current secret again; the message names the setting, never the secret.
    pub fn with_previous_secret(
        self,
        previous: &SecretString,
        rotated_at: DateTime<Utc>,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(
            self.algorithm == Algorithm::HS256,
            "auth.jwt_previous_secret is for HS256 only"
        );
        let bytes = previous.expose_secret().as_bytes();
        anyhow::ensure!(
            bytes.len() >= MIN_SECRET_BYTES,
            "auth.jwt_previous_secret must be at least {MIN_SECRET_BYTES} bytes"
        );
        self.with_previous(
            DecodingKey::from_secret(bytes),
            rotated_at,
            "auth.jwt_previous_secret",
        )
    }

    /// Adds `key` as the previous key after checking that it is not the current one (it
    /// must not verify a token the current key signs).
    fn with_previous(
        mut self,
        key: DecodingKey,
        rotated_at: DateTime<Utc>,
        setting: &str,
    ) -> anyhow::Result<Self> {
        let probe = self
            .issue(0, Role::Viewer, "probe")
            .context("signing a probe token")?;
        anyhow::ensure!(
            decode::<Claims>(probe.token.expose_secret(), &key, &self.validation).is_err(),
            "{setting} must differ from the current key"
        );
        let rotated_at = u64::try_from(rotated_at.timestamp()).unwrap_or_default();
        let retires_at = rotated_at + self.ttl_secs + LEEWAY_SECS;
        tracing::info!(
            auth.jwt_rotated_at = rotated_at,
            auth.previous_key_retires_at = retires_at,
            "auth: also accepting access tokens signed with the previous key before the rotation"
        );
        self.previous = Some(PreviousKey {
            key,
            rotated_at,
            retired_logged: AtomicBool::new(false),
        });
        Ok(self)
    }

    /// These keys, also accepting tokens signed by the private key whose PEM (SPKI) public
    /// key is `previous_pem` (the pair being rotated out), with the same algorithm, and
    /// issued before `rotated_at`.
    ///
    /// # Errors
    /// HS256 keys, a PEM that is not a public key for this algorithm, or the current
    /// public key again.
    pub fn with_previous_public_key(
        self,
        previous_pem: &[u8],
        rotated_at: DateTime<Utc>,
    ) -> anyhow::Result<Self> {
        let algorithm = self.algorithm;
        let decoding = match algorithm {
            Algorithm::EdDSA => DecodingKey::from_ed_pem(previous_pem),
            Algorithm::RS256 => DecodingKey::from_rsa_pem(previous_pem),
            _ => anyhow::bail!("auth.jwt_previous_public_key_file is for EdDSA and RS256 only"),
        };
        let key = decoding.map_err(|_| {
            anyhow::anyhow!(
                "auth.jwt_previous_public_key_file is not a PEM public key for {algorithm:?}"
            )
        })?;
        self.with_previous(key, rotated_at, "auth.jwt_previous_public_key_file")
    }

    /// The signing algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Access-token lifetime in seconds.
    pub fn ttl_secs(&self) -> u64 {
        self.ttl_secs
    }

    /// HS256 keys from the UTF-8 bytes of `secret` (API.md), which must be at least 32
    /// bytes long.
    ///
    /// # Errors
    /// A secret shorter than [`MIN_SECRET_BYTES`]; the message never contains it.
    pub fn hs256(
        secret: &SecretString,
        issuer: &str,
        audience: &str,
        ttl_secs: u64,
    ) -> anyhow::Result<Self> {
        let bytes = secret.expose_secret().as_bytes();
        anyhow::ensure!(
            bytes.len() >= MIN_SECRET_BYTES,
            "auth.jwt_secret must be at least {MIN_SECRET_BYTES} bytes"
        );
        Ok(Self {
            algorithm: Algorithm::HS256,
            encoding: EncodingKey::from_secret(bytes),
            decoding: DecodingKey::from_secret(bytes),
            previous: None,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            ttl_secs,
            validation: validation(Algorithm::HS256, issuer, audience),
            verified: VerifiedTokens::new(LEEWAY_SECS),
        })
    }

    /// Issues a token for `user_id` with `role` in the login `session_id`, valid from now
    /// for the configured lifetime.
    ///
    /// # Errors
    /// [`AuthError::Signing`] if signing fails (a misconfigured key).
    pub fn issue(
        &self,
        user_id: i64,
        role: Role,
        session_id: &str,
    ) -> Result<IssuedToken, AuthError> {
        let now = unix_now();
        let claims = Claims {
            sub: user_id.to_string(),
            role: role.as_str().to_owned(),
            iat: now,
            nbf: now,
            exp: now + self.ttl_secs,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            jti: uuid::Uuid::new_v4().to_string(),
            sid: session_id.to_owned(),
        };
        let token = encode(&Header::new(self.algorithm), &claims, &self.encoding)
            .map_err(|e| AuthError::Signing(e.into()))?;
        Ok(IssuedToken {
            token: SecretString::from(token),
            expires_in: self.ttl_secs,
        })
    }

    /// Verifies a compact JWT and returns its claims.
    ///
    /// # Errors
    /// [`AuthError::InvalidToken`] for any token that is not ours, current and intact.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, AuthError> {
        let now = unix_now();
        if let Some(claims) = self.verified.get(token, now) {
            return Ok(claims);
        }
        let validation = &self.validation;
        // The previous key gets exactly the same validation: only the key differs. It is
        // tried only for a signature the current key does not make: a malformed, expired
        // or otherwise invalid token is not verified a second time.
        let claims = match decode::<Claims>(token, &self.decoding, validation) {
            Ok(data) => data.claims,
            Err(error) if *error.kind() == ErrorKind::InvalidSignature => {
                self.verify_with_previous(token, now)?
            }
            Err(_) => return Err(AuthError::InvalidToken),
        };
        // A token signed with a real key may still claim a lifetime this service never
        // issues (API.md): refused, whichever key signed it.
        if claims.exp.saturating_sub(claims.iat) > self.ttl_secs + LEEWAY_SECS {
            return Err(AuthError::InvalidToken);
        }
        let user_id = claims.sub.parse().map_err(|_| AuthError::InvalidToken)?;
        let role = Role::parse("role", &claims.role).map_err(|_| AuthError::InvalidToken)?;
        let verified = AccessClaims {
            user_id,
            role,
            token_id: claims.jti,
            session_id: claims.sid,
            expires_at: claims.exp,
        };
        self.verified.put(token, &verified, claims.nbf, now);
        Ok(verified)
    }

    /// The claims of a token the previous key signed before the rotation, while such
    /// tokens can still be current; once they have all expired the previous key verifies
    /// nothing, and one warning says it can be removed.
    fn verify_with_previous(&self, token: &str, now: u64) -> Result<Claims, AuthError> {
        let previous = self.previous.as_ref().ok_or(AuthError::InvalidToken)?;
        if now > previous.rotated_at + self.ttl_secs + LEEWAY_SECS {
            if !previous.retired_logged.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "auth: every token the previous key signed has expired; it verifies nothing \
                     more: remove auth.jwt_previous_secret / auth.jwt_previous_public_key_file \
                     and auth.jwt_rotated_at"
                );
            }
            return Err(AuthError::InvalidToken);
        }
        let claims = decode::<Claims>(token, &previous.key, &self.validation)
            .map_err(|_| AuthError::InvalidToken)?
            .claims;
        if claims.iat >= previous.rotated_at {
            return Err(AuthError::InvalidToken);
        }
        Ok(claims)
    }
}

/// `auth.jwt_rotated_at`, which validation requires with a previous key.
fn rotated_at(auth: &AuthSettings) -> anyhow::Result<DateTime<Utc>> {
    auth.jwt_rotated_at
        .context("auth.jwt_rotated_at must be set when a previous key is configured")
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const SECRET: &str = "test-only secret that is at least 32 bytes long";

    fn keys() -> TokenKeys {
        TokenKeys::hs256(
            &SecretString::from(SECRET.to_owned()),
            "starsongs",
            "starsongs-api",
            900,
        )
        .unwrap()
    }

    /// A rotation instant just ahead, so tokens issued now count as issued before it.
    fn in_a_second() -> DateTime<Utc> {
        Utc::now() + chrono::Duration::seconds(1)
    }

    fn sign(header: &Header, claims: &serde_json::Value, secret: &str) -> String {
        encode(header, claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
    }

    fn claims(overrides: serde_json::Value) -> serde_json::Value {
        let now = unix_now();
        let mut base = json!({
            "sub": "7", "role": "editor", "iat": now, "nbf": now, "exp": now + 900,
            "iss": "starsongs", "aud": "starsongs-api", "jti": "t-1", "sid": "s-1"
        });
        for (key, value) in overrides.as_object().unwrap() {
            if value.is_null() {
                base.as_object_mut().unwrap().remove(key);
            } else {
                base[key] = value.clone();
            }
        }
        base
    }

    #[test]
    fn issued_tokens_verify_with_all_claims() {
        let keys = keys();

        let issued = keys.issue(42, Role::Admin, "s-1").unwrap();
        let verified = keys.verify(issued.token.expose_secret()).unwrap();

        assert_eq!((verified.user_id, verified.role), (42, Role::Admin));
        assert_eq!(issued.expires_in, 900);
        let payload = issued
            .token
            .expose_secret()
            .split('.')
            .nth(1)
            .unwrap()
            .to_owned();
        let decoded: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        for claim in [
            "sub", "role", "iat", "nbf", "exp", "iss", "aud", "jti", "sid",
        ] {
            assert!(decoded.get(claim).is_some(), "{claim} missing");
        }
    }

    #[test]
    fn hostile_tokens_are_rejected() {
        let keys = keys();
        let now = unix_now();
        let hs256 = Header::new(Algorithm::HS256);
        let unsigned = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(claims(json!({})).to_string())
        );
        let good = sign(&hs256, &claims(json!({})), SECRET);
        // The baseline is now among the verified tokens: its signature on other claims
        // (`tampered role claim`) must still be refused.
        assert!(
            keys.verify(&good).is_ok(),
            "the untampered baseline must verify"
        );
        let (head, rest) = good.split_once('.').unwrap();
        let (_, signature) = rest.split_once('.').unwrap();
        let escalated = format!(
            "{head}.{}.{signature}",
            URL_SAFE_NO_PAD.encode(claims(json!({"role": "admin"})).to_string())
        );
        let cases = [
            ("alg none", unsigned),
            (
                "other secret",
                sign(
                    &hs256,
                    &claims(json!({})),
                    "another secret of at least 32 bytes!!",
                ),
            ),
            (
                "other algorithm, same secret",
                sign(&Header::new(Algorithm::HS512), &claims(json!({})), SECRET),
            ),
            (
                "expired beyond leeway",
                sign(&hs256, &claims(json!({"exp": now - 31})), SECRET),
            ),
            (
                "not yet valid",
                sign(&hs256, &claims(json!({"nbf": now + 120})), SECRET),
            ),
            (
                "no exp",
                sign(&hs256, &claims(json!({"exp": null})), SECRET),
            ),
            (
                "wrong issuer",
                sign(&hs256, &claims(json!({"iss": "evil"})), SECRET),
            ),
            (
                "wrong audience",
                sign(&hs256, &claims(json!({"aud": "other-api"})), SECRET),
            ),
            (
                "unknown role",
                sign(&hs256, &claims(json!({"role": "root"})), SECRET),
            ),
            (
                "non-numeric subject",
                sign(&hs256, &claims(json!({"sub": "admin"})), SECRET),
            ),
            ("tampered role claim", escalated),
            (
                "no session",
                sign(&hs256, &claims(json!({"sid": null})), SECRET),
            ),
            (
                "lifetime of 30 days",
                sign(&hs256, &claims(json!({"exp": now + 30 * 86_400})), SECRET),
            ),
            (
                "lifetime just over the ttl and skew",
                sign(&hs256, &claims(json!({"exp": now + 900 + 31})), SECRET),
            ),
            ("garbage", "not.a.jwt".to_owned()),
        ];

        for (name, token) in cases {
            assert!(
                matches!(keys.verify(&token), Err(AuthError::InvalidToken)),
                "{name} was accepted"
            );
        }
    }

    #[test]
    fn small_clock_skew_is_tolerated() {
        let keys = keys();
        let now = unix_now();
        let hs256 = Header::new(Algorithm::HS256);

        let just_expired = sign(&hs256, &claims(json!({"exp": now - 10})), SECRET);
        let almost_valid = sign(&hs256, &claims(json!({"nbf": now + 10})), SECRET);

        assert!(keys.verify(&just_expired).is_ok());
        assert!(keys.verify(&almost_valid).is_ok());
    }

    /// EdDSA keys from the fixture pair, issuer `i`, audience `a`, a minute's lifetime.
    fn eddsa_keys() -> TokenKeys {
        TokenKeys::key_pair(
            Algorithm::EdDSA,
            &fixture("ed25519-private.pem"),
            &fixture("ed25519-public.pem"),
            "i",
            "a",
            60,
        )
        .unwrap()
    }

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/fixtures/jwt/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn key_pairs_sign_with_their_algorithm_and_refuse_others() {
        let hs256_token = keys().issue(1, Role::Admin, "s-1").unwrap();
        for (algorithm, private, public) in [
            (
                Algorithm::EdDSA,
                "ed25519-private.pem",
                "ed25519-public.pem",
            ),
            (Algorithm::RS256, "rsa-private.pem", "rsa-public.pem"),
        ] {
            let keys = TokenKeys::key_pair(
                algorithm,
                &fixture(private),
                &fixture(public),
                "starsongs",
                "starsongs-api",
                900,
            )
            .unwrap();

            let issued = keys.issue(9, Role::Editor, "s-1").unwrap();
            let header = jsonwebtoken::decode_header(issued.token.expose_secret()).unwrap();
            assert_eq!(header.alg, algorithm);
            assert_eq!(
                keys.verify(issued.token.expose_secret()).unwrap().user_id,
                9
            );
            assert!(
                keys.verify(hs256_token.token.expose_secret()).is_err(),
                "{algorithm:?} keys accepted an HS256 token"
            );
        }
    }

    #[test]
    fn public_keys_are_not_usable_as_hmac_secrets() {
        // Algorithm confusion: an attacker signs HS256 with the public key's bytes.
        let public = fixture("rsa-public.pem");
        let keys = TokenKeys::key_pair(
            Algorithm::RS256,
            &fixture("rsa-private.pem"),
            &public,
            "starsongs",
            "starsongs-api",
            900,
        )
        .unwrap();
        let forged = encode(
            &Header::new(Algorithm::HS256),
            &claims(json!({})),
            &EncodingKey::from_secret(&public),
        )
        .unwrap();

        assert!(matches!(keys.verify(&forged), Err(AuthError::InvalidToken)));
    }

    #[test]
    fn mismatched_key_pairs_are_refused_at_start() {
        let result = TokenKeys::key_pair(
            Algorithm::EdDSA,
            &fixture("ed25519-private.pem"),
            &fixture("rsa-public.pem"),
            "i",
            "a",
            60,
        );

        assert!(result.is_err());
    }

    #[test]
    fn short_secrets_are_refused_without_echoing_them() {
        let error = TokenKeys::hs256(&SecretString::from("short-secret".to_owned()), "i", "a", 60)
            .unwrap_err()
            .to_string();

        assert!(error.contains("auth.jwt_secret"));
        assert!(!error.contains("short-secret"));
    }

    #[test]
    fn the_previous_secret_verifies_but_never_signs() {
        let old = keys().issue(5, Role::Editor, "s-1").unwrap();
        let new_secret = SecretString::from("the new secret, also at least 32 bytes".to_owned());
        let rotating = TokenKeys::hs256(&new_secret, "starsongs", "starsongs-api", 900)
            .unwrap()
            .with_previous_secret(&SecretString::from(SECRET.to_owned()), in_a_second())
            .unwrap();
        let rotated = TokenKeys::hs256(&new_secret, "starsongs", "starsongs-api", 900).unwrap();
        let now = unix_now();
        let hs256 = Header::new(Algorithm::HS256);

        let issued = rotating.issue(6, Role::Viewer, "s-1").unwrap();

        assert_eq!(
            rotating.verify(old.token.expose_secret()).unwrap().user_id,
            5
        );
        assert!(rotated.verify(old.token.expose_secret()).is_err());
        assert!(
            rotated.verify(issued.token.expose_secret()).is_ok(),
            "new tokens must be signed with the current secret"
        );
        assert!(keys().verify(issued.token.expose_secret()).is_err());
        // The previous key gets every strict check the current one does.
        for (name, token) in [
            (
                "expired",
                sign(&hs256, &claims(json!({"exp": now - 31})), SECRET),
            ),
            (
                "wrong issuer",
                sign(&hs256, &claims(json!({"iss": "evil"})), SECRET),
            ),
            (
                "wrong audience",
                sign(&hs256, &claims(json!({"aud": "other"})), SECRET),
            ),
            (
                "other algorithm",
                sign(&Header::new(Algorithm::HS512), &claims(json!({})), SECRET),
            ),
        ] {
            assert!(
                matches!(rotating.verify(&token), Err(AuthError::InvalidToken)),
                "{name} was accepted with the previous secret"
            );
        }
    }

    #[test]
    fn short_previous_secrets_and_wrong_algorithms_are_refused() {
        let short = keys()
            .with_previous_secret(
                &SecretString::from("short-previous".to_owned()),
                in_a_second(),
            )
            .unwrap_err()
            .to_string();
        let eddsa = eddsa_keys();

        assert!(short.contains("auth.jwt_previous_secret"), "{short}");
        assert!(!short.contains("short-previous"), "{short}");
        assert!(
            keys()
                .with_previous_public_key(&fixture("ed25519-public.pem"), in_a_second())
                .is_err()
        );
        assert!(
            eddsa
                .with_previous_public_key(&fixture("rsa-public.pem"), in_a_second())
                .is_err()
        );
    }

    #[test]
    fn the_previous_public_key_verifies_the_old_pairs_tokens() {
        let pair = |private: &str, public: &str| {
            TokenKeys::key_pair(
                Algorithm::EdDSA,
                &fixture(private),
                &fixture(public),
                "starsongs",
                "starsongs-api",
                900,
            )
            .unwrap()
        };
        let old = pair(
            "ed25519-previous-private.pem",
            "ed25519-previous-public.pem",
        )
        .issue(3, Role::Admin, "s-1")
        .unwrap();
        let rotating = pair("ed25519-private.pem", "ed25519-public.pem")
            .with_previous_public_key(&fixture("ed25519-previous-public.pem"), in_a_second())
            .unwrap();
        let rotated = pair("ed25519-private.pem", "ed25519-public.pem");

        assert_eq!(
            rotating.verify(old.token.expose_secret()).unwrap().user_id,
            3
        );
        assert!(rotated.verify(old.token.expose_secret()).is_err());
        assert!(
            rotating
                .verify(
                    keys()
                        .issue(3, Role::Admin, "s-1")
                        .unwrap()
                        .token
                        .expose_secret()
                )
                .is_err(),
            "an HS256 token must not pass as EdDSA"
        );
    }

    #[test]
    fn a_lifetime_up_to_the_ttl_and_skew_is_accepted() {
        let keys = keys();
        let now = unix_now();

        let longest = sign(
            &Header::new(Algorithm::HS256),
            &claims(json!({"exp": now + 900 + 30})),
            SECRET,
        );

        assert!(keys.verify(&longest).is_ok());
    }

    /// Keys with a new secret, and [`SECRET`] as the previous one, rotated `secs` ago.
    fn rotating_since(secs: i64) -> TokenKeys {
        let new_secret = SecretString::from("the new secret, also at least 32 bytes".to_owned());
        TokenKeys::hs256(&new_secret, "starsongs", "starsongs-api", 900)
            .unwrap()
            .with_previous_secret(
                &SecretString::from(SECRET.to_owned()),
                Utc::now() - chrono::Duration::seconds(secs),
            )
            .unwrap()
    }

    #[test]
    fn the_previous_key_verifies_only_tokens_issued_before_the_rotation() {
        let now = unix_now();
        let hs256 = Header::new(Algorithm::HS256);
        let rotating = rotating_since(60);
        let before = sign(
            &hs256,
            &claims(json!({"iat": now - 120, "nbf": now - 120, "exp": now + 700})),
            SECRET,
        );
        // Minted with the old key after the switch: whoever still holds it is not us.
        let after = sign(&hs256, &claims(json!({})), SECRET);

        assert!(rotating.verify(&before).is_ok());
        assert!(matches!(
            rotating.verify(&after),
            Err(AuthError::InvalidToken)
        ));
    }

    #[test]
    fn the_previous_key_verifies_nothing_once_its_tokens_have_expired() {
        let now = unix_now();
        // 900 s lifetime + 30 s skew: every token the old key signed before this is gone.
        let rotating = rotating_since(931);
        // Even a token whose own claims would still pass.
        let old = sign(
            &Header::new(Algorithm::HS256),
            &claims(json!({"iat": now - 1000, "nbf": now - 1000, "exp": now + 10})),
            SECRET,
        );

        assert!(matches!(
            rotating.verify(&old),
            Err(AuthError::InvalidToken)
        ));
    }

    #[test]
    fn the_previous_key_may_not_be_the_current_one() {
        let same = keys()
            .with_previous_secret(&SecretString::from(SECRET.to_owned()), in_a_second())
            .unwrap_err()
            .to_string();
        let eddsa = eddsa_keys()
            .with_previous_public_key(&fixture("ed25519-public.pem"), in_a_second())
            .unwrap_err()
            .to_string();

        assert!(same.contains("must differ"), "{same}");
        assert!(!same.contains(SECRET), "{same}");
        assert!(eddsa.contains("must differ"), "{eddsa}");
    }
}
