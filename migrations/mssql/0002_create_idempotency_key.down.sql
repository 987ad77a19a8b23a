DROP TABLE dbo.idempotency_key;
