drop table app_meta;
drop table song;
drop table artist;
