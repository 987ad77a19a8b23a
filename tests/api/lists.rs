//! Lists: envelope, paging limits, sorting with nulls last, filters, `include=artist`,
//! and keyset cursors.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{TestApp, error_fields, parts, problem};

async fn list(app: &TestApp, path: &str) -> Value {
    let (status, content_type, body) = parts(app.get(path).await).await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    assert_eq!(content_type, "application/json");
    body
}

fn titles(body: &Value) -> Vec<String> {
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            s["title"]
                .as_str()
                .or(s["name"].as_str())
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// The demo-like catalog: two songs without a release date and one without a distance.
async fn catalog(app: &TestApp) -> (i64, i64) {
    let bowie = app.create_artist("David Bowie").await["id"]
        .as_i64()
        .unwrap();
    let floyd = app.create_artist("Pink Floyd").await["id"]
        .as_i64()
        .unwrap();
    for song in [
        json!({"title": "Space Oddity", "artist_id": bowie, "release_date": "1969-07-11", "distance": 238900.0}),
        json!({"title": "Starman", "artist_id": bowie, "release_date": "1972-04-28", "distance": 384400.0}),
        json!({"title": "Astronomy Domine", "artist_id": floyd, "release_date": "1967-08-05", "distance": 4000000.0}),
        json!({"title": "No Date", "artist_id": floyd, "distance": 1.0}),
        json!({"title": "Nothing Known"}),
        json!({"title": "50% _off_ 'quoted'", "release_date": "2000-01-01"}),
    ] {
        app.create_song(&song).await;
    }
    (bowie, floyd)
}

#[tokio::test]
async fn envelope_reports_pages_and_a_page_past_the_end_is_empty() {
    let app = TestApp::spawn().await;
    for i in 0..12 {
        app.create_artist(&format!("Artist {i:02}")).await;
    }

    let first = list(&app, "/v1/artists").await;
    let second = list(&app, "/v1/artists?page=2").await;
    let past = list(&app, "/v1/artists?page=5&page_size=5").await;

    assert_eq!(first["items"].as_array().unwrap().len(), 10);
    let pagination = &first["pagination"];
    assert_eq!(
        (
            pagination["page"].clone(),
            pagination["page_size"].clone(),
            pagination["total_items"].clone()
        ),
        (json!(1), json!(10), json!(12))
    );
    assert_eq!(
        (
            pagination["total_pages"].clone(),
            pagination["has_next"].clone(),
            pagination["has_prev"].clone()
        ),
        (json!(2), json!(true), json!(false))
    );
    assert!(pagination["next_cursor"].is_string());
    assert_eq!(second["items"].as_array().unwrap().len(), 2);
    assert_eq!(second["pagination"]["has_next"], false);
    assert_eq!(second["pagination"]["has_prev"], true);
    assert_eq!(second["pagination"]["next_cursor"], Value::Null);
    assert_eq!(past["items"], json!([]));
    assert_eq!(past["pagination"]["total_items"], 12);
}

#[tokio::test]
async fn paging_parameters_out_of_range_are_422() {
    let app = TestApp::spawn().await;

    for query in [
        "page=0",
        "page=-1",
        "page=abc",
        "page=99999999999999999999",
        "page_size=0",
        "page_size=101",
        "page_size=1e2",
    ] {
        let body = problem(
            app.get(&format!("/v1/songs?{query}")).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        let field = query.split('=').next().unwrap();
        assert_eq!(error_fields(&body), [field], "{query}");
    }
    let max = list(&app, "/v1/songs?page_size=100&page=2147483647").await;
    assert_eq!(max["items"], json!([]));
}

#[tokio::test]
async fn sorts_put_nulls_last_in_both_directions_and_break_ties_by_id() {
    let app = TestApp::spawn().await;
    catalog(&app).await;

    let ascending = list(&app, "/v1/songs?sort=release_date&page_size=100").await;
    let descending = list(&app, "/v1/songs?sort=-release_date&page_size=100").await;
    let by_distance = list(&app, "/v1/songs?sort=-distance,title&page_size=100").await;
    let by_title = list(&app, "/v1/songs?sort=-title").await;

    assert_eq!(
        titles(&ascending),
        [
            "Astronomy Domine",
            "Space Oddity",
            "Starman",
            "50% _off_ 'quoted'",
            "No Date",
            "Nothing Known"
        ]
    );
    assert_eq!(
        titles(&descending),
        [
            "50% _off_ 'quoted'",
            "Starman",
            "Space Oddity",
            "Astronomy Domine",
            "No Date",
            "Nothing Known"
        ]
    );
    assert_eq!(
        titles(&by_distance),
        [
            "Astronomy Domine",
            "Starman",
            "Space Oddity",
            "No Date",
            "50% _off_ 'quoted'",
            "Nothing Known"
        ]
    );
    assert_eq!(
        titles(&by_title),
        [
            "Starman",
            "Space Oddity",
            "Nothing Known",
            "No Date",
            "Astronomy Domine",
            "50% _off_ 'quoted'"
        ]
    );
}

#[tokio::test]
async fn unknown_or_hostile_sort_fields_are_422() {
    let app = TestApp::spawn().await;
    catalog(&app).await;

    for sort in [
        "name",
        "title;drop table song",
        "title desc",
        "-",
        "title,,id",
        "url",
        "artist_id",
    ] {
        let path = format!("/v1/songs?sort={}", urlencode(sort));
        let body = problem(app.get(&path).await, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(error_fields(&body), ["sort"], "{sort}");
    }
    let body = problem(
        app.get("/v1/artists?sort=title").await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(error_fields(&body), ["sort"]);
    assert_eq!(
        list(&app, "/v1/songs").await["pagination"]["total_items"],
        6
    );
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn search_is_case_insensitive_plain_text() {
    let app = TestApp::spawn().await;
    catalog(&app).await;

    let star = list(&app, "/v1/songs?q=STAR&sort=title").await;
    let percent = list(&app, &format!("/v1/songs?q={}", urlencode("%"))).await;
    let underscore = list(&app, &format!("/v1/songs?q={}", urlencode("_off_"))).await;
    let quote = list(&app, &format!("/v1/songs?q={}", urlencode("'quoted'"))).await;
    let injection = list(&app, &format!("/v1/songs?q={}", urlencode("' or 1=1 --"))).await;
    let artists = list(&app, "/v1/artists?q=floyd").await;

    assert_eq!(titles(&star), ["Starman"]);
    assert_eq!(titles(&percent), ["50% _off_ 'quoted'"]);
    assert_eq!(titles(&underscore), ["50% _off_ 'quoted'"]);
    assert_eq!(titles(&quote), ["50% _off_ 'quoted'"]);
    assert_eq!(injection["items"], json!([]));
    assert_eq!(titles(&artists), ["Pink Floyd"]);
}

#[tokio::test]
async fn search_folds_non_ascii_case() {
    let app = TestApp::spawn().await;
    app.create_artist("Björk").await;
    app.create_artist("ÆSOP ROCK").await;

    let bjork = list(&app, &format!("/v1/artists?q={}", urlencode("BJÖRK"))).await;
    let aesop = list(&app, &format!("/v1/artists?q={}", urlencode("æsop"))).await;

    assert_eq!(titles(&bjork), ["Björk"]);
    assert_eq!(titles(&aesop), ["ÆSOP ROCK"]);
}

#[tokio::test]
async fn filters_by_artist_and_inclusive_release_dates() {
    let app = TestApp::spawn().await;
    let (bowie, _) = catalog(&app).await;

    let by_artist = list(&app, &format!("/v1/songs?artist_id={bowie}&sort=title")).await;
    let range = list(
        &app,
        "/v1/songs?released_from=1969-07-11&released_to=1972-04-28&sort=release_date",
    )
    .await;
    let from_only = list(&app, "/v1/songs?released_from=1972-01-01&sort=release_date").await;
    let nobody = list(&app, "/v1/songs?artist_id=2147483647").await;

    assert_eq!(titles(&by_artist), ["Space Oddity", "Starman"]);
    assert_eq!(titles(&range), ["Space Oddity", "Starman"]);
    assert_eq!(titles(&from_only), ["Starman", "50% _off_ 'quoted'"]);
    assert_eq!(nobody["items"], json!([]));
}

#[tokio::test]
async fn invalid_filters_are_all_reported() {
    let app = TestApp::spawn().await;

    let body = problem(
        app.get(
            "/v1/songs?artist_id=0&released_from=1970-02-30&released_to=yesterday&include=songs",
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let reversed = problem(
        app.get("/v1/songs?released_from=1980-01-01&released_to=1970-01-01")
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;

    assert_eq!(
        error_fields(&body),
        ["artist_id", "released_from", "released_to", "include"]
    );
    assert_eq!(error_fields(&reversed), ["released_to"]);
}

#[tokio::test]
async fn include_artist_embeds_id_and_name_or_null() {
    let app = TestApp::spawn().await;
    let (bowie, _) = catalog(&app).await;

    let with = list(&app, "/v1/songs?include=artist&sort=title").await;
    let without = list(&app, "/v1/songs?sort=title").await;

    let items = with["items"].as_array().unwrap();
    let nothing = items
        .iter()
        .find(|s| s["title"] == "Nothing Known")
        .unwrap();
    let starman = items.iter().find(|s| s["title"] == "Starman").unwrap();
    assert_eq!(nothing["artist"], Value::Null);
    assert_eq!(
        starman["artist"],
        json!({"id": bowie, "name": "David Bowie"})
    );
    assert!(
        without["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s.get("artist").is_none())
    );
}

/// Walks a list with `next_cursor` and returns every title.
async fn walk(app: &TestApp, query: &str) -> Vec<String> {
    let mut all = Vec::new();
    let mut body = list(app, &format!("/v1/songs?{query}")).await;
    loop {
        all.extend(titles(&body));
        let Some(cursor) = body["pagination"]["next_cursor"].as_str() else {
            break;
        };
        assert_eq!(body["pagination"]["has_next"], true);
        body = list(app, &format!("/v1/songs?{query}&cursor={cursor}")).await;
        assert_eq!(body["pagination"]["page"], Value::Null);
        assert_eq!(body["pagination"]["has_prev"], true);
    }
    all
}

#[tokio::test]
async fn cursor_walks_match_the_full_order_for_every_sort() {
    let app = TestApp::spawn().await;
    catalog(&app).await;
    // Duplicates make ties that only the id can break.
    for _ in 0..3 {
        app.create_song(
            &json!({"title": "Starman", "release_date": "1972-04-28", "distance": 384400.0}),
        )
        .await;
        app.create_song(&json!({"title": "Twin"})).await;
    }

    for sort in [
        "id",
        "-id",
        "title",
        "-title",
        "release_date",
        "-release_date",
        "distance",
        "-distance,title",
        "-created_at",
        "release_date,-distance",
    ] {
        let full = titles(&list(&app, &format!("/v1/songs?sort={sort}&page_size=100")).await);
        for size in [1, 2, 5] {
            let walked = walk(&app, &format!("sort={sort}&page_size={size}")).await;
            assert_eq!(walked, full, "sort={sort} page_size={size}");
        }
    }
}

#[tokio::test]
async fn cursor_keeps_filters_and_page_mode_cursor_continues_after_the_page() {
    let app = TestApp::spawn().await;
    let (_, floyd) = catalog(&app).await;
    let first = list(&app, "/v1/songs?sort=title&page_size=2&page=1").await;
    let cursor = first["pagination"]["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();

    let continued = list(
        &app,
        &format!("/v1/songs?sort=title&page_size=2&cursor={cursor}"),
    )
    .await;
    let second_page = list(&app, "/v1/songs?sort=title&page_size=2&page=2").await;
    let filtered = walk(&app, &format!("artist_id={floyd}&sort=title&page_size=1")).await;

    assert_eq!(titles(&continued), titles(&second_page));
    assert_eq!(filtered, ["Astronomy Domine", "No Date"]);
}

#[tokio::test]
async fn foreign_tampered_or_mismatched_cursors_are_422() {
    let app = TestApp::spawn().await;
    catalog(&app).await;
    let body = list(&app, "/v1/songs?sort=title&page_size=2").await;
    let cursor = body["pagination"]["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let artists = list(&app, "/v1/artists?page_size=1").await;
    let artist_cursor = artists["pagination"]["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut tampered = cursor.clone().into_bytes();
    tampered[3] = if tampered[3] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();

    for query in [
        format!("sort=title&page_size=2&cursor={tampered}"),
        format!("sort=-title&page_size=2&cursor={cursor}"),
        format!("sort=title&q=star&page_size=2&cursor={cursor}"),
        format!("sort=id&page_size=2&cursor={artist_cursor}"),
        "cursor=garbage".to_owned(),
        "cursor=".to_owned(),
    ] {
        let body = problem(
            app.get(&format!("/v1/songs?{query}")).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(error_fields(&body), ["cursor"], "{query}");
    }
    let both = problem(
        app.get(&format!("/v1/songs?sort=title&page=2&cursor={cursor}"))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(error_fields(&both), ["cursor"]);
    // A different page size is not a different query: the cursor stays valid.
    let resized = app
        .get(&format!("/v1/songs?sort=title&page_size=5&cursor={cursor}"))
        .await;
    assert_eq!(resized.status(), StatusCode::OK);
}

#[tokio::test]
async fn full_precision_distances_round_trip_bit_for_bit_and_cursor_walks_see_each_once() {
    let app = TestApp::spawn().await;
    // Full-precision doubles from a fixed xorshift64 stream, as a client's measurements
    // would be; a one-ULP change on the way in or out would break the walk or the equality.
    let mut state: u64 = 0x0123_4567_89ab_cdef;
    let mut distances = Vec::new();
    while distances.len() < 30 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let value = f64::from_bits(state);
        if value.is_finite() {
            distances.push(value);
        }
    }
    let mut ids = Vec::new();
    for (i, distance) in distances.iter().enumerate() {
        let created = app
            .create_song(&json!({"title": format!("d{i}"), "distance": distance}))
            .await;
        ids.push(created["id"].as_i64().unwrap());
    }

    for (id, distance) in ids.iter().zip(&distances) {
        let song = list(&app, &format!("/v1/songs/{id}")).await;
        assert_eq!(
            song["distance"].as_f64().unwrap().to_bits(),
            distance.to_bits(),
            "song {id}"
        );
    }
    for sort in ["distance", "-distance"] {
        let mut seen = Vec::new();
        let mut path = format!("/v1/songs?sort={sort}&page_size=7");
        loop {
            let page = list(&app, &path).await;
            seen.extend(
                page["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s["id"].as_i64().unwrap()),
            );
            match page["pagination"]["next_cursor"].as_str() {
                Some(cursor) => path = format!("/v1/songs?sort={sort}&page_size=7&cursor={cursor}"),
                None => break,
            }
        }
        let mut by_distance: Vec<(f64, i64)> =
            distances.iter().copied().zip(ids.iter().copied()).collect();
        by_distance.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        if sort.starts_with('-') {
            by_distance.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        }

        assert_eq!(
            seen,
            by_distance.iter().map(|(_, id)| *id).collect::<Vec<_>>(),
            "sort={sort}: every song exactly once, in order"
        );
    }
}
