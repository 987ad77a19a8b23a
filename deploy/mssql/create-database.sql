-- Run by compose.yaml's mssql-init service (sqlcmd, as sa) before the migrations: the
-- database and a login for the service that is not sa. Idempotent: every run leaves the
-- same state, and a changed STARSONGS_DB_PASSWORD is applied to the existing login.
-- sqlcmd takes $(STARSONGS_DB_PASSWORD) from the environment variable of that name.
IF DB_ID(N'starsongs') IS NULL
    CREATE DATABASE starsongs;
GO
-- Row-versioned reads (as Azure SQL has by default): lists, gets, readiness and
-- `migrate status` read the last committed rows instead of waiting for writers' locks or
-- being chosen as deadlock victims. It cannot be set inside a transaction (so not in a
-- migration), and it needs the database to itself for a moment: ROLLBACK IMMEDIATE ends
-- other sessions' open transactions, so run this before the service starts.
IF EXISTS (SELECT 1 FROM sys.databases WHERE name = N'starsongs' AND is_read_committed_snapshot_on = 0)
    ALTER DATABASE starsongs SET READ_COMMITTED_SNAPSHOT ON WITH ROLLBACK IMMEDIATE;
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
