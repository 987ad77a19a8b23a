//! `/v1/admin/*`: account management and API keys.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use starsongs::domain::user::Role;

use crate::harness::{PASSWORD, TestApp, error_fields, problem};

async fn patch(app: &TestApp, id: i64, body: Value) -> reqwest::Response {
    app.admin()
        .send_json(Method::PATCH, &format!("/v1/admin/users/{id}"), &body)
        .await
}

async fn login_status(app: &TestApp, username: &str, password: &str) -> StatusCode {
    app.anonymous
        .post(app.url("/v1/auth/login"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn admins_create_read_list_change_and_delete_accounts() {
    let app = TestApp::spawn().await;

    let created = app
        .admin().post(
            "/v1/admin/users",
            &json!({"username": "editor1", "email": "e1@example.com", "password": PASSWORD, "role": "editor"}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let location = created.headers()["location"].to_str().unwrap().to_owned();
    let user: Value = created.json().await.unwrap();
    let id = user["id"].as_i64().unwrap();
    assert_eq!(location, format!("/v1/admin/users/{id}"));
    assert_eq!(user["role"], "editor");
    assert_eq!(
        app.admin()
            .get(&location)
            .await
            .json::<Value>()
            .await
            .unwrap(),
        user
    );

    let page: Value = app
        .admin()
        .get("/v1/admin/users?sort=-username&page_size=1")
        .await
        .json()
        .await
        .unwrap();
    // The harness's viewer, editor and admin, and editor1.
    assert_eq!(page["pagination"]["total_items"], 4);
    assert_eq!(page["items"][0]["username"], "test-viewer");
    let cursor = page["pagination"]["next_cursor"].as_str().unwrap();
    let next: Value = app
        .admin()
        .get(&format!(
            "/v1/admin/users?sort=-username&page_size=1&cursor={cursor}"
        ))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(next["items"][0]["username"], "test-editor");
    assert!(!page.to_string().contains("argon2"));

    let changed = patch(
        &app,
        id,
        json!({"email": "new@example.com", "role": "viewer"}),
    )
    .await;
    assert_eq!(changed.status(), StatusCode::OK);
    let changed: Value = changed.json().await.unwrap();
    assert_eq!(
        (changed["email"].as_str(), changed["role"].as_str()),
        (Some("new@example.com"), Some("viewer"))
    );

    assert_eq!(
        app.admin().delete(&location).await.status(),
        StatusCode::NO_CONTENT
    );
    problem(app.admin().get(&location).await, StatusCode::NOT_FOUND).await;
    problem(app.admin().delete(&location).await, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn a_new_password_ends_sessions_and_replaces_the_old_one() {
    let app = TestApp::spawn().await;
    let (id, _) = app.account("forgetful", Role::Viewer).await;
    let login = app
        .anonymous
        .post(app.url("/v1/auth/login"))
        .json(&json!({"username": "forgetful", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let refresh = login.json::<Value>().await.unwrap()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();

    let changed = patch(&app, id, json!({"password": "a brand new passphrase"})).await;
    assert_eq!(changed.status(), StatusCode::OK);

    let refreshed = app
        .anonymous
        .post(app.url("/v1/auth/refresh"))
        .json(&json!({"refresh_token": refresh}))
        .send()
        .await
        .unwrap();
    problem(refreshed, StatusCode::UNAUTHORIZED).await;
    assert_eq!(
        login_status(&app, "forgetful", PASSWORD).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login_status(&app, "forgetful", "a brand new passphrase").await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn invalid_changes_are_422_and_change_nothing() {
    let app = TestApp::spawn().await;
    let (id, _) = app.account("steady", Role::Viewer).await;

    let cases = [
        (json!({"role": "root"}), "role"),
        (json!({"role": null}), "role"),
        (json!({"email": "not-an-address"}), "email"),
        (json!({"is_active": "yes"}), "is_active"),
        (json!({"password": "short"}), "password"),
        (json!({"password": "steady"}), "password"),
        (json!({"username": "renamed"}), "username"),
        (json!({"id": 5}), "id"),
    ];
    for (body, field) in cases {
        let response = patch(&app, id, body.clone()).await;
        let problem = problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(error_fields(&problem), [field], "{body}");
    }
    let user: Value = app
        .admin()
        .get(&format!("/v1/admin/users/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (user["role"].as_str(), user["email"].as_str()),
        (Some("viewer"), Some("steady@example.com"))
    );
    assert_eq!(login_status(&app, "steady", PASSWORD).await, StatusCode::OK);
    // An unknown account is 404 before its change is judged.
    for body in [
        json!({}),
        json!({"email": "not-an-address", "password": "short"}),
    ] {
        problem(patch(&app, 999_999, body).await, StatusCode::NOT_FOUND).await;
    }
    problem(
        app.admin().get("/v1/admin/users/0").await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
}

#[tokio::test]
async fn the_last_active_admin_cannot_be_removed() {
    let app = TestApp::spawn().await;
    let me: Value = app.admin().get("/v1/auth/me").await.json().await.unwrap();
    let id = me["id"].as_i64().unwrap();

    for body in [json!({"role": "editor"}), json!({"is_active": false})] {
        problem(patch(&app, id, body).await, StatusCode::CONFLICT).await;
    }
    problem(
        app.admin().delete(&format!("/v1/admin/users/{id}")).await,
        StatusCode::CONFLICT,
    )
    .await;

    let (other, _) = app.account("second-admin", Role::Admin).await;
    assert_eq!(
        patch(&app, id, json!({"role": "editor"})).await.status(),
        StatusCode::OK
    );
    // A role change ends every login of the account: the demoted admin's token is over.
    problem(
        app.admin()
            .delete(&format!("/v1/admin/users/{other}"))
            .await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
}

#[tokio::test]
async fn duplicate_accounts_are_409() {
    let app = TestApp::spawn().await;
    app.account("unique", Role::Viewer).await;

    let response = app
        .admin().post(
            "/v1/admin/users",
            &json!({"username": "Unique", "email": "other@example.com", "password": PASSWORD, "role": "viewer"}),
        )
        .await;
    let taken_email = {
        let (id, _) = app.account("another", Role::Viewer).await;
        patch(&app, id, json!({"email": "UNIQUE@example.com"})).await
    };

    problem(response, StatusCode::CONFLICT).await;
    problem(taken_email, StatusCode::CONFLICT).await;
}

#[tokio::test]
async fn api_keys_are_shown_once_work_by_role_and_stop_when_revoked() {
    let app = TestApp::spawn().await;

    let created = app
        .admin()
        .post(
            "/v1/admin/api-keys",
            &json!({"name": "importer", "role": "editor"}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(created.headers()["cache-control"], "no-store");
    let body: Value = created.json().await.unwrap();
    let key = body["key"].as_str().unwrap().to_owned();
    let id = body["id"].as_i64().unwrap();
    assert!(key.starts_with("ssk_") && key.len() >= 47, "{key}");
    assert_eq!(body["role"], "editor");

    let listed: Value = app
        .admin()
        .get("/v1/admin/api-keys")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"][0]["prefix"], &key[..12]);
    assert!(!listed.to_string().contains(&key), "the list leaks the key");

    let with_key = |method: Method, path: &str| {
        app.anonymous
            .request(method, app.url(path))
            .header("x-api-key", &key)
    };
    let write = with_key(Method::POST, "/v1/artists")
        .json(&json!({"name": "By Key"}))
        .send()
        .await
        .unwrap();
    assert_eq!(write.status(), StatusCode::CREATED);
    let admin = with_key(Method::GET, "/v1/admin/users")
        .send()
        .await
        .unwrap();
    problem(admin, StatusCode::FORBIDDEN).await;

    assert_eq!(
        app.admin()
            .delete(&format!("/v1/admin/api-keys/{id}"))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    let after = with_key(Method::GET, "/v1/artists").send().await.unwrap();
    problem(after, StatusCode::UNAUTHORIZED).await;
    problem(
        app.admin()
            .delete(&format!("/v1/admin/api-keys/{id}"))
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn api_keys_never_carry_admin() {
    let app = TestApp::spawn().await;

    let response = app
        .admin()
        .post(
            "/v1/admin/api-keys",
            &json!({"name": "root key", "role": "admin"}),
        )
        .await;
    let body = problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;

    assert_eq!(error_fields(&body), ["role"]);
    let listed: Value = app
        .admin()
        .get("/v1/admin/api-keys")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["pagination"]["total_items"], 0);
}

#[tokio::test]
async fn a_viewer_cannot_promote_itself() {
    let app = TestApp::spawn().await;
    let (id, viewer) = app.account("climber", Role::Viewer).await;

    let response = app
        .client_for(&viewer)
        .patch(app.url(&format!("/v1/admin/users/{id}")))
        .json(&json!({"role": "admin"}))
        .send()
        .await
        .unwrap();

    problem(response, StatusCode::FORBIDDEN).await;
    let user: Value = app
        .admin()
        .get(&format!("/v1/admin/users/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(user["role"], "viewer");
}
