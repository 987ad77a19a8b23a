-- Accounts (API.md "Authentication and accounts"). `app_user`, not `user`, which is a
-- reserved word on the server databases. `*_key` columns are the case-folded forms that
-- uniqueness is checked on: `Admin` and `admin` are one username, and emails are
-- case-insensitive. The password is stored only as an Argon2id PHC string.

create table app_user (
    id integer primary key autoincrement,
    username text not null,
    username_key text not null unique,
    email text not null,
    email_key text not null unique,
    password_hash text not null,
    role text not null check (role in ('viewer', 'editor', 'admin')),
    is_active integer not null default 1 check (is_active in (0, 1)),
    version integer not null default 1,
    created_at text not null,
    updated_at text not null
);

create index app_user_created_at_idx on app_user (created_at, id);
