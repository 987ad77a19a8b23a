-- Drops the catalog, the original system's rows included (take a backup first).
DROP TABLE dbo.app_meta;
DROP TABLE dbo.Song;
DROP TABLE dbo.Artist;
