-- One row per manifest or segment request the origin saw CMCD (CTA-5004) on, with the keys
-- the marts use renamed. A request whose CMCD broke the grammar is kept (invalid = true,
-- its keys null). Without any CMCD file in the lake (var cmcd_files false: no player sent
-- CMCD yet) the model is empty, with the same columns.
{% if var('cmcd_files', true) %}
select
  received_at,
  playback_id,
  request,
  rendition,
  status,
  invalid,
  cmcd_sid as view_id,
  cmcd_cid as content_id,
  cmcd_ot as object_type,
  cmcd_br as requested_bitrate_kbps,
  cmcd_bl as buffer_length_ms,
  coalesce(cmcd_bs, false) as buffer_starved,
  cmcd_mtp as measured_throughput_kbps,
  cmcd_d as object_duration_ms,
  coalesce(cmcd_su, false) as startup
from {{ source('lake', 'cmcd') }}
{% else %}
select
  cast(null as {{ dbt.type_timestamp() }}) as received_at,
  cast(null as {{ dbt.type_string() }}) as playback_id,
  cast(null as {{ dbt.type_string() }}) as request,
  cast(null as {{ dbt.type_string() }}) as rendition,
  cast(null as {{ dbt.type_int() }}) as status,
  cast(null as {{ dbt.type_boolean() }}) as invalid,
  cast(null as {{ dbt.type_string() }}) as view_id,
  cast(null as {{ dbt.type_string() }}) as content_id,
  cast(null as {{ dbt.type_string() }}) as object_type,
  cast(null as {{ dbt.type_bigint() }}) as requested_bitrate_kbps,
  cast(null as {{ dbt.type_bigint() }}) as buffer_length_ms,
  cast(null as {{ dbt.type_boolean() }}) as buffer_starved,
  cast(null as {{ dbt.type_bigint() }}) as measured_throughput_kbps,
  cast(null as {{ dbt.type_bigint() }}) as object_duration_ms,
  cast(null as {{ dbt.type_boolean() }}) as startup
where 1 = 0
{% endif %}
