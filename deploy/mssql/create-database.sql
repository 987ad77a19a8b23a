-- Run by compose.yaml's mssql-init service (sqlcmd, as sa) before the migrations: the
-- database and a login for the service that is not sa. Idempotent: every run leaves the
-- same state, and a changed STARSONGS_DB_PASSWORD is applied to the existing login.
-- sqlcmd takes $(STARSONGS_DB_PASSWORD) from the environment variable of that name.
IF DB_ID(N'starsongs') IS NULL
    CREATE DATABASE starsongs;
GO
IF SUSER_ID(N'starsongs') IS NULL
    CREATE LOGIN starsongs WITH PASSWORD = N'$(STARSONGS_DB_PASSWORD)', CHECK_POLICY = ON;
ELSE
    ALTER LOGIN starsongs WITH PASSWORD = N'$(STARSONGS_DB_PASSWORD)';
GO
USE starsongs;
IF USER_ID(N'starsongs') IS NULL
    CREATE USER starsongs FOR LOGIN starsongs;
-- The migrations create and alter tables, so the service's user owns its database
-- (and nothing else on the server).
ALTER ROLE db_owner ADD MEMBER starsongs;
GO
