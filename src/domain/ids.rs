//! Resource identifiers: positive integers that fit the database's 32-bit id columns.

use std::fmt;
use std::marker::PhantomData;

use super::validation::FieldError;

/// Largest id the API accepts (API.md: 1 to 2147483647).
pub const MAX_ID: i64 = i32::MAX as i64;

/// Message used for every id outside the accepted range.
pub const ID_RANGE_MESSAGE: &str = "must be an integer from 1 to 2147483647";

/// Identifier of a resource of kind `R` (an [`ArtistId`] is never accepted where a
/// [`SongId`] is expected): an integer from 1 to [`MAX_ID`].
pub struct Id<R> {
    raw: i64,
    kind: PhantomData<fn() -> R>,
}

/// The kinds of [`Id`].
pub mod kind {
    /// Artists.
    #[derive(Debug)]
    pub enum Artist {}
    /// Songs.
    #[derive(Debug)]
    pub enum Song {}
    /// Accounts.
    #[derive(Debug)]
    pub enum User {}
    /// API keys.
    #[derive(Debug)]
    pub enum ApiKey {}
}

/// Identifier of an artist.
pub type ArtistId = Id<kind::Artist>;
/// Identifier of a song.
pub type SongId = Id<kind::Song>;
/// Identifier of an account.
pub type UserId = Id<kind::User>;
/// Identifier of an API key.
pub type ApiKeyId = Id<kind::ApiKey>;

impl<R> Id<R> {
    /// The raw database value.
    pub fn get(self) -> i64 {
        self.raw
    }

    /// Checks that `raw` is within 1..=2147483647; `field` names it in the error.
    ///
    /// # Errors
    /// A [`FieldError`] on `field` when the value is out of range.
    pub fn parse(field: &str, raw: i64) -> Result<Self, FieldError> {
        Self::try_from(raw).map_err(|()| FieldError::new(field, ID_RANGE_MESSAGE))
    }
}

impl<R> TryFrom<i64> for Id<R> {
    type Error = ();

    fn try_from(raw: i64) -> Result<Self, ()> {
        if (1..=MAX_ID).contains(&raw) {
            Ok(Self {
                raw,
                kind: PhantomData,
            })
        } else {
            Err(())
        }
    }
}

// By hand rather than derived: a derive would require `R` itself to be `Copy`, `Eq`, ...
impl<R> Clone for Id<R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<R> Copy for Id<R> {}

impl<R> PartialEq for Id<R> {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

impl<R> Eq for Id<R> {}

impl<R> PartialOrd for Id<R> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl<R> Ord for Id<R> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.raw.cmp(&other.raw)
    }
}

impl<R> std::hash::Hash for Id<R> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.raw.hash(state);
    }
}

impl<R> fmt::Debug for Id<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.raw.fmt(f)
    }
}

impl<R> fmt::Display for Id<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.raw.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_range_boundaries() {
        for (raw, ok) in [
            (i64::MIN, false),
            (-1, false),
            (0, false),
            (1, true),
            (2_147_483_647, true),
            (2_147_483_648, false),
            (i64::MAX, false),
        ] {
            assert_eq!(ArtistId::try_from(raw).is_ok(), ok, "raw {raw}");
            assert_eq!(SongId::parse("artist_id", raw).is_ok(), ok, "raw {raw}");
        }
    }
}
