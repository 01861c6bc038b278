"""Operator routes: restart stopped work, list and replay Failed tickets, the figures."""

from __future__ import annotations

from datetime import timedelta

import flask

from .. import metrics, service, views
from . import schemas
from .app import Context, Route, model_response


def reconcile(context: Context) -> flask.Response:
    body: schemas.ReconcileRequest = context.body()
    older_than = timedelta(seconds=body.older_than_seconds) if body.older_than_seconds else None
    report = context.use(service.reconcile)(older_than, body.limit)
    return model_response(schemas.ReconcileResult, report.as_dict())


def failed(context: Context) -> flask.Response:
    query: schemas.FailedQuery = context.query()
    return model_response(schemas.FailedList, {"tickets": context.use(views.failed_tickets)(query.limit)})


def replay(context: Context) -> flask.Response:
    body: schemas.ReplayRequest = context.body()
    replayed = context.use(service.replay_failed)(None if body.all else body.ticket_ids, body.limit)
    return model_response(schemas.ReplayResult, {"replayed": replayed})


def stats(context: Context) -> flask.Response:
    query: schemas.StatsQuery = context.query()
    figures = context.use(views.stats)(timedelta(hours=query.hours), query.buckets, query.tenant)
    return model_response(schemas.Stats, figures)


def metrics_text(context: Context) -> flask.Response:
    body, content_type = metrics.exposition()
    return flask.Response(body, status=200, content_type=content_type, headers={"Cache-Control": "no-store"})


ROUTES = [
    Route(
        "POST",
        "/admin/reconcile",
        reconcile,
        "Restart stopped work: stuck Pending tickets, pending write-backs, unremembered tickets",
        description="Admin scope. In production Cloud Scheduler publishes a reconcile message the worker runs; "
        "`triage reconcile` does the same.",
        scope="admin",
        body=schemas.ReconcileRequest,
        body_required=False,
        responses={200: (schemas.ReconcileResult, "What was restarted")},
    ),
    Route(
        "GET",
        "/admin/failed",
        failed,
        "Failed tickets with their last error, oldest first (admin scope)",
        scope="admin",
        query=schemas.FailedQuery,
        responses={200: (schemas.FailedList, "Failed tickets")},
    ),
    Route(
        "POST",
        "/admin/replay",
        replay,
        "Send Failed tickets through the pipeline again (admin scope)",
        scope="admin",
        body=schemas.ReplayRequest,
        responses={200: (schemas.ReplayResult, "Replayed ticket ids")},
    ),
    Route(
        "GET",
        "/stats",
        stats,
        "What the engine did over a window, from Firestore aggregation queries",
        query=schemas.StatsQuery,
        responses={200: (schemas.Stats, "Figures")},
    ),
    Route(
        "GET",
        "/metrics",
        metrics_text,
        "This instance's Prometheus metrics (text exposition format)",
        responses={200: ("text/plain", "Metrics")},
    ),
]
