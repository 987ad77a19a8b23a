-- Idempotency keys (API.md "Concurrency and retries"): one row per (principal, key) with
-- the fingerprint of the first request and the response it produced, written in the
-- transaction that creates the resource.

CREATE TABLE dbo.idempotency_key (
    principal NVARCHAR(128) COLLATE Latin1_General_100_BIN2 NOT NULL,
    [key] NVARCHAR(255) COLLATE Latin1_General_100_BIN2 NOT NULL,
    fingerprint NVARCHAR(128) NOT NULL,
    status INT NOT NULL,
    body NVARCHAR(MAX) NOT NULL,
    location NVARCHAR(2048) NULL,
    etag NVARCHAR(128) NULL,
    created_at DATETIMEOFFSET(6) NOT NULL,
    CONSTRAINT PK_idempotency_key PRIMARY KEY (principal, [key])
);

-- Pruning and expiry scan by age.
CREATE INDEX idempotency_key_created_at_idx ON dbo.idempotency_key (created_at);
