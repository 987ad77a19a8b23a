//! Credentials other than passwords: API keys, refresh-token records and the failed-login
//! rule. Secrets themselves are generated and digested in `auth::secret`; this module only
//! holds what is stored.

use chrono::{DateTime, Duration, Utc};

use super::ids::{ApiKeyId, UserId};
use super::list::{SortField, SortKind, SortValue, Sortable};
use super::user::Role;
use super::validation::{FieldError, ValidationErrors, search_key, short_text};

/// Failed logins for one username that trigger the lockout (API.md).
pub const MAX_LOGIN_FAILURES: u32 = 5;
/// The window in which failures are counted, and how long the lockout lasts after the
/// last failure.
pub const LOGIN_FAILURE_WINDOW: Duration = Duration::minutes(15);

/// The SHA-256 digest (lowercase hex) of a refresh token or API key: all the database
/// keeps of a secret, and how a presented secret is found.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SecretDigest(String);

impl SecretDigest {
    /// The digest of `secret`.
    pub fn of(secret: &str) -> Self {
        use sha2::{Digest, Sha256};
        Self(
            Sha256::digest(secret.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        )
    }

    /// A digest read back from storage.
    pub fn from_stored(hex: String) -> Self {
        Self(hex)
    }

    /// The hex text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A validated API key request: a name for people and a role (viewer or editor).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApiKey {
    /// Trimmed, 1–64 characters, no control characters.
    pub name: String,
    /// Viewer or editor; keys never carry admin.
    pub role: Role,
}

impl NewApiKey {
    /// Validates the name and role, collecting both problems.
    ///
    /// # Errors
    /// Every field problem found.
    pub fn parse(name: &str, role: &str) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        let name = errors.check(short_text("name", name));
        let role = errors.check(match Role::parse("role", role) {
            Ok(Role::Admin) | Err(_) => Err(FieldError::new("role", "must be viewer or editor")),
            Ok(role) => Ok(role),
        });
        match (name, role) {
            (Some(name), Some(role)) => Ok(Self { name, role }),
            _ => Err(errors),
        }
    }
}

/// A stored API key, without its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Database-assigned id.
    pub id: ApiKeyId,
    /// Name given at creation.
    pub name: String,
    /// The first characters of the key, to tell keys apart (not enough to use it).
    pub prefix: String,
    /// Role granted.
    pub role: Role,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// API key sort fields (admin list).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiKeySortField {
    /// `id`
    Id,
    /// `name` (ignoring case)
    Name,
    /// `created_at`
    CreatedAt,
}

impl SortField for ApiKeySortField {
    const ALL: &'static [Self] = &[Self::Id, Self::Name, Self::CreatedAt];
    const ID: Self = Self::Id;

    fn name(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::Name => "name",
            Self::CreatedAt => "created_at",
        }
    }

    fn kind(self) -> SortKind {
        match self {
            Self::Id => SortKind::Int,
            Self::Name => SortKind::Text,
            Self::CreatedAt => SortKind::Timestamp,
        }
    }
}

impl Sortable<ApiKeySortField> for ApiKey {
    fn sort_value(&self, field: ApiKeySortField) -> SortValue {
        match field {
            ApiKeySortField::Id => SortValue::Int(self.id.get()),
            ApiKeySortField::Name => SortValue::Text(search_key(&self.name)),
            ApiKeySortField::CreatedAt => SortValue::Timestamp(self.created_at),
        }
    }
}

/// A refresh token to store: the digest of the secret, never the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRefreshToken {
    /// Digest of the token.
    pub token_hash: SecretDigest,
    /// The login this token descends from.
    pub family_id: String,
    /// Owner.
    pub user_id: UserId,
    /// After this the token is refused.
    pub expires_at: DateTime<Utc>,
    /// When the login began (its password sign-in), copied to every token of the family:
    /// the login ends `auth.session_max_secs` after it, however often it is refreshed.
    pub session_started_at: DateTime<Utc>,
}

/// What exchanging a refresh token did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// The token was current: it is now spent and the new one is stored.
    Rotated {
        /// The owner's current account.
        user: super::user::User,
        /// The login (refresh family) the new token continues.
        family_id: String,
    },
    /// The token had been spent before: its whole family is now revoked.
    Reused {
        /// The revoked login.
        family_id: String,
    },
    /// Unknown, expired, revoked, past the login's maximum age, or the account is
    /// inactive or gone.
    Rejected,
}

/// The failed-login state of one username at one moment, or the outcome of claiming an
/// attempt (see `Store::claim_login_attempt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginGate {
    /// Attempts are allowed (when claiming: this attempt was counted and may be checked).
    Open,
    /// Locked until this instant (15 minutes after the last failure).
    LockedUntil(DateTime<Utc>),
}

impl LoginGate {
    /// The gate for `failures` failures whose last was at `last_failure`, seen at `now`.
    pub fn from_failures(failures: u32, last_failure: DateTime<Utc>, now: DateTime<Utc>) -> Self {
        let until = last_failure + LOGIN_FAILURE_WINDOW;
        if failures >= MAX_LOGIN_FAILURES && now < until {
            Self::LockedUntil(until)
        } else {
            Self::Open
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_carry_viewer_or_editor_only() {
        assert!(NewApiKey::parse("ci", "viewer").is_ok());
        assert!(NewApiKey::parse("ci", "editor").is_ok());
        for (name, role) in [
            ("ci", "admin"),
            ("ci", "root"),
            ("", "viewer"),
            ("a\u{7}", "viewer"),
        ] {
            assert!(NewApiKey::parse(name, role).is_err(), "{name:?} {role}");
        }
        let both = NewApiKey::parse(" ", "admin").unwrap_err();
        assert_eq!(both.errors().len(), 2);
    }

    #[test]
    fn the_gate_closes_at_five_failures_for_fifteen_minutes_after_the_last() {
        let last = Utc::now();
        let minute = Duration::minutes(1);

        assert_eq!(LoginGate::from_failures(4, last, last), LoginGate::Open);
        assert_eq!(
            LoginGate::from_failures(5, last, last + minute),
            LoginGate::LockedUntil(last + LOGIN_FAILURE_WINDOW)
        );
        assert_eq!(
            LoginGate::from_failures(9, last, last + LOGIN_FAILURE_WINDOW),
            LoginGate::Open
        );
    }
}
