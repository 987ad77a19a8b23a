-- Credentials beyond the password: refresh tokens, API keys and failed-login counters.
-- Secrets are stored only as SHA-256 digests (hex).

CREATE TABLE dbo.refresh_token (
    id INT IDENTITY(1, 1) NOT NULL CONSTRAINT PK_refresh_token PRIMARY KEY,
    token_hash NVARCHAR(64) COLLATE Latin1_General_100_BIN2 NOT NULL
        CONSTRAINT UQ_refresh_token_hash UNIQUE,
    family_id NVARCHAR(64) COLLATE Latin1_General_100_BIN2 NOT NULL,
    user_id INT NOT NULL CONSTRAINT FK_refresh_token_user
        REFERENCES dbo.app_user (id) ON DELETE CASCADE,
    expires_at DATETIMEOFFSET(6) NOT NULL,
    spent_at DATETIMEOFFSET(6) NULL,
    revoked_at DATETIMEOFFSET(6) NULL,
    created_at DATETIMEOFFSET(6) NOT NULL
);

CREATE INDEX refresh_token_family_idx ON dbo.refresh_token (family_id);
CREATE INDEX refresh_token_user_idx ON dbo.refresh_token (user_id);
CREATE INDEX refresh_token_expires_idx ON dbo.refresh_token (expires_at);

CREATE TABLE dbo.api_key (
    id INT IDENTITY(1, 1) NOT NULL CONSTRAINT PK_api_key PRIMARY KEY,
    name NVARCHAR(256) NOT NULL,
    name_key NVARCHAR(256) COLLATE Latin1_General_100_BIN2 NOT NULL,
    key_hash NVARCHAR(64) COLLATE Latin1_General_100_BIN2 NOT NULL
        CONSTRAINT UQ_api_key_hash UNIQUE,
    prefix NVARCHAR(32) NOT NULL,
    role NVARCHAR(16) NOT NULL CONSTRAINT CK_api_key_role CHECK (role IN ('viewer', 'editor')),
    created_at DATETIMEOFFSET(6) NOT NULL
);

CREATE INDEX api_key_name_idx ON dbo.api_key (name_key, id);
CREATE INDEX api_key_created_at_idx ON dbo.api_key (created_at, id);

CREATE TABLE dbo.login_failure (
    username_key NVARCHAR(128) COLLATE Latin1_General_100_BIN2 NOT NULL
        CONSTRAINT PK_login_failure PRIMARY KEY,
    failures INT NOT NULL,
    window_started_at DATETIMEOFFSET(6) NOT NULL,
    last_failure_at DATETIMEOFFSET(6) NOT NULL
);

CREATE INDEX login_failure_last_idx ON dbo.login_failure (last_failure_at);
