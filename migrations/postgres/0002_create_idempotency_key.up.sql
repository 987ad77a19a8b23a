-- Idempotency keys (API.md "Concurrency and retries"): one row per (principal, key) with
-- the fingerprint of the first request and the response it produced. The row and the
-- resource are written in one transaction, so a key never outlives a rolled-back create.

create table idempotency_key (
    principal text not null,
    key text not null,
    fingerprint text not null,
    status integer not null,
    body text not null,
    location text,
    etag text,
    created_at timestamptz not null,
    primary key (principal, key)
);

-- Pruning and expiry scan by age.
create index idempotency_key_created_at_idx on idempotency_key (created_at);
