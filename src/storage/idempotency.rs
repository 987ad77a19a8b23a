//! What a store needs to create a resource at most once per idempotency key and replay
//! the original answer. The saved response is opaque to the store: `http` renders it.

/// The response a creation produced, kept verbatim so a retry gets it again. Opaque to
/// the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedResponse {
    /// HTTP status.
    pub status: u16,
    /// JSON body.
    pub body: String,
    /// `Location` header, if any.
    pub location: Option<String>,
    /// `ETag` header, if any.
    pub etag: Option<String>,
}

/// What a store needs to make one creation idempotent.
pub struct Idempotency<'a, T> {
    /// Who asked (keys are scoped per principal).
    pub principal: &'a str,
    /// The client's key.
    pub key: &'a str,
    /// Digest of the request (method, path and body) the key was first used with.
    pub fingerprint: &'a str,
    /// Renders the response for a newly created resource, to be saved with the key.
    pub render: &'a (dyn Fn(&T) -> SavedResponse + Send + Sync),
}

/// The outcome of an idempotent creation.
#[derive(Debug, Clone, PartialEq)]
pub enum Created<T> {
    /// Created now.
    New(T),
    /// The key was used before with the same request: the original response.
    Replayed(SavedResponse),
}
