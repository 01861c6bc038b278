"""The engine's one exception hierarchy.

Every error the engine raises on purpose is a ``TriageError``. Where it lands
decides what happens next, so the tree is drawn by consequence::

    TriageError
    ├── BadRequest                 the API answers 4xx (400 unless a subclass says); nothing is stored
    │   ├── Unauthorized           401
    │   ├── Forbidden              403 (a valid API key without the route's scope)
    │   ├── NotFound               404
    │   ├── MethodNotAllowed       405
    │   ├── Conflict               409 (an idempotency key reused with another body)
    │   ├── PayloadTooLarge        413
    │   ├── UnsupportedMediaType   415
    │   ├── ValidationFailed       422 (a body that does not fit the schema)
    │   ├── InvalidLabels          422 (a label outside the taxonomy)
    │   └── TooManyRequests        429 (with Retry-After)
    ├── TransientError             the worker raises, so Pub/Sub redelivers; the API answers 503
    │   ├── StoreUnavailable       Firestore did not answer
    │   ├── PublishFailed          Pub/Sub did not acknowledge a publish
    │   ├── MemoryUnavailable      the Chroma server did not answer
    │   │   └── MemoryIndexMissing a tenant's index is gone (Chroma lost it): no memory answers
    │   │                          until `triage rebuild` restores it from Firestore
    │   ├── ClassifierUnavailable  the LLM kept failing after its retries (429, 5xx, timeouts)
    │   │   └── ClassifierMisconfigured  it refuses our credentials: an operator must act (alerts)
    │   └── TicketBusy             another delivery holds the ticket's lease
    ├── PermanentError             the worker records ``Failed`` with the reason and acknowledges
    │   ├── MalformedMessage       a Pub/Sub message that is not ours
    │   ├── UnknownTicket          a message for a ticket that does not exist
    │   ├── InvalidModelOutput     the LLM's answer did not parse or fell outside the taxonomy
    │   └── WritebackFailed        Jira or ServiceNow refused the write-back, or kept failing
    │                              after its retries (recorded on the ticket; the labels stay)
    └── ConfigurationError         the process cannot start: a bad setting or a memory built by
                                   another embedding model

This module must never import anything outside the standard library.
"""

from __future__ import annotations


class TriageError(Exception):
    """Base of every error the engine raises on purpose."""


class ConfigurationError(TriageError):
    """A setting, taxonomy or memory the process cannot work with."""


class BadRequest(TriageError):
    """The caller sent something the engine will not accept (HTTP 4xx)."""

    status_code = 400
    code = "bad_request"

    def __init__(
        self, message: str, *, code: str | None = None, details: object = None, retry_after: int | None = None
    ):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details
        self.retry_after = retry_after


class Unauthorized(BadRequest):
    status_code = 401
    code = "unauthorized"


class Forbidden(BadRequest):
    status_code = 403
    code = "forbidden"


class NotFound(BadRequest):
    status_code = 404
    code = "not_found"


class MethodNotAllowed(BadRequest):
    status_code = 405
    code = "method_not_allowed"


class Conflict(BadRequest):
    status_code = 409
    code = "conflict"


class PayloadTooLarge(BadRequest):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(BadRequest):
    status_code = 415
    code = "unsupported_media_type"


class ValidationFailed(BadRequest):
    status_code = 422
    code = "validation_failed"


class InvalidLabels(BadRequest):
    status_code = 422
    code = "invalid_labels"


class TooManyRequests(BadRequest):
    status_code = 429
    code = "rate_limited"


class TransientError(TriageError):
    """A fault that may pass: retry later (the worker raises, the API answers 503)."""

    retry_after_seconds = 1


class StoreUnavailable(TransientError):
    pass


class PublishFailed(TransientError):
    pass


class MemoryUnavailable(TransientError):
    pass


class MemoryIndexMissing(MemoryUnavailable):
    """Firestore holds a tenant's memory but Chroma has no index of it (lost, or emptied).

    The memory answers nothing for the tenant rather than answer from a partial index; new
    entries are still recorded in Firestore, and `triage rebuild` restores the index."""


class ClassifierUnavailable(TransientError):
    pass


class ClassifierMisconfigured(ClassifierUnavailable):
    """The classifier refuses the configured credentials (a wrong key, a missing role).

    Transient for the ticket (it falls back, or waits for the fix); loud for the operator."""


class TicketBusy(TransientError):
    """Another delivery of the same ticket is being processed right now."""


class PermanentError(TriageError):
    """A fault that retrying cannot fix: record ``Failed`` and acknowledge."""


class MalformedMessage(PermanentError):
    pass


class UnknownTicket(PermanentError):
    pass


class InvalidModelOutput(PermanentError):
    pass


class WritebackFailed(PermanentError):
    pass
