//! Field-level validation errors and the text rules shared by names and titles.

use std::fmt;

use chrono::{Datelike, NaiveDate};

/// One problem with one input field, as reported to the API user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path of the field (`name`, `release_date`, `page`).
    pub field: String,
    /// Lowercase sentence describing the rule that was broken.
    pub message: String,
}

impl FieldError {
    /// Builds a field error.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Every problem found in one input, collected so the client can fix them all at once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationErrors(Vec<FieldError>);

impl ValidationErrors {
    /// An empty collection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a problem with `field`.
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    /// Records the error of a field parse, if any, and returns the parsed value.
    pub fn check<T>(&mut self, result: Result<T, FieldError>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.0.push(error);
                None
            }
        }
    }

    /// True when no problem was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The recorded problems, in the order they were found.
    pub fn errors(&self) -> &[FieldError] {
        &self.0
    }

    /// `Ok(value)` when nothing was recorded, the collected errors otherwise.
    ///
    /// # Errors
    /// Returns `self` when at least one problem was recorded.
    pub fn into_result<T>(self, value: impl FnOnce() -> T) -> Result<T, ValidationErrors> {
        if self.is_empty() {
            Ok(value())
        } else {
            Err(self)
        }
    }
}

impl From<FieldError> for ValidationErrors {
    fn from(error: FieldError) -> Self {
        Self(vec![error])
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", error.field, error.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

/// Maximum length of names and titles, in Unicode scalar values (API.md).
pub const MAX_TEXT_CHARS: usize = 64;

/// [`short_text`] as a regular expression (ECMA-262 and Python `re` alike), for the OpenAPI
/// document: any padding of non-control white space, then 1–64 characters that start and
/// end with a non-space and contain no control character (`\x00-\x1F`, `\x7F-\x9F`).
pub const SHORT_TEXT_PATTERN: &str = r"^[^\S\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F]([^\x00-\x1F\x7F-\x9F]{0,62}[^\s\x00-\x1F\x7F-\x9F])?[^\S\x00-\x1F\x7F-\x9F]*$";

/// Trims `raw` and checks the shared rule for names and titles: 1–64 Unicode scalar values
/// once trimmed, and no control characters anywhere. [`SHORT_TEXT_PATTERN`] states the same
/// rule for the OpenAPI document.
///
/// # Errors
/// A [`FieldError`] on `field` describing the first rule broken.
pub fn short_text(field: &str, raw: &str) -> Result<String, FieldError> {
    // Control characters are looked for in the text as sent, padding included, so that the
    // rule is exactly the OpenAPI document's pattern: a tab or a newline at either end is a
    // control character, not padding.
    if raw.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if trimmed.chars().count() > MAX_TEXT_CHARS {
        return Err(FieldError::new(
            field,
            format!("must be at most {MAX_TEXT_CHARS} characters"),
        ));
    }
    Ok(trimmed.to_owned())
}

/// Folds text for case-insensitive substring search, identically on every backend.
pub fn search_key(text: &str) -> String {
    text.to_lowercase()
}

/// The years a date may have (API.md): 0001–9999, what every backend stores. SQL Server's
/// `date` starts at 0001-01-01; the form `YYYY-MM-DD` ends at 9999.
pub const YEARS: std::ops::RangeInclusive<i32> = 1..=9999;

/// Whether every backend can store `date` (its year is in [`YEARS`]).
pub fn is_storable_date(date: NaiveDate) -> bool {
    YEARS.contains(&date.year())
}

/// Parses a `YYYY-MM-DD` calendar date of a year in [`YEARS`]; `field` names it in the
/// error.
///
/// # Errors
/// A [`FieldError`] on `field` for anything but an existing date in that exact form and
/// range.
pub fn parse_date(field: &str, raw: &str) -> Result<NaiveDate, FieldError> {
    let is_shaped = raw.len() == 10
        && raw.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    is_shaped
        .then(|| NaiveDate::parse_from_str(raw, "%Y-%m-%d").ok())
        .flatten()
        .filter(|date| is_storable_date(*date))
        .ok_or_else(|| {
            FieldError::new(
                field,
                "must be a valid date in the form YYYY-MM-DD, from 0001-01-01 to 9999-12-31",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_boundaries() {
        let cases: &[(&str, Result<&str, &str>)] = &[
            ("Queen", Ok("Queen")),
            ("  padded  ", Ok("padded")),
            ("", Err("must not be empty")),
            ("   ", Err("must not be empty")),
            (&"a".repeat(64), Ok(&"a".repeat(64))),
            (&"a".repeat(65), Err("must be at most 64 characters")),
            (&"é".repeat(64), Ok(&"é".repeat(64))),
            ("tab\there", Err("must not contain control characters")),
            ("nul\0", Err("must not contain control characters")),
            ("bell\u{7}x", Err("must not contain control characters")),
            ("del\u{7f}x", Err("must not contain control characters")),
            ("c1\u{85}x", Err("must not contain control characters")),
            (
                "\tpadded with a tab",
                Err("must not contain control characters"),
            ),
            (
                "newline at the end\n",
                Err("must not contain control characters"),
            ),
            (&format!("  {}  ", "a".repeat(64)), Ok(&"a".repeat(64))),
            ("'); drop table artist; --", Ok("'); drop table artist; --")),
        ];
        for (input, expected) in cases {
            let got = short_text("name", input);
            match expected {
                Ok(value) => assert_eq!(got.as_deref(), Ok(*value), "input {input:?}"),
                Err(message) => assert_eq!(
                    got,
                    Err(FieldError::new("name", *message)),
                    "input {input:?}"
                ),
            }
        }
    }

    #[test]
    fn errors_display_lists_every_field() {
        let mut errors = ValidationErrors::new();
        errors.add("title", "must not be empty");
        errors.add("url", "must be an absolute http or https URL");

        assert_eq!(
            errors.to_string(),
            "title: must not be empty; url: must be an absolute http or https URL"
        );
    }

    proptest::proptest! {
        #[test]
        fn short_text_accepts_only_valid_text(raw in "\\PC{0,80}|[\\x00-\\x1f a-z]{0,10}") {
            match short_text("name", &raw) {
                Ok(text) => {
                    proptest::prop_assert_eq!(text.as_str(), raw.trim());
                    proptest::prop_assert!((1..=64).contains(&text.chars().count()));
                    proptest::prop_assert!(!text.chars().any(char::is_control));
                }
                Err(error) => proptest::prop_assert_eq!(error.field, "name"),
            }
        }
    }
}
