"""Views that start kit workflows; the request's trace continues into every task."""

from __future__ import annotations

import json

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from examples.signup_tasks import start_signup
from project import ValidationError


@csrf_exempt
@require_POST
def signup(request: HttpRequest) -> JsonResponse:
    try:
        payload = json.loads(request.body or b"{}")
        result = start_signup(
            str(payload.get("email", "")),
            fail_first_attempts=int(payload.get("fail_first_attempts", 0)),
        )
    except (ValueError, ValidationError) as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    return JsonResponse({"workflow_id": result.id}, status=202)


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})
