-- How long each pair (rendition height, player height) played, per view: from each event to
-- the view's next one, with the rendition's height (rendition_switch and heartbeats carry
-- it) and the player's (view_start, heartbeats, switches carry player_height) as last
-- reported. Stretches that start at a pause, a stall or the end are not playback and are
-- left out, as are those before both heights are known.
with e as (
  select view_id, event_id, ts, event_type, height, player_height
  from {{ ref('stg_beacon_events') }}
),
carried as (
  select
    view_id,
    ts,
    event_type,
    {{ last_known('height', 'view_id', 'ts, event_id') }} as rendition_height,
    {{ last_known('player_height', 'view_id', 'ts, event_id') }} as player_height,
    lead(ts) over (partition by view_id order by ts, event_id) as until_ts
  from e
)
select
  view_id,
  ts,
  rendition_height,
  player_height,
  {{ dbt.datediff('ts', 'until_ts', 'millisecond') }} as held_ms
from carried
where until_ts is not null
  and event_type not in ('pause', 'rebuffer_start', 'end')
  and rendition_height is not null
  and player_height is not null
  and player_height > 0
