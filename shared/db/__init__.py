"""The SQL database: models, sessions and Alembic migrations."""
