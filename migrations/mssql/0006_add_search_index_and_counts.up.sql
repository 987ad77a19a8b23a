-- The same number as migrations/sqlite/0006 (a search index and maintained counts), which
-- this backend does not take: `q` stays a LIKE on the folded column (a scan; SQL Server's
-- full-text search has no substring semantics) and COUNT(*) stays the total. The
-- statement below does nothing; it is here so that the file is a valid migration.
SELECT 1;
