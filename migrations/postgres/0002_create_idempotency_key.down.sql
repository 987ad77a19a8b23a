drop table idempotency_key;
