"""A Flask app whose requests start kit workflows, traced end to end.

Run it: ``KIT_IMPORTS=examples.signup_tasks celery -A project worker`` in one terminal and
``python -m examples.flask_app`` in another, then ``curl -XPOST localhost:8000/signup
-H 'content-type: application/json' -d '{"email": "ada@example.com"}'``.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, request
from opentelemetry.instrumentation.flask import FlaskInstrumentor

from examples.signup_tasks import start_signup
from project import ValidationError
from project.telemetry import setup_telemetry


def create_app() -> Flask:
    setup_telemetry("producer")  # before the first request: producer spans join its trace
    flask_app = Flask(__name__)
    FlaskInstrumentor().instrument_app(flask_app)

    @flask_app.post("/signup")
    def signup() -> Any:
        payload = request.get_json(silent=True) or {}
        try:
            result = start_signup(
                str(payload.get("email", "")),
                fail_first_attempts=int(payload.get("fail_first_attempts", 0)),
            )
        except ValidationError as exc:
            return jsonify(error=str(exc)), 400
        return jsonify(workflow_id=result.id), 202

    @flask_app.get("/health")
    def health() -> Any:
        return jsonify(status="ok")

    return flask_app
