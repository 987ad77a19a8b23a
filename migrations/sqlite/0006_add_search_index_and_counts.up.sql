-- List totals that cost one lookup, and `q` served by an index (#11).
-- Everything here is kept by triggers inside the writing transaction, so a list never
-- sees a total or a search result older than its own snapshot. Existing rows are
-- backfilled below.

-- row_count: how many rows each catalog table holds, for the `total_items` of unfiltered
-- lists (a `count(*)` walks a whole index: about 2 ms per 100,000 songs).
create table row_count (
    name text primary key,
    total integer not null
) without rowid;

insert into row_count (name, total) select 'artist', count(*) from artist;
insert into row_count (name, total) select 'song', count(*) from song;

create trigger artist_count_insert after insert on artist
begin
    update row_count set total = total + 1 where name = 'artist';
end;

create trigger artist_count_delete after delete on artist
begin
    update row_count set total = total - 1 where name = 'artist';
end;

create trigger song_count_insert after insert on song
begin
    update row_count set total = total + 1 where name = 'song';
end;

create trigger song_count_delete after delete on song
begin
    update row_count set total = total - 1 where name = 'song';
end;

-- Offset pages in the default order skip ids in this narrow index instead of walking the
-- wide rows of the table (a covering index holds only the id here).
create index song_id_idx on song (id);
-- Counts of an artist's songs in a date range read this index alone.
create index song_artist_id_release_date_idx on song (artist_id, release_date);

-- FTS5 indexes of every three-character window of the folded `*_key` columns (the trigram
-- tokenizer): a substring query of three or more characters becomes a phrase of trigrams.
-- External content (the rows stay in artist and song; the index holds only trigrams).
-- `case_sensitive 1`: the service already folded case in `*_key`; FTS5 folding on top
-- could make characters equal that `instr` tells apart. `columnsize 0`: no ranking, so
-- no per-row token counts.
create virtual table artist_search using fts5 (
    name_key,
    content = 'artist',
    content_rowid = 'id',
    columnsize = 0,
    tokenize = 'trigram case_sensitive 1'
);

create virtual table song_search using fts5 (
    title_key,
    content = 'song',
    content_rowid = 'id',
    columnsize = 0,
    tokenize = 'trigram case_sensitive 1'
);

insert into artist_search (artist_search) values ('rebuild');
insert into song_search (song_search) values ('rebuild');

-- An external-content index must be told the old text to remove it.
create trigger artist_search_insert after insert on artist
begin
    insert into artist_search (rowid, name_key) values (new.id, new.name_key);
end;

create trigger artist_search_delete after delete on artist
begin
    insert into artist_search (artist_search, rowid, name_key)
    values ('delete', old.id, old.name_key);
end;

create trigger artist_search_update after update of id, name_key on artist
when old.id is not new.id or old.name_key is not new.name_key
begin
    insert into artist_search (artist_search, rowid, name_key)
    values ('delete', old.id, old.name_key);
    insert into artist_search (rowid, name_key) values (new.id, new.name_key);
end;

create trigger song_search_insert after insert on song
begin
    insert into song_search (rowid, title_key) values (new.id, new.title_key);
end;

create trigger song_search_delete after delete on song
begin
    insert into song_search (song_search, rowid, title_key)
    values ('delete', old.id, old.title_key);
end;

create trigger song_search_update after update of id, title_key on song
when old.id is not new.id or old.title_key is not new.title_key
begin
    insert into song_search (song_search, rowid, title_key)
    values ('delete', old.id, old.title_key);
    insert into song_search (rowid, title_key) values (new.id, new.title_key);
end;
