"""Routes of the ticket resource: submit, read, list, correct, confirm."""

from __future__ import annotations

import flask

from .. import service, views
from ..domain import Submission, Ticket
from ..errors import NotFound
from . import schemas
from .app import Context, Header, Route, model_response

IDEMPOTENCY_KEY = Header(
    "Idempotency-Key",
    "Repeating a request with the same key returns the same ticket (a different body: 409).",
    # Visible ASCII, no white space at either end (HTTP strips it), at most 255 characters.
    pattern=r"^[!-~]([ -~]*[!-~])?$",
    max_length=schemas.IDEMPOTENCY_KEY_MAX_CHARS,
    code="invalid_idempotency_key",
)


def status_url(context: Context, ticket_id: str) -> str:
    base = context.settings.public_base_url or context.request.host_url
    return f"{base.rstrip('/')}/tickets/{ticket_id}"


def ticket_response(ticket: Ticket) -> flask.Response:
    return model_response(schemas.TicketView, views.ticket_view(ticket))


def path_ticket_id(context: Context) -> str:
    """The ``ticket_id`` path argument; one that cannot be an id names no ticket (404)."""
    ticket_id = context.path_arguments["ticket_id"]
    if not (0 < len(ticket_id) <= 64 and all(c.isalnum() or c in "-_" for c in ticket_id)):
        raise NotFound(f"no ticket with id {ticket_id!r}")
    return ticket_id


def classify(context: Context) -> flask.Response:
    body: schemas.ClassifyRequest = context.body()
    submission = Submission(
        title=body.title.strip(),
        description=body.description.strip(),
        source=body.source,
        external_id=body.external_id.strip() if body.external_id else None,
        reporter=body.reporter.strip() if body.reporter else body.reporter,
        metadata=body.metadata,
        idempotency_key=context.header(IDEMPOTENCY_KEY.name),
        tenant=context.settings.default_tenant,
    )
    result = context.use(service.ingest)(submission)
    url = status_url(context, result.ticket.ticket_id)
    accepted = {
        "ticket_id": result.ticket.ticket_id,
        "status": result.ticket.status,
        "status_url": url,
        "duplicate": not result.created,
    }
    return model_response(schemas.ClassifyAccepted, accepted, 202, {"Location": url})


def get_ticket(context: Context) -> flask.Response:
    return ticket_response(context.use(views.get_ticket)(path_ticket_id(context)))


def list_tickets(context: Context) -> flask.Response:
    """Recent tickets, newest first; ``review=true`` keeps those a human should look at."""
    query: schemas.TicketsQuery = context.query()
    tickets = context.use(views.list_tickets)(query.status, query.review == "true", query.limit)
    return model_response(schemas.TicketList, {"tickets": [views.ticket_view(t) for t in tickets]})


def feedback(context: Context) -> flask.Response:
    body: schemas.FeedbackRequest = context.body()
    correction = service.Feedback(
        category=body.category,
        priority=body.priority,
        assignment_group=body.assignment_group,
        reviewer=body.reviewer.strip() if body.reviewer else body.reviewer,
        comment=body.comment.strip() if body.comment else body.comment,
    )
    return ticket_response(context.use(service.record_feedback)(path_ticket_id(context), correction))


def confirm(context: Context) -> flask.Response:
    body: schemas.ConfirmRequest = context.body()
    verdict = service.Feedback(
        category=None,
        reviewer=body.reviewer.strip() if body.reviewer else body.reviewer,
        comment=body.comment.strip() if body.comment else body.comment,
    )
    return ticket_response(context.use(service.record_feedback)(path_ticket_id(context), verdict))


ROUTES = [
    Route(
        "POST",
        "/classify",
        classify,
        "Submit a ticket; answers 202 once it is stored and queued",
        scope="submit",
        body=schemas.ClassifyRequest,
        headers=(IDEMPOTENCY_KEY,),
        responses={202: (schemas.ClassifyAccepted, "Stored as Pending and queued for classification")},
        errors=(409,),
    ),
    Route(
        "GET",
        "/tickets",
        list_tickets,
        "Recent tickets, newest first; review=true keeps flagged or low-confidence ones",
        query=schemas.TicketsQuery,
        responses={200: (schemas.TicketList, "Tickets")},
    ),
    Route(
        "GET",
        "/tickets/<ticket_id>",
        get_ticket,
        "A ticket's status, labels and how they were reached",
        responses={200: (schemas.TicketView, "The ticket")},
    ),
    Route(
        "POST",
        "/tickets/<ticket_id>/feedback",
        feedback,
        "Correct a ticket's labels; the memory learns at once",
        scope="feedback",
        body=schemas.FeedbackRequest,
        responses={200: (schemas.TicketView, "The corrected ticket")},
        errors=(409,),
        description="Labels outside the taxonomy: 422; a ticket still Pending: 409. Nothing changes then.",
    ),
    Route(
        "POST",
        "/tickets/<ticket_id>/confirm",
        confirm,
        "Confirm a ticket's labels are right (Verified_By_Human); counts a memory answer as correct",
        scope="feedback",
        body=schemas.ConfirmRequest,
        body_required=False,
        responses={200: (schemas.TicketView, "The confirmed ticket")},
        errors=(409,),
        description="A ticket still Pending, or Failed without labels: 409, and nothing changes.",
    ),
]
