EXEC sp_rename N'dbo.app_meta.name', N'key', N'COLUMN';
EXEC sp_rename N'dbo.idempotency_key.request_key', N'key', N'COLUMN';
