"""Cloud Functions entry points: ``api`` (HTTP) and ``process_ticket`` (Pub/Sub CloudEvent).

Entry points only: decode the request or event, call the service with the
components from ``bootstrap``, encode the answer. The logic lives in ``triage``.
"""

from __future__ import annotations

import json
import logging

import flask
import functions_framework
from cloudevents.http import CloudEvent

from triage import bootstrap, messages, service, web
from triage.errors import PermanentError

log = logging.getLogger("triage.worker")


@functions_framework.http
def api(request: flask.Request) -> flask.Response:
    bootstrap.settings()
    return web.handle(request)


@functions_framework.cloud_event
def process_ticket(cloud_event: CloudEvent) -> None:
    """Returning acknowledges the message; raising makes Pub/Sub deliver it again."""
    bootstrap.settings()
    try:
        message = messages.decode_pubsub_event(cloud_event.get_data(), service.MESSAGE_KINDS)
        if message.dead_letter_deliveries is not None:
            outcome = service.dead_letter(
                message.ticket_id,
                message.kind,
                message.dead_letter_deliveries,
                store=bootstrap.store(),
                clock=bootstrap.clock(),
            )
        elif message.kind == service.WARM_UP:
            outcome = service.warm_up(embedder=bootstrap.embedder())
        elif message.kind == service.RECONCILE:
            report = bootstrap.reconcile()
            outcome = service.Outcome("reconciled", "", detail=json.dumps(report.as_dict()["ticket_ids"]))
        elif message.kind == service.WRITE_BACK:
            outcome = service.write_back(
                message.ticket_id,
                store=bootstrap.store(),
                targets=bootstrap.writeback_targets(),
                clock=bootstrap.clock(),
                lease_seconds=bootstrap.settings().processing_lease_seconds,
                max_attempts=bootstrap.settings().max_delivery_attempts,
            )
        elif message.kind == service.REMEMBER:
            outcome = service.remember(
                message.ticket_id,
                store=bootstrap.store(),
                embedder=bootstrap.embedder(),
                memory=bootstrap.memory(),
                options=bootstrap.processing_options(),
                clock=bootstrap.clock(),
            )
        else:
            outcome = service.process(
                message.ticket_id,
                store=bootstrap.store(),
                embedder=bootstrap.embedder(),
                memory=bootstrap.memory(),
                classifier=bootstrap.classifier(),
                taxonomy=bootstrap.taxonomy(),
                clock=bootstrap.clock(),
                options=bootstrap.processing_options(),
                writeback=bootstrap.writeback_queue(),
                fallback=bootstrap.fallback_classifier(),
            )
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
