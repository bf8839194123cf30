-- Per day and playback id: views, watch time, unique viewers and the QoE metrics.
select
  view_date,
  playback_id,
  count(*) as views,
  count(distinct viewer) as unique_viewers,
  sum(watch_time_s) as watch_time_s,
  {{ percentile('startup_time_ms', 0.5) }} as startup_time_p50_ms,
  {{ percentile('startup_time_ms', 0.95) }} as startup_time_p95_ms,
  {{ ratio('sum(rebuffer_ms)', 'sum(rebuffer_ms + watched_ms)') }} as rebuffer_percentage,
  {{ ratio('sum(rebuffer_count)', 'sum(watched_ms) / 60000.0') }} as rebuffer_frequency_per_min,
  {{ ratio('sum(case when exited_before_start then 1 else 0 end)', 'count(*)') }}
    as exits_before_start_percentage,
  {{ ratio('sum(case when playback_failed then 1 else 0 end)', 'count(*)') }}
    as playback_failure_percentage,
  avg(average_bitrate) as average_bitrate,
  {{ ratio('sum(weighted_bitrate * watched_ms)',
           'sum(case when weighted_bitrate is not null then watched_ms end)') }}
    as weighted_bitrate,
  avg(upscale_percentage) as upscale_percentage,
  avg(downscale_percentage) as downscale_percentage,
  avg(viewer_experience_score) as viewer_experience_score
from {{ ref('fct_views') }}
group by view_date, playback_id
