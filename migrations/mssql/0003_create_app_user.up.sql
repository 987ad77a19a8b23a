-- Accounts (API.md "Authentication and accounts"). `*_key` columns are the case-folded
-- forms uniqueness is checked on. The password is stored only as an Argon2id PHC string.

CREATE TABLE dbo.app_user (
    id INT IDENTITY(1, 1) NOT NULL CONSTRAINT PK_app_user PRIMARY KEY,
    username NVARCHAR(64) NOT NULL,
    username_key NVARCHAR(128) COLLATE Latin1_General_100_BIN2 NOT NULL
        CONSTRAINT UQ_app_user_username_key UNIQUE,
    email NVARCHAR(512) NOT NULL,
    email_key NVARCHAR(512) COLLATE Latin1_General_100_BIN2 NOT NULL
        CONSTRAINT UQ_app_user_email_key UNIQUE,
    password_hash NVARCHAR(256) NOT NULL,
    role NVARCHAR(16) NOT NULL CONSTRAINT CK_app_user_role CHECK (role IN ('viewer', 'editor', 'admin')),
    is_active BIT NOT NULL CONSTRAINT DF_app_user_is_active DEFAULT 1,
    version BIGINT NOT NULL CONSTRAINT DF_app_user_version DEFAULT 1,
    created_at DATETIMEOFFSET(6) NOT NULL,
    updated_at DATETIMEOFFSET(6) NOT NULL
);

CREATE INDEX app_user_created_at_idx ON dbo.app_user (created_at, id);
