alter table refresh_token drop column session_started_at;
