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
-- Adopting, ALTER COLUMN refuses a column that an index or a CREATE STATISTICS statistic
-- covers (Msg 5074), and the original schema indexes name and title: "Adoption, step 1"
-- drops those first, found in the catalog, and keeps each index's definition in a #temp
-- table (it lives as long as the session: the runner sends every batch of a migration on
-- one connection, in one transaction); "Adoption, step 2", after this migration's own
-- indexes, recreates the ones still useful. On an empty database both do nothing.

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

-- Adoption, step 1: before the ALTER COLUMNs of the next batch, drop every index and every
-- CREATE STATISTICS statistic that covers a column they alter (as a key, an INCLUDE or in
-- its filter), found in the catalog whatever its name. Statistics the server created
-- itself need nothing: ALTER COLUMN drops those. A PRIMARY KEY or UNIQUE constraint goes
-- with DROP CONSTRAINT. Each index's definition (UNIQUE, CLUSTERED or not, key columns
-- with ASC/DESC in order, INCLUDE columns, filter) is kept in #adopt_index for step 2;
-- statistics are not recreated (the server builds what queries need). Kinds of index this
-- cannot rebuild (columnstore, memory-optimized) stop the migration, which changes nothing.

-- Catalog text is read COLLATE DATABASE_DEFAULT: catalog views need not share one
-- collation (Azure SQL has a catalog collation of its own), and joining text of two
-- collations in one expression is an error.

-- The columns the next batch alters.
CREATE TABLE #adopt_column (object_id INT NOT NULL, column_id INT NOT NULL);
INSERT INTO #adopt_column (object_id, column_id)
SELECT c.object_id, c.column_id
FROM sys.columns AS c
WHERE (c.object_id = OBJECT_ID(N'dbo.Artist') AND c.name = N'name')
    OR (c.object_id = OBJECT_ID(N'dbo.Song')
        AND c.name IN (N'title', N'released', N'URL', N'distance'));

-- `seq` orders the drops: nonclustered indexes before a clustered one, so that the others
-- are not rebuilt twice. Step 2 recreates in the reverse order.
CREATE TABLE #adopt_index (
    seq INT IDENTITY(1, 1) NOT NULL PRIMARY KEY,
    object_id INT NOT NULL,
    index_id INT NOT NULL,
    type TINYINT NOT NULL,
    type_desc NVARCHAR(60) NOT NULL,
    index_name NVARCHAR(128) NOT NULL,
    -- Recreated whatever else exists: it enforces uniqueness or orders the table.
    is_needed BIT NOT NULL,
    -- Never recreated: a hypothetical (tuning advisor) or disabled index.
    is_inactive BIT NOT NULL,
    drop_sql NVARCHAR(MAX) NOT NULL,
    create_sql NVARCHAR(MAX) NULL
);
INSERT INTO #adopt_index
    (object_id, index_id, type, type_desc, index_name, is_needed, is_inactive, drop_sql,
        create_sql)
SELECT
    i.object_id,
    i.index_id,
    i.type,
    i.type_desc,
    i.name,
    CASE WHEN i.is_unique = 1 OR i.type = 1 THEN 1 ELSE 0 END,
    CASE WHEN i.is_hypothetical = 1 OR i.is_disabled = 1 THEN 1 ELSE 0 END,
    CASE WHEN i.is_primary_key = 1 OR i.is_unique_constraint = 1
        THEN N'ALTER TABLE ' + q.tbl + N' DROP CONSTRAINT ' + q.idx
        ELSE N'DROP INDEX ' + q.idx + N' ON ' + q.tbl
    END,
    CASE
        WHEN i.is_primary_key = 1 OR i.is_unique_constraint = 1
            THEN N'ALTER TABLE ' + q.tbl + N' ADD CONSTRAINT ' + q.idx
                + CASE WHEN i.is_primary_key = 1 THEN N' PRIMARY KEY ' ELSE N' UNIQUE ' END
                + q.kind + N' (' + k.list + N')'
        ELSE N'CREATE ' + CASE WHEN i.is_unique = 1 THEN N'UNIQUE ' ELSE N'' END
            + q.kind + N' INDEX ' + q.idx + N' ON ' + q.tbl + N' (' + k.list + N')'
            + COALESCE(N' INCLUDE (' + inc.list + N')', N'')
            + COALESCE(N' WHERE ' + i.filter_definition COLLATE DATABASE_DEFAULT, N'')
    END
FROM sys.indexes AS i
CROSS APPLY (
    SELECT
        QUOTENAME(s.name COLLATE DATABASE_DEFAULT) + N'.'
            + QUOTENAME(o.name COLLATE DATABASE_DEFAULT) AS tbl,
        QUOTENAME(i.name COLLATE DATABASE_DEFAULT) AS idx,
        CASE WHEN i.type = 1 THEN N'CLUSTERED' ELSE N'NONCLUSTERED' END AS kind
    FROM sys.objects AS o
    JOIN sys.schemas AS s ON s.schema_id = o.schema_id
    WHERE o.object_id = i.object_id
) AS q
CROSS APPLY (
    SELECT STRING_AGG(CAST(QUOTENAME(c.name COLLATE DATABASE_DEFAULT) AS NVARCHAR(MAX))
            + CASE WHEN ic.is_descending_key = 1 THEN N' DESC' ELSE N' ASC' END, N', ')
        WITHIN GROUP (ORDER BY ic.key_ordinal) AS list
    FROM sys.index_columns AS ic
    JOIN sys.columns AS c ON c.object_id = ic.object_id AND c.column_id = ic.column_id
    WHERE ic.object_id = i.object_id AND ic.index_id = i.index_id AND ic.key_ordinal > 0
) AS k
CROSS APPLY (
    SELECT STRING_AGG(CAST(QUOTENAME(c.name COLLATE DATABASE_DEFAULT) AS NVARCHAR(MAX)),
            N', ')
        WITHIN GROUP (ORDER BY ic.index_column_id) AS list
    FROM sys.index_columns AS ic
    JOIN sys.columns AS c ON c.object_id = ic.object_id AND c.column_id = ic.column_id
    WHERE ic.object_id = i.object_id AND ic.index_id = i.index_id
        AND ic.is_included_column = 1
) AS inc
WHERE EXISTS (
    SELECT 1
    FROM #adopt_column AS a
    JOIN sys.columns AS c ON c.object_id = a.object_id AND c.column_id = a.column_id
    WHERE a.object_id = i.object_id
        AND (EXISTS (
                SELECT 1
                FROM sys.index_columns AS ic
                WHERE ic.object_id = i.object_id AND ic.index_id = i.index_id
                    AND ic.column_id = a.column_id)
            -- The server keeps a filter with bracketed names: ([released] IS NOT NULL).
            OR CHARINDEX(QUOTENAME(c.name COLLATE DATABASE_DEFAULT),
                i.filter_definition COLLATE DATABASE_DEFAULT) > 0)
)
ORDER BY CASE WHEN i.type = 1 THEN 1 ELSE 0 END, i.object_id, i.index_id;

-- The key and INCLUDE columns of each, for step 2's comparison (key_ordinal 0: INCLUDE).
CREATE TABLE #adopt_index_column (
    seq INT NOT NULL,
    column_id INT NOT NULL,
    key_ordinal INT NOT NULL,
    is_descending_key BIT NOT NULL
);
INSERT INTO #adopt_index_column (seq, column_id, key_ordinal, is_descending_key)
SELECT a.seq, ic.column_id, ic.key_ordinal, ic.is_descending_key
FROM #adopt_index AS a
JOIN sys.index_columns AS ic ON ic.object_id = a.object_id AND ic.index_id = a.index_id
WHERE ic.key_ordinal > 0 OR ic.is_included_column = 1;

DECLARE @unsupported NVARCHAR(2048);
SELECT TOP (1) @unsupported = N'migration 0001 cannot adopt index ' + QUOTENAME(index_name)
    + N' (' + type_desc + N'): it covers a column 0001 alters and only rowstore indexes are'
    + N' recreated. Drop it, migrate, then create it again.'
FROM #adopt_index
WHERE type NOT IN (1, 2)
ORDER BY seq;
IF @unsupported IS NOT NULL
    THROW 50001, @unsupported, 1;

CREATE TABLE #adopt_statistics (
    seq INT IDENTITY(1, 1) NOT NULL PRIMARY KEY,
    drop_sql NVARCHAR(MAX) NOT NULL
);
INSERT INTO #adopt_statistics (drop_sql)
SELECT N'DROP STATISTICS ' + QUOTENAME(s.name COLLATE DATABASE_DEFAULT) + N'.'
    + QUOTENAME(o.name COLLATE DATABASE_DEFAULT) + N'.'
    + QUOTENAME(st.name COLLATE DATABASE_DEFAULT)
FROM sys.stats AS st
JOIN sys.objects AS o ON o.object_id = st.object_id
JOIN sys.schemas AS s ON s.schema_id = o.schema_id
WHERE st.user_created = 1
    AND EXISTS (
        SELECT 1
        FROM #adopt_column AS a
        JOIN sys.columns AS c ON c.object_id = a.object_id AND c.column_id = a.column_id
        WHERE a.object_id = st.object_id
            AND (EXISTS (
                    SELECT 1
                    FROM sys.stats_columns AS sc
                    WHERE sc.object_id = st.object_id AND sc.stats_id = st.stats_id
                        AND sc.column_id = a.column_id)
                OR CHARINDEX(QUOTENAME(c.name COLLATE DATABASE_DEFAULT),
                    st.filter_definition COLLATE DATABASE_DEFAULT) > 0)
    )
ORDER BY st.object_id, st.stats_id;

-- One statement at a time, in `seq` order (@next: a query never assigns a variable it
-- also reads).
DECLARE @seq INT = 0, @next INT, @sql NVARCHAR(MAX);
WHILE EXISTS (SELECT 1 FROM #adopt_index WHERE seq > @seq)
BEGIN
    SELECT TOP (1) @next = seq, @sql = drop_sql
    FROM #adopt_index
    WHERE seq > @seq
    ORDER BY seq;
    SET @seq = @next;
    EXEC sys.sp_executesql @sql;
END;

SET @seq = 0;
WHILE EXISTS (SELECT 1 FROM #adopt_statistics WHERE seq > @seq)
BEGIN
    SELECT TOP (1) @next = seq, @sql = drop_sql
    FROM #adopt_statistics
    WHERE seq > @seq
    ORDER BY seq;
    SET @seq = @next;
    EXEC sys.sp_executesql @sql;
END;
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
GO

-- Adoption, step 2: recreate, under its own name, each index step 1 dropped that is still
-- useful: a unique or clustered one always; any other unless an index the table has now
-- serves the same queries, i.e. one without a filter whose leading key columns are the
-- dropped index's, in order and direction, and which holds its INCLUDE columns (the
-- original IX_Artist_Name and IX_Song_Title are prefixes of Artist_name_idx and
-- Song_title_idx above). Hypothetical and disabled indexes are not recreated; nor are
-- storage options (fill factor, compression, filegroup, partitioning).
DECLARE @seq INT = 2147483647, @next INT, @object_id INT, @is_needed BIT, @is_inactive BIT,
    @sql NVARCHAR(MAX);
WHILE EXISTS (SELECT 1 FROM #adopt_index WHERE seq < @seq)
BEGIN
    SELECT TOP (1) @next = seq, @object_id = object_id, @is_needed = is_needed,
        @is_inactive = is_inactive, @sql = create_sql
    FROM #adopt_index
    WHERE seq < @seq
    ORDER BY seq DESC;
    SET @seq = @next;
    IF @is_inactive = 0 AND (@is_needed = 1 OR NOT EXISTS (
        SELECT 1
        FROM sys.indexes AS n
        WHERE n.object_id = @object_id AND n.type IN (1, 2) AND n.has_filter = 0
            AND n.is_hypothetical = 0 AND n.is_disabled = 0
            -- No column of the dropped index that this one lacks.
            AND NOT EXISTS (
                SELECT 1
                FROM #adopt_index_column AS d
                WHERE d.seq = @seq
                    AND NOT EXISTS (
                        SELECT 1
                        FROM sys.index_columns AS nc
                        WHERE nc.object_id = n.object_id AND nc.index_id = n.index_id
                            AND nc.column_id = d.column_id
                            AND (d.key_ordinal = 0
                                OR (nc.key_ordinal = d.key_ordinal
                                    AND nc.is_descending_key = d.is_descending_key))))))
        EXEC sys.sp_executesql @sql;
END;

DROP TABLE #adopt_column, #adopt_index, #adopt_index_column, #adopt_statistics;
