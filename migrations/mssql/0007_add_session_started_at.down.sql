ALTER TABLE dbo.refresh_token DROP COLUMN session_started_at;
