"""Task results: Celery's Redis result backend, with cheaper writes and lazy subscriptions."""
