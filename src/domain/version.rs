//! The row versions a conditional write may replace: what an `If-Match` means to a store
//! (the header's grammar lives in `http::etag`).

/// The row versions a write may replace: what an `If-Match` means to a store. A write
/// whose row has another version changes nothing and fails with a precondition error.
///
/// The versions are distinct and in ascending order, however often a client repeated a
/// tag: an `If-Match` of thousands of copies of one tag is one version, not thousands of
/// bound parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedVersions(Vec<i64>);

impl ExpectedVersions {
    /// Exactly these versions (repeats dropped).
    pub fn new(mut versions: Vec<i64>) -> Self {
        versions.sort_unstable();
        versions.dedup();
        Self(versions)
    }

    /// The accepted versions (possibly none), distinct, ascending.
    pub fn versions(&self) -> &[i64] {
        &self.0
    }

    /// Whether `version` is accepted.
    pub fn admits(&self, version: i64) -> bool {
        self.0.binary_search(&version).is_ok()
    }
}
