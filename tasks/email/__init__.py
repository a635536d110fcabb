"""The e-mail catalog: ``email:deliver`` (:mod:`.tasks`) and the plain functions it calls, each
testable without a worker.

* :mod:`.validation`: the task's arguments, checked at enqueue time and again in the worker
  (importable without Jinja2, for producers);
* :mod:`.templates`: Jinja2 subject and bodies (strict, HTML autoescaped);
* :mod:`.message`: the MIME message, built with the standard library's ``SMTP`` policy;
* :mod:`.smtp`: one SMTP transaction, its failures classified as transient or permanent;
* :mod:`.ratelimit`: token buckets per recipient domain or global, in Redis;
* :mod:`.delivery`: the whole delivery, at most once per Message-ID;
* :mod:`.telemetry`: span attributes (domains, address hashes) and per-domain counters;
* :mod:`.settings`: ``SMTP_*`` and ``KIT_MAIL_*``.
"""
