"""The task catalog: one folder per capability, each with its thin tasks (``tasks.py``), the
plain functions they call, its settings and, where it has one, its ``kit`` commands.

* ``images/``: ``image:resize``, ``image:watermark``, ``image:compress``, ``image:thumbnail``,
  and the ``kit batch images`` pipeline (``workflow:tolerant``, ``batch:summary``);
* ``email/``: ``email:deliver``;
* ``maintenance/``: ``backup:database``, ``cleanup:old_data``, ``health:check``.

Importing this package imports none of them: workers load the task modules through Celery's
``imports`` (KIT_CATALOG), and a producer imports the one it calls. Each task is defined with
:func:`project.kit_task`, so it exists on every kit app.
"""
