{# Cross-warehouse helpers: DuckDB (run here), BigQuery, Snowflake. #}

{% macro percentile(column, p) -%}
  {{ return(adapter.dispatch('percentile', 'mediaplane_analytics')(column, p)) }}
{%- endmacro %}

{% macro default__percentile(column, p) -%}
  percentile_cont({{ p }}) within group (order by {{ column }})
{%- endmacro %}

{% macro duckdb__percentile(column, p) -%}
  quantile_cont({{ column }}, {{ p }})
{%- endmacro %}

{% macro bigquery__percentile(column, p) -%}
  approx_quantiles({{ column }}, 100)[offset({{ (p * 100) | int }})]
{%- endmacro %}

{# a / b, null when b is 0 or null #}
{% macro ratio(a, b) -%}
  case when ({{ b }}) is null or ({{ b }}) = 0 then null
       else cast({{ a }} as {{ dbt.type_float() }}) / ({{ b }}) end
{%- endmacro %}

{# x clamped into [0, 1] #}
{% macro clamp01(x) -%}
  case when ({{ x }}) < 0 then 0.0 when ({{ x }}) > 1 then 1.0 else ({{ x }}) end
{%- endmacro %}

{# The latest non-null value of `column` up to this row of the window (carried forward). #}
{% macro last_known(column, partition_by, order_by) -%}
  {{ return(adapter.dispatch('last_known', 'mediaplane_analytics')(column, partition_by, order_by)) }}
{%- endmacro %}

{% macro default__last_known(column, partition_by, order_by) -%}
  last_value({{ column }} ignore nulls) over (partition by {{ partition_by }} order by {{ order_by }}
    rows between unbounded preceding and current row)
{%- endmacro %}

{% macro snowflake__last_known(column, partition_by, order_by) -%}
  last_value({{ column }}) ignore nulls over (partition by {{ partition_by }} order by {{ order_by }}
    rows between unbounded preceding and current row)
{%- endmacro %}
