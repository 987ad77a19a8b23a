-- The same number as migrations/sqlite/0006 (a search index and maintained counts), which
-- this backend does not need: pg_trgm's GIN indexes from 0001 already serve `q`, and
-- `count(*)` stays the total (PostgreSQL keeps no exact row count to read instead). The
-- statement below does nothing; it is here so that the file is a valid migration.
select 1;
