//! Accounts: username, email and password rules, roles, and the stored user.
//!
//! No composition rules for passwords (NIST SP 800-63B): length 12–128 and not equal to the
//! username or email.

use std::fmt;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};

use super::ids::UserId;
use super::list::{SortField, SortKind, SortValue, Sortable};
use super::validation::{FieldError, ValidationErrors};

/// Longest email accepted (RFC 5321 path limit).
pub const MAX_EMAIL_CHARS: usize = 254;
/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longest password accepted (bounds hashing cost).
pub const MAX_PASSWORD_CHARS: usize = 128;

/// A role, ordered by power: viewer < editor < admin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Reads the catalog.
    Viewer,
    /// Reads and changes the catalog.
    Editor,
    /// Everything, including accounts and cascading deletes.
    Admin,
}

impl Role {
    /// The role's name on the wire and in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Editor => "editor",
            Self::Admin => "admin",
        }
    }

    /// Parses a role name; `field` names it in the error.
    ///
    /// # Errors
    /// A [`FieldError`] for anything but viewer, editor or admin.
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        match raw {
            "viewer" => Ok(Self::Viewer),
            "editor" => Ok(Self::Editor),
            "admin" => Ok(Self::Admin),
            _ => Err(FieldError::new(field, "must be viewer, editor or admin")),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether `raw` follows the username rule: 3–32 characters of `[A-Za-z0-9_.-]`.
fn is_username(raw: &str) -> bool {
    (3..=32).contains(&raw.len())
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// A username: 3–32 characters of `[A-Za-z0-9_.-]`. Unique regardless of case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    /// Validates a raw username.
    ///
    /// # Errors
    /// A [`FieldError`] on `username`.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        if is_username(raw) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(FieldError::new(
                "username",
                "must be 3-32 characters of letters, digits, `_`, `.` or `-`",
            ))
        }
    }

    /// The username as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-folded form that uniqueness and lookups use.
    pub fn key(&self) -> UsernameKey {
        UsernameKey::fold(&self.0)
    }
}

/// The case-folded form of a presented username, the one place case folding of usernames
/// happens: unique keys, lookups and failed-login counters all use it, on every backend.
///
/// Only a name that could be a valid [`Username`] is kept as text; any other (too short or
/// long, or with a character outside `[A-Za-z0-9_.-]`: a NUL byte, a control character,
/// non-ASCII) is kept as its digest, so junk input can neither grow a table's rows nor
/// reach a database as text it refuses (PostgreSQL refuses a NUL byte in `text`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UsernameKey(String);

impl UsernameKey {
    /// Folds any presented name, valid or not (ASCII lowercase: valid usernames are ASCII).
    /// A name that cannot be a valid username becomes `sha256:<hex>` of its folded form:
    /// 71 bytes of `[0-9a-z:]`, which no valid username folds to (they have no `:`).
    pub fn fold(raw: &str) -> Self {
        use sha2::{Digest, Sha256};
        let folded = raw.to_ascii_lowercase();
        if is_username(raw) {
            Self(folded)
        } else {
            let hex: String = Sha256::digest(folded.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            Self(format!("sha256:{hex}"))
        }
    }

    /// The key text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// [`Email::parse`]'s syntax as a regular expression, for the OpenAPI document: a dot-atom
/// local part of 1–64 characters (no dot first, last or twice in a row: the lookahead keeps
/// the length bound expressible), `@`, and two or more host-name labels (1–63 letters,
/// digits or `-`, not at either end of a label).
pub const EMAIL_PATTERN: &str = r"^(?![^@]*\.\.)[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]([A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{0,62}[A-Za-z0-9!#$%&'*+/=?^_`{|}~-])?@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$";

/// Whether `raw` matches [`EMAIL_PATTERN`] (written out: the crate has no regex engine).
fn is_plain_address(raw: &str) -> bool {
    let Some((local, domain)) = raw.split_once('@') else {
        return false;
    };
    let is_atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~-".contains(c);
    let is_label = |label: &str| {
        (1..=63).contains(&label.len())
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    (1..=64).contains(&local.len())
        && local
            .split('.')
            .all(|atom| !atom.is_empty() && atom.chars().all(is_atext))
        && domain.split('.').count() >= 2
        && domain.split('.').all(is_label)
}

/// A syntactically valid email address. Unique regardless of case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Validates a raw address: [`EMAIL_PATTERN`] (no padding, display names, quoted local
    /// parts or address literals), at most 254 characters, local part at most 64.
    ///
    /// # Errors
    /// A [`FieldError`] on `email`.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        if raw.chars().count() <= MAX_EMAIL_CHARS
            && is_plain_address(raw)
            && email_address::EmailAddress::is_valid(raw)
        {
            Ok(Self(raw.to_owned()))
        } else {
            Err(FieldError::new("email", "must be a valid email address"))
        }
    }

    /// The address as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-folded form that uniqueness uses.
    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }
}

/// A password that meets the policy; never printed (its `Debug` is redacted).
#[derive(Debug, Clone)]
pub struct Password(SecretString);

impl Password {
    /// Checks the policy: 12–128 characters, not the username or the email (ignoring case).
    ///
    /// # Errors
    /// A [`FieldError`] on `password`; the message never contains the password.
    pub fn parse(raw: &SecretString, username: &str, email: &str) -> Result<Self, FieldError> {
        Self::check_length(raw)?;
        let lowered = raw.expose_secret().to_lowercase();
        if lowered == username.to_lowercase() || lowered == email.trim().to_lowercase() {
            return Err(FieldError::new(
                "password",
                "must not be the same as the username or email",
            ));
        }
        Ok(Self(raw.clone()))
    }

    /// The part of the policy that needs no account: 12–128 characters. A password that
    /// fails it is never hashed.
    ///
    /// # Errors
    /// A [`FieldError`] on `password`; the message never contains the password.
    pub fn check_length(raw: &SecretString) -> Result<(), FieldError> {
        let length = raw.expose_secret().chars().count();
        if length < MIN_PASSWORD_CHARS {
            return Err(FieldError::new(
                "password",
                format!("must be at least {MIN_PASSWORD_CHARS} characters"),
            ));
        }
        if length > MAX_PASSWORD_CHARS {
            return Err(FieldError::new(
                "password",
                format!("must be at most {MAX_PASSWORD_CHARS} characters"),
            ));
        }
        Ok(())
    }

    /// The secret, for hashing.
    pub fn secret(&self) -> &SecretString {
        &self.0
    }
}

/// A new account, validated; the password is hashed by the caller before storing.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Login name.
    pub username: Username,
    /// Contact address.
    pub email: Email,
    /// The password, not yet hashed.
    pub password: Password,
    /// Role granted.
    pub role: Role,
}

impl NewUser {
    /// Validates every field of a new account, collecting every problem.
    ///
    /// # Errors
    /// Every field problem found.
    pub fn parse(
        username: &str,
        email: &str,
        password: &SecretString,
        role: Role,
    ) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        let username_ok = errors.check(Username::parse(username));
        let email_ok = errors.check(Email::parse(email));
        let password_ok = errors.check(Password::parse(password, username, email));
        match (username_ok, email_ok, password_ok) {
            (Some(username), Some(email), Some(password)) => Ok(Self {
                username,
                email,
                password,
                role,
            }),
            _ => Err(errors),
        }
    }
}

/// A stored account (without its password hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Database-assigned id.
    pub id: UserId,
    /// Login name as registered.
    pub username: String,
    /// Contact address.
    pub email: String,
    /// Role.
    pub role: Role,
    /// Whether the account may sign in.
    pub is_active: bool,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
    /// When the account was last changed.
    pub updated_at: DateTime<Utc>,
}

/// An account with its stored password hash: what signing in checks a password against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserWithPassword {
    /// The account.
    pub user: User,
    /// Its Argon2 password hash (PHC string).
    pub password_hash: String,
}

/// Changes to an account (admin PATCH): absent fields are kept.
#[derive(Debug, Clone, Default)]
pub struct UserChanges {
    /// New email address.
    pub email: Option<Email>,
    /// New role.
    pub role: Option<Role>,
    /// Activate or deactivate.
    pub is_active: Option<bool>,
    /// New password, not yet hashed.
    pub password: Option<Password>,
}

impl UserChanges {
    /// Whether the change takes rights away: the sessions of the account end and cached
    /// grants are dropped.
    pub fn revokes_sessions(&self) -> bool {
        self.is_active == Some(false) || self.password.is_some() || self.role.is_some()
    }
}

/// An account change as sent (admin PATCH), not yet validated: `None` keeps a field,
/// `Some(None)` is an explicit `null`, which no field accepts.
#[derive(Debug, Clone, Copy, Default)]
pub struct UserPatch<'a> {
    /// New email address.
    pub email: Option<Option<&'a str>>,
    /// New role name.
    pub role: Option<Option<&'a str>>,
    /// Activate or deactivate.
    pub is_active: Option<Option<bool>>,
    /// New password.
    pub password: Option<Option<&'a SecretString>>,
}

impl UserPatch<'_> {
    /// Whether the change, once it parses, takes rights away (as
    /// [`UserChanges::revokes_sessions`] of what [`Self::parse`] returns).
    pub fn revokes_sessions(&self) -> bool {
        matches!(self.is_active, Some(Some(false)))
            || matches!(self.password, Some(Some(_)))
            || matches!(self.role, Some(Some(_)))
    }

    /// The new password as sent, when it fits the length rule: the one to hash before
    /// the change is applied ([`Self::parse`] accepts no other).
    pub fn password_to_hash(&self) -> Option<&SecretString> {
        match self.password {
            Some(Some(raw)) if Password::check_length(raw).is_ok() => Some(raw),
            _ => None,
        }
    }

    /// Validates the change of `current`, collecting every field problem. A new password
    /// must not be the account's username, nor its email (the new one when it changes too).
    ///
    /// # Errors
    /// Every field problem found, in the order email, role, is_active, password.
    pub fn parse(&self, current: &User) -> Result<UserChanges, ValidationErrors> {
        fn required<T>(field: &str, value: Option<T>) -> Result<T, FieldError> {
            value.ok_or_else(|| FieldError::new(field, "must not be null"))
        }
        let mut errors = ValidationErrors::new();
        let mut changes = UserChanges::default();
        if let Some(email) = self.email {
            changes.email = errors.check(required("email", email).and_then(Email::parse));
        }
        if let Some(role) = self.role {
            changes.role =
                errors.check(required("role", role).and_then(|r| Role::parse("role", r)));
        }
        if let Some(is_active) = self.is_active {
            changes.is_active = errors.check(required("is_active", is_active));
        }
        if let Some(password) = self.password {
            let email = changes
                .email
                .as_ref()
                .map_or(current.email.as_str(), Email::as_str);
            changes.password = errors.check(
                required("password", password)
                    .and_then(|p| Password::parse(p, &current.username, email)),
            );
        }
        errors.into_result(|| changes)
    }
}

/// User sort fields (admin list).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserSortField {
    /// `id`
    Id,
    /// `username` (ignoring case)
    Username,
    /// `created_at`
    CreatedAt,
}

impl SortField for UserSortField {
    const ALL: &'static [Self] = &[Self::Id, Self::Username, Self::CreatedAt];
    const ID: Self = Self::Id;

    fn name(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::Username => "username",
            Self::CreatedAt => "created_at",
        }
    }

    fn kind(self) -> SortKind {
        match self {
            Self::Id => SortKind::Int,
            Self::Username => SortKind::Text,
            Self::CreatedAt => SortKind::Timestamp,
        }
    }
}

impl Sortable<UserSortField> for User {
    fn sort_value(&self, field: UserSortField) -> SortValue {
        match field {
            UserSortField::Id => SortValue::Int(self.id.get()),
            UserSortField::Username => {
                SortValue::Text(UsernameKey::fold(&self.username).as_str().to_owned())
            }
            UserSortField::CreatedAt => SortValue::Timestamp(self.created_at),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(text: &str) -> SecretString {
        SecretString::from(text.to_owned())
    }

    /// The stored viewer `ziggy` (`ziggy@example.com`).
    fn ziggy() -> User {
        User {
            id: UserId::try_from(1).unwrap(),
            username: "ziggy".into(),
            email: "ziggy@example.com".into(),
            role: Role::Viewer,
            is_active: true,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn a_user_patch_collects_every_problem_and_checks_the_password_against_the_account() {
        let current = ziggy();
        let current_email = secret("Ziggy@Example.com");
        let errors = UserPatch {
            email: Some(None),
            role: Some(Some("root")),
            is_active: Some(None),
            password: Some(Some(&current_email)),
        }
        .parse(&current)
        .unwrap_err();
        let fields: Vec<&str> = errors.errors().iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["email", "role", "is_active", "password"]);

        let new_email = secret("new@example.com");
        let errors = UserPatch {
            email: Some(Some("new@example.com")),
            password: Some(Some(&new_email)),
            ..UserPatch::default()
        }
        .parse(&current)
        .unwrap_err();
        assert_eq!(errors.errors()[0].field, "password");

        let changes = UserPatch {
            role: Some(Some("editor")),
            is_active: Some(Some(false)),
            ..UserPatch::default()
        }
        .parse(&current)
        .unwrap();
        assert_eq!(changes.role, Some(Role::Editor));
        assert_eq!(changes.is_active, Some(false));
        assert!(changes.email.is_none() && changes.password.is_none());
    }

    #[test]
    fn a_user_patch_knows_before_parsing_what_to_hash_and_whether_sessions_end() {
        let current = ziggy();
        let good = secret("a long enough passphrase");
        let short = secret("short");
        let same = secret("ZIGGY@example.com");
        let mut checked = 0;
        for email in [None, Some(Some("new@example.com"))] {
            for role in [None, Some(Some("editor"))] {
                for is_active in [None, Some(Some(true)), Some(Some(false))] {
                    for (may_fail, password) in [
                        (false, None),
                        (false, Some(Some(&good))),
                        (true, Some(Some(&short))),
                        (true, Some(Some(&same))),
                    ] {
                        let patch = UserPatch {
                            email,
                            role,
                            is_active,
                            password,
                        };
                        let hashed = patch.password_to_hash().is_some();
                        match patch.parse(&current) {
                            Ok(changes) => {
                                checked += 1;
                                assert_eq!(patch.revokes_sessions(), changes.revokes_sessions());
                                assert_eq!(hashed, changes.password.is_some(), "{patch:?}");
                            }
                            Err(_) => assert!(may_fail, "{patch:?}"),
                        }
                    }
                }
            }
        }
        // Every patch without the short password parses, except the current email as the
        // password while the email stays.
        assert_eq!(checked, 2 * 3 * (2 + 3));
        assert!(
            UserPatch {
                password: Some(Some(&same)),
                ..UserPatch::default()
            }
            .password_to_hash()
            .is_some(),
            "only the length is known before the account is read"
        );
    }

    #[test]
    fn username_rules() {
        for (raw, ok) in [
            ("bob", true),
            ("a.b-c_d", true),
            (&"x".repeat(32), true),
            ("ab", false),
            (&"x".repeat(33), false),
            ("has space", false),
            ("ünï", false),
            ("semi;colon", false),
        ] {
            assert_eq!(Username::parse(raw).is_ok(), ok, "{raw}");
        }
        assert_eq!(Username::parse("Admin").unwrap().key().as_str(), "admin");
    }

    #[test]
    fn names_that_cannot_be_usernames_fold_to_a_digest_of_safe_characters() {
        let long = "x".repeat(65);
        for raw in [
            "a\0b",
            "a\u{1}b",
            "ab",
            "has space",
            "ünï",
            "a:b",
            "",
            long.as_str(),
        ] {
            let key = UsernameKey::fold(raw);

            let hex = key.as_str().strip_prefix("sha256:").unwrap_or_default();
            assert_eq!(hex.len(), 64, "{raw:?} folded to {key:?}");
            assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()), "{key:?}");
        }
        assert_eq!(UsernameKey::fold("A\0B"), UsernameKey::fold("a\0b"));
        assert_ne!(UsernameKey::fold("a\0b"), UsernameKey::fold("a\0c"));
        assert_eq!(UsernameKey::fold("Ziggy.Star").as_str(), "ziggy.star");
    }

    proptest::proptest! {
        #[test]
        fn every_folded_key_is_short_printable_ascii(raw in "\\PC{0,80}|[\\x00-\\x1f a-zA-Z._-]{0,40}") {
            let key = UsernameKey::fold(&raw);

            proptest::prop_assert!(key.as_str().len() <= 71);
            proptest::prop_assert!(key.as_str().bytes().all(|b| b.is_ascii_graphic()));
            proptest::prop_assert_eq!(key.as_str().starts_with("sha256:"), Username::parse(&raw).is_err());
        }
    }

    #[test]
    fn email_rules() {
        for (raw, ok) in [
            ("ziggy@example.com", true),
            ("first.last+tag@mail.example.co", true),
            ("o'brien@a-b.example", true),
            (" ziggy@example.com ", false),
            ("ziggy@localhost", false),
            ("first..last@example.com", false),
            (".first@example.com", false),
            ("ziggy@-example.com", false),
            ("ziggy@example..com", false),
            ("\"quoted\"@example.com", false),
            ("ziggy@[127.0.0.1]", false),
            ("zíggy@example.com", false),
            ("no-at-sign", false),
            ("two@@example.com", false),
            ("Ziggy <ziggy@example.com>", false),
            ("", false),
        ] {
            assert_eq!(Email::parse(raw).is_ok(), ok, "{raw}");
        }
        assert!(Email::parse(&format!("{}@example.com", "a".repeat(64))).is_ok());
        assert!(Email::parse(&format!("{}@example.com", "a".repeat(65))).is_err());
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(Email::parse(&long).is_err());
    }

    #[test]
    fn password_policy_is_length_and_not_the_identity() {
        let cases = [
            ("correct horse battery", true),
            ("short", false),
            (&"p".repeat(12), true),
            (&"p".repeat(11), false),
            (&"p".repeat(128), true),
            (&"p".repeat(129), false),
            ("ziggystardust", false),
            ("ZIGGY@example.com", false),
            ("aaaaaaaaaaaa", true),
        ];
        for (raw, ok) in cases {
            let result = Password::parse(&secret(raw), "ziggystardust", "ziggy@example.com");
            assert_eq!(result.is_ok(), ok, "{raw}");
            if let Err(error) = result {
                assert!(
                    !error.message.contains(raw),
                    "the message leaks the password"
                );
            }
        }
    }

    #[test]
    fn new_user_collects_every_problem() {
        let errors = NewUser::parse("x", "nope", &secret("short"), Role::Viewer).unwrap_err();

        let fields: Vec<_> = errors.errors().iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["username", "email", "password"]);
    }

    #[test]
    fn roles_are_ordered_by_power() {
        assert!(Role::Viewer < Role::Editor && Role::Editor < Role::Admin);
        assert_eq!(Role::parse("role", "editor"), Ok(Role::Editor));
        assert!(Role::parse("role", "root").is_err());
    }
}
