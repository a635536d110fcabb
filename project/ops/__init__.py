"""What the ``kit`` operator commands do, as plain functions over Redis and Celery's control.

Kept apart from the command-line layer so tests and other tools can call them directly.
"""
