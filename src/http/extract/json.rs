//! `ApiJson<T>`: a JSON body with precise rejections (400 syntax, 413 size, 415 media
//! type, 422 shape or type with the offending field named).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use std::fmt;

use serde::de::{self, DeserializeOwned, IgnoredAny, Unexpected, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::error::Category;

use crate::domain::validation::FieldError;
use crate::http::error::ApiError;

/// Media types accepted for request bodies.
const ACCEPTED: &str = "application/json or application/merge-patch+json";

/// A JSON request body deserialized into `T` (whose wire type denies unknown fields).
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers().get(header::CONTENT_TYPE)) {
            return Err(ApiError::unsupported_media_type(ACCEPTED));
        }
        parse(&read_body(req, state).await?).map(Self)
    }
}

/// The whole body, within `server.max_body_bytes` (413 beyond it).
///
/// # Errors
/// 413 for a body over the limit, 400 for one that cannot be read.
pub async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::from_status(StatusCode::PAYLOAD_TOO_LARGE)
        } else {
            ApiError::bad_request("The request body could not be read")
        }
    })
}

fn is_json(content_type: Option<&axum::http::HeaderValue>) -> bool {
    let Some(value) = content_type.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
        || essence.eq_ignore_ascii_case("application/merge-patch+json")
}

/// Parses a body: syntax errors are 400, shape and type errors are 422 naming the field.
///
/// # Errors
/// The `ApiError` the client should see.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Syntax first, over the whole body: deserializing into `T` stops at the first value
    // of the wrong type, so `[1, 2` would otherwise be a 422 type error rather than the
    // 400 API.md promises for anything that is not JSON.
    serde_json::from_slice::<IgnoredAny>(bytes).map_err(|error| not_json(&error))?;
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        match inner.classify() {
            Category::Data => ApiError::from(describe(&path, &inner.to_string())),
            Category::Syntax | Category::Eof | Category::Io => not_json(&inner),
        }
    })?;
    deserializer.end().map_err(|error| not_json(&error))?;
    Ok(value)
}

fn not_json(error: &serde_json::Error) -> ApiError {
    ApiError::bad_request(format!(
        "The request body is not valid JSON ({})",
        without_location(&error.to_string())
    ))
}

/// Turns serde's message into a client-facing field error without Rust type names.
fn describe(path: &str, message: &str) -> FieldError {
    let message = without_location(message);
    let field = if path.is_empty() || path == "." {
        "body"
    } else {
        path
    };
    let quoted = |text: &str| text.split('`').nth(1).map(str::to_owned);
    if let Some(rest) = message.strip_prefix("unknown field ") {
        // The path already ends with the unknown member.
        let field = if field == "body" {
            quoted(rest).unwrap_or_default()
        } else {
            field.to_owned()
        };
        return FieldError::new(field, "is not a known field");
    }
    if let Some(rest) = message.strip_prefix("missing field ") {
        let name = quoted(rest).unwrap_or_default();
        let field = if field == "body" {
            name
        } else {
            format!("{field}.{name}")
        };
        return FieldError::new(field, "is required");
    }
    let expected = message.rsplit("expected ").next().unwrap_or_default();
    let text = if expected.starts_with("struct") || expected.starts_with("a map") {
        "must be a JSON object"
    } else if expected.contains("timestamp") {
        "must be an RFC 3339 date-time"
    } else if expected.contains("string") {
        "must be a string"
    } else if expected.starts_with('i') || expected.starts_with('u') {
        "must be an integer in range"
    } else if expected.starts_with('f') {
        "must be a number"
    } else if expected.contains("bool") {
        "must be true or false"
    } else if message.starts_with("duplicate field") {
        "must appear only once"
    } else {
        "has the wrong type"
    };
    FieldError::new(field, text)
}

/// serde_json appends " at line L column C"; the position is noise for API users.
fn without_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// A JSON integer as JSON Schema (and so the OpenAPI document) defines one: any number with
/// no fractional part, so `5` and `5.0` alike; `5.5`, strings and out-of-range values are
/// refused as before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct JsonInteger(pub i64);

impl<'de> Deserialize<'de> for JsonInteger {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Integer;

        impl Visitor<'_> for Integer {
            type Value = JsonInteger;

            // "i64" keeps the client-facing message ("must be an integer in range").
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("i64")
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<JsonInteger, E> {
                Ok(JsonInteger(value))
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<JsonInteger, E> {
                i64::try_from(value)
                    .map(JsonInteger)
                    .map_err(|_| E::invalid_value(Unexpected::Unsigned(value), &self))
            }

            #[allow(clippy::cast_possible_truncation)]
            fn visit_f64<E: de::Error>(self, value: f64) -> Result<JsonInteger, E> {
                // 2^63 is exactly representable; anything below it with no fraction fits.
                if value.fract() == 0.0
                    && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&value)
                {
                    Ok(JsonInteger(value as i64))
                } else {
                    Err(E::invalid_type(Unexpected::Float(value), &self))
                }
            }
        }

        deserializer.deserialize_any(Integer)
    }
}

/// Deserializes a merge-patch member: absent stays `None` (with `#[serde(default)]`),
/// `null` becomes `Some(None)`, a value `Some(Some(v))`. Three lines do not justify a crate.
///
/// # Errors
/// The inner value's deserialization error.
pub fn double_option<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Input {
        name: String,
        count: Option<i64>,
    }

    fn fail(body: &str) -> (StatusCode, String) {
        let error = parse::<Input>(body.as_bytes()).unwrap_err();
        let response = axum::response::IntoResponse::into_response(error);
        let problem = response
            .extensions()
            .get::<crate::http::error::ProblemExtension>()
            .unwrap()
            .problem
            .clone();
        let field = problem
            .errors
            .first()
            .map(|e| format!("{}: {}", e.field, e.message));
        (response.status(), field.unwrap_or(problem.detail.clone()))
    }

    #[test]
    fn classifies_body_errors() {
        let cases = [
            (
                "{",
                StatusCode::BAD_REQUEST,
                "The request body is not valid JSON",
            ),
            (
                "",
                StatusCode::BAD_REQUEST,
                "The request body is not valid JSON",
            ),
            (
                r#"{"name": "a"} x"#,
                StatusCode::BAD_REQUEST,
                "The request body is not valid JSON",
            ),
            (
                "[1, 2",
                StatusCode::BAD_REQUEST,
                "The request body is not valid JSON",
            ),
            (
                r#"{"name": 1, "#,
                StatusCode::BAD_REQUEST,
                "The request body is not valid JSON",
            ),
            (
                r#"{"name": "a", "count": "x"} trailing"#,
                StatusCode::BAD_REQUEST,
                "The request body is not valid JSON",
            ),
            (
                "[]",
                StatusCode::UNPROCESSABLE_ENTITY,
                "body: must be a JSON object",
            ),
            ("{}", StatusCode::UNPROCESSABLE_ENTITY, "name: is required"),
            (
                r#"{"name": 123}"#,
                StatusCode::UNPROCESSABLE_ENTITY,
                "name: must be a string",
            ),
            (
                r#"{"name": "x", "id": 1}"#,
                StatusCode::UNPROCESSABLE_ENTITY,
                "id: is not a known field",
            ),
            (
                r#"{"name": "x", "count": 1e400}"#,
                StatusCode::BAD_REQUEST,
                "The request body is not valid JSON",
            ),
            (
                r#"{"name": "x", "count": 99999999999999999999}"#,
                StatusCode::UNPROCESSABLE_ENTITY,
                "count: must be an integer in range",
            ),
        ];
        for (body, status, start) in cases {
            let (got_status, text) = fail(body);
            assert_eq!(got_status, status, "{body}");
            assert!(text.starts_with(start), "{body}: {text}");
        }
    }

    #[test]
    fn json_integers_include_numbers_without_a_fraction() {
        let parse = |text: &str| serde_json::from_str::<JsonInteger>(text).map(|n| n.0);

        assert_eq!(parse("5").unwrap(), 5);
        assert_eq!(parse("5.0").unwrap(), 5);
        assert_eq!(parse("-7e2").unwrap(), -700);
        assert_eq!(parse("9223372036854775807").unwrap(), i64::MAX);
        for bad in [
            "5.5",
            "\"5\"",
            "null",
            "9223372036854775808",
            "1e19",
            "true",
        ] {
            let error = parse(bad).unwrap_err().to_string();
            assert!(error.contains("expected i64"), "{bad}: {error}");
        }
    }

    #[test]
    fn double_option_distinguishes_absent_from_null() {
        #[derive(Deserialize)]
        struct Patch {
            #[serde(default, deserialize_with = "double_option")]
            url: Option<Option<String>>,
        }

        let absent: Patch = serde_json::from_str("{}").unwrap();
        let null: Patch = serde_json::from_str(r#"{"url": null}"#).unwrap();
        let set: Patch = serde_json::from_str(r#"{"url": "x"}"#).unwrap();

        assert_eq!(absent.url, None);
        assert_eq!(null.url, Some(None));
        assert_eq!(set.url, Some(Some("x".into())));
    }
}
