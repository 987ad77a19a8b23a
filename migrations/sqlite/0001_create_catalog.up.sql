-- Artists and songs (API.md "Resources").
-- `version` backs the ETag: every successful modification increments it.
-- `*_key` columns hold the case-folded text that `q` searches, computed by the service so
-- that every backend folds case the same way.
-- AUTOINCREMENT: ids are never reused, so an old ETag or link never names a new row.

create table artist (
    id integer primary key autoincrement,
    name text not null,
    name_key text not null,
    version integer not null default 1,
    created_at text not null,
    updated_at text not null
);

-- One index per sort direction: every order ends with `id` ascending (API.md), which a
-- backwards scan of an ascending index cannot give.
create index artist_name_idx on artist (name, id);
create index artist_name_desc_idx on artist (name desc, id);
create index artist_created_at_idx on artist (created_at, id);
create index artist_created_at_desc_idx on artist (created_at desc, id);

create table song (
    id integer primary key autoincrement,
    title text not null,
    title_key text not null,
    artist_id integer references artist (id) on delete restrict,
    release_date text,
    url text,
    distance real,
    version integer not null default 1,
    created_at text not null,
    updated_at text not null
);

-- Filters: artist_id and the release date range.
create index song_artist_id_idx on song (artist_id, id);
create index song_release_date_idx on song (release_date, id);
-- Sorts, one per direction (see artist). Nullable columns sort as `c is null, c` so that
-- NULLs come last in both directions; the expression indexes match that order.
create index song_title_idx on song (title, id);
create index song_title_desc_idx on song (title desc, id);
create index song_release_date_sort_idx on song (release_date is null, release_date, id);
create index song_release_date_desc_sort_idx on song (release_date is null, release_date desc, id);
create index song_distance_sort_idx on song (distance is null, distance, id);
create index song_distance_desc_sort_idx on song (distance is null, distance desc, id);
create index song_created_at_idx on song (created_at, id);
create index song_created_at_desc_idx on song (created_at desc, id);

-- Small service facts, such as whether the demo data was ever seeded.
create table app_meta (
    key text primary key,
    value text not null
);
