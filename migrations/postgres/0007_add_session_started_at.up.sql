-- A login ends auth.session_max_secs after its password sign-in, however often it is
-- refreshed (API.md): every refresh token carries the instant its login began. Existing
-- tokens get the creation time of the first token of their family.
alter table refresh_token add column session_started_at timestamptz;

update refresh_token t
set session_started_at = f.started
from (select family_id, min(created_at) as started from refresh_token group by family_id) f
where f.family_id = t.family_id;

alter table refresh_token alter column session_started_at set not null;
