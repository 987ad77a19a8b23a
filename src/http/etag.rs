//! Entity tags and the `If-Match` / `If-None-Match` preconditions (RFC 9110 §8.8.3, §13.1).
//!
//! A tag is derived from the resource id and its row version, which every successful
//! modification increments, so it changes even when the content stays the same.

use std::fmt;

use crate::domain::artist::Artist;
use crate::domain::song::Song;
use crate::domain::version::ExpectedVersions;

/// A strong entity tag, kept with its quotes (`"7.3"`), ready for the `ETag` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityTag(String);

impl EntityTag {
    /// The tag of version `version` of the resource with id `id`.
    pub fn for_version(id: i64, version: i64) -> Self {
        Self(format!("\"{id}.{version}\""))
    }

    /// The header value, quotes included.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EntityTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A resource whose representation has an entity tag.
pub trait Versioned {
    /// The current tag of the resource.
    fn etag(&self) -> EntityTag;
}

impl Versioned for Artist {
    fn etag(&self) -> EntityTag {
        EntityTag::for_version(self.id.get(), self.version)
    }
}

impl Versioned for Song {
    fn etag(&self) -> EntityTag {
        EntityTag::for_version(self.id.get(), self.version)
    }
}

/// A parsed `If-Match` or `If-None-Match` header value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precondition {
    /// `*`: any current representation.
    Any,
    /// A list of entity tags as sent, each with its quotes and optional `W/` prefix.
    Tags(Vec<String>),
}

impl Precondition {
    /// Parses a header value: `*` or a comma-separated list of (possibly weak) quoted tags
    /// (RFC 9110 `#entity-tag`: optional white space, empty list elements ignored, and a
    /// tag's characters are visible ASCII but `"`, a comma included). Returns `None` for a
    /// value that is neither.
    pub fn parse(raw: &str) -> Option<Self> {
        let is_space = |c: char| c == ' ' || c == '\t';
        let raw = raw.trim_matches(is_space);
        if raw == "*" {
            return Some(Self::Any);
        }
        let mut tags = Vec::new();
        let mut rest = raw;
        loop {
            // Separators: white space and empty list elements.
            rest = rest.trim_start_matches(|c: char| is_space(c) || c == ',');
            if rest.is_empty() {
                break;
            }
            let (weak, opaque) = match rest.strip_prefix("W/") {
                Some(after) => ("W/", after),
                None => ("", rest),
            };
            let inner = opaque.strip_prefix('"')?;
            let close = inner.find('"')?;
            let tag = &inner[..close];
            if !tag
                .chars()
                .all(|c| c == '\t' || c == ' ' || ('!'..='~').contains(&c))
            {
                return None;
            }
            tags.push(format!("{weak}\"{tag}\""));
            rest = inner[close + 1..].trim_start_matches(is_space);
            // After a tag: the end, or a comma.
            if !rest.is_empty() && !rest.starts_with(',') {
                return None;
            }
        }
        if tags.is_empty() {
            None
        } else {
            Some(Self::Tags(tags))
        }
    }

    /// Strong comparison, as `If-Match` requires: weak tags never match.
    pub fn matches_strong(&self, current: &EntityTag) -> bool {
        match self {
            Self::Any => true,
            Self::Tags(tags) => tags.iter().any(|tag| tag == current.as_str()),
        }
    }

    /// The versions of resource `id` that this `If-Match` accepts, for a store's
    /// conditional write (`... where id = $1 and version = any($2)`): `None` for `*`, which
    /// any current version satisfies. Weak tags and tags of other resources never match a
    /// strong comparison, so they add no version; an empty list matches nothing.
    pub fn expected_versions(&self, id: i64) -> Option<ExpectedVersions> {
        match self {
            Self::Any => None,
            Self::Tags(tags) => Some(ExpectedVersions::new(
                tags.iter()
                    .filter_map(|tag| {
                        let (tag_id, version) =
                            tag.strip_prefix('"')?.strip_suffix('"')?.split_once('.')?;
                        (tag_id.parse::<i64>().ok()? == id)
                            .then(|| version.parse::<i64>().ok())
                            .flatten()
                    })
                    .collect(),
            )),
        }
    }

    /// Weak comparison, as `If-None-Match` requires: `W/"x"` matches `"x"`.
    pub fn matches_weak(&self, current: &EntityTag) -> bool {
        match self {
            Self::Any => true,
            Self::Tags(tags) => tags
                .iter()
                .any(|tag| tag.strip_prefix("W/").unwrap_or(tag) == current.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_changes_with_version_and_id() {
        assert_eq!(EntityTag::for_version(7, 3).as_str(), "\"7.3\"");
        assert_ne!(EntityTag::for_version(7, 3), EntityTag::for_version(7, 4));
        assert_ne!(EntityTag::for_version(7, 3), EntityTag::for_version(8, 3));
    }

    #[test]
    fn parse_accepts_lists_star_and_weak_tags() {
        assert_eq!(Precondition::parse(" * "), Some(Precondition::Any));
        assert_eq!(
            Precondition::parse(r#""1.1", W/"1.2""#),
            Some(Precondition::Tags(vec![
                "\"1.1\"".into(),
                "W/\"1.2\"".into()
            ]))
        );
        assert_eq!(
            Precondition::parse(",\t\"a,b\" , ,W/\"c\",,"),
            Some(Precondition::Tags(vec!["\"a,b\"".into(), "W/\"c\"".into()]))
        );
        for bad in [
            "",
            "1.1",
            "\"unterminated",
            "W/",
            "\"a\"b\"",
            ",",
            "W/ \"a\"",
            "\"a\" \"b\"",
            "*, \"a\"",
            "\"\u{e9}\"",
        ] {
            assert_eq!(Precondition::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn expected_versions_keep_only_strong_tags_of_this_resource() {
        let precondition = Precondition::parse(r#""7.3", W/"7.4", "8.5", "7.x", "7.9""#).unwrap();

        assert_eq!(
            precondition.expected_versions(7),
            Some(ExpectedVersions::new(vec![3, 9]))
        );
        assert_eq!(
            precondition.expected_versions(1),
            Some(ExpectedVersions::new(vec![]))
        );
        assert_eq!(Precondition::Any.expected_versions(7), None);
    }

    #[test]
    fn a_tag_repeated_thousands_of_times_is_one_version() {
        let header = vec![r#""7.3""#; 3000].join(", ") + r#", "7.1", "7.3""#;
        let precondition = Precondition::parse(&header).unwrap();

        let expected = precondition.expected_versions(7).unwrap();

        assert_eq!(expected.versions(), [1, 3]);
        assert!(expected.admits(3) && expected.admits(1) && !expected.admits(2));
    }

    #[test]
    fn strong_comparison_ignores_weak_tags() {
        let current = EntityTag::for_version(1, 2);
        let weak = Precondition::parse(r#"W/"1.2""#).unwrap();
        let strong = Precondition::parse(r#""1.1", "1.2""#).unwrap();

        assert!(!weak.matches_strong(&current));
        assert!(weak.matches_weak(&current));
        assert!(strong.matches_strong(&current));
        assert!(
            !Precondition::parse(r#""1.1""#)
                .unwrap()
                .matches_strong(&current)
        );
        assert!(Precondition::Any.matches_strong(&current));
    }
}
