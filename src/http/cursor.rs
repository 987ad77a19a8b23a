//! Cursor tokens: the sort values of a page's last item, bound to the endpoint, order and
//! filters they were issued for, with a checksum so that a tampered or truncated token is
//! rejected (422) instead of silently seeking somewhere else.
//!
//! Format: `base64url(json) "." base64url(sha256(scope "\n" json)[..12])`. Cursors are not
//! secret and grant nothing: every value in them is bound as a query parameter.
//!
//! In the JSON, timestamps are RFC 3339 UTC text with microseconds and dates are ISO text;
//! floats are written as their shortest round-trip form and read back exactly (serde_json's
//! `float_roundtrip`), so a position never moves by an ULP.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use chrono::{DateTime, NaiveDate, Utc};

use crate::domain::list::{Sort, SortField, SortKind, SortValue};

/// Cursor text form of a timestamp (microseconds, the precision every backend stores).
const TIMESTAMP_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6fZ";
/// Cursor text form of a date.
const DATE_FORMAT: &str = "%Y-%m-%d";

/// Binds a cursor to one endpoint, order and filter set.
pub fn scope(endpoint: &str, sort: &str, filters: &str) -> String {
    format!("{endpoint}|{sort}|{filters}")
}

fn checksum(scope: &str, payload: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(scope.as_bytes());
    hasher.update(b"\n");
    hasher.update(payload);
    URL_SAFE_NO_PAD.encode(&hasher.finalize()[..12])
}

/// Encodes the position after an item with these sort values.
pub fn encode(scope: &str, values: &[SortValue]) -> String {
    let keys: Vec<Value> = values
        .iter()
        .map(|v| match v {
            SortValue::Int(i) => json!(i),
            SortValue::Float(f) => json!(f),
            SortValue::Text(t) => json!(t),
            SortValue::Timestamp(at) => json!(at.format(TIMESTAMP_FORMAT).to_string()),
            SortValue::Date(date) => json!(date.format(DATE_FORMAT).to_string()),
            SortValue::Null => Value::Null,
        })
        .collect();
    let payload = json!({ "v": 1, "k": keys }).to_string();
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(payload.as_bytes()),
        checksum(scope, payload.as_bytes())
    )
}

/// Decodes a cursor issued for `scope` under `sort`; `None` for anything else.
pub fn decode<F: SortField>(token: &str, scope: &str, sort: &Sort<F>) -> Option<Vec<SortValue>> {
    let (body, sum) = token.split_once('.')?;
    let payload = URL_SAFE_NO_PAD.decode(body).ok()?;
    if checksum(scope, &payload) != sum {
        return None;
    }
    let document: Value = serde_json::from_slice(&payload).ok()?;
    let keys = document.get("k")?.as_array()?;
    if keys.len() != sort.keys().len() {
        return None;
    }
    let values = keys
        .iter()
        .zip(sort.keys())
        .map(|(value, key)| match (key.field.kind(), value) {
            (_, Value::Null) => Some(SortValue::Null),
            (SortKind::Int, v) => v.as_i64().map(SortValue::Int),
            (SortKind::NullableFloat, v) => v.as_f64().map(SortValue::Float),
            (SortKind::Text, v) => v.as_str().map(|s| SortValue::Text(s.to_owned())),
            (SortKind::Timestamp, v) => DateTime::parse_from_rfc3339(v.as_str()?)
                .ok()
                .map(|at| SortValue::Timestamp(at.with_timezone(&Utc))),
            (SortKind::NullableDate, v) => NaiveDate::parse_from_str(v.as_str()?, DATE_FORMAT)
                .ok()
                .map(SortValue::Date),
        })
        .collect::<Option<Vec<_>>>()?;
    sort.admits(&values).then_some(values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::song::SongSortField;

    fn sort() -> Sort<SongSortField> {
        Sort::parse(Some("-distance,title")).unwrap()
    }

    fn values() -> Vec<SortValue> {
        vec![
            SortValue::Float(9_460_730_472_580.8),
            SortValue::Text("'39 \"quoted\" ✓".into()),
            SortValue::Int(5),
        ]
    }

    #[test]
    fn round_trips_exactly() {
        let scope = scope("songs", "-distance,title,id", "q=");
        let token = encode(&scope, &values());

        assert_eq!(decode(&token, &scope, &sort()), Some(values()));
        let with_null = vec![
            SortValue::Null,
            SortValue::Text("x".into()),
            SortValue::Int(1),
        ];
        assert_eq!(
            decode(&encode(&scope, &with_null), &scope, &sort()),
            Some(with_null)
        );
    }

    #[test]
    fn typed_values_and_full_precision_floats_round_trip() {
        let sort = Sort::<SongSortField>::parse(Some("created_at,release_date,distance")).unwrap();
        let scope = scope("songs", &sort.canonical(), "q=");
        let at = DateTime::parse_from_rfc3339("2026-11-30T23:59:59.123456Z")
            .unwrap()
            .to_utc();
        // Doubles whose shortest decimal form serde_json reads back one ULP off without
        // `float_roundtrip`.
        for distance in [
            0.1 + 0.2,
            2.225_073_858_507_201e-308,
            9_007_199_254_740_993.0,
        ] {
            let values = vec![
                SortValue::Timestamp(at),
                SortValue::Date(NaiveDate::from_ymd_opt(1969, 7, 11).unwrap()),
                SortValue::Float(distance),
                SortValue::Int(7),
            ];

            let decoded = decode(&encode(&scope, &values), &scope, &sort).unwrap();

            assert_eq!(decoded, values);
            let SortValue::Float(back) = decoded[2] else {
                panic!("not a float")
            };
            assert_eq!(back.to_bits(), distance.to_bits());
        }
    }

    #[test]
    fn rejects_other_scopes_and_tampering() {
        let scope_a = scope("songs", "-distance,title,id", "q=");
        let token = encode(&scope_a, &values());
        let (body, sum) = token.split_once('.').unwrap();
        let forged_body = URL_SAFE_NO_PAD.encode(r#"{"v":1,"k":[1.0,"a",999]}"#);

        assert_eq!(
            decode(
                &token,
                &scope("songs", "-distance,title,id", "q=x"),
                &sort()
            ),
            None
        );
        assert_eq!(
            decode(
                &token,
                &scope("artists", "-distance,title,id", "q="),
                &sort()
            ),
            None
        );
        assert_eq!(
            decode(&format!("{forged_body}.{sum}"), &scope_a, &sort()),
            None
        );
        assert_eq!(
            decode(&format!("{body}.AAAA{sum}"), &scope_a, &sort()),
            None
        );
        assert_eq!(decode(body, &scope_a, &sort()), None);
        assert_eq!(decode("", &scope_a, &sort()), None);
        assert_eq!(decode("!!!.???", &scope_a, &sort()), None);
    }

    #[test]
    fn rejects_values_of_the_wrong_kind() {
        let scope = scope("songs", "-distance,title,id", "q=");
        let wrong = vec![
            SortValue::Text("x".into()),
            SortValue::Text("y".into()),
            SortValue::Int(1),
        ];

        assert_eq!(decode(&encode(&scope, &wrong), &scope, &sort()), None);
    }
}
