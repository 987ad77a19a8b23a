//! The Grafana dashboard and the Prometheus alert rules name only metrics the service
//! exports: every series selector in `deploy/grafana/starsongs.json` and
//! `deploy/prometheus/alerts.yml` must appear on the real `/metrics` of a running binary.

use std::collections::BTreeSet;

use serde_json::json;

use crate::harness::client;

/// Prometheus's own series, not the service's.
const SCRAPE_SERIES: [&str; 1] = ["up"];

/// Every `name{` in `text`: PromQL series selectors (both files always select by `job`).
fn selected_metrics(text: &str) -> BTreeSet<String> {
    let bytes = text.as_bytes();
    let mut names = BTreeSet::new();
    for (at, byte) in bytes.iter().enumerate() {
        if *byte != b'{' {
            continue;
        }
        let start = bytes[..at]
            .iter()
            .rposition(|b| !(b.is_ascii_alphanumeric() || *b == b'_' || *b == b':'))
            .map_or(0, |p| p + 1);
        let name = &text[start..at];
        if name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
            names.insert(name.to_owned());
        }
    }
    names
}

/// Metric names with at least one sample in a Prometheus text exposition.
fn exported_metrics(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| line.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn every_metric_in_the_dashboard_and_the_alerts_is_exported() {
    let root = env!("CARGO_MANIFEST_DIR");
    let dashboard =
        std::fs::read_to_string(format!("{root}/deploy/grafana/starsongs.json")).unwrap();
    let alerts = std::fs::read_to_string(format!("{root}/deploy/prometheus/alerts.yml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("metrics.db").display()
    );
    // One login a minute on the auth routes: the second login is rejected, so the
    // rate-limit counter has a sample too.
    let mut service = crate::harness::ServiceProcess::spawn(
        crate::harness::service_command(&url)
            .env("STARSONGS__RATE_LIMIT__AUTH_REQUESTS_PER_MINUTE", "1")
            .env("STARSONGS__RATE_LIMIT__AUTH_BURST", "1"),
    );
    let (address, admin) = (service.address.clone(), service.admin.clone());
    let http = client();
    for _ in 0..2 {
        http.post(format!("http://{address}/v1/auth/login"))
            .json(&json!({"username": "nobody", "password": "not-the-password"}))
            .send()
            .await
            .unwrap();
    }
    let listed = http
        .get(format!("http://{address}/v1/artists"))
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 401);

    let exposition = http
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    service.child.kill().unwrap();
    service.child.wait().unwrap();

    let exported = exported_metrics(&exposition);
    for (file, text) in [("starsongs.json", &dashboard), ("alerts.yml", &alerts)] {
        let selected = selected_metrics(text);
        assert!(
            selected.contains("http_requests_total") && selected.len() >= 5,
            "{file}: the scan found only {selected:?}"
        );
        let missing: Vec<_> = selected
            .iter()
            .filter(|name| !SCRAPE_SERIES.contains(&name.as_str()))
            .filter(|name| !exported.contains(*name))
            .collect();
        assert!(
            missing.is_empty(),
            "{file} uses metrics that /metrics does not export: {missing:?}\n{exposition}"
        );
    }
}

#[test]
fn the_scan_finds_selectors_and_skips_templates() {
    let found = selected_metrics(
        r#"sum(rate(a_total{job="x"}[5m])) / b_seconds_bucket{le="1"} {{ $labels.job }}"#,
    );

    assert_eq!(
        found.into_iter().collect::<Vec<_>>(),
        ["a_total", "b_seconds_bucket"]
    );
}
