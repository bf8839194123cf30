-- How long each reported bitrate played: an event naming a bitrate (a rendition switch or
-- a heartbeat) holds until the view's next such event, the last one until the view's last
-- event. The time-weighted bitrate of a view is sum(bitrate * held_ms) / sum(held_ms).
with samples as (
  select view_id, ts, bitrate
  from {{ ref('stg_beacon_events') }}
  where bitrate is not null
),
last_event as (
  select view_id, max(ts) as last_ts
  from {{ ref('stg_beacon_events') }}
  group by view_id
),
held as (
  select
    s.view_id,
    s.bitrate,
    s.ts,
    coalesce(lead(s.ts) over (partition by s.view_id order by s.ts), l.last_ts) as until_ts
  from samples s
  join last_event l on l.view_id = s.view_id
)
select
  view_id,
  bitrate,
  ts,
  {{ dbt.datediff('ts', 'until_ts', 'millisecond') }} as held_ms
from held
