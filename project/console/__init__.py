"""The operator console: a web UI and JSON API over the kit's queues, tasks, cron and workers.

Asynqmon's role for the kit, on Tornado (Flower's server, already installed) and Jinja2, with
no JavaScript build step. ``kit web`` runs it alone, ``kit up`` beside Flower.

    settings   ``KIT_WEB_*`` variables (address, port, credentials, read-only, trace links)
    auth       HTTP Basic credentials, and which requests are a browser's (CSRF applies)
    base       the request handler every route shares: authentication, CSRF, security
               headers, errors, the thread pool that runs blocking Redis calls
    service    what the pages and the API read and do (blocking; runs in that pool)
    chart      the processed/failed per-minute chart, an inline SVG drawn server-side
    api        ``/api/...`` handlers (JSON)
    pages      the HTML pages and their form actions
    app        the route table, ``make_app`` and ``serve``

Importing the package does no work; nothing here imports ``tasks/``.
"""
