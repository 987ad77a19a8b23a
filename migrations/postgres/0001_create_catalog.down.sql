-- The pg_trgm extension stays: objects outside these tables may use it.
drop table song;
drop table artist;
drop table app_meta;
