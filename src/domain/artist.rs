//! Artists: the name rule, the values a write carries, and the stored resource.

use chrono::{DateTime, Utc};

use super::ids::ArtistId;
use super::list::{SortField, SortKind, SortValue, Sortable, parse_search};
use super::validation::{FieldError, ValidationErrors, short_text};

/// An artist name: trimmed, 1–64 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtistName(String);

impl ArtistName {
    /// Validates and trims a raw name.
    ///
    /// # Errors
    /// A [`FieldError`] on `name` describing the rule broken.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        short_text("name", raw).map(Self)
    }

    /// The validated name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Everything needed to create or fully replace an artist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewArtist {
    /// The artist's name.
    pub name: ArtistName,
}

impl NewArtist {
    /// Validates a create or replace request.
    ///
    /// # Errors
    /// Every field problem found.
    pub fn parse(name: &str) -> Result<Self, ValidationErrors> {
        Ok(Self {
            name: ArtistName::parse(name)?,
        })
    }
}

/// A JSON merge patch of an artist: `None` keeps the current value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArtistChanges {
    /// New name, if given.
    pub name: Option<ArtistName>,
}

impl ArtistChanges {
    /// Validates a merge patch. `name: Some(None)` stands for an explicit JSON `null`,
    /// which the required name cannot take.
    ///
    /// # Errors
    /// Every field problem found.
    pub fn parse(name: Option<Option<&str>>) -> Result<Self, ValidationErrors> {
        let name = match name {
            None => None,
            Some(None) => return Err(FieldError::new("name", "must not be null").into()),
            Some(Some(raw)) => Some(ArtistName::parse(raw)?),
        };
        Ok(Self { name })
    }

    /// The full replacement that results from applying this patch to `current`.
    pub fn apply(&self, current: &Artist) -> NewArtist {
        NewArtist {
            name: self
                .name
                .clone()
                .unwrap_or_else(|| ArtistName(current.name.clone())),
        }
    }
}

/// A stored artist.
#[derive(Debug, Clone, PartialEq)]
pub struct Artist {
    /// Database-assigned id.
    pub id: ArtistId,
    /// Current name.
    pub name: String,
    /// Row version, incremented by every successful modification.
    pub version: i64,
    /// When the artist was created.
    pub created_at: DateTime<Utc>,
    /// When the artist was last modified.
    pub updated_at: DateTime<Utc>,
}

impl Sortable<ArtistSortField> for Artist {
    fn sort_value(&self, field: ArtistSortField) -> SortValue {
        match field {
            ArtistSortField::Id => SortValue::Int(self.id.get()),
            ArtistSortField::Name => SortValue::Text(self.name.clone()),
            ArtistSortField::CreatedAt => SortValue::Timestamp(self.created_at),
        }
    }
}

/// An artist's id and name, as embedded in songs by `include=artist`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtistSummary {
    /// The artist's id.
    pub id: ArtistId,
    /// The artist's name.
    pub name: String,
}

/// Artist sort fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArtistSortField {
    /// `id`
    Id,
    /// `name`
    Name,
    /// `created_at`
    CreatedAt,
}

impl SortField for ArtistSortField {
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

/// Filters of the artist list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArtistFilter {
    /// Case-folded substring of the name.
    pub q: Option<String>,
}

impl ArtistFilter {
    /// Validates the artist filters, recording every problem in `errors`.
    pub fn parse(q: Option<&str>, errors: &mut ValidationErrors) -> Self {
        Self {
            q: errors.check(parse_search(q)).flatten(),
        }
    }

    /// Canonical text form, used to bind cursors to their filters.
    pub fn canonical(&self) -> String {
        format!("q={}", self.q.as_deref().unwrap_or(""))
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_null_name_is_rejected_and_absent_name_is_kept() {
        let current = Artist {
            id: ArtistId::try_from(1).unwrap(),
            name: "Queen".into(),
            version: 1,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        };

        assert_eq!(
            ArtistChanges::parse(Some(None)).unwrap_err().errors()[0].message,
            "must not be null"
        );
        let kept = ArtistChanges::parse(None).unwrap().apply(&current);
        assert_eq!(kept.name.as_str(), "Queen");
        let renamed = ArtistChanges::parse(Some(Some(" Freddie ")))
            .unwrap()
            .apply(&current);
        assert_eq!(renamed.name.as_str(), "Freddie");
    }
}
