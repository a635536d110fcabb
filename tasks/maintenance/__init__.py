"""The maintenance catalog: ``backup:database``, ``cleanup:old_data`` and ``health:check``
(:mod:`.tasks`, fired by ``beat_schedule.py``), and the plain functions behind them."""
