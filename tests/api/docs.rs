//! OpenAPI document, Swagger UI, the redirect and `GET /`.

use reqwest::StatusCode;
use reqwest::redirect::Policy;
use serde_json::Value;

use crate::harness::{TestApp, parts};

#[tokio::test]
async fn openapi_document_is_3_1_and_lists_every_endpoint() {
    let app = TestApp::spawn().await;

    let (status, _, document) = parts(app.get("/openapi.json").await).await;

    assert_eq!(status, StatusCode::OK);
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = document["paths"].as_object().unwrap();
    for (path, methods) in [
        ("/v1/artists", &["get", "post"][..]),
        ("/v1/artists/{id}", &["get", "put", "patch", "delete"][..]),
        ("/v1/artists/{id}/songs", &["get"][..]),
        ("/v1/songs", &["get", "post"][..]),
        ("/v1/songs/{id}", &["get", "put", "patch", "delete"][..]),
        ("/health", &["get"][..]),
        ("/health/live", &["get"][..]),
        ("/health/ready", &["get"][..]),
        ("/", &["get"][..]),
    ] {
        for method in methods {
            assert!(
                paths[path].get(*method).is_some(),
                "{method} {path} undocumented"
            );
        }
    }
    let problem_schema = &document["components"]["schemas"]["Problem"];
    assert!(problem_schema["properties"].get("request_id").is_some());
}

#[tokio::test]
async fn committed_openapi_json_matches_the_code() {
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json"))
        .expect("openapi.json is committed at the repository root");
    let generated = starsongs::http::openapi().to_pretty_json().unwrap();

    let committed: Value = serde_json::from_str(&committed).unwrap();
    let generated: Value = serde_json::from_str(&generated).unwrap();

    assert!(
        committed == generated,
        "openapi.json is stale: run `cargo run -q -- openapi > openapi.json` and commit it"
    );
}

#[tokio::test]
async fn swagger_ui_is_served_from_the_binary_and_the_old_address_redirects() {
    let app = TestApp::spawn().await;
    let no_redirects = crate::harness::client_builder()
        .redirect(Policy::none())
        .build()
        .unwrap();

    let page = app.get("/docs/").await;
    let redirect = no_redirects
        .get(app.url("/swagger-ui.html"))
        .send()
        .await
        .unwrap();

    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.text().await.unwrap().contains("swagger-ui"));
    assert_eq!(redirect.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(redirect.headers()["location"], "/docs/");
    let initializer = app.get("/docs/swagger-initializer.js").await;
    assert_eq!(initializer.status(), StatusCode::OK);
    assert!(initializer.text().await.unwrap().contains("/openapi.json"));
}

#[tokio::test]
async fn root_names_the_service_and_links_the_docs() {
    let app = TestApp::spawn().await;

    let (status, _, body) = parts(app.get("/").await).await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["name"], "starsongs");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(body["links"]["docs"], "/docs");
    assert_eq!(body["links"]["openapi"], "/openapi.json");
}
