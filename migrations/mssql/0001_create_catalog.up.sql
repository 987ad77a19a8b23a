-- Artists and songs; the same change as migrations/sqlite/0001 and migrations/postgres/0001.
-- The original system's tables and names stay: dbo.Artist(id, name) and
-- dbo.Song(id, title, artistID, released, URL, distance) with FK_Song_Artist. On a
-- database made by the original sql/schema.sql this migration adopts the two tables
-- (their rows stay; OPERATIONS.md, "Adopting the original database"); on an empty
-- database it creates them.
-- `version` backs the ETag. `*_key` columns hold the case-folded text `q` searches; the
-- service computes them (rows adopted here get LOWER(), the same for almost all text).
-- Sorted text uses a _BIN2 collation: code point order, as on the other backends.
-- NVARCHAR(256): 64 characters may take 128 UTF-16 code units.

IF OBJECT_ID(N'dbo.Artist', N'U') IS NULL
    CREATE TABLE dbo.Artist (
        id INT IDENTITY(1, 1) NOT NULL CONSTRAINT PK_Artist PRIMARY KEY,
        name NVARCHAR(256) COLLATE Latin1_General_100_BIN2 NOT NULL
    );

IF OBJECT_ID(N'dbo.Song', N'U') IS NULL
    CREATE TABLE dbo.Song (
        id INT IDENTITY(1, 1) NOT NULL CONSTRAINT PK_Song PRIMARY KEY,
        title NVARCHAR(256) COLLATE Latin1_General_100_BIN2 NOT NULL,
        artistID INT NULL,
        released DATE NULL,
        URL NVARCHAR(2048) NULL,
        distance FLOAT NULL
    );
GO

-- The original FK's delete rule is not known here: make it NO ACTION (the API's 409).
IF OBJECT_ID(N'dbo.FK_Song_Artist', N'F') IS NOT NULL
    ALTER TABLE dbo.Song DROP CONSTRAINT FK_Song_Artist;

ALTER TABLE dbo.Artist ALTER COLUMN name NVARCHAR(256) COLLATE Latin1_General_100_BIN2 NOT NULL;
ALTER TABLE dbo.Song ALTER COLUMN title NVARCHAR(256) COLLATE Latin1_General_100_BIN2 NOT NULL;
ALTER TABLE dbo.Song ALTER COLUMN released DATE NULL;
ALTER TABLE dbo.Song ALTER COLUMN URL NVARCHAR(2048) NULL;
ALTER TABLE dbo.Song ALTER COLUMN distance FLOAT NULL;

ALTER TABLE dbo.Artist ADD
    name_key NVARCHAR(256) COLLATE Latin1_General_100_BIN2 NULL,
    version BIGINT NOT NULL CONSTRAINT DF_Artist_version DEFAULT 1,
    created_at DATETIMEOFFSET(6) NOT NULL CONSTRAINT DF_Artist_created_at DEFAULT SYSUTCDATETIME(),
    updated_at DATETIMEOFFSET(6) NOT NULL CONSTRAINT DF_Artist_updated_at DEFAULT SYSUTCDATETIME();

ALTER TABLE dbo.Song ADD
    title_key NVARCHAR(256) COLLATE Latin1_General_100_BIN2 NULL,
    version BIGINT NOT NULL CONSTRAINT DF_Song_version DEFAULT 1,
    created_at DATETIMEOFFSET(6) NOT NULL CONSTRAINT DF_Song_created_at DEFAULT SYSUTCDATETIME(),
    updated_at DATETIMEOFFSET(6) NOT NULL CONSTRAINT DF_Song_updated_at DEFAULT SYSUTCDATETIME(),
    -- NULLs sort last in both directions (API.md); these make that order indexable.
    released_is_null AS (CASE WHEN released IS NULL THEN 1 ELSE 0 END) PERSISTED,
    distance_is_null AS (CASE WHEN distance IS NULL THEN 1 ELSE 0 END) PERSISTED;

ALTER TABLE dbo.Song ADD CONSTRAINT FK_Song_Artist
    FOREIGN KEY (artistID) REFERENCES dbo.Artist (id) ON DELETE NO ACTION;
GO

UPDATE dbo.Artist SET name_key = LOWER(name) WHERE name_key IS NULL;
UPDATE dbo.Song SET title_key = LOWER(title) WHERE title_key IS NULL;
ALTER TABLE dbo.Artist ALTER COLUMN name_key NVARCHAR(256) COLLATE Latin1_General_100_BIN2 NOT NULL;
ALTER TABLE dbo.Song ALTER COLUMN title_key NVARCHAR(256) COLLATE Latin1_General_100_BIN2 NOT NULL;
GO

-- One index per sort direction: every order ends with `id` ascending.
CREATE INDEX Artist_name_idx ON dbo.Artist (name, id);
CREATE INDEX Artist_name_desc_idx ON dbo.Artist (name DESC, id);
CREATE INDEX Artist_created_at_idx ON dbo.Artist (created_at, id);
CREATE INDEX Artist_created_at_desc_idx ON dbo.Artist (created_at DESC, id);
CREATE INDEX Song_artistID_idx ON dbo.Song (artistID, id);
CREATE INDEX Song_title_idx ON dbo.Song (title, id);
CREATE INDEX Song_title_desc_idx ON dbo.Song (title DESC, id);
CREATE INDEX Song_released_sort_idx ON dbo.Song (released_is_null, released, id);
CREATE INDEX Song_released_desc_sort_idx ON dbo.Song (released_is_null, released DESC, id);
CREATE INDEX Song_distance_sort_idx ON dbo.Song (distance_is_null, distance, id);
CREATE INDEX Song_distance_desc_sort_idx ON dbo.Song (distance_is_null, distance DESC, id);
CREATE INDEX Song_created_at_idx ON dbo.Song (created_at, id);
CREATE INDEX Song_created_at_desc_idx ON dbo.Song (created_at DESC, id);

-- Small service facts, such as whether the demo data was ever seeded.
CREATE TABLE dbo.app_meta (
    [key] NVARCHAR(128) COLLATE Latin1_General_100_BIN2 NOT NULL CONSTRAINT PK_app_meta PRIMARY KEY,
    value NVARCHAR(MAX) NOT NULL
);
