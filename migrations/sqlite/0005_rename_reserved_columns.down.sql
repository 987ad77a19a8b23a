alter table app_meta rename column name to key;
alter table idempotency_key rename column request_key to key;
