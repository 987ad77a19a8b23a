//! Resource identifiers: positive integers that fit the database's 32-bit id columns.

use std::fmt;

use super::validation::FieldError;

/// Largest id the API accepts (API.md: 1 to 2147483647).
pub const MAX_ID: i64 = i32::MAX as i64;

/// Message used for every id outside the accepted range.
pub const ID_RANGE_MESSAGE: &str = "must be an integer from 1 to 2147483647";

fn in_range(raw: i64) -> Result<i64, ()> {
    if (1..=MAX_ID).contains(&raw) {
        Ok(raw)
    } else {
        Err(())
    }
}

/// Identifier of an artist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ArtistId(i64);

impl ArtistId {
    /// The raw database value.
    pub fn get(self) -> i64 {
        self.0
    }

    /// Checks that `raw` is within 1..=2147483647; `field` names it in the error.
    ///
    /// # Errors
    /// A [`FieldError`] on `field` when the value is out of range.
    pub fn parse(field: &str, raw: i64) -> Result<Self, FieldError> {
        Self::try_from(raw).map_err(|()| FieldError::new(field, ID_RANGE_MESSAGE))
    }
}

impl TryFrom<i64> for ArtistId {
    type Error = ();

    fn try_from(raw: i64) -> Result<Self, ()> {
        in_range(raw).map(Self)
    }
}

impl fmt::Display for ArtistId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Identifier of a song.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SongId(i64);

impl SongId {
    /// The raw database value.
    pub fn get(self) -> i64 {
        self.0
    }

    /// Checks that `raw` is within 1..=2147483647; `field` names it in the error.
    ///
    /// # Errors
    /// A [`FieldError`] on `field` when the value is out of range.
    pub fn parse(field: &str, raw: i64) -> Result<Self, FieldError> {
        Self::try_from(raw).map_err(|()| FieldError::new(field, ID_RANGE_MESSAGE))
    }
}

impl TryFrom<i64> for SongId {
    type Error = ();

    fn try_from(raw: i64) -> Result<Self, ()> {
        in_range(raw).map(Self)
    }
}

impl fmt::Display for SongId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Identifier of an account or an API key (admin routes): same range as catalog ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordId(i64);

impl RecordId {
    /// The raw database value.
    pub fn get(self) -> i64 {
        self.0
    }
}

impl TryFrom<i64> for RecordId {
    type Error = ();

    fn try_from(raw: i64) -> Result<Self, ()> {
        in_range(raw).map(Self)
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
