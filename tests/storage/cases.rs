//! Backend-agnostic contract cases: each takes a fresh, migrated, empty store.

use std::sync::Arc;

use chrono::NaiveDate;
use chrono::{Duration, Utc};
use futures_util::FutureExt;
use starsongs::domain::artist::{ArtistChanges, NewArtist};
use starsongs::domain::artist::{ArtistFilter, ArtistSortField};
use starsongs::domain::credential::SecretDigest;
use starsongs::domain::credential::{LoginGate, NewApiKey, NewRefreshToken, Rotation};
use starsongs::domain::demo;
use starsongs::domain::ids::UserId;
use starsongs::domain::ids::{ArtistId, SongId};
use starsongs::domain::list::{ListQuery, Page, Position, Sort, Sortable};
use starsongs::domain::song::{NewSong, Patch, SongChanges, SongFields, SongPatchFields};
use starsongs::domain::song::{SongFilter, SongSortField};
use starsongs::domain::user::UserWithPassword;
use starsongs::domain::user::{Email, NewUser, Password, Role, UserChanges, UsernameKey};
use starsongs::domain::user::{User, UserPatch};
use starsongs::domain::validation::{FieldError, ValidationErrors, search_key};
use starsongs::domain::version::ExpectedVersions;
use starsongs::http::etag::Versioned;
use starsongs::http::idempotency::IdempotencyKey;
use starsongs::storage::{ConflictKind, Entity, Store, StoreError};
use starsongs::storage::{Created, Idempotency, SavedResponse};

fn artist(name: &str) -> NewArtist {
    NewArtist::parse(name).unwrap()
}

fn song(
    title: &str,
    artist_id: Option<ArtistId>,
    date: Option<&str>,
    distance: Option<f64>,
) -> NewSong {
    NewSong::parse(SongFields {
        title,
        artist_id: artist_id.map(ArtistId::get),
        release_date: date,
        url: Some("https://example.com/song"),
        distance,
    })
    .unwrap()
}

fn songs_query(sort: &str, size: u32, filter: SongFilter) -> ListQuery<SongSortField, SongFilter> {
    ListQuery {
        sort: Sort::parse(Some(sort)).unwrap(),
        page_size: size,
        position: Position::Page(1),
        filter,
    }
}

fn digest(secret: &str) -> SecretDigest {
    SecretDigest::of(secret)
}

fn key(username: &str) -> UsernameKey {
    UsernameKey::fold(username)
}

fn titles(page: &Page<starsongs::domain::song::Song>) -> Vec<String> {
    page.items.iter().map(|s| s.title.clone()).collect()
}

/// Six songs: two without a date, two without a distance, one artist-less.
async fn catalog(store: &dyn Store) -> (ArtistId, ArtistId) {
    let bowie = store
        .insert_artist(&artist("David Bowie"))
        .await
        .unwrap()
        .id;
    let floyd = store.insert_artist(&artist("Pink Floyd")).await.unwrap().id;
    for new in [
        song(
            "Space Oddity",
            Some(bowie),
            Some("1969-07-11"),
            Some(238_900.0),
        ),
        song("Starman", Some(bowie), Some("1972-04-28"), Some(384_400.0)),
        song(
            "Astronomy Domine",
            Some(floyd),
            Some("1967-08-05"),
            Some(4_000_000.0),
        ),
        song("No Date", Some(floyd), None, Some(1.0)),
        song("Nothing Known", None, None, None),
        song("100% _pure_ 'quote'", None, Some("2000-01-01"), None),
    ] {
        store.insert_song(&new).await.unwrap();
    }
    (bowie, floyd)
}

pub async fn insert_and_get_round_trip(store: &dyn Store) {
    let created = store.insert_artist(&artist("  Queen ")).await.unwrap();
    let new = song(
        "'39",
        Some(created.id),
        Some("1975-11-21"),
        Some(9_460_730_472_580.8),
    );

    let saved = store.insert_song(&new).await.unwrap();
    let fetched = store.get_song(saved.id).await.unwrap();

    assert_eq!(created.name, "Queen");
    assert_eq!(created.version, 1);
    assert_eq!(store.get_artist(created.id).await.unwrap(), created);
    assert_eq!(fetched, saved);
    assert_eq!(fetched.title, "'39");
    assert_eq!(fetched.artist_id, Some(created.id));
    assert_eq!(fetched.release_date, NaiveDate::from_ymd_opt(1975, 11, 21));
    assert_eq!(fetched.distance, Some(9_460_730_472_580.8));
    assert_eq!(fetched.url.as_deref(), Some("https://example.com/song"));
}

pub async fn get_missing_is_not_found(store: &dyn Store) {
    let artist = store.get_artist(ArtistId::try_from(9).unwrap()).await;
    let song = store.get_song(SongId::try_from(9).unwrap()).await;

    assert!(matches!(
        artist,
        Err(StoreError::NotFound {
            entity: Entity::Artist,
            id: 9
        })
    ));
    assert!(matches!(
        song,
        Err(StoreError::NotFound {
            entity: Entity::Song,
            id: 9
        })
    ));
}

pub async fn list_orders_nulls_last_and_breaks_ties_by_id(store: &dyn Store) {
    catalog(store).await;
    let twin = store
        .insert_song(&song("Starman", None, Some("1972-04-28"), Some(384_400.0)))
        .await
        .unwrap();

    let by_date = store
        .list_songs(&songs_query("release_date", 100, SongFilter::default()))
        .await
        .unwrap();
    let by_date_desc = store
        .list_songs(&songs_query("-release_date", 100, SongFilter::default()))
        .await
        .unwrap();
    let by_distance_desc = store
        .list_songs(&songs_query("-distance", 100, SongFilter::default()))
        .await
        .unwrap();
    let by_title = store
        .list_songs(&songs_query("-title", 100, SongFilter::default()))
        .await
        .unwrap();

    assert_eq!(
        titles(&by_date),
        [
            "Astronomy Domine",
            "Space Oddity",
            "Starman",
            "Starman",
            "100% _pure_ 'quote'",
            "No Date",
            "Nothing Known"
        ]
    );
    assert_eq!(
        titles(&by_date_desc),
        [
            "100% _pure_ 'quote'",
            "Starman",
            "Starman",
            "Space Oddity",
            "Astronomy Domine",
            "No Date",
            "Nothing Known"
        ]
    );
    assert_eq!(
        titles(&by_distance_desc),
        [
            "Astronomy Domine",
            "Starman",
            "Starman",
            "Space Oddity",
            "No Date",
            "Nothing Known",
            "100% _pure_ 'quote'"
        ]
    );
    let starmen: Vec<_> = by_title
        .items
        .iter()
        .filter(|s| s.title == "Starman")
        .map(|s| s.id)
        .collect();
    assert_eq!(
        starmen.last(),
        Some(&twin.id),
        "ties are broken by id ascending"
    );
    assert_eq!(by_date.total_items, 7);
    assert!(!by_date.has_next);
}

pub async fn list_filters_and_counts(store: &dyn Store) {
    let (bowie, _) = catalog(store).await;
    let filter = SongFilter {
        artist_id: Some(bowie),
        released_from: NaiveDate::from_ymd_opt(1970, 1, 1),
        ..SongFilter::default()
    };
    let dated = SongFilter {
        released_to: NaiveDate::from_ymd_opt(1969, 7, 11),
        ..SongFilter::default()
    };

    let bowie_after_1970 = store
        .list_songs(&songs_query("id", 10, filter))
        .await
        .unwrap();
    let until_1969 = store
        .list_songs(&songs_query("release_date", 10, dated))
        .await
        .unwrap();
    let first_page = store
        .list_songs(&songs_query("id", 2, SongFilter::default()))
        .await
        .unwrap();
    let artists = store
        .list_artists(&ListQuery {
            sort: Sort::<ArtistSortField>::parse(Some("-name")).unwrap(),
            page_size: 10,
            position: Position::Page(1),
            filter: ArtistFilter {
                q: Some("bowie".into()),
            },
        })
        .await
        .unwrap();

    assert_eq!(titles(&bowie_after_1970), ["Starman"]);
    assert_eq!(bowie_after_1970.total_items, 1);
    assert_eq!(titles(&until_1969), ["Astronomy Domine", "Space Oddity"]);
    assert_eq!(
        (
            first_page.items.len(),
            first_page.total_items,
            first_page.has_next
        ),
        (2, 6, true)
    );
    assert_eq!(
        artists
            .items
            .iter()
            .map(|a| a.name.as_str())
            .collect::<Vec<_>>(),
        ["David Bowie"]
    );
}

pub async fn search_treats_metacharacters_as_text(store: &dyn Store) {
    catalog(store).await;

    for (q, expected) in [
        ("%", vec!["100% _pure_ 'quote'"]),
        ("_pure_", vec!["100% _pure_ 'quote'"]),
        ("'", vec!["100% _pure_ 'quote'"]),
        ("' or '1'='1", vec![]),
        ("\\", vec![]),
        ("STAR", vec!["Starman"]),
    ] {
        let filter = SongFilter {
            q: Some(q.to_lowercase()),
            ..SongFilter::default()
        };
        let page = store
            .list_songs(&songs_query("id", 10, filter))
            .await
            .unwrap();
        assert_eq!(titles(&page), expected, "q={q}");
    }
}

pub async fn keyset_walk_matches_offset_order(store: &dyn Store) {
    catalog(store).await;
    for title in ["Dup", "Dup", "Dup"] {
        store
            .insert_song(&song(title, None, None, Some(5.0)))
            .await
            .unwrap();
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
        "created_at",
        "-release_date,-distance",
    ] {
        let full = store
            .list_songs(&songs_query(sort, 100, SongFilter::default()))
            .await
            .unwrap();
        let mut query = songs_query(sort, 2, SongFilter::default());
        let mut walked = Vec::new();
        loop {
            let page = store.list_songs(&query).await.unwrap();
            walked.extend(page.items.iter().map(|s| s.id));
            let Some(last) = page.items.last().filter(|_| page.has_next) else {
                break;
            };
            query.position = Position::After(query.sort.values_of(last));
        }
        let expected: Vec<_> = full.items.iter().map(|s| s.id).collect();
        assert_eq!(walked, expected, "sort={sort}");
        let check: Vec<_> = full
            .items
            .iter()
            .map(|s| s.sort_value(SongSortField::Id))
            .collect();
        assert_eq!(check.len(), 9);
    }
}

pub async fn every_write_bumps_the_version(store: &dyn Store) {
    let created = store.insert_artist(&artist("Queen")).await.unwrap();

    let same = store
        .replace_artist(created.id, &artist("Queen"), None)
        .await
        .unwrap();
    let patched = store
        .patch_artist(created.id, &ArtistChanges::default(), None)
        .await
        .unwrap();

    assert_eq!(same.version, 2);
    assert_ne!(same.etag(), created.etag());
    assert_eq!(patched.version, 3);
    assert_eq!(patched.created_at, created.created_at);
    assert!(patched.updated_at >= created.updated_at);
}

pub async fn precondition_failure_changes_nothing(store: &dyn Store) {
    let created = store.insert_artist(&artist("Queen")).await.unwrap();
    let song = store
        .insert_song(&song("'39", Some(created.id), None, None))
        .await
        .unwrap();
    let stale = ExpectedVersions::new(vec![created.version]);
    let current = store
        .replace_artist(created.id, &artist("Queen II"), Some(&stale))
        .await
        .unwrap();
    let stale_song = ExpectedVersions::new(vec![song.version + 1]);

    let again = store
        .replace_artist(created.id, &artist("Queen III"), Some(&stale))
        .await;
    let delete = store.delete_artist(created.id, true, Some(&stale)).await;
    let delete_song = store.delete_song(song.id, Some(&stale_song)).await;

    assert!(matches!(again, Err(StoreError::PreconditionFailed)));
    assert!(matches!(delete, Err(StoreError::PreconditionFailed)));
    assert!(matches!(delete_song, Err(StoreError::PreconditionFailed)));
    assert_eq!(store.get_artist(created.id).await.unwrap(), current);
    assert_eq!(store.get_song(song.id).await.unwrap(), song);
}

pub async fn delete_artist_with_songs_is_conflict_until_cascade(store: &dyn Store) {
    let (bowie, floyd) = catalog(store).await;

    let refused = store.delete_artist(bowie, false, None).await;
    let kept = store
        .list_songs(&songs_query("id", 100, SongFilter::default()))
        .await
        .unwrap();
    store.delete_artist(bowie, true, None).await.unwrap();
    let after = store
        .list_songs(&songs_query("id", 100, SongFilter::default()))
        .await
        .unwrap();

    assert!(
        matches!(
            &refused,
            Err(StoreError::Conflict(ConflictKind::ArtistHasSongs { artist, songs: 2 }))
                if *artist == bowie
        ),
        "{refused:?}"
    );
    assert_eq!(kept.total_items, 6);
    assert!(matches!(
        store.get_artist(bowie).await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(after.total_items, 4);
    assert!(after.items.iter().all(|s| s.artist_id != Some(bowie)));
    assert!(store.get_artist(floyd).await.is_ok());
}

pub async fn song_with_missing_artist_is_artist_not_found(store: &dyn Store) {
    let missing = ArtistId::try_from(404).unwrap();
    let existing = store
        .insert_song(&song("Lonely", None, None, None))
        .await
        .unwrap();

    let inserted = store
        .insert_song(&song("Orphan", Some(missing), None, None))
        .await;
    let replaced = store
        .replace_song(
            existing.id,
            &song("Orphan", Some(missing), None, None),
            None,
        )
        .await;

    for result in [inserted, replaced] {
        assert!(matches!(
            result,
            Err(StoreError::NotFound {
                entity: Entity::Artist,
                id: 404
            })
        ));
    }
    let all = store
        .list_songs(&songs_query("id", 10, SongFilter::default()))
        .await
        .unwrap();
    assert_eq!(titles(&all), ["Lonely"]);
}

pub async fn replace_and_patch_never_create(store: &dyn Store) {
    let ghost = ArtistId::try_from(5).unwrap();
    let ghost_song = SongId::try_from(5).unwrap();

    let replaced = store.replace_artist(ghost, &artist("Ghost"), None).await;
    let patched = store
        .patch_song(ghost_song, &SongChanges::default(), None)
        .await;
    let deleted = store.delete_song(ghost_song, None).await;

    assert!(matches!(
        replaced,
        Err(StoreError::NotFound {
            entity: Entity::Artist,
            id: 5
        })
    ));
    assert!(matches!(
        patched,
        Err(StoreError::NotFound {
            entity: Entity::Song,
            id: 5
        })
    ));
    assert!(matches!(
        deleted,
        Err(StoreError::NotFound {
            entity: Entity::Song,
            id: 5
        })
    ));
    let artists = store
        .list_artists(&ListQuery {
            sort: Sort::parse(None).unwrap(),
            page_size: 10,
            position: Position::Page(1),
            filter: ArtistFilter::default(),
        })
        .await
        .unwrap();
    assert_eq!(artists.total_items, 0);
}

pub async fn include_artist_fills_the_summary(store: &dyn Store) {
    let (bowie, _) = catalog(store).await;
    let with = SongFilter {
        include_artist: true,
        ..SongFilter::default()
    };

    let page = store
        .list_songs(&songs_query("id", 10, with))
        .await
        .unwrap();
    let plain = store
        .list_songs(&songs_query("id", 10, SongFilter::default()))
        .await
        .unwrap();

    let first = &page.items[0];
    assert_eq!(
        first.artist.as_ref().map(|a| (a.id, a.name.as_str())),
        Some((bowie, "David Bowie"))
    );
    let unknown = page
        .items
        .iter()
        .find(|s| s.title == "Nothing Known")
        .unwrap();
    assert_eq!(unknown.artist, None);
    assert!(plain.items.iter().all(|s| s.artist.is_none()));
}

pub async fn concurrent_patches_all_apply(store: &dyn Store) {
    let created = store
        .insert_song(&song("Counter", None, None, Some(0.0)))
        .await
        .unwrap();
    let store: Arc<&dyn Store> = Arc::new(store);

    let patches = (1..=8).map(|i| {
        let store = Arc::clone(&store);
        async move {
            let changes = SongChanges::parse(SongPatchFields {
                distance: Patch::Set(f64::from(i)),
                ..SongPatchFields::default()
            })
            .unwrap();
            store.patch_song(created.id, &changes, None).await
        }
    });
    let results = futures_util::future::join_all(patches).await;

    for result in &results {
        assert!(result.is_ok(), "{result:?}");
    }
    let after = store.get_song(created.id).await.unwrap();
    assert_eq!(
        after.version, 9,
        "every patch bumped the version exactly once"
    );
}

pub async fn demo_seed_runs_once(store: &dyn Store) {
    let first = store
        .seed_demo_data(&demo::catalog().unwrap())
        .await
        .unwrap();
    let all = store
        .list_songs(&songs_query(
            "id",
            100,
            SongFilter {
                include_artist: true,
                ..SongFilter::default()
            },
        ))
        .await
        .unwrap();
    for song in &all.items {
        store.delete_song(song.id, None).await.unwrap();
    }

    let second = store
        .seed_demo_data(&demo::catalog().unwrap())
        .await
        .unwrap();
    let after = store
        .list_songs(&songs_query("id", 100, SongFilter::default()))
        .await
        .unwrap();

    assert!(first);
    assert!(!second);
    assert_eq!(all.total_items, 6);
    let pairs: Vec<(String, String)> = all
        .items
        .iter()
        .map(|s| (s.title.clone(), s.artist.as_ref().unwrap().name.clone()))
        .collect();
    assert!(pairs.contains(&("'39".into(), "Queen".into())));
    assert!(pairs.contains(&("Across the Universe".into(), "The Beatles".into())));
    assert_eq!(after.total_items, 0, "deleted demo songs stay deleted");
}

pub async fn migrations_round_trip(store: &dyn Store) {
    let migrator = store.migrator();
    let known: Vec<i64> = migrator
        .status()
        .await
        .unwrap()
        .iter()
        .map(|m| m.version)
        .collect();
    let mut newest_first = known.clone();
    newest_first.reverse();
    assert_eq!(migrator.pending_count().await.unwrap(), 0);

    let reverted = migrator.down_to(0).await.unwrap();
    let pending = migrator.pending_count().await.unwrap();
    let status = migrator.status().await.unwrap();
    let applied = migrator.up().await.unwrap();

    assert_eq!(
        known,
        (1..=known.len() as i64).collect::<Vec<_>>(),
        "numbered from 1 without gaps"
    );
    assert_eq!(reverted, newest_first);
    assert_eq!(pending, known.len());
    assert!(status.iter().all(|m| !m.is_applied));
    assert_eq!(applied, known);
    assert_eq!(migrator.pending_count().await.unwrap(), 0);
    assert!(
        store
            .insert_artist(&artist("After migration"))
            .await
            .is_ok()
    );
}

fn saved_for(artist: &starsongs::domain::artist::Artist) -> SavedResponse {
    SavedResponse {
        status: 201,
        body: format!("{{\"id\":{}}}", artist.id),
        location: Some(format!("/v1/artists/{}", artist.id)),
        etag: Some(artist.etag().to_string()),
    }
}

pub async fn idempotent_insert_replays_and_rejects_other_requests(store: &dyn Store) {
    let key = IdempotencyKey::parse("key-1").unwrap();
    let render = saved_for;
    let once = Idempotency {
        principal: "anonymous",
        key: key.as_str(),
        fingerprint: "f1",
        render: &render,
    };
    let other_principal = Idempotency {
        principal: "someone",
        ..once
    };
    let other_request = Idempotency {
        fingerprint: "f2",
        ..once
    };

    let first = store
        .insert_artist_once(&artist("Queen"), &once)
        .await
        .unwrap();
    let again = store
        .insert_artist_once(&artist("Queen"), &once)
        .await
        .unwrap();
    let reused = store
        .insert_artist_once(&artist("Queen"), &other_request)
        .await;
    let separate = store
        .insert_artist_once(&artist("Queen"), &other_principal)
        .await
        .unwrap();

    let Created::New(created) = first else {
        panic!("first call creates")
    };
    assert_eq!(again, Created::Replayed(saved_for(&created)));
    assert!(matches!(reused, Err(StoreError::IdempotencyKeyReused)));
    assert!(
        matches!(separate, Created::New(_)),
        "keys are scoped per principal"
    );
}

pub async fn concurrent_idempotent_inserts_create_one(store: &dyn Store) {
    let key = IdempotencyKey::parse("burst").unwrap();
    let render = |song: &starsongs::domain::song::Song| SavedResponse {
        status: 201,
        body: song.id.to_string(),
        location: None,
        etag: None,
    };
    let once = Idempotency {
        principal: "anonymous",
        key: key.as_str(),
        fingerprint: "f",
        render: &render,
    };
    let new = song("Only once", None, None, None);

    let results =
        futures_util::future::join_all((0..8).map(|_| store.insert_song_once(&new, &once))).await;

    let created = results
        .iter()
        .filter(|r| matches!(r, Ok(Created::New(_))))
        .count();
    let replayed = results
        .iter()
        .filter(|r| matches!(r, Ok(Created::Replayed(_))))
        .count();
    assert_eq!((created, replayed), (1, 7), "{results:?}");
    let all = store
        .list_songs(&songs_query("id", 10, SongFilter::default()))
        .await
        .unwrap();
    assert_eq!(all.total_items, 1);
}

pub async fn pruned_keys_can_be_used_again(store: &dyn Store) {
    let key = IdempotencyKey::parse("old").unwrap();
    let render = saved_for;
    let once = Idempotency {
        principal: "anonymous",
        key: key.as_str(),
        fingerprint: "f",
        render: &render,
    };
    store
        .insert_artist_once(&artist("First"), &once)
        .await
        .unwrap();

    let kept = store
        .prune_idempotency_keys(chrono::Utc::now() - chrono::Duration::hours(1))
        .await
        .unwrap();
    let pruned = store
        .prune_idempotency_keys(chrono::Utc::now() + chrono::Duration::seconds(1))
        .await
        .unwrap();
    let again = store
        .insert_artist_once(&artist("Second"), &once)
        .await
        .unwrap();

    assert_eq!((kept, pruned), (0, 1));
    assert!(matches!(again, Created::New(a) if a.name == "Second"));
}

/// A decision that applies `changes` whatever the stored account holds.
fn set(
    changes: &UserChanges,
) -> impl Fn(&User) -> Result<UserChanges, ValidationErrors> + Send + Sync + '_ {
    |_| Ok(changes.clone())
}

fn new_user(username: &str, email: &str, role: Role) -> NewUser {
    let password = secrecy::SecretString::from("correct horse battery".to_owned());
    NewUser::parse(username, email, &password, role).unwrap()
}

pub async fn users_are_unique_ignoring_case(store: &dyn Store) {
    let created = store
        .insert_user(
            &new_user("Ziggy", "Ziggy@Example.com", Role::Editor),
            "$argon2id$fake",
        )
        .await
        .unwrap();

    let same_name = store
        .insert_user(&new_user("ziggy", "other@example.com", Role::Viewer), "h")
        .await;
    let same_email = store
        .insert_user(&new_user("other", "ziggy@example.COM", Role::Viewer), "h")
        .await;
    let found = store.find_user_by_username(&key("ZIGGY")).await.unwrap();
    let missing = store.find_user_by_username(&key("nobody")).await.unwrap();

    assert_eq!(
        (created.username.as_str(), created.role, created.is_active),
        ("Ziggy", Role::Editor, true)
    );
    for result in [same_name, same_email] {
        assert!(
            matches!(
                result,
                Err(StoreError::Conflict(ConflictKind::UsernameOrEmailTaken))
            ),
            "{result:?}"
        );
    }
    assert_eq!(
        found,
        Some(UserWithPassword {
            user: created,
            password_hash: "$argon2id$fake".to_owned(),
        })
    );
    assert_eq!(missing, None);
}

fn refresh(hash: &str, family: &str, user_id: UserId, ttl_minutes: i64) -> NewRefreshToken {
    NewRefreshToken {
        token_hash: digest(hash),
        family_id: family.to_owned(),
        user_id,
        expires_at: Utc::now() + Duration::minutes(ttl_minutes),
        session_started_at: Utc::now(),
    }
}

/// The viewer `ziggy` (`z@example.com`, password hash `h`).
async fn viewer(store: &dyn Store) -> User {
    store
        .insert_user(&new_user("ziggy", "z@example.com", Role::Viewer), "h")
        .await
        .unwrap()
}

/// [`viewer`] with one login: refresh token `t1` of family `fam`, valid for an hour.
async fn signed_in_viewer(store: &dyn Store) -> User {
    let user = viewer(store).await;
    store
        .insert_refresh_token(&refresh("t1", "fam", user.id, 60))
        .await
        .unwrap();
    user
}

/// The longest a login lasts in these cases, unless a case says otherwise.
const SESSION_MAX: Duration = Duration::days(30);

pub async fn refresh_tokens_rotate_once_and_reuse_revokes_the_family(store: &dyn Store) {
    let user = signed_in_viewer(store).await;
    let later = Utc::now() + Duration::minutes(60);

    let rotated = store
        .rotate_refresh_token(&digest("t1"), &digest("t2"), later, SESSION_MAX)
        .await
        .unwrap();
    let reused = store
        .rotate_refresh_token(&digest("t1"), &digest("t3"), later, SESSION_MAX)
        .await
        .unwrap();
    let after_reuse = store
        .rotate_refresh_token(&digest("t2"), &digest("t4"), later, SESSION_MAX)
        .await
        .unwrap();
    let unknown = store
        .rotate_refresh_token(&digest("nope"), &digest("t5"), later, SESSION_MAX)
        .await
        .unwrap();

    assert!(
        matches!(&rotated, Rotation::Rotated { user: u, family_id } if u.id == user.id && family_id == "fam"),
        "{rotated:?}"
    );
    assert_eq!(
        reused,
        Rotation::Reused {
            family_id: "fam".to_owned()
        }
    );
    assert_eq!(after_reuse, Rotation::Rejected);
    assert_eq!(unknown, Rotation::Rejected);
}

pub async fn concurrent_refreshes_of_one_token_succeed_once(store: &dyn Store) {
    let user = store
        .insert_user(&new_user("racer", "r@example.com", Role::Viewer), "h")
        .await
        .unwrap();
    store
        .insert_refresh_token(&refresh("t1", "fam", user.id, 60))
        .await
        .unwrap();
    let later = Utc::now() + Duration::minutes(60);

    let presented = digest("t1");
    let next: Vec<SecretDigest> = (0..8).map(|i| digest(&format!("next-{i}"))).collect();
    let outcomes = futures_util::future::join_all(next.iter().map(|hash| {
        store
            .rotate_refresh_token(&presented, hash, later, SESSION_MAX)
            .boxed()
    }))
    .await;

    let rotated = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(Rotation::Rotated { .. })))
        .count();
    assert_eq!(rotated, 1, "{outcomes:?}");
}

pub async fn expired_revoked_and_inactive_refreshes_are_rejected(store: &dyn Store) {
    let user = viewer(store).await;
    let later = Utc::now() + Duration::minutes(60);
    store
        .insert_refresh_token(&refresh("old", "f1", user.id, -1))
        .await
        .unwrap();
    store
        .insert_refresh_token(&refresh("out", "f2", user.id, 60))
        .await
        .unwrap();
    store
        .insert_refresh_token(&refresh("mine", "f3", user.id, 60))
        .await
        .unwrap();

    let expired = store
        .rotate_refresh_token(&digest("old"), &digest("n1"), later, SESSION_MAX)
        .await
        .unwrap();
    assert_eq!(
        store.revoke_refresh_family(&digest("out")).await.unwrap(),
        Some("f2".to_owned())
    );
    let revoked = store
        .rotate_refresh_token(&digest("out"), &digest("n2"), later, SESSION_MAX)
        .await
        .unwrap();
    let deactivate = UserChanges {
        is_active: Some(false),
        ..UserChanges::default()
    };
    store
        .update_user(user.id, &set(&deactivate), None)
        .await
        .unwrap();
    let inactive = store
        .rotate_refresh_token(&digest("mine"), &digest("n3"), later, SESSION_MAX)
        .await
        .unwrap();
    let pruned = store.prune_credentials(Utc::now()).await.unwrap();

    assert_eq!(
        (expired, revoked, inactive),
        (Rotation::Rejected, Rotation::Rejected, Rotation::Rejected)
    );
    assert_eq!(
        store.revoke_refresh_family(&digest("never")).await.unwrap(),
        None
    );
    assert!(pruned >= 1, "the expired token is pruned");
}

pub async fn login_attempts_lock_after_five_and_clear(store: &dyn Store) {
    // Stored times have microsecond precision.
    let now = chrono::SubsecRound::trunc_subsecs(Utc::now(), 6);
    for _ in 0..5 {
        assert_eq!(
            store.claim_login_attempt(&key("ziggy"), now).await.unwrap(),
            LoginGate::Open
        );
    }
    let sixth = store.claim_login_attempt(&key("ziggy"), now).await.unwrap();
    let seventh = store.claim_login_attempt(&key("ziggy"), now).await.unwrap();
    let other = store.claim_login_attempt(&key("bowie"), now).await.unwrap();
    let after_window = store
        .claim_login_attempt(&key("ziggy"), now + Duration::minutes(15))
        .await
        .unwrap();
    store.clear_login_failures(&key("ziggy")).await.unwrap();
    let cleared = store.claim_login_attempt(&key("ziggy"), now).await.unwrap();

    let until = now + Duration::minutes(15);
    assert_eq!(
        (sixth, seventh),
        (LoginGate::LockedUntil(until), LoginGate::LockedUntil(until)),
        "refused attempts are not counted and do not move the lockout"
    );
    assert_eq!(
        (other, after_window, cleared),
        (LoginGate::Open, LoginGate::Open, LoginGate::Open)
    );
}

pub async fn concurrent_login_attempts_claim_at_most_five(store: &dyn Store) {
    let now = Utc::now();
    let burst = key("burst");

    let outcomes = futures_util::future::join_all(
        (0..30).map(|_| store.claim_login_attempt(&burst, now).boxed()),
    )
    .await;

    let claimed = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(LoginGate::Open)))
        .count();
    let locked = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(LoginGate::LockedUntil(_))))
        .count();
    assert_eq!((claimed, locked), (5, 25), "{outcomes:?}");
}

pub async fn attempts_outside_the_window_start_a_new_count(store: &dyn Store) {
    let start = Utc::now() - Duration::minutes(40);
    for _ in 0..4 {
        store
            .claim_login_attempt(&key("slow"), start)
            .await
            .unwrap();
    }

    let later = store
        .claim_login_attempt(&key("slow"), start + Duration::minutes(16))
        .await
        .unwrap();

    assert_eq!(later, LoginGate::Open);
}

pub async fn a_login_ends_at_its_maximum_age_however_often_refreshed(store: &dyn Store) {
    let user = viewer(store).await;
    let started = Utc::now() - Duration::days(29);
    store
        .insert_refresh_token(&NewRefreshToken {
            session_started_at: started,
            ..refresh("t1", "fam", user.id, 60)
        })
        .await
        .unwrap();
    let a_week = Utc::now() + Duration::days(7);

    let rotated = store
        .rotate_refresh_token(&digest("t1"), &digest("t2"), a_week, SESSION_MAX)
        .await
        .unwrap();
    let past_the_end = store
        .rotate_refresh_token(&digest("t2"), &digest("t3"), a_week, Duration::days(29))
        .await
        .unwrap();

    assert!(matches!(rotated, Rotation::Rotated { .. }), "{rotated:?}");
    assert_eq!(past_the_end, Rotation::Rejected);
}

pub async fn sessions_end_with_logout_reuse_and_password_change(store: &dyn Store) {
    let user = viewer(store).await;
    for (hash, family) in [("a1", "fa"), ("b1", "fb"), ("c1", "fc"), ("d1", "fd")] {
        store
            .insert_refresh_token(&refresh(hash, family, user.id, 60))
            .await
            .unwrap();
    }
    let later = Utc::now() + Duration::minutes(60);
    let active = |family: &'static str| store.is_session_active(family);

    assert!(active("fa").await.unwrap());
    store.revoke_refresh_family(&digest("a1")).await.unwrap();
    store
        .rotate_refresh_token(&digest("b1"), &digest("b2"), later, SESSION_MAX)
        .await
        .unwrap();
    let rotated_is_active = active("fb").await.unwrap();
    store
        .rotate_refresh_token(&digest("b1"), &digest("b3"), later, SESSION_MAX)
        .await
        .unwrap();
    let (logged_out, reused, untouched) = (
        active("fa").await.unwrap(),
        active("fb").await.unwrap(),
        active("fc").await.unwrap(),
    );
    let new_password = UserChanges {
        password: Some(
            Password::parse(
                &secrecy::SecretString::from("another long password".to_owned()),
                "ziggy",
                "z@example.com",
            )
            .unwrap(),
        ),
        ..UserChanges::default()
    };
    store
        .update_user(user.id, &set(&new_password), Some("h2"))
        .await
        .unwrap();

    assert!(rotated_is_active);
    assert_eq!((logged_out, reused, untouched), (false, false, true));
    assert!(!active("fc").await.unwrap());
    assert!(!active("fd").await.unwrap());
    assert!(!active("never").await.unwrap());
}

pub async fn users_change_and_the_last_admin_stays(store: &dyn Store) {
    let admin = store
        .insert_user(&new_user("root", "root@example.com", Role::Admin), "h")
        .await
        .unwrap();
    let user = signed_in_viewer(store).await;
    let promote = UserChanges {
        role: Some(Role::Editor),
        email: Some(Email::parse("new@example.com").unwrap()),
        ..UserChanges::default()
    };
    let demote_admin = UserChanges {
        role: Some(Role::Viewer),
        ..UserChanges::default()
    };

    let changed = store
        .update_user(user.id, &set(&promote), None)
        .await
        .unwrap();
    let revoked = store
        .rotate_refresh_token(
            &digest("t1"),
            &digest("t2"),
            Utc::now() + Duration::minutes(5),
            SESSION_MAX,
        )
        .await
        .unwrap();
    let last_admin = store.update_user(admin.id, &set(&demote_admin), None).await;
    let delete_last = store.delete_user(admin.id).await;
    let page = store
        .list_users(&ListQuery {
            sort: Sort::parse(Some("-username")).unwrap(),
            page_size: 10,
            position: Position::Page(1),
            filter: (),
        })
        .await
        .unwrap();
    store.delete_user(user.id).await.unwrap();
    let gone = store.get_user(user.id).await;

    assert_eq!(
        (changed.role, changed.email.as_str()),
        (Role::Editor, "new@example.com")
    );
    assert!(changed.updated_at >= changed.created_at);
    assert_eq!(revoked, Rotation::Rejected, "a role change ends sessions");
    assert!(matches!(
        last_admin,
        Err(StoreError::Conflict(ConflictKind::LastAdmin))
    ));
    assert!(matches!(
        delete_last,
        Err(StoreError::Conflict(ConflictKind::LastAdmin))
    ));
    assert!(store.has_active_admin().await.unwrap());
    assert_eq!(
        page.items
            .iter()
            .map(|u| u.username.as_str())
            .collect::<Vec<_>>(),
        ["ziggy", "root"]
    );
    assert!(matches!(
        gone,
        Err(StoreError::NotFound {
            entity: Entity::User,
            ..
        })
    ));
}

pub async fn a_user_change_is_decided_against_the_stored_row(store: &dyn Store) {
    use std::sync::Mutex;

    let user = signed_in_viewer(store).await;
    let seen = Mutex::new(Vec::<User>::new());
    let patch = |patch: UserPatch<'static>| {
        let seen = &seen;
        move |current: &User| {
            seen.lock().unwrap().push(current.clone());
            patch.parse(current)
        }
    };
    let secret = |text: &str| -> &'static secrecy::SecretString {
        Box::leak(Box::new(secrecy::SecretString::from(text.to_owned())))
    };
    let stored = || async {
        let found = store
            .find_user_by_username(&key("ziggy"))
            .await
            .unwrap()
            .unwrap();
        (found.user.email, found.password_hash)
    };

    // An unknown account is not found before any change is decided.
    let unknown = UserId::try_from(user.id.get() + 1000).unwrap();
    let missing = store
        .update_user(
            unknown,
            &patch(UserPatch {
                email: Some(None),
                ..UserPatch::default()
            }),
            None,
        )
        .await;
    let decided_for_unknown = seen.lock().unwrap().len();

    // A refused change writes nothing: the password is the stored email.
    let refused = store
        .update_user(
            user.id,
            &patch(UserPatch {
                password: Some(Some(secret("Z@EXAMPLE.COM"))),
                ..UserPatch::default()
            }),
            Some("never stored"),
        )
        .await;
    let refused_plain = store
        .update_user(
            user.id,
            &|_: &User| Err(FieldError::new("email", "is refused").into()),
            None,
        )
        .await;
    let after_refusals = stored().await;

    // The email changes; the next decision sees the new one, and a password equal to it
    // is refused.
    let email_changed = store
        .update_user(
            user.id,
            &patch(UserPatch {
                email: Some(Some("ziggy.stardust@example.com")),
                ..UserPatch::default()
            }),
            None,
        )
        .await
        .unwrap();
    let same_as_new_email = store
        .update_user(
            user.id,
            &patch(UserPatch {
                password: Some(Some(secret("Ziggy.Stardust@example.com"))),
                ..UserPatch::default()
            }),
            Some("h-email"),
        )
        .await;
    let session_before_password = store.is_session_active("fam").await.unwrap();

    // A new password needs its hash; with it, the hash is stored and sessions end.
    let without_hash = store
        .update_user(
            user.id,
            &patch(UserPatch {
                password: Some(Some(secret("a brand new passphrase"))),
                ..UserPatch::default()
            }),
            None,
        )
        .await;
    let hash_after_refusal = stored().await.1;
    store
        .update_user(
            user.id,
            &patch(UserPatch {
                password: Some(Some(secret("a brand new passphrase"))),
                ..UserPatch::default()
            }),
            Some("h2"),
        )
        .await
        .unwrap();

    assert!(matches!(
        missing,
        Err(StoreError::NotFound {
            entity: Entity::User,
            ..
        })
    ));
    assert_eq!(decided_for_unknown, 0, "no decision without the row");
    let fields = |result: &Result<User, StoreError>| match result {
        Err(StoreError::Invalid(errors)) => errors
            .errors()
            .iter()
            .map(|e| e.field.clone())
            .collect::<Vec<_>>(),
        other => panic!("expected a refused change, got {other:?}"),
    };
    assert_eq!(fields(&refused), ["password"]);
    assert_eq!(fields(&refused_plain), ["email"]);
    assert_eq!(after_refusals.0.as_str(), "z@example.com");
    assert_eq!(after_refusals.1, "h", "a refused change writes nothing");
    assert_eq!(email_changed.email.as_str(), "ziggy.stardust@example.com");
    assert_eq!(fields(&same_as_new_email), ["password"]);
    assert!(session_before_password, "refused changes keep sessions");
    assert!(matches!(without_hash, Err(StoreError::Other(_))));
    assert_eq!(hash_after_refusal, "h");
    assert_eq!(stored().await.1, "h2");
    assert!(!store.is_session_active("fam").await.unwrap());
    let seen = seen.lock().unwrap();
    assert!(seen.iter().all(|u| u.id == user.id));
    assert_eq!(
        seen.last().unwrap().email.as_str(),
        "ziggy.stardust@example.com",
        "each decision reads the row as stored"
    );
}

pub async fn api_keys_are_found_by_digest_and_deleted(store: &dyn Store) {
    let new = NewApiKey::parse("importer", "editor").unwrap();
    let key = store
        .insert_api_key(&new, &digest("digest-1"), "ssk_abcdefgh")
        .await
        .unwrap();

    let found = store.find_api_key(&digest("digest-1")).await.unwrap();
    let missing = store.find_api_key(&digest("digest-2")).await.unwrap();
    let page = store
        .list_api_keys(&ListQuery {
            sort: Sort::parse(None).unwrap(),
            page_size: 10,
            position: Position::Page(1),
            filter: (),
        })
        .await
        .unwrap();
    store.delete_api_key(key.id).await.unwrap();
    let again = store.delete_api_key(key.id).await;

    assert_eq!(
        (key.name.as_str(), key.role, key.prefix.as_str()),
        ("importer", Role::Editor, "ssk_abcdefgh")
    );
    assert_eq!(found, Some(key.clone()));
    assert_eq!(missing, None);
    assert_eq!(page.items, [key]);
    assert_eq!(store.find_api_key(&digest("digest-1")).await.unwrap(), None);
    assert!(matches!(
        again,
        Err(StoreError::NotFound {
            entity: Entity::ApiKey,
            ..
        })
    ));
}

/// Every page of `first`, following each page's last item as the cursor.
async fn walk_songs(
    store: &dyn Store,
    mut query: ListQuery<SongSortField, SongFilter>,
) -> Vec<starsongs::domain::song::Song> {
    let mut seen = Vec::new();
    loop {
        let page = store.list_songs(&query).await.unwrap();
        let last = page.items.last().cloned();
        seen.extend(page.items);
        match last {
            Some(last) if page.has_next => {
                query.position = Position::After(query.sort.values_of(&last));
            }
            _ => return seen,
        }
    }
}

pub async fn text_sorts_by_code_point_and_cursors_walk_it(store: &dyn Store) {
    // Names that differ only in case, accents and script: code point order puts every
    // upper-case ASCII letter before every lower-case one, and non-ASCII after both.
    let names = [
        "b", "B", "a", "A", "é", "e", "É", "Z", "ß", "日本", "Ω", "ä", "Ä", "a b", "ab", "Ab",
    ];
    for name in names {
        store.insert_artist(&artist(name)).await.unwrap();
    }
    let mut expected: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    expected.sort();
    let mut expected_desc = expected.clone();
    expected_desc.reverse();

    for (sort, want) in [("name", &expected), ("-name", &expected_desc)] {
        let mut query = ListQuery {
            sort: Sort::<ArtistSortField>::parse(Some(sort)).unwrap(),
            page_size: 100,
            position: Position::Page(1),
            filter: ArtistFilter::default(),
        };
        let whole: Vec<String> = store
            .list_artists(&query)
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|a| a.name)
            .collect();
        query.page_size = 3;
        let mut walked = Vec::new();
        loop {
            let page = store.list_artists(&query).await.unwrap();
            let last = page.items.last().cloned();
            walked.extend(page.items.into_iter().map(|a| a.name));
            match last {
                Some(last) if page.has_next => {
                    query.position = Position::After(query.sort.values_of(&last));
                }
                _ => break,
            }
        }

        assert_eq!(&whole, want, "sort={sort}");
        assert_eq!(&walked, want, "cursor walk, sort={sort}");
    }
}

/// A deterministic stream of full-precision finite doubles (xorshift64 over the bits).
fn random_doubles(seed: u64, count: usize) -> Vec<f64> {
    let mut state = seed;
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let value = f64::from_bits(state);
        if value.is_finite() {
            out.push(value);
        }
    }
    out
}

pub async fn full_precision_distances_walk_by_cursor_exactly_once(store: &dyn Store) {
    let mut distances: Vec<Option<f64>> = random_doubles(0x5eed_cafe, 40)
        .into_iter()
        .map(Some)
        .collect();
    // Neighbours one ULP apart, ties, zeros of both signs, and NULLs.
    let near = 1.0e5_f64;
    distances.extend([
        Some(near),
        Some(f64::from_bits(near.to_bits() + 1)),
        Some(f64::from_bits(near.to_bits() - 1)),
        Some(near),
        Some(0.0),
        Some(-0.0),
        None,
        None,
    ]);
    let mut created = Vec::new();
    for (i, distance) in distances.iter().enumerate() {
        let saved = store
            .insert_song(&song(&format!("d{i}"), None, None, *distance))
            .await
            .unwrap();
        created.push(saved);
    }

    for song in &created {
        let back = store.get_song(song.id).await.unwrap();
        assert_eq!(
            back.distance.map(f64::to_bits),
            song.distance.map(f64::to_bits),
            "stored bit for bit"
        );
    }
    for sort in ["distance", "-distance"] {
        let walked = walk_songs(store, songs_query(sort, 7, SongFilter::default())).await;
        let whole = store
            .list_songs(&songs_query(sort, 100, SongFilter::default()))
            .await
            .unwrap()
            .items;

        let mut ids: Vec<_> = walked.iter().map(|s| s.id).collect();
        assert_eq!(
            ids,
            whole.iter().map(|s| s.id).collect::<Vec<_>>(),
            "sort={sort}"
        );
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), created.len(), "every song once, sort={sort}");
        assert!(
            walked[walked.len() - 2..]
                .iter()
                .all(|s| s.distance.is_none()),
            "NULLs last"
        );
    }
}

pub async fn concurrent_migrations_apply_each_once(store: &dyn Store) {
    let migrator = store.migrator();
    migrator.down_to(0).await.unwrap();

    // Two runs on two connections at once, as two replicas starting together: a second
    // application of any migration would fail (its tables exist already).
    let (first, second) = futures_util::future::join(migrator.up(), migrator.up()).await;

    let (first, second) = (first.unwrap(), second.unwrap());
    let mut union: Vec<i64> = first.iter().chain(&second).copied().collect();
    union.sort_unstable();
    union.dedup();
    let status = migrator.status().await.unwrap();
    assert_eq!(union, (1..=status.len() as i64).collect::<Vec<_>>());
    assert!(status.iter().all(|m| m.is_applied));
    assert_eq!(migrator.pending_count().await.unwrap(), 0);
    assert!(store.insert_artist(&artist("Migrated")).await.is_ok());
}

pub async fn typed_errors_for_conflicts_and_unsupported_operations(store: &dyn Store) {
    let first = store.insert_artist(&artist("Kept")).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let taken = dir.path().join("taken.db");
    std::fs::write(&taken, b"not empty").unwrap();

    let backup = store.backup_to(&taken).await;
    let missing = ExpectedVersions::new(vec![]);
    let replaced = store
        .replace_artist(first.id, &artist("Changed"), Some(&missing))
        .await;

    assert!(
        matches!(
            backup,
            Err(StoreError::Conflict(ConflictKind::BackupDestinationExists)
                | StoreError::Unsupported {
                    operation: "backup",
                    ..
                })
        ),
        "{backup:?}"
    );
    assert!(matches!(replaced, Err(StoreError::PreconditionFailed)));
    assert_eq!(store.get_artist(first.id).await.unwrap(), first);
}

/// Titles and names for the search cases: case, accents (composed and combining), `%`,
/// `_`, quotes, FTS5 operators, scripts whose folding changes length, emoji.
const SEARCH_TEXTS: &[&str] = &[
    "Love Me Do",
    "GLOVE box",
    "Lovely",
    "lo",
    "(Live) Love",
    "Ünïcödé Straße",
    "STRASSE",
    "İstanbul",
    "ΣΊΣΥΦΟΣ",
    "100% _pure_ 'quote'",
    "l%v_",
    "say \"hi\" now",
    "a\"\"b",
    "x* OR y",
    "NEAR(love, 2)",
    "日本語の歌",
    "emoji 😀🎵 song",
    "e\u{301}clair",
    "éclair",
    "-minus",
];

/// `q` values for the search cases, as a client sends them (the store gets them folded).
const SEARCH_QUERIES: &[&str] = &[
    "l",
    "lo",
    "ov",
    "love",
    "LOVE",
    "ove",
    "é",
    "éc",
    "e\u{301}",
    "e\u{301}c",
    "straße",
    "strasse",
    "ss",
    "%",
    "_",
    "%_",
    "l%v_",
    "'",
    "\"",
    "\"hi\"",
    "a\"\"b",
    "\"\"",
    "x* or y",
    "or",
    "near(",
    "*",
    "日本",
    "日本語",
    "😀",
    "😀🎵 s",
    "σ",
    "σίσ",
    "i\u{307}st",
    " ",
    " lo",
    "zzz",
    "(live)",
    "-min",
    "'quote'",
];

/// Checks `q` on songs and artists against a brute-force filter over every row (what
/// `instr` on the folded key answers): the same rows, the exact `total_items`, and
/// cursor walks under other orders (a nullable leading key included) that visit the
/// same rows. `artist` adds an `artist_id` filter to the song lists.
pub async fn assert_search_matches_brute_force(
    store: &dyn Store,
    queries: &[&str],
    artist: Option<ArtistId>,
) {
    let all_songs = walk_songs(store, songs_query("id", 100, SongFilter::default())).await;
    let all_artists = store
        .list_artists(&ListQuery {
            sort: Sort::<ArtistSortField>::parse(Some("id")).unwrap(),
            page_size: 100,
            position: Position::Page(1),
            filter: ArtistFilter::default(),
        })
        .await
        .unwrap();
    assert_eq!(all_songs.len() as u64, {
        store
            .list_songs(&songs_query("id", 1, SongFilter::default()))
            .await
            .unwrap()
            .total_items
    });
    assert_eq!(all_artists.items.len() as u64, all_artists.total_items);

    for q in queries {
        let folded = search_key(q);
        let expected: Vec<SongId> = all_songs
            .iter()
            .filter(|s| search_key(&s.title).contains(&folded))
            .filter(|s| artist.is_none() || s.artist_id == artist)
            .map(|s| s.id)
            .collect();
        let filter = SongFilter {
            q: Some(folded.clone()),
            artist_id: artist,
            ..SongFilter::default()
        };

        let page = store
            .list_songs(&songs_query("id", 100, filter.clone()))
            .await
            .unwrap();
        assert_eq!(
            page.items.iter().map(|s| s.id).collect::<Vec<_>>(),
            expected,
            "songs q={q:?} artist={artist:?}"
        );
        assert_eq!(
            page.total_items,
            expected.len() as u64,
            "songs total q={q:?}"
        );
        for sort in ["-id", "title", "-release_date"] {
            let offset = store
                .list_songs(&songs_query(sort, 100, filter.clone()))
                .await
                .unwrap();
            let walked = walk_songs(store, songs_query(sort, 2, filter.clone())).await;
            assert_eq!(
                walked.iter().map(|s| s.id).collect::<Vec<_>>(),
                offset.items.iter().map(|s| s.id).collect::<Vec<_>>(),
                "cursor walk q={q:?} sort={sort}"
            );
            let mut ids: Vec<SongId> = walked.iter().map(|s| s.id).collect();
            ids.sort();
            assert_eq!(ids, expected, "walk rows q={q:?} sort={sort}");
        }

        let expected_artists: Vec<ArtistId> = all_artists
            .items
            .iter()
            .filter(|a| search_key(&a.name).contains(&folded))
            .map(|a| a.id)
            .collect();
        let artists = store
            .list_artists(&ListQuery {
                sort: Sort::<ArtistSortField>::parse(Some("-name")).unwrap(),
                page_size: 100,
                position: Position::Page(1),
                filter: ArtistFilter {
                    q: Some(folded.clone()),
                },
            })
            .await
            .unwrap();
        let mut ids: Vec<ArtistId> = artists.items.iter().map(|a| a.id).collect();
        ids.sort();
        assert_eq!(ids, expected_artists, "artists q={q:?}");
        assert_eq!(artists.total_items, expected_artists.len() as u64);
    }
}

/// Artists and songs named from [`SEARCH_TEXTS`]; returns the two artists that own songs.
pub async fn search_catalog(store: &dyn Store) -> (ArtistId, ArtistId) {
    let mut owners = Vec::new();
    for name in SEARCH_TEXTS {
        owners.push(store.insert_artist(&artist(name)).await.unwrap().id);
    }
    let (first, second) = (owners[0], owners[1]);
    for (i, title) in SEARCH_TEXTS.iter().enumerate() {
        let owner = [Some(first), Some(second), None][i % 3];
        let date = (i % 4 != 0).then_some("1999-12-31");
        store
            .insert_song(&song(title, owner, date, Some(i as f64)))
            .await
            .unwrap();
    }
    (first, second)
}

pub async fn search_and_totals_match_a_brute_force_filter(store: &dyn Store) {
    let (first, _) = search_catalog(store).await;

    assert_search_matches_brute_force(store, SEARCH_QUERIES, None).await;
    assert_search_matches_brute_force(store, SEARCH_QUERIES, Some(first)).await;
}

pub async fn totals_and_search_stay_exact_after_every_write(store: &dyn Store) {
    let (first, second) = search_catalog(store).await;
    let queries = ["lo", "love", "ove", "glove", "help", "unlov", "é", "straße"];
    let all = walk_songs(store, songs_query("id", 100, SongFilter::default())).await;
    let id_of = |title: &str| all.iter().find(|s| s.title == title).unwrap().id;

    let retitled = SongChanges::parse(SongPatchFields {
        title: Patch::Set("Help"),
        ..SongPatchFields::default()
    })
    .unwrap();
    store
        .patch_song(id_of("Love Me Do"), &retitled, None)
        .await
        .unwrap();
    store
        .replace_song(
            id_of("Lovely"),
            &song("Unlovable Straße", Some(second), None, None),
            None,
        )
        .await
        .unwrap();
    let undated = SongChanges::parse(SongPatchFields {
        release_date: Patch::Clear,
        ..SongPatchFields::default()
    })
    .unwrap();
    store
        .patch_song(id_of("(Live) Love"), &undated, None)
        .await
        .unwrap();
    store
        .patch_artist(
            second,
            &ArtistChanges::parse(Some(Some("Glove Lovers"))).unwrap(),
            None,
        )
        .await
        .unwrap();
    assert_search_matches_brute_force(store, &queries, None).await;

    store.delete_song(id_of("GLOVE box"), None).await.unwrap();
    store
        .insert_song(&song("Glove Love", Some(first), None, None))
        .await
        .unwrap();
    assert_search_matches_brute_force(store, &queries, None).await;
    assert_search_matches_brute_force(store, &queries, Some(second)).await;

    let songs_before = store
        .list_songs(&songs_query("id", 1, SongFilter::default()))
        .await
        .unwrap()
        .total_items;
    let owned = walk_songs(
        store,
        songs_query(
            "id",
            100,
            SongFilter {
                artist_id: Some(second),
                ..SongFilter::default()
            },
        ),
    )
    .await
    .len() as u64;
    store.delete_artist(second, true, None).await.unwrap();
    let songs_after = store
        .list_songs(&songs_query("id", 1, SongFilter::default()))
        .await
        .unwrap()
        .total_items;

    assert!(owned > 0);
    assert_eq!(songs_after, songs_before - owned, "the cascade is counted");
    assert_search_matches_brute_force(store, &queries, None).await;
    assert_search_matches_brute_force(store, &queries, Some(first)).await;
}
