"""Plain functions behind the maintenance tasks (backup, clean-up, health check)."""
