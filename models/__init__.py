"""Pure imaging and ML: volumes in, findings out. No database, no network, no Celery."""
