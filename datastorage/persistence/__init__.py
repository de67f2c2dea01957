"""The only layer that talks to PostgreSQL and Redis."""
