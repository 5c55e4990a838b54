"""The admin surface over HTTP: a JSON API, Prometheus metrics and a small web page.

`agent.api.app.create_app(settings)` builds the application; routers stay thin adapters over
agent.db.queries, agent.jobs and agent.spool.
"""
