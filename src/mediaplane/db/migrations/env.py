from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

import mediaplane.accounts  # noqa: F401  (registers tables)
import mediaplane.catalog  # noqa: F401  (registers tables)
import mediaplane.events  # noqa: F401  (registers tables)
import mediaplane.ingest  # noqa: F401
import mediaplane.jobs  # noqa: F401
import mediaplane.library  # noqa: F401
import mediaplane.protect  # noqa: F401  (registers tables)
import mediaplane.webhooks  # noqa: F401  (registers tables)
from mediaplane.db import Base

url = context.config.get_main_option("sqlalchemy.url")
assert url is not None
engine = create_engine(url)
with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
