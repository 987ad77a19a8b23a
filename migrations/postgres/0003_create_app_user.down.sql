drop table app_user;
