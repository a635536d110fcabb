"""Test harness: a private redis-server, real worker subprocesses, and the tasks they run."""
