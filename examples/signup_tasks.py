"""The sign-up workflow the web examples start: ``chain(a, group(b, c), d)``.

``create_account`` → (``send_welcome`` ‖ ``grant_trial``) → ``notify_team``. The e-mail address
travels as a task argument; it never becomes a span attribute (the kit records no arguments,
and its exporter redacts addresses quoted in error messages).

Workers load these with ``KIT_IMPORTS=examples.signup_tasks``.
"""

from __future__ import annotations

import hashlib
from typing import Any

from celery import chain, group
from celery.result import AsyncResult

from project import TransientError, ValidationError, app


def _account_id(email: str) -> str:
    return hashlib.sha256(email.lower().encode()).hexdigest()[:12]


@app.task(name="signup:create_account")
def create_account(email: str) -> dict[str, str]:
    if "@" not in email or len(email) > 254:
        raise ValidationError("email must be an address of at most 254 characters")
    return {"account": _account_id(email), "email": email}


@app.task(name="signup:send_welcome", bind=True, max_retries=3)
def send_welcome(self: Any, account: dict[str, str], fail_first_attempts: int = 0) -> str:
    """Stands in for an SMTP delivery; ``fail_first_attempts`` makes the first ones answer
    421 (a transient refusal) so retries can be seen in traces."""
    if self.request.retries < fail_first_attempts:
        raise TransientError(f"421 {account['email']}: mailbox busy, try again later")
    return f"welcome:{account['account']}"


@app.task(name="signup:grant_trial")
def grant_trial(account: dict[str, str]) -> str:
    return f"trial:{account['account']}"


@app.task(name="signup:notify_team", default_queue="low")
def notify_team(results: list[str]) -> str:
    return " ".join(sorted(results))


def start_signup(email: str, fail_first_attempts: int = 0) -> AsyncResult:
    """Validate at enqueue time, then start the workflow; returns the final step's result."""
    if "@" not in email or len(email) > 254:
        raise ValidationError("email must be an address of at most 254 characters")
    workflow = chain(
        create_account.s(email),
        group(send_welcome.s(fail_first_attempts=fail_first_attempts), grant_trial.s()),
        notify_team.s(),
    )
    return workflow.apply_async()
