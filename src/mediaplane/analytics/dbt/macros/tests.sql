{# Generic data tests of this project (no package needed). #}

{# The column's non-null values lie in [0, 1] (a share). #}
{% test between_0_and_1(model, column_name) %}
select {{ column_name }}
from {{ model }}
where {{ column_name }} < 0 or {{ column_name }} > 1
{% endtest %}
