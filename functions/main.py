"""Cloud Functions entry points: ``api`` (HTTP) and ``process_ticket`` (Pub/Sub CloudEvent).

Entry points only: decode the request or event, look up what handles it, call it. The
composition root (``triage.bootstrap``) binds every handler to its collaborators once per
process, and prepares them when the instance starts (below, at import), not on the first
request; the logic lives in the ``triage`` package.
"""

from __future__ import annotations

import logging

import flask
import functions_framework
from cloudevents.http import CloudEvent
from werkzeug.exceptions import HTTPException

from triage import bootstrap
from triage.domain import messages
from triage.errors import PermanentError

log = logging.getLogger("triage.worker")

# The clients and the model of the function being served (FUNCTION_TARGET), before its first request.
bootstrap.start_instance()


@functions_framework.http
def api(request: flask.Request) -> flask.Response:
    return bootstrap.http_app().handle(request)


@functions_framework.errorhandler(HTTPException)
def framework_error(error: HTTPException) -> flask.Response:
    """What the framework refused before ``api`` ran, as JSON like every other error."""
    from triage import http  # the worker never needs the HTTP package: imported on first use

    return http.framework_error(error)


@functions_framework.cloud_event
def process_ticket(cloud_event: CloudEvent) -> None:
    """Returning acknowledges the message; raising makes Pub/Sub deliver it again."""
    bootstrap.settings()
    try:
        message = messages.decode_pubsub_event(cloud_event.get_data())
        outcome = bootstrap.handle_message(message)
    except PermanentError as error:
        log.error(
            "message acknowledged without processing",
            extra={"event_id": cloud_event["id"], "error": f"{type(error).__name__}: {error}"},
        )
        return
    log.info(
        "message handled",
        extra={"event_id": cloud_event["id"], "ticket_id": outcome.ticket_id, "action": outcome.action},
    )
