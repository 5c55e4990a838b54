"""The job database: typed ORM models, sessions, queries and migrations."""
