-- One row per view (a playback session: one view_id) with its QoE.
with e as (
  select * from {{ ref('stg_beacon_events') }}
),
v as (
  select
    view_id,
    min(playback_id) as playback_id,
    min(viewer) as viewer,
    min(player_name) as player_name,
    min(player_version) as player_version,
    -- the viewer's country (as rights see it) and a CDN host the view's media came from
    min(country) as country,
    min(cdn) as cdn,
    min(ts) as started_at,
    max(ts) as last_event_at,
    min(case when event_type = 'first_frame' then startup_ms end) as startup_time_ms,
    sum(case when event_type = 'first_frame' then 1 else 0 end) as first_frames,
    sum(case when event_type = 'rebuffer_start' then 1 else 0 end) as rebuffer_count,
    coalesce(sum(case when event_type = 'rebuffer_end' then duration_ms end), 0) as rebuffer_ms,
    coalesce(max(watched_ms), 0) as watched_ms,
    sum(case when event_type = 'error' then 1 else 0 end) as errors,
    sum(case when event_type = 'error' and error_fatal then 1 else 0 end) as fatal_errors,
    avg(cast(bitrate as {{ dbt.type_float() }})) as average_bitrate,
    max(bitrate) as max_bitrate,
    count(*) as events
  from e
  group by view_id
),
w as (
  select
    view_id,
    {{ ratio('sum(bitrate * held_ms)', 'sum(held_ms)') }} as weighted_bitrate
  from {{ ref('stg_bitrate_intervals') }}
  group by view_id
),
z as (
  -- Mux's upscale/downscale percentage: the share of the played time (where both heights
  -- are known) the rendition was shorter (stretched up) / taller (shrunk) than the player
  select
    view_id,
    {{ ratio('sum(case when rendition_height < player_height then held_ms else 0 end)',
             'sum(held_ms)') }} as upscale_percentage,
    {{ ratio('sum(case when rendition_height > player_height then held_ms else 0 end)',
             'sum(held_ms)') }} as downscale_percentage
  from {{ ref('stg_size_intervals') }}
  group by view_id
),
c as (
  -- the view's requests as its player's CMCD told them (the CMCD session id is the view id)
  select
    view_id,
    count(*) as cmcd_requests,
    avg(cast(requested_bitrate_kbps as {{ dbt.type_float() }})) as cmcd_average_bitrate_kbps,
    sum(case when buffer_starved then 1 else 0 end) as cmcd_starved_requests
  from {{ ref('stg_cmcd_requests') }}
  where view_id is not null and not invalid
  group by view_id
),
q as (
  select
    v.*,
    w.weighted_bitrate,
    coalesce(c.cmcd_requests, 0) as cmcd_requests,
    c.cmcd_average_bitrate_kbps,
    coalesce(c.cmcd_starved_requests, 0) as cmcd_starved_requests,
    coalesce(c.cmcd_starved_requests, 0) > 0 as cmcd_buffer_starved,
    cast(v.started_at as date) as view_date,
    v.watched_ms / 1000.0 as watch_time_s,
    v.first_frames > 0 as video_started,
    v.fatal_errors > 0 as playback_failed,
    (v.first_frames = 0 and v.fatal_errors = 0) as exited_before_start,
    {{ ratio('v.rebuffer_ms', 'v.rebuffer_ms + v.watched_ms') }} as rebuffer_percentage,
    {{ ratio('v.rebuffer_count', 'v.watched_ms / 60000.0') }} as rebuffer_frequency_per_min,
    z.upscale_percentage,
    z.downscale_percentage
  from v
  left join w on w.view_id = v.view_id
  left join c on c.view_id = v.view_id
  left join z on z.view_id = v.view_id
),
scored as (
  select
    q.*,
    case when playback_failed then 0.0 when exited_before_start then 0.5 else 1.0 end
      as playback_success_score,
    case when startup_time_ms is null then null
         else {{ clamp01('1.0 - (startup_time_ms - ' ~ var('startup_good_ms') ~ ') / '
                         ~ (var('startup_bad_ms') - var('startup_good_ms')) ~ '.0') }} end
      as startup_score,
    {{ clamp01('1.0 - 10.0 * coalesce(rebuffer_percentage, 0)') }} as smoothness_score,
    coalesce({{ ratio('weighted_bitrate', 'max_bitrate') }}, 1.0) as quality_score
  from q
)
select
  *,
  100.0 * playback_success_score * (
    case when video_started
         then 0.4 * startup_score + 0.4 * smoothness_score + 0.2 * quality_score
         else 1.0 end
  ) as viewer_experience_score
from scored
