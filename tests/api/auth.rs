//! Sign-in and tokens over HTTP, including the attacks a reviewer would try: forged and
//! tampered access tokens, refresh-token reuse, logout then refresh, a deactivated user's
//! old token, enumeration through login and register, and brute force.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use starsongs::domain::user::Role;

use crate::harness::{JWT_SECRET, PASSWORD, TestApp, problem};

async fn login(app: &TestApp, username: &str, password: &str) -> Response {
    app.anonymous
        .post(app.url("/v1/auth/login"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap()
}

/// `(access_token, refresh_token)` of a 200 token-pair response.
async fn pair(response: Response) -> (String, String) {
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    (
        body["access_token"].as_str().unwrap().to_owned(),
        body["refresh_token"].as_str().unwrap().to_owned(),
    )
}

async fn post_token(app: &TestApp, path: &str, refresh_token: &str) -> Response {
    app.anonymous
        .post(app.url(path))
        .json(&json!({"refresh_token": refresh_token}))
        .send()
        .await
        .unwrap()
}

async fn me(app: &TestApp, token: &str) -> Response {
    app.client_for(token)
        .get(app.url("/v1/auth/me"))
        .send()
        .await
        .unwrap()
}

/// Asserts 401 with `WWW-Authenticate: Bearer ... error="invalid_token"`.
async fn invalid_token(response: Response, context: &str) {
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert!(
        challenge.starts_with("Bearer") && challenge.contains(r#"error="invalid_token""#),
        "{context}: {challenge}"
    );
    problem(response, StatusCode::UNAUTHORIZED).await;
}

/// A rotation instant just ahead (RFC 3339), so tokens issued now count as issued before.
fn in_a_second() -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(1)).to_rfc3339()
}

/// The claims of a token, unverified (the test only reads what the service put there).
fn claims_of(token: &str) -> Value {
    serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap()
}

/// Polls `GET /v1/auth/me` with `token` until it is refused (401), for at most 10 s.
async fn until_refused(app: &TestApp, token: &str, context: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let response = me(app, token).await;
        if response.status() == StatusCode::UNAUTHORIZED {
            invalid_token(response, context).await;
            return;
        }
        assert_eq!(response.status(), StatusCode::OK, "{context}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "{context}: still accepted after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn login_with_json_returns_a_working_token_pair_that_is_never_cached() {
    let app = TestApp::spawn().await;
    let (id, _) = app.account("ziggy", Role::Editor).await;

    let response = login(&app, "ZIGGY", PASSWORD).await;

    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert!(body["refresh_token"].as_str().unwrap().len() >= 43);
    let access = body["access_token"].as_str().unwrap();
    let claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(access.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    for claim in [
        "sub", "role", "iat", "nbf", "exp", "iss", "aud", "jti", "sid",
    ] {
        assert!(claims.get(claim).is_some(), "{claim} missing: {claims}");
    }
    assert_eq!(claims["sub"], id.to_string());
    assert_eq!(claims["role"], "editor");
    let me = me(&app, access).await;
    assert_eq!(me.headers()["cache-control"], "no-store");
    let account: Value = me.json().await.unwrap();
    assert_eq!(account["username"], "ziggy");
    assert!(account.get("password_hash").is_none() && account.get("password").is_none());
}

#[tokio::test]
async fn login_accepts_the_oauth2_password_form_swagger_ui_sends() {
    let app = TestApp::spawn().await;
    app.account("swagger", Role::Viewer).await;

    let form = app
        .anonymous
        .post(app.url("/v1/auth/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            serde_urlencoded::to_string([
                ("grant_type", "password"),
                ("username", "swagger"),
                ("password", PASSWORD),
                ("scope", ""),
                ("client_id", ""),
            ])
            .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let wrong_grant = app
        .anonymous
        .post(app.url("/v1/auth/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&username=swagger&password=x")
        .send()
        .await
        .unwrap();
    let text = app
        .anonymous
        .post(app.url("/v1/auth/login"))
        .header("content-type", "text/plain")
        .body("swagger")
        .send()
        .await
        .unwrap();

    let (access, _) = pair(form).await;
    assert_eq!(me(&app, &access).await.status(), StatusCode::OK);
    problem(wrong_grant, StatusCode::UNPROCESSABLE_ENTITY).await;
    problem(text, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
}

#[tokio::test]
async fn forged_expired_and_tampered_access_tokens_are_refused() {
    let app = TestApp::spawn().await;
    let (id, viewer) = app.account("victim", Role::Viewer).await;
    let now = now();
    let claims = |overrides: Value| {
        let mut base = json!({
            "sub": id.to_string(), "role": "admin", "iat": now, "nbf": now, "exp": now + 600,
            "iss": "starsongs", "aud": "starsongs-api", "jti": "forged",
            "sid": claims_of(&viewer)["sid"]
        });
        for (key, value) in overrides.as_object().unwrap() {
            if value.is_null() {
                base.as_object_mut().unwrap().remove(key);
            } else {
                base[key] = value.clone();
            }
        }
        base
    };
    let sign = |alg: Algorithm, claims: &Value, secret: &str| {
        encode(
            &Header::new(alg),
            claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    };
    let hs256 = |overrides: Value| sign(Algorithm::HS256, &claims(overrides), JWT_SECRET);
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims(json!({})).to_string())
    );
    let (head, rest) = viewer.split_once('.').unwrap();
    let signature = rest.split_once('.').unwrap().1;
    let mut escalated_claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(rest.split_once('.').unwrap().0)
            .unwrap(),
    )
    .unwrap();
    escalated_claims["role"] = json!("admin");
    let escalated = format!(
        "{head}.{}.{signature}",
        URL_SAFE_NO_PAD.encode(escalated_claims.to_string())
    );
    // The baseline: the same construction with the right key is accepted (for reading: the
    // role is never more than the account's current one, whatever the token says).
    let baseline = app.client_for(&hs256(json!({})));
    assert_eq!(
        baseline
            .get(app.url("/v1/songs"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        baseline
            .get(app.url("/v1/admin/users"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );
    let attacks = [
        ("alg none", unsigned),
        (
            "HS512 with the right secret",
            sign(Algorithm::HS512, &claims(json!({})), JWT_SECRET),
        ),
        (
            "another secret",
            sign(
                Algorithm::HS256,
                &claims(json!({})),
                "another secret that is 32+ bytes long",
            ),
        ),
        ("expired", hs256(json!({"exp": now - 120}))),
        ("no exp", hs256(json!({"exp": null}))),
        ("not yet valid", hs256(json!({"nbf": now + 120}))),
        ("wrong issuer", hs256(json!({"iss": "evil"}))),
        ("wrong audience", hs256(json!({"aud": "someone-else"}))),
        ("tampered role claim", escalated),
        ("unknown user", hs256(json!({"sub": "999999"}))),
        ("garbage", "a.b.c".to_owned()),
    ];

    for (name, token) in attacks {
        let response = app
            .client_for(&token)
            .get(app.url("/v1/songs"))
            .send()
            .await
            .unwrap();
        invalid_token(response, name).await;
    }
}

#[tokio::test]
async fn refresh_rotates_and_a_reused_token_revokes_its_whole_family() {
    let app = TestApp::spawn().await;
    app.account("ziggy", Role::Viewer).await;
    let (_, first) = pair(login(&app, "ziggy", PASSWORD).await).await;

    let refreshed = post_token(&app, "/v1/auth/refresh", &first).await;
    assert_eq!(refreshed.headers()["cache-control"], "no-store");
    let (access, second) = pair(refreshed).await;
    assert_ne!(first, second);
    assert_eq!(me(&app, &access).await.status(), StatusCode::OK);

    // An attacker replays the spent token: refused, and the legitimate holder's current
    // token dies with the family.
    invalid_token(post_token(&app, "/v1/auth/refresh", &first).await, "reuse").await;
    invalid_token(
        post_token(&app, "/v1/auth/refresh", &second).await,
        "family",
    )
    .await;

    // Another login is another family and unaffected.
    let (_, other) = pair(login(&app, "ziggy", PASSWORD).await).await;
    assert_eq!(
        post_token(&app, "/v1/auth/refresh", &other).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn logout_revokes_the_family_and_unknown_tokens_are_refused() {
    let app = TestApp::spawn().await;
    app.account("ziggy", Role::Viewer).await;
    let (_, first) = pair(login(&app, "ziggy", PASSWORD).await).await;
    let (_, second) = pair(post_token(&app, "/v1/auth/refresh", &first).await).await;

    let logout = post_token(&app, "/v1/auth/logout", &second).await;
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    assert_eq!(logout.headers()["cache-control"], "no-store");

    invalid_token(
        post_token(&app, "/v1/auth/refresh", &second).await,
        "after logout",
    )
    .await;
    invalid_token(
        post_token(&app, "/v1/auth/logout", "ssr_never-issued").await,
        "unknown",
    )
    .await;
    let missing = app
        .anonymous
        .post(app.url("/v1/auth/refresh"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    problem(missing, StatusCode::UNPROCESSABLE_ENTITY).await;
}

#[tokio::test]
async fn an_expired_refresh_token_is_refused() {
    let app = TestApp::spawn_with(&[
        ("STARSONGS__AUTH__ACCESS_TTL_SECS", "60"),
        ("STARSONGS__AUTH__REFRESH_TTL_SECS", "60"),
    ])
    .await;
    app.account("ziggy", Role::Viewer).await;
    let (_, refresh) = pair(login(&app, "ziggy", PASSWORD).await).await;
    // Age the token in the database instead of waiting a minute.
    app.execute_sql("update refresh_token set expires_at = '2000-01-01T00:00:00.000000Z'")
        .await;

    invalid_token(
        post_token(&app, "/v1/auth/refresh", &refresh).await,
        "expired",
    )
    .await;
}

#[tokio::test]
async fn deactivated_and_deleted_users_lose_access_at_once_on_the_same_replica() {
    let app = TestApp::spawn().await;
    let (deactivated_id, _) = app.account("leaver", Role::Editor).await;
    let (deleted_id, _) = app.account("gone", Role::Editor).await;
    let (access, refresh) = pair(login(&app, "leaver", PASSWORD).await).await;
    let (gone_access, _) = pair(login(&app, "gone", PASSWORD).await).await;
    assert_eq!(me(&app, &access).await.status(), StatusCode::OK);
    assert_eq!(me(&app, &gone_access).await.status(), StatusCode::OK);

    let patched = app
        .admin()
        .send_json(
            reqwest::Method::PATCH,
            &format!("/v1/admin/users/{deactivated_id}"),
            &json!({"is_active": false}),
        )
        .await;
    assert_eq!(patched.status(), StatusCode::OK);
    assert_eq!(
        app.admin()
            .delete(&format!("/v1/admin/users/{deleted_id}"))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );

    invalid_token(me(&app, &access).await, "deactivated").await;
    invalid_token(me(&app, &gone_access).await, "deleted").await;
    invalid_token(
        post_token(&app, "/v1/auth/refresh", &refresh).await,
        "refresh",
    )
    .await;
    problem(
        login(&app, "leaver", PASSWORD).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
}

#[tokio::test]
async fn another_replica_notices_a_deactivation_within_its_cache_time() {
    let app = TestApp::spawn_with(&[("STARSONGS__AUTH__GRANT_CACHE_SECS", "1")]).await;
    let replica = app
        .replica(&[("STARSONGS__AUTH__GRANT_CACHE_SECS", "1")])
        .await;
    let (id, token) = app.account("leaver", Role::Viewer).await;
    assert_eq!(me(&replica, &token).await.status(), StatusCode::OK);

    let patched = app
        .admin()
        .send_json(
            reqwest::Method::PATCH,
            &format!("/v1/admin/users/{id}"),
            &json!({"is_active": false}),
        )
        .await;
    assert_eq!(patched.status(), StatusCode::OK);
    // The replica may still trust its cached grant for up to a second...
    replica.advance(Duration::from_secs(1));

    // ...and no longer after it.
    invalid_token(me(&replica, &token).await, "replica").await;
}

#[tokio::test]
async fn a_role_change_ends_the_users_logins_and_a_new_login_has_the_new_role() {
    let app = TestApp::spawn().await;
    let (id, editor) = app.account("demoted", Role::Editor).await;

    let patched = app
        .admin()
        .send_json(
            reqwest::Method::PATCH,
            &format!("/v1/admin/users/{id}"),
            &json!({"role": "viewer"}),
        )
        .await;
    assert_eq!(patched.status(), StatusCode::OK);
    invalid_token(me(&app, &editor).await, "token of the ended login").await;
    let (viewer, _) = pair(login(&app, "demoted", PASSWORD).await).await;
    let write = app
        .client_for(&viewer)
        .post(app.url("/v1/artists"))
        .json(&json!({"name": "Not Any More"}))
        .send()
        .await
        .unwrap();
    let read = app
        .client_for(&viewer)
        .get(app.url("/v1/artists"))
        .send()
        .await
        .unwrap();

    problem(write, StatusCode::FORBIDDEN).await;
    assert_eq!(read.status(), StatusCode::OK);
}

#[tokio::test]
async fn unknown_users_and_wrong_passwords_get_the_same_answer() {
    let app = TestApp::spawn().await;
    app.account("ziggy", Role::Viewer).await;

    let unknown = login(&app, "nobody-here", PASSWORD).await;
    let wrong = login(&app, "ziggy", "not the right password").await;
    let invalid_name = login(&app, "no such name!", PASSWORD).await;

    let mut bodies = Vec::new();
    for response in [unknown, wrong, invalid_name] {
        assert_eq!(
            response.headers()["www-authenticate"],
            r#"Bearer realm="starsongs""#
        );
        let mut body = problem(response, StatusCode::UNAUTHORIZED).await;
        body.as_object_mut().unwrap().remove("request_id");
        bodies.push(body);
    }
    assert_eq!(bodies[0], bodies[1]);
    assert_eq!(bodies[0], bodies[2]);
}

#[tokio::test]
async fn five_failures_lock_a_username_whatever_the_password_and_success_resets() {
    let app = TestApp::spawn().await;
    app.account("target", Role::Viewer).await;
    app.account("bystander", Role::Viewer).await;

    // Four failures, a success: the count starts again.
    for _ in 0..4 {
        assert_eq!(
            login(&app, "target", "wrong password!").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        login(&app, "target", PASSWORD).await.status(),
        StatusCode::OK
    );
    for _ in 0..5 {
        assert_eq!(
            login(&app, "TARGET", "wrong password!").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }

    let locked = login(&app, "target", PASSWORD).await;
    let retry_after: u64 = locked.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((890..=900).contains(&retry_after), "{retry_after}");
    assert_eq!(locked.headers()["cache-control"], "no-store");
    problem(locked, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(
        login(&app, "bystander", PASSWORD).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn unknown_usernames_lock_too_and_replicas_share_the_count() {
    let app = TestApp::spawn().await;
    let replica = app.replica(&[]).await;

    for instance in [&app, &replica, &app, &replica, &app] {
        assert_eq!(
            login(instance, "ghost", "whatever password").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }

    problem(
        login(&replica, "ghost", "whatever password").await,
        StatusCode::TOO_MANY_REQUESTS,
    )
    .await;
    problem(
        login(&app, "Ghost", "whatever password").await,
        StatusCode::TOO_MANY_REQUESTS,
    )
    .await;
}

#[tokio::test]
async fn the_lock_lifts_fifteen_minutes_after_the_last_failure() {
    let app = TestApp::spawn().await;
    app.account("patient", Role::Viewer).await;
    for _ in 0..5 {
        login(&app, "patient", "wrong password!").await;
    }
    assert_eq!(
        login(&app, "patient", PASSWORD).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    // Move the failures 15 minutes into the past instead of waiting.
    let old = (chrono::Utc::now() - chrono::Duration::minutes(15))
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string();
    app.execute_sql(&format!(
        "update login_failure set last_failure_at = '{old}', window_started_at = '{old}'"
    ))
    .await;

    assert_eq!(
        login(&app, "patient", PASSWORD).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn registration_creates_viewers_only_and_reveals_nothing_extra() {
    let app = TestApp::spawn().await;
    app.account("taken", Role::Viewer).await;
    let register = |body: Value| {
        let request = app.anonymous.post(app.url("/v1/auth/register")).json(&body);
        async move { request.send().await.unwrap() }
    };

    let created = register(
        json!({"username": "newbie", "email": "newbie@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(created.headers()["cache-control"], "no-store");
    let user: Value = created.json().await.unwrap();
    assert_eq!(user["role"], "viewer");
    assert!(!user.to_string().contains(PASSWORD) && user.get("password_hash").is_none());
    let (access, _) = pair(login(&app, "newbie", PASSWORD).await).await;
    assert_eq!(me(&app, &access).await.status(), StatusCode::OK);

    let escalation = register(json!({"username": "sneaky", "email": "s@example.com", "password": PASSWORD, "role": "admin"})).await;
    let fields =
        crate::harness::error_fields(&problem(escalation, StatusCode::UNPROCESSABLE_ENTITY).await);
    assert_eq!(fields, ["role"]);

    let same_name =
        register(json!({"username": "TAKEN", "email": "fresh@example.com", "password": PASSWORD}))
            .await;
    let same_email =
        register(json!({"username": "fresh", "email": "Taken@Example.com", "password": PASSWORD}))
            .await;
    let name_body = problem(same_name, StatusCode::CONFLICT).await;
    let email_body = problem(same_email, StatusCode::CONFLICT).await;
    assert_eq!(name_body["detail"], email_body["detail"]);

    let weak =
        register(json!({"username": "weakling", "email": "w@example.com", "password": "weakling"}))
            .await;
    let weak_body = problem(weak, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(
        !weak_body.to_string().contains("\"weakling\""),
        "{weak_body}"
    );
}

#[tokio::test]
async fn registration_can_be_closed() {
    let app = TestApp::spawn_with(&[("STARSONGS__AUTH__ALLOW_REGISTRATION", "false")]).await;

    let response = app
        .anonymous
        .post(app.url("/v1/auth/register"))
        .json(&json!({"username": "newbie", "email": "newbie@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();

    problem(response, StatusCode::FORBIDDEN).await;
    assert_eq!(
        login(&app, "newbie", PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn eddsa_keys_from_files_sign_tokens_others_can_verify_with_the_public_key() {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/jwt");
    let private = format!("{fixtures}/ed25519-private.pem");
    let public = format!("{fixtures}/ed25519-public.pem");
    let app = TestApp::spawn_with(&[
        ("STARSONGS__AUTH__JWT_ALGORITHM", "EdDSA"),
        ("STARSONGS__AUTH__JWT_PRIVATE_KEY_FILE", &private),
        ("STARSONGS__AUTH__JWT_PUBLIC_KEY_FILE", &public),
    ])
    .await;
    app.account("ziggy", Role::Viewer).await;

    let (access, _) = pair(login(&app, "ziggy", PASSWORD).await).await;
    let hs256 = encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": "1", "role": "admin", "iat": now(), "nbf": now(), "exp": now() + 60,
                "iss": "starsongs", "aud": "starsongs-api", "jti": "x", "sid": "s"}),
        &EncodingKey::from_secret(&std::fs::read(&public).unwrap()),
    )
    .unwrap();

    assert_eq!(
        jsonwebtoken::decode_header(&access).unwrap().alg,
        Algorithm::EdDSA
    );
    // Another service verifies with the public key alone.
    let mut validation = jsonwebtoken::Validation::new(Algorithm::EdDSA);
    validation.set_audience(&["starsongs-api"]);
    validation.set_issuer(&["starsongs"]);
    let key = jsonwebtoken::DecodingKey::from_ed_pem(&std::fs::read(&public).unwrap()).unwrap();
    assert!(jsonwebtoken::decode::<Value>(&access, &key, &validation).is_ok());
    assert_eq!(me(&app, &access).await.status(), StatusCode::OK);
    // Algorithm confusion: HS256 "signed" with the public key is refused.
    invalid_token(me(&app, &hs256).await, "HS256 with the public key").await;
}

/// An HS256 token for `user_id`, signed with `secret`, valid for ten minutes.
fn hs256_token(user_id: i64, secret: &str) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": user_id.to_string(), "role": "viewer", "iat": now(), "nbf": now(),
                "exp": now() + 600, "iss": "starsongs", "aud": "starsongs-api", "jti": "k",
                "sid": "s"}),
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn tokens_signed_with_the_previous_secret_work_until_it_is_removed() {
    const NEW_SECRET: &str = "test-only new HS256 secret after rotation";
    const UNRELATED: &str = "test-only unrelated secret, never configured";
    // The old deployment signs with JWT_SECRET.
    let old = TestApp::spawn().await;
    let (id, old_token) = old.account("rotated", Role::Viewer).await;
    let unrelated = hs256_token(id, UNRELATED);

    let rotating = old
        .replica(&[
            ("STARSONGS__AUTH__JWT_SECRET", NEW_SECRET),
            ("STARSONGS__AUTH__JWT_PREVIOUS_SECRET", JWT_SECRET),
            ("STARSONGS__AUTH__JWT_ROTATED_AT", &in_a_second()),
        ])
        .await;
    let rotated = old
        .replica(&[("STARSONGS__AUTH__JWT_SECRET", NEW_SECRET)])
        .await;
    let (new_token, _) = pair(login(&rotating, "rotated", PASSWORD).await).await;

    assert_eq!(me(&rotating, &old_token).await.status(), StatusCode::OK);
    invalid_token(me(&rotating, &unrelated).await, "unrelated, rotating").await;
    invalid_token(me(&rotated, &old_token).await, "old, previous removed").await;
    invalid_token(me(&rotated, &unrelated).await, "unrelated, rotated").await;
    // New tokens are signed with the new secret only.
    assert_eq!(me(&rotated, &new_token).await.status(), StatusCode::OK);
    invalid_token(me(&old, &new_token).await, "new token, old secret only").await;
}

#[tokio::test]
async fn tokens_of_the_previous_key_pair_work_until_its_public_key_is_removed() {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/jwt");
    let old_private = format!("{fixtures}/ed25519-previous-private.pem");
    let old_public = format!("{fixtures}/ed25519-previous-public.pem");
    let new_private = format!("{fixtures}/ed25519-private.pem");
    let new_public = format!("{fixtures}/ed25519-public.pem");
    let eddsa = ("STARSONGS__AUTH__JWT_ALGORITHM", "EdDSA");
    let old = TestApp::spawn_with(&[
        eddsa,
        ("STARSONGS__AUTH__JWT_PRIVATE_KEY_FILE", &old_private),
        ("STARSONGS__AUTH__JWT_PUBLIC_KEY_FILE", &old_public),
    ])
    .await;
    let (id, old_token) = old.account("rotated", Role::Viewer).await;
    // HS256 "signed" with the previous public key's bytes: algorithm confusion.
    let confused = hs256_token(id, &std::fs::read_to_string(&old_public).unwrap());

    let rotating = old
        .replica(&[
            eddsa,
            ("STARSONGS__AUTH__JWT_PRIVATE_KEY_FILE", &new_private),
            ("STARSONGS__AUTH__JWT_PUBLIC_KEY_FILE", &new_public),
            ("STARSONGS__AUTH__JWT_PREVIOUS_PUBLIC_KEY_FILE", &old_public),
            ("STARSONGS__AUTH__JWT_ROTATED_AT", &in_a_second()),
        ])
        .await;
    let rotated = old
        .replica(&[
            eddsa,
            ("STARSONGS__AUTH__JWT_PRIVATE_KEY_FILE", &new_private),
            ("STARSONGS__AUTH__JWT_PUBLIC_KEY_FILE", &new_public),
        ])
        .await;

    assert_eq!(me(&rotating, &old_token).await.status(), StatusCode::OK);
    invalid_token(
        me(&rotating, &confused).await,
        "HS256 with the old public key",
    )
    .await;
    invalid_token(me(&rotated, &old_token).await, "old pair, previous removed").await;
}

#[tokio::test]
async fn parallel_guesses_check_at_most_five_passwords_then_even_the_right_one_waits() {
    let app = TestApp::spawn().await;
    app.account("target", Role::Viewer).await;

    let guesses =
        futures_util::future::join_all((0..30).map(|_| login(&app, "target", "wrong password!")))
            .await;
    let statuses: Vec<StatusCode> = guesses.iter().map(Response::status).collect();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let limited = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();

    assert_eq!((refused, limited), (5, 25), "{statuses:?}");
    // The name is locked now, for the right password too.
    problem(
        login(&app, "target", PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS,
    )
    .await;
}

#[tokio::test]
async fn logout_ends_that_logins_access_tokens_and_only_that_login() {
    let app = TestApp::spawn_with(&[("STARSONGS__AUTH__GRANT_CACHE_SECS", "1")]).await;
    let replica = app
        .replica(&[("STARSONGS__AUTH__GRANT_CACHE_SECS", "1")])
        .await;
    app.account("ziggy", Role::Viewer).await;
    let (access, refresh) = pair(login(&app, "ziggy", PASSWORD).await).await;
    let (other_access, _) = pair(login(&app, "ziggy", PASSWORD).await).await;
    assert_eq!(me(&app, &access).await.status(), StatusCode::OK);
    assert_eq!(me(&replica, &access).await.status(), StatusCode::OK);

    let logout = post_token(&app, "/v1/auth/logout", &refresh).await;
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);

    // At once on the replica that made the change...
    invalid_token(me(&app, &access).await, "same replica").await;
    // ...and within the cache time on another.
    until_refused(&replica, &access, "other replica").await;
    assert_eq!(me(&app, &other_access).await.status(), StatusCode::OK);
    assert_eq!(me(&replica, &other_access).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_reused_refresh_token_ends_the_access_tokens_of_its_family() {
    let app = TestApp::spawn().await;
    app.account("ziggy", Role::Viewer).await;
    let (first_access, first) = pair(login(&app, "ziggy", PASSWORD).await).await;
    let (second_access, _) = pair(post_token(&app, "/v1/auth/refresh", &first).await).await;
    assert_eq!(me(&app, &second_access).await.status(), StatusCode::OK);

    // The thief replays the stolen, spent token.
    invalid_token(post_token(&app, "/v1/auth/refresh", &first).await, "reuse").await;

    invalid_token(me(&app, &first_access).await, "first access token").await;
    invalid_token(me(&app, &second_access).await, "current access token").await;
}

#[tokio::test]
async fn a_password_reset_ends_every_login_of_the_user() {
    let app = TestApp::spawn().await;
    let (id, harness_token) = app.account("compromised", Role::Editor).await;
    let (access, refresh) = pair(login(&app, "compromised", PASSWORD).await).await;
    let (bystander_id, bystander) = app.account("bystander", Role::Editor).await;
    assert_ne!(id, bystander_id);

    let reset = app
        .admin()
        .send_json(
            reqwest::Method::PATCH,
            &format!("/v1/admin/users/{id}"),
            &json!({"password": "a brand new long password"}),
        )
        .await;
    assert_eq!(reset.status(), StatusCode::OK);

    invalid_token(me(&app, &access).await, "login after reset").await;
    invalid_token(me(&app, &harness_token).await, "other login after reset").await;
    invalid_token(
        post_token(&app, "/v1/auth/refresh", &refresh).await,
        "refresh after reset",
    )
    .await;
    assert_eq!(me(&app, &bystander).await.status(), StatusCode::OK);
    assert_eq!(
        login(&app, "compromised", "a brand new long password")
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_login_ends_at_its_maximum_age_however_often_it_is_refreshed() {
    let app = TestApp::spawn().await;
    app.account("ziggy", Role::Viewer).await;
    let (_, first) = pair(login(&app, "ziggy", PASSWORD).await).await;
    let (_, second) = pair(post_token(&app, "/v1/auth/refresh", &first).await).await;
    // Move the sign-in 30 days into the past instead of waiting.
    app.execute_sql("update refresh_token set session_started_at = '2000-01-01T00:00:00.000000Z'")
        .await;

    invalid_token(
        post_token(&app, "/v1/auth/refresh", &second).await,
        "past auth.session_max_secs",
    )
    .await;
}

#[tokio::test]
async fn a_token_signed_with_the_real_key_may_not_claim_a_longer_life() {
    let app = TestApp::spawn().await;
    app.account("ziggy", Role::Viewer).await;
    let (access, _) = pair(login(&app, "ziggy", PASSWORD).await).await;
    let real = claims_of(&access);
    let forge = |lifetime: u64| {
        let mut claims = real.clone();
        claims["exp"] = json!(real["iat"].as_u64().unwrap() + lifetime);
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
        )
        .unwrap()
    };

    invalid_token(me(&app, &forge(30 * 86_400)).await, "30 days").await;
    invalid_token(me(&app, &forge(900 + 31)).await, "just over").await;
    assert_eq!(me(&app, &forge(900)).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_previous_key_verifies_only_tokens_issued_before_the_rotation() {
    const NEW_SECRET: &str = "test-only new HS256 secret after rotation";
    let old = TestApp::spawn().await;
    let (_, old_token) = old.account("rotated", Role::Viewer).await;
    let mut minted = claims_of(&old_token);
    let rotated_at = chrono::Utc::now() - chrono::Duration::seconds(30);
    let rotating = old
        .replica(&[
            ("STARSONGS__AUTH__JWT_SECRET", NEW_SECRET),
            ("STARSONGS__AUTH__JWT_PREVIOUS_SECRET", JWT_SECRET),
            ("STARSONGS__AUTH__JWT_ROTATED_AT", &rotated_at.to_rfc3339()),
        ])
        .await;
    let backdated = {
        let mut claims = minted.clone();
        let issued = u64::try_from(rotated_at.timestamp()).unwrap() - 60;
        claims["iat"] = json!(issued);
        claims["nbf"] = json!(issued);
        claims["exp"] = json!(issued + 900);
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
        )
        .unwrap()
    };
    // Whoever still holds the old key mints a token after the switch.
    minted["jti"] = json!("minted-after-the-rotation");
    let after = encode(
        &Header::new(Algorithm::HS256),
        &minted,
        &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap();

    assert_eq!(me(&rotating, &backdated).await.status(), StatusCode::OK);
    invalid_token(me(&rotating, &after).await, "minted after the rotation").await;
    invalid_token(
        me(&rotating, &old_token).await,
        "issued after the rotation instant",
    )
    .await;
}
