//! Error rendering: every failure is problem+json with the request id; malformed input is
//! 400/413/415/422 and changes nothing.

use reqwest::{Method, StatusCode};
use serde_json::json;
use starsongs::domain::list::SortValue;
use starsongs::domain::user::Role;
use starsongs::http::cursor;

use crate::harness::{TestApp, error_fields, problem};

#[tokio::test]
async fn malformed_json_is_400() {
    let app = TestApp::spawn().await;

    for raw in [
        "{",
        "",
        "not json",
        "{\"name\": \"x\"} trailing",
        "{\"name\": \"x\",}",
    ] {
        let response = app
            .editor()
            .request(Method::POST, "/v1/artists")
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        let body = problem(response, StatusCode::BAD_REQUEST).await;
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .starts_with("The request body is not valid JSON")
        );
    }
}

/// Sends `raw` as a JSON body and asserts the 400 problem for a body that is not JSON.
async fn assert_not_json(app: &TestApp, method: Method, path: &str, raw: &'static str) {
    // Some targets are admin routes: the admin may send to all of them.
    let response = app
        .admin()
        .request(method.clone(), path)
        .header("content-type", "application/json")
        .body(raw)
        .send()
        .await
        .unwrap();

    let body = problem(response, StatusCode::BAD_REQUEST).await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .starts_with("The request body is not valid JSON"),
        "{method} {path} {raw}: {body}"
    );
}

#[tokio::test]
async fn truncated_json_is_400_whatever_its_first_values_on_every_json_body() {
    let app = TestApp::spawn().await;
    let artist = app.create_artist("Kept").await;
    let song = app.create_song(&json!({"title": "Kept too"})).await;
    let targets = [
        (Method::POST, "/v1/artists".to_owned()),
        (Method::PUT, format!("/v1/artists/{}", artist["id"])),
        (Method::PATCH, format!("/v1/artists/{}", artist["id"])),
        (Method::POST, "/v1/songs".to_owned()),
        (Method::PUT, format!("/v1/songs/{}", song["id"])),
        (Method::POST, "/v1/auth/login".to_owned()),
        (Method::POST, "/v1/auth/register".to_owned()),
        (Method::POST, "/v1/auth/refresh".to_owned()),
        (Method::POST, "/v1/admin/users".to_owned()),
        (Method::POST, "/v1/admin/api-keys".to_owned()),
    ];

    // Each begins with values of the wrong type: a type check before the syntax check
    // would answer 422.
    for raw in [
        "[1, 2",
        "{\"name\": 123, ",
        "{\"title\": [",
        "42 43",
        "[] x",
    ] {
        for (method, path) in &targets {
            assert_not_json(&app, method.clone(), path, raw).await;
        }
    }

    let artists: serde_json::Value = app.get("/v1/artists").await.json().await.unwrap();
    assert_eq!(artists["items"], json!([artist]));
    let songs: serde_json::Value = app.get("/v1/songs").await.json().await.unwrap();
    assert_eq!(songs["items"], json!([song]));
}

#[tokio::test]
async fn wrong_shape_is_422_naming_the_body() {
    let app = TestApp::spawn().await;

    for raw in ["[]", "42", "\"text\"", "null"] {
        let response = app
            .editor()
            .request(Method::POST, "/v1/artists")
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        let body = problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(error_fields(&body), ["body"], "{raw}");
        assert!(
            !body["detail"].as_str().unwrap().contains("ArtistInput"),
            "type name leaked"
        );
    }
}

#[tokio::test]
async fn missing_or_wrong_content_type_is_415() {
    let app = TestApp::spawn().await;

    let missing = app
        .editor()
        .request(Method::POST, "/v1/artists")
        .body("{\"name\": \"x\"}")
        .send()
        .await
        .unwrap();
    let form = app
        .editor()
        .request(Method::POST, "/v1/artists")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("name=x")
        .send()
        .await
        .unwrap();
    let with_charset = app
        .editor()
        .request(Method::POST, "/v1/artists")
        .header("content-type", "application/json; charset=utf-8")
        .body("{\"name\": \"x\"}")
        .send()
        .await
        .unwrap();

    problem(missing, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    problem(form, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    assert_eq!(with_charset.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn body_over_the_limit_is_413_and_creates_nothing() {
    let app = TestApp::spawn_with(&[("STARSONGS__SERVER__MAX_BODY_BYTES", "2048")]).await;
    let padding = "x".repeat(4096);

    let response = app
        .editor()
        .post("/v1/artists", &json!({"name": "x", "padding": padding}))
        .await;

    problem(response, StatusCode::PAYLOAD_TOO_LARGE).await;
    let list: serde_json::Value = app.get("/v1/artists").await.json().await.unwrap();
    assert_eq!(list["pagination"]["total_items"], 0);
}

#[tokio::test]
async fn path_ids_outside_the_range_are_422() {
    let app = TestApp::spawn().await;

    for id in [
        "0",
        "-1",
        "2147483648",
        "abc",
        "1.5",
        "99999999999999999999",
        "%20",
    ] {
        for path in [
            format!("/v1/artists/{id}"),
            format!("/v1/songs/{id}"),
            format!("/v1/artists/{id}/songs"),
        ] {
            let body = problem(app.get(&path).await, StatusCode::UNPROCESSABLE_ENTITY).await;
            assert_eq!(error_fields(&body), ["id"], "{path}");
        }
    }
    problem(app.get("/v1/songs/2147483647").await, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn unknown_route_is_404_and_wrong_method_is_405_both_as_problems() {
    let app = TestApp::spawn().await;

    let unknown = app.get("/v2/nothing").await;
    let method = app
        .editor()
        .request(Method::DELETE, "/v1/artists")
        .send()
        .await
        .unwrap();
    let allow = method
        .headers()
        .get("allow")
        .map(|v| v.to_str().unwrap().to_owned());

    problem(unknown, StatusCode::NOT_FOUND).await;
    let body = problem(method, StatusCode::METHOD_NOT_ALLOWED).await;
    assert_eq!(body["instance"], "/v1/artists");
    let allow = allow.expect("405 carries Allow");
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
}

#[tokio::test]
async fn request_id_is_echoed_when_well_formed_and_replaced_otherwise() {
    let app = TestApp::spawn().await;

    let kept = app
        .request(Method::GET, "/v1/artists/1")
        .header("x-request-id", "trace-123.abc_DEF")
        .send()
        .await
        .unwrap();
    let replaced = app
        .request(Method::GET, "/health")
        .header("x-request-id", "bad id with spaces")
        .send()
        .await
        .unwrap();
    let too_long = app
        .request(Method::GET, "/health")
        .header("x-request-id", "a".repeat(129))
        .send()
        .await
        .unwrap();

    assert_eq!(kept.headers()["x-request-id"], "trace-123.abc_DEF");
    let body = problem(kept, StatusCode::NOT_FOUND).await;
    assert_eq!(body["request_id"], "trace-123.abc_DEF");
    for response in [replaced, too_long] {
        let id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(uuid_like(&id), "{id}");
    }
}

fn uuid_like(id: &str) -> bool {
    id.len() == 36 && id.chars().filter(|c| *c == '-').count() == 4
}

#[tokio::test]
async fn internal_errors_are_generic_500_problems_without_internals() {
    let app = TestApp::spawn().await;
    // Break the schema under the running service: the store's SQL now fails.
    let store = app.state.store.clone();
    store.migrator().down_to(0).await.unwrap();

    let response = app.get("/v1/artists").await;

    let body = problem(response, StatusCode::INTERNAL_SERVER_ERROR).await;
    assert_eq!(
        body["detail"],
        "An unexpected error occurred; it has been logged"
    );
    let text = body.to_string().to_lowercase();
    for leak in ["sqlite", "select", "artist where", "no such table", "sqlx"] {
        assert!(!text.contains(leak), "{leak} leaked: {body}");
    }
}

#[tokio::test]
async fn cors_allows_listed_origins_only() {
    let app =
        TestApp::spawn_with(&[("STARSONGS__CORS__ALLOWED_ORIGINS", "https://app.example")]).await;
    let preflight = |origin: &'static str| {
        app.request(Method::OPTIONS, "/v1/artists")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
    };

    let allowed = preflight("https://app.example").await.unwrap();
    let foreign = preflight("https://evil.example").await.unwrap();
    let simple = app
        .request(Method::GET, "/v1/artists")
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();

    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let allow_headers = allowed.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(allow_headers.contains("authorization"), "{allow_headers}");
    assert!(
        allowed.headers()["vary"]
            .to_str()
            .unwrap()
            .to_lowercase()
            .contains("origin")
    );
    let leaked: Vec<_> = foreign
        .headers()
        .keys()
        .filter(|k| k.as_str().starts_with("access-control-"))
        .collect();
    assert!(leaked.is_empty(), "{leaked:?}");
    assert_eq!(
        simple.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let exposed = simple.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(
        exposed.contains("etag") && exposed.contains("x-request-id"),
        "{exposed}"
    );
}

/// Holds SQLite's write lock from outside the service, as a stuck maintenance job would.
async fn hold_write_lock(app: &crate::harness::TestApp) -> sqlx::SqliteConnection {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&app.database_url())
        .await
        .unwrap();
    sqlx::query("begin immediate")
        .execute(&mut conn)
        .await
        .unwrap();
    conn
}

#[tokio::test]
async fn a_locked_database_is_503_with_retry_after_and_changes_nothing() {
    if crate::harness::sqlite_only("it holds SQLite's write lock from another connection") {
        return;
    }
    let app = TestApp::spawn_with(&[("STARSONGS__DATABASE__SQLITE_BUSY_TIMEOUT_MS", "100")]).await;
    let mut lock = hold_write_lock(&app).await;

    let response = app
        .editor()
        .post("/v1/artists", &json!({"name": "Blocked"}))
        .await;
    let retry_after = response.headers().get("retry-after").cloned();

    let body = problem(response, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(retry_after.unwrap(), "5");
    assert!(
        !body["detail"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("locked")
    );
    sqlx::query("rollback").execute(&mut lock).await.unwrap();
    let list: serde_json::Value = app.get("/v1/artists").await.json().await.unwrap();
    assert_eq!(list["pagination"]["total_items"], 0);
}

#[tokio::test]
async fn a_request_over_the_timeout_is_504() {
    if crate::harness::sqlite_only("it holds SQLite's write lock from another connection") {
        return;
    }
    let app = TestApp::spawn_with(&[
        ("STARSONGS__SERVER__REQUEST_TIMEOUT_SECS", "1"),
        ("STARSONGS__DATABASE__SQLITE_BUSY_TIMEOUT_MS", "10000"),
    ])
    .await;
    let mut lock = hold_write_lock(&app).await;

    let response = app
        .editor()
        .post("/v1/artists", &json!({"name": "Slow"}))
        .await;

    let body = problem(response, StatusCode::GATEWAY_TIMEOUT).await;
    assert_eq!(body["type"], "urn:starsongs:problem:timeout");
    sqlx::query("rollback").execute(&mut lock).await.unwrap();
    // Reads were never blocked (WAL), and the service still answers.
    assert_eq!(app.get("/v1/artists").await.status(), StatusCode::OK);
}

// Text a database refuses (#19): PostgreSQL refuses a NUL byte in `text` (and a date past
// its range), so a value the domain let through would be a 500 there and a 401 or 200 on
// SQLite. Every such value is answered before it reaches a backend: 401 for a login, 422
// elsewhere, 400 for JSON that is not valid Unicode. These run on every backend (the
// suite's PostgreSQL pass).

/// Sends a form-encoded login.
async fn form_login(app: &TestApp, form: &str) -> reqwest::Response {
    app.anonymous
        .post(app.url("/v1/auth/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_owned())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_login_name_with_a_nul_byte_or_any_name_no_account_can_have_is_401() {
    let app = TestApp::spawn().await;
    let long = "n".repeat(10_000);

    for username in [
        "a\0b",
        "\0",
        "tab\there",
        "bell\u{7}",
        "ünï",
        "a:b",
        long.as_str(),
    ] {
        let response = app
            .anonymous
            .post(app.url("/v1/auth/login"))
            .json(&json!({"username": username, "password": "any long password"}))
            .send()
            .await
            .unwrap();

        let body = problem(response, StatusCode::UNAUTHORIZED).await;
        assert_eq!(
            body["detail"], "Invalid username or password",
            "{username:?}"
        );
    }
    for form in [
        "username=a%00b&password=any+long+password",
        "grant_type=password&username=%00%00&password=x",
        "username=%ED%A0%80&password=any+long+password",
        "username=%FF%FE&password=any+long+password",
    ] {
        problem(form_login(&app, form).await, StatusCode::UNAUTHORIZED).await;
    }
}

#[tokio::test]
async fn a_name_with_a_nul_byte_is_counted_and_locked_out_like_any_other() {
    let app = TestApp::spawn().await;

    let mut statuses = Vec::new();
    for _ in 0..6 {
        let response = form_login(&app, "username=ghost%00name&password=wrong+password+1").await;
        statuses.push(response.status());
    }

    assert_eq!(statuses[..5], [StatusCode::UNAUTHORIZED; 5]);
    assert_eq!(statuses[5], StatusCode::TOO_MANY_REQUESTS);
    let other = form_login(&app, "username=ghost%00other&password=wrong+password+1").await;
    problem(other, StatusCode::UNAUTHORIZED).await;
}

#[tokio::test]
async fn query_text_a_database_would_refuse_is_422_naming_the_parameter() {
    let app = TestApp::spawn().await;
    let artist = app.create_artist("Kept").await;
    let long_q = "q".repeat(257);
    let long_cursor = "c".repeat(10_000);
    let cases = [
        ("/v1/artists?q=a%00b".to_owned(), "q"),
        ("/v1/songs?q=%00".to_owned(), "q"),
        (format!("/v1/artists/{}/songs?q=a%00", artist["id"]), "q"),
        (format!("/v1/artists?q={long_q}"), "q"),
        ("/v1/songs?q=a%0Ab".to_owned(), "q"),
        ("/v1/artists?sort=name%00".to_owned(), "sort"),
        ("/v1/songs?sort=%00title".to_owned(), "sort"),
        ("/v1/admin/users?sort=username%00".to_owned(), "sort"),
        ("/v1/admin/api-keys?sort=%00".to_owned(), "sort"),
        ("/v1/artists?cursor=%00".to_owned(), "cursor"),
        (format!("/v1/songs?cursor={long_cursor}.x"), "cursor"),
        ("/v1/admin/users?cursor=a%00.b".to_owned(), "cursor"),
        (
            "/v1/songs?released_from=2020-01-01%00".to_owned(),
            "released_from",
        ),
        ("/v1/songs?artist_id=1%00".to_owned(), "artist_id"),
        ("/v1/songs?include=artist%00".to_owned(), "include"),
    ];

    // Some are admin routes: the admin may read all of them.
    for (path, field) in &cases {
        let body = problem(
            app.admin().get(path).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(error_fields(&body), [*field], "{path}: {body}");
    }
}

/// A cursor as a client can write one: the checksum is over public data, so any values
/// can be put in it. The service's own encoder stands in for the client's.
fn forged_cursor(endpoint: &str, sort: &str, filters: &str, values: &[SortValue]) -> String {
    let scope = cursor::scope(endpoint, sort, filters);
    cursor::encode(&scope, values)
}

#[tokio::test]
async fn a_forged_cursor_with_values_a_database_would_refuse_is_422() {
    let app = TestApp::spawn().await;
    app.create_artist("Kept").await;
    let far_date = chrono::NaiveDate::from_ymd_opt(-100_000, 1, 1).unwrap();
    let cases = [
        (
            "/v1/artists?sort=name",
            forged_cursor(
                "artists",
                "name,id",
                "q=",
                &[SortValue::Text("a\0b".into()), SortValue::Int(1)],
            ),
        ),
        (
            "/v1/artists?sort=name",
            forged_cursor(
                "artists",
                "name,id",
                "q=",
                &[SortValue::Text("x".repeat(1000)), SortValue::Int(1)],
            ),
        ),
        (
            "/v1/songs?sort=title",
            forged_cursor(
                "songs",
                "title,id",
                "q=&artist_id=&from=&to=",
                &[SortValue::Text("\0".into()), SortValue::Int(1)],
            ),
        ),
        (
            "/v1/songs?sort=release_date",
            forged_cursor(
                "songs",
                "release_date,id",
                "q=&artist_id=&from=&to=",
                &[SortValue::Date(far_date), SortValue::Int(1)],
            ),
        ),
        (
            "/v1/admin/api-keys?sort=name",
            forged_cursor(
                "admin/api-keys",
                "name,id",
                "",
                &[SortValue::Text("k\0".into()), SortValue::Int(1)],
            ),
        ),
    ];

    for (path, token) in &cases {
        // One is an admin route: the admin may read all of them.
        let response = app.admin().get(&format!("{path}&cursor={token}")).await;

        let body = problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(error_fields(&body), ["cursor"], "{path}: {body}");
    }
    // The same forgery with values a backend takes is a position like any other.
    let fair = forged_cursor(
        "artists",
        "name,id",
        "q=",
        &[SortValue::Text("A".into()), SortValue::Int(1)],
    );
    let page = app
        .get(&format!("/v1/artists?sort=name&cursor={fair}"))
        .await;
    assert_eq!(page.status(), StatusCode::OK);
}

#[tokio::test]
async fn body_text_a_database_would_refuse_is_422_naming_each_field() {
    let app = TestApp::spawn().await;
    let (user_id, _) = app.account("patched", Role::Viewer).await;
    let long = "x".repeat(65);
    let cases = [
        (
            Method::POST,
            "/v1/artists".to_owned(),
            json!({"name": "a\u{0}b"}),
            vec!["name"],
        ),
        (
            Method::POST,
            "/v1/artists".to_owned(),
            json!({"name": long}),
            vec!["name"],
        ),
        (
            Method::POST,
            "/v1/songs".to_owned(),
            json!({"title": "\u{0}", "url": "https://example.com/a\u{0}b"}),
            vec!["title", "url"],
        ),
        (
            Method::POST,
            "/v1/songs".to_owned(),
            json!({"title": "t", "url": format!("https://example.com/{}", "p".repeat(1100))}),
            vec!["url"],
        ),
        (
            Method::POST,
            "/v1/auth/register".to_owned(),
            json!({"username": "nul\u{0}name", "email": "nul\u{0}@example.com", "password": "a long passphrase!"}),
            vec!["username", "email"],
        ),
        (
            Method::POST,
            "/v1/admin/users".to_owned(),
            json!({"username": "x\u{0}y", "email": format!("{}@example.com", "e".repeat(250)), "password": "a long passphrase!", "role": "viewer"}),
            vec!["username", "email"],
        ),
        (
            Method::PATCH,
            format!("/v1/admin/users/{user_id}"),
            json!({"email": "a\u{0}b@example.com"}),
            vec!["email"],
        ),
        (
            Method::POST,
            "/v1/admin/api-keys".to_owned(),
            json!({"name": "key\u{0}", "role": "viewer"}),
            vec!["name"],
        ),
        (
            Method::POST,
            "/v1/admin/api-keys".to_owned(),
            json!({"name": long, "role": "viewer"}),
            vec!["name"],
        ),
    ];

    for (method, path, body, fields) in &cases {
        let response = app.admin().send_json(method.clone(), path, body).await;

        let problem = problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(
            error_fields(&problem),
            *fields,
            "{method} {path}: {problem}"
        );
    }
}

#[tokio::test]
async fn an_idempotency_key_outside_visible_ascii_or_too_long_is_400_and_creates_nothing() {
    let app = TestApp::spawn().await;

    // A malformed key is a 400 (API.md "Concurrency and retries"); a NUL byte cannot
    // be sent at all (HTTP refuses it in a header), bytes above 0x7F can.
    for key in [
        reqwest::header::HeaderValue::from_bytes(b"caf\xe9").unwrap(),
        reqwest::header::HeaderValue::from_str(&"k".repeat(256)).unwrap(),
    ] {
        let response = app
            .editor()
            .request(Method::POST, "/v1/artists")
            .header("idempotency-key", key)
            .json(&json!({"name": "Once"}))
            .send()
            .await
            .unwrap();

        problem(response, StatusCode::BAD_REQUEST).await;
    }
    let list: serde_json::Value = app.get("/v1/artists").await.json().await.unwrap();
    assert_eq!(list["pagination"]["total_items"], 0);
}

#[tokio::test]
async fn json_with_a_lone_surrogate_is_400_before_any_backend() {
    let app = TestApp::spawn().await;

    for (path, raw) in [
        ("/v1/artists", r#"{"name": "a\ud800b"}"#),
        ("/v1/songs", r#"{"title": "\udfff"}"#),
        (
            "/v1/auth/login",
            r#"{"username": "\ud800", "password": "any long password"}"#,
        ),
        (
            "/v1/admin/api-keys",
            r#"{"name": "\ud83d", "role": "viewer"}"#,
        ),
    ] {
        assert_not_json(&app, Method::POST, path, raw).await;
    }
    let surrogate_pair = app
        .editor()
        .post("/v1/artists", &json!({"name": "Star \u{1F31F}"}))
        .await;
    assert_eq!(surrogate_pair.status(), StatusCode::CREATED);
}
