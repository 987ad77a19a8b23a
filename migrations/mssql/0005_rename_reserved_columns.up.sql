-- Columns named with the reserved word KEY get plain names, the same on every backend.
EXEC sp_rename N'dbo.idempotency_key.key', N'request_key', N'COLUMN';
EXEC sp_rename N'dbo.app_meta.key', N'name', N'COLUMN';
