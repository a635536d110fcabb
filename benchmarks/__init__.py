"""The kit's benchmarks, run from the repository root: ``python -m benchmarks <command>``.

Not installed with the kit (it is a development tool, and its worker subprocesses find these
modules through the repository root on their PYTHONPATH). One subpackage per family of
scenarios, each with the scenario code, the command that reports it, and beside them the
worker-side modules the scenario's workers or producers import:

* ``core/``: what every benchmark shares: the processes it starts and kills
  (``processes``), its clean slate (``session``), counting done tasks in Redis (``measure``),
  Redis commands per task from ``INFO commandstats`` (``commandstats``), the one
  interleaved-repeat runner (``rounds``), medians and spreads (``stats``), the one
  report writer (``report``, with ``jsonable`` for the JSON records), machine facts, the OTLP
  receiver, the producer subprocess, and the task bodies every framework's worker runs
  (``bodies``);
* ``throughput/``: the kit's worker vs stock Celery, one kit default reverted (or one
  middleware taken out) at a time, also the suite's cost per concern; its worker-side apps
  (``kit_tasks``, ``plain_app``, ``overrides``) and message pre-load serve the telemetry and
  layout benchmarks too;
* ``telemetry/``: the same worker with telemetry off, exporting, a collector that is down;
* ``enqueue/``: producer-side rates (``enqueue`` and ``bulk``), no worker;
* ``layouts/``: worker layouts of the kit, stock Celery, Dramatiq and RQ side by side:
  processing rate, latency, memory (the suite's sections);
* ``images/``: the kit's JPEG decode+resize against a naive one, in process;
* ``suite/``: ``all``, every section in one run and one table with the targets judged
  (``targets``, ``rows``) and the throughput chart (``chart``).
"""

from __future__ import annotations
