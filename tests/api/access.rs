//! Who may call what (API.md tables): every protected endpoint against anonymous callers,
//! a viewer, an editor, an admin and API keys of both roles; `auth.public_read`; and the
//! 401/403 distinction with `WWW-Authenticate`.

use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use starsongs::domain::user::Role;

use crate::harness::{TestApp, problem};

/// Who may call an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Needs {
    Reader,
    Editor,
    Admin,
    /// A signed-in account of any role, not an API key.
    Account,
}

/// A caller and what it holds.
struct Caller {
    name: &'static str,
    client: Client,
    role: Option<Role>,
    is_key: bool,
}

impl Caller {
    fn may(&self, needs: Needs) -> bool {
        match (needs, self.role) {
            (_, None) => false,
            (Needs::Account, Some(_)) => !self.is_key,
            (Needs::Reader, Some(_)) => true,
            (Needs::Editor, Some(role)) => role >= Role::Editor,
            (Needs::Admin, Some(role)) => role == Role::Admin,
        }
    }
}

fn key_client(key: &str) -> Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-api-key", key.parse().unwrap());
    crate::harness::client_builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

async fn api_key(app: &TestApp, role: &str) -> String {
    let response = app
        .admin()
        .post(
            "/v1/admin/api-keys",
            &json!({"name": format!("{role} key"), "role": role}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    body["key"].as_str().unwrap().to_owned()
}

/// Every endpoint of API.md's tables, with a request that changes nothing when allowed
/// (unknown ids, invalid bodies) and what it needs.
fn endpoints() -> Vec<(Method, &'static str, Option<Value>, Needs)> {
    let artist = Some(json!({"name": "Nobody"}));
    let song = Some(json!({"title": "Nothing"}));
    let empty = Some(json!({}));
    vec![
        (Method::GET, "/v1/artists", None, Needs::Reader),
        (Method::GET, "/v1/artists/999", None, Needs::Reader),
        (Method::GET, "/v1/artists/999/songs", None, Needs::Reader),
        (Method::GET, "/v1/songs", None, Needs::Reader),
        (Method::GET, "/v1/songs/999", None, Needs::Reader),
        (
            Method::POST,
            "/v1/artists",
            Some(json!({"name": ""})),
            Needs::Editor,
        ),
        (Method::PUT, "/v1/artists/999", artist, Needs::Editor),
        (
            Method::PATCH,
            "/v1/artists/999",
            empty.clone(),
            Needs::Editor,
        ),
        (Method::DELETE, "/v1/artists/999", None, Needs::Editor),
        (
            Method::DELETE,
            "/v1/artists/999?cascade=true",
            None,
            Needs::Admin,
        ),
        (
            Method::POST,
            "/v1/songs",
            Some(json!({"title": ""})),
            Needs::Editor,
        ),
        (Method::PUT, "/v1/songs/999", song, Needs::Editor),
        (Method::PATCH, "/v1/songs/999", empty.clone(), Needs::Editor),
        (Method::DELETE, "/v1/songs/999", None, Needs::Editor),
        (Method::GET, "/v1/auth/me", None, Needs::Account),
        (Method::GET, "/v1/admin/users", None, Needs::Admin),
        (Method::POST, "/v1/admin/users", empty.clone(), Needs::Admin),
        (Method::GET, "/v1/admin/users/999", None, Needs::Admin),
        (
            Method::PATCH,
            "/v1/admin/users/999",
            empty.clone(),
            Needs::Admin,
        ),
        (Method::DELETE, "/v1/admin/users/999", None, Needs::Admin),
        (Method::GET, "/v1/admin/api-keys", None, Needs::Admin),
        (Method::POST, "/v1/admin/api-keys", empty, Needs::Admin),
        (Method::DELETE, "/v1/admin/api-keys/999", None, Needs::Admin),
    ]
}

#[tokio::test]
async fn every_endpoint_requires_exactly_the_role_of_the_contract() {
    let app = TestApp::spawn().await;
    let (_, viewer) = app.account("viewer1", Role::Viewer).await;
    let (_, editor) = app.account("editor1", Role::Editor).await;
    let viewer_key = api_key(&app, "viewer").await;
    let editor_key = api_key(&app, "editor").await;
    let callers = [
        Caller {
            name: "anonymous",
            client: app.anonymous.clone(),
            role: None,
            is_key: false,
        },
        Caller {
            name: "viewer",
            client: app.client_for(&viewer),
            role: Some(Role::Viewer),
            is_key: false,
        },
        Caller {
            name: "editor",
            client: app.client_for(&editor),
            role: Some(Role::Editor),
            is_key: false,
        },
        Caller {
            name: "admin",
            client: app.client_for(&app.admin_token),
            role: Some(Role::Admin),
            is_key: false,
        },
        Caller {
            name: "viewer key",
            client: key_client(&viewer_key),
            role: Some(Role::Viewer),
            is_key: true,
        },
        Caller {
            name: "editor key",
            client: key_client(&editor_key),
            role: Some(Role::Editor),
            is_key: true,
        },
    ];

    for (method, path, body, needs) in endpoints() {
        for caller in &callers {
            let mut request = caller.client.request(method.clone(), app.url(path));
            if let Some(body) = &body {
                request = request.json(body);
            }
            let response = request.send().await.unwrap();
            let status = response.status();
            let context = format!("{} {method} {path}", caller.name);
            if caller.may(needs) {
                assert!(
                    ![StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN].contains(&status),
                    "{context}: allowed caller got {status}"
                );
            } else if caller.role.is_none() {
                let challenge = response.headers()["www-authenticate"]
                    .to_str()
                    .unwrap()
                    .to_owned();
                assert!(challenge.starts_with("Bearer"), "{context}: {challenge}");
                problem(response, StatusCode::UNAUTHORIZED).await;
            } else {
                assert_eq!(status, StatusCode::FORBIDDEN, "{context}");
                problem(response, StatusCode::FORBIDDEN).await;
            }
        }
    }
}

#[tokio::test]
async fn operational_endpoints_need_no_credentials() {
    let app = TestApp::spawn().await;

    for path in [
        "/",
        "/health",
        "/health/live",
        "/health/ready",
        "/openapi.json",
        "/docs/",
    ] {
        let response = app.anonymous.get(app.url(path)).send().await.unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
    }
}

#[tokio::test]
async fn public_read_opens_reads_to_anyone_and_nothing_else() {
    let app = TestApp::spawn_with(&[("STARSONGS__AUTH__PUBLIC_READ", "true")]).await;
    let artist = app.create_artist("Open Book").await;
    let id = artist["id"].as_i64().unwrap();

    let read = app
        .anonymous
        .get(app.url(&format!("/v1/artists/{id}")))
        .send()
        .await
        .unwrap();
    let list = app
        .anonymous
        .get(app.url("/v1/songs"))
        .send()
        .await
        .unwrap();
    let write = app
        .anonymous
        .post(app.url("/v1/artists"))
        .json(&json!({"name": "Vandal"}))
        .send()
        .await
        .unwrap();
    let me = app
        .anonymous
        .get(app.url("/v1/auth/me"))
        .send()
        .await
        .unwrap();

    assert_eq!(read.status(), StatusCode::OK);
    assert_eq!(list.status(), StatusCode::OK);
    problem(write, StatusCode::UNAUTHORIZED).await;
    problem(me, StatusCode::UNAUTHORIZED).await;
}

#[tokio::test]
async fn invalid_credentials_are_401_even_where_reading_is_public() {
    let app = TestApp::spawn_with(&[("STARSONGS__AUTH__PUBLIC_READ", "true")]).await;

    let bad_token = app
        .client_for("not-a-jwt")
        .get(app.url("/v1/songs"))
        .send()
        .await
        .unwrap();
    let bad_key = key_client("ssk_nope")
        .get(app.url("/v1/songs"))
        .send()
        .await
        .unwrap();
    let basic = app
        .anonymous
        .get(app.url("/v1/songs"))
        .header("authorization", "Basic YWRtaW46YWRtaW4=")
        .send()
        .await
        .unwrap();

    for response in [bad_token, bad_key] {
        let challenge = response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            challenge.contains(r#"error="invalid_token""#),
            "{challenge}"
        );
        problem(response, StatusCode::UNAUTHORIZED).await;
    }
    problem(basic, StatusCode::UNAUTHORIZED).await;
}

#[tokio::test]
async fn a_token_and_a_key_together_are_a_bad_request() {
    let app = TestApp::spawn().await;
    let key = api_key(&app, "viewer").await;

    let response = app
        .client
        .get(app.url("/v1/songs"))
        .header("x-api-key", key)
        .send()
        .await
        .unwrap();

    problem(response, StatusCode::BAD_REQUEST).await;
}

#[tokio::test]
async fn only_an_admin_may_cascade() {
    let app = TestApp::spawn().await;
    let (_, editor) = app.account("editor1", Role::Editor).await;
    let artist = app.create_artist("Doomed").await;
    let id = artist["id"].as_i64().unwrap();
    app.create_song(&json!({"title": "Last Song", "artist_id": id}))
        .await;
    let path = format!("/v1/artists/{id}?cascade=true");

    let by_editor = app
        .client_for(&editor)
        .delete(app.url(&path))
        .send()
        .await
        .unwrap();
    let still_there = app.get(&format!("/v1/artists/{id}")).await;
    let by_admin = app.admin().delete(&path).await;

    problem(by_editor, StatusCode::FORBIDDEN).await;
    assert_eq!(still_there.status(), StatusCode::OK);
    assert_eq!(by_admin.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn idempotency_keys_belong_to_their_principal() {
    let app = TestApp::spawn().await;
    let (_, editor) = app.account("editor1", Role::Editor).await;
    let body = json!({"name": "Twice"});
    let send = |client: Client| {
        let request = client
            .post(app.url("/v1/artists"))
            .header("idempotency-key", "shared-key-1")
            .json(&body);
        async move { request.send().await.unwrap() }
    };

    let first = send(app.client_for(&app.admin_token)).await;
    let other_principal = send(app.client_for(&editor)).await;
    let replay = send(app.client_for(&app.admin_token)).await;

    assert_eq!(first.status(), StatusCode::CREATED);
    assert_eq!(other_principal.status(), StatusCode::CREATED);
    assert!(
        other_principal
            .headers()
            .get("idempotent-replayed")
            .is_none()
    );
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    let listed: Value = app.get("/v1/artists?q=twice").await.json().await.unwrap();
    assert_eq!(listed["pagination"]["total_items"], 2);
}
