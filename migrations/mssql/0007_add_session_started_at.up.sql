-- A login ends auth.session_max_secs after its password sign-in, however often it is
-- refreshed (API.md): every refresh token carries the instant its login began. Existing
-- tokens get the creation time of the first token of their family. The new column is
-- used in a batch of its own (GO): a batch is compiled before it runs.
ALTER TABLE dbo.refresh_token ADD session_started_at DATETIMEOFFSET(6) NULL;
GO
UPDATE t SET session_started_at = f.started
FROM dbo.refresh_token t
JOIN (SELECT family_id, MIN(created_at) AS started FROM dbo.refresh_token GROUP BY family_id) f
    ON f.family_id = t.family_id;
ALTER TABLE dbo.refresh_token ALTER COLUMN session_started_at DATETIMEOFFSET(6) NOT NULL;
