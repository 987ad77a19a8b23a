DROP TABLE dbo.app_user;
