-- Columns named with T-SQL reserved words get plain names, so that the same column names
-- serve on SQLite, PostgreSQL and SQL Server (KEY is reserved in T-SQL).
alter table idempotency_key rename column key to request_key;
alter table app_meta rename column key to name;
