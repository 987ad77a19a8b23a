-- A login ends auth.session_max_secs after its password sign-in, however often it is
-- refreshed (API.md): every refresh token carries the instant its login began. Existing
-- tokens get the creation time of the first token of their family.
alter table refresh_token add column session_started_at text;

update refresh_token
set session_started_at = (
    select min(f.created_at) from refresh_token f where f.family_id = refresh_token.family_id
);
