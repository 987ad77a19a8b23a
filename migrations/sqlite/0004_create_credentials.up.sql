-- Credentials beyond the password (API.md "Authentication and accounts"): refresh tokens,
-- API keys and the failed-login counters. Secrets are stored only as SHA-256 digests
-- (hex): refresh tokens and API keys are 256 random bits, so a fast digest is as strong
-- as a slow one and lets the service find a row by its digest.

-- One row per issued refresh token. A token is spent (spent_at) when exchanged; every
-- token of one login shares family_id, so presenting a spent token revokes the family.
create table refresh_token (
    id integer primary key autoincrement,
    token_hash text not null unique,
    family_id text not null,
    user_id integer not null references app_user (id) on delete cascade,
    expires_at text not null,
    spent_at text,
    revoked_at text,
    created_at text not null
);

create index refresh_token_family_idx on refresh_token (family_id);
create index refresh_token_user_idx on refresh_token (user_id);
create index refresh_token_expires_idx on refresh_token (expires_at);

-- API keys: a name, a role (viewer or editor) and the digest of the secret. The first
-- characters of the key (prefix) are kept in clear so an admin can tell keys apart.
create table api_key (
    id integer primary key autoincrement,
    name text not null,
    name_key text not null,
    key_hash text not null unique,
    prefix text not null,
    role text not null check (role in ('viewer', 'editor')),
    created_at text not null
);

create index api_key_name_idx on api_key (name_key, id);
create index api_key_created_at_idx on api_key (created_at, id);

-- Failed logins per case-folded username (existing or not), for the lockout rule. Kept in
-- the database so that every replica sees the same counts.
create table login_failure (
    username_key text primary key,
    failures integer not null,
    window_started_at text not null,
    last_failure_at text not null
);

create index login_failure_last_idx on login_failure (last_failure_at);
