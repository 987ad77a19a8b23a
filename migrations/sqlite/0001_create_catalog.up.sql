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

create index artist_name_idx on artist (name, id);
create index artist_created_at_idx on artist (created_at, id);

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

create index song_artist_id_idx on song (artist_id, id);
create index song_title_idx on song (title, id);
create index song_release_date_idx on song (release_date, id);
create index song_distance_idx on song (distance, id);
create index song_created_at_idx on song (created_at, id);

-- Small service facts, such as whether the demo data was ever seeded.
create table app_meta (
    key text primary key,
    value text not null
);
