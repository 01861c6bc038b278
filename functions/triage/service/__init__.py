"""The engine's use cases, one module per family, each taking its collaborators as
keyword arguments (ports, never adapters):

* ``ingest``: take a ticket from the API or a source's webhook;
* ``classify``: classify it, from memory or with the classifier; keep the memory in line;
* ``feedback``: a reviewer's verdict, a correction or a confirmation;
* ``audit``: the classifier of record's background check of a memory answer;
* ``writeback``: write the labels in force back to Jira or ServiceNow;
* ``recovery``: restart stopped work, dead letters, replay Failed tickets.

``MESSAGE_HANDLERS`` is the worker's one map from a message kind to its use case; the
composition root (``bootstrap``) binds the collaborators once per process. This package
must never import a client library or read the environment.
"""

from ..domain import MessageKind
from .audit import audit
from .classify import ProcessingOptions, process, remember, warm_up
from .feedback import Feedback, record_feedback
from .ingest import EventOutcome, EventResult, IngestResult, IntakeOptions, ingest, ingest_event
from .outcome import Action, Outcome
from .recovery import ReconcileReport, RecoveryOptions, dead_letter, reconcile, replay_failed, scheduled_reconcile
from .writeback import DeliveryOptions, WritebackQueue, write_back

# Every handler takes the message's ticket id first (empty for the kinds that carry none).
MESSAGE_HANDLERS = {
    MessageKind.CLASSIFY: process,
    MessageKind.REMEMBER: remember,
    MessageKind.WRITE_BACK: write_back,
    MessageKind.WARM_UP: warm_up,
    MessageKind.RECONCILE: scheduled_reconcile,
    MessageKind.AUDIT: audit,
}
# A message Pub/Sub dead-lettered reaches this one, whatever its kind.
DEAD_LETTER_HANDLER = dead_letter

__all__ = [
    "DEAD_LETTER_HANDLER",
    "MESSAGE_HANDLERS",
    "Action",
    "DeliveryOptions",
    "EventOutcome",
    "EventResult",
    "Feedback",
    "IngestResult",
    "IntakeOptions",
    "Outcome",
    "ProcessingOptions",
    "ReconcileReport",
    "RecoveryOptions",
    "WritebackQueue",
    "audit",
    "dead_letter",
    "ingest",
    "ingest_event",
    "process",
    "reconcile",
    "record_feedback",
    "remember",
    "replay_failed",
    "scheduled_reconcile",
    "warm_up",
    "write_back",
]
