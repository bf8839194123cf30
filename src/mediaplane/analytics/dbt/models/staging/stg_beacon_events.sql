-- One row per (view_id, event_id): a batch a player sent twice counts once (the earliest
-- received copy is kept).
select
  event_id,
  view_id,
  type as event_type,
  ts,
  received_at,
  playback_id,
  viewer,
  player_name,
  player_version,
  user_agent,
  position_s,
  rendition,
  bitrate,
  width,
  height,
  player_width,
  player_height,
  cdn,
  country,
  startup_ms,
  duration_ms,
  watched_ms,
  code as error_code,
  fatal as error_fatal
from {{ source('lake', 'events') }}
qualify row_number() over (partition by view_id, event_id order by received_at) = 1
