drop table login_failure;
drop table api_key;
drop table refresh_token;
