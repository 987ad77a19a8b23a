DROP TABLE dbo.login_failure;
DROP TABLE dbo.api_key;
DROP TABLE dbo.refresh_token;
