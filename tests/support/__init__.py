"""The kit's own test helpers: the tasks its tests run, SMTP, OTLP, TLS and Sentinel servers,
images. The generic harness (private Redis, workers, ``eventually``) is ``project.testing``."""
