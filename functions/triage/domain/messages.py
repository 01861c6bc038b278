"""The work messages on the engine's Pub/Sub topics: ``{"ticket_id", "kind"}``.

Pure encoding and decoding; this module must never talk to Pub/Sub itself. Which
handler each kind reaches is ``service.MESSAGE_HANDLERS``.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import enum
import json
import re
from collections.abc import Mapping
from typing import Any

from ..errors import MalformedMessage

_TICKET_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
DEAD_LETTER_ATTRIBUTE = "CloudPubSubDeadLetterSourceDeliveryCount"


class MessageKind(enum.StrEnum):
    CLASSIFY = "classify"  # the API's message for a new (or re-triaged) ticket
    REMEMBER = "remember"  # bring the memory in line with a ticket's labels
    WRITE_BACK = "write_back"  # on the write-back topic: write the labels to the source
    WARM_UP = "warm_up"  # carries no ticket: load the model now
    RECONCILE = "reconcile"  # carries no ticket: Cloud Scheduler publishes it
    AUDIT = "audit"  # ask the classifier of record about a memory answer, in the background

    @property
    def carries_ticket(self) -> bool:
        return self not in (MessageKind.WARM_UP, MessageKind.RECONCILE)


@dataclasses.dataclass(frozen=True)
class WorkMessage:
    ticket_id: str  # empty for the kinds that carry no ticket
    kind: MessageKind
    # Set when Pub/Sub forwarded the message to the dead-letter topic: how often it was tried.
    dead_letter_deliveries: int | None = None


def encode(ticket_id: str, kind: MessageKind) -> bytes:
    return json.dumps({"ticket_id": ticket_id, "kind": str(kind)}, separators=(",", ":")).encode()


def decode_pubsub_event(data: Any) -> WorkMessage:
    """Decode the ``data`` of a Pub/Sub CloudEvent (``{"message": {"data": base64, ...}}``).

    A message without a kind is a ``classify`` message (what the first version published).
    """
    if not isinstance(data, Mapping) or not isinstance(data.get("message"), Mapping):
        raise MalformedMessage("the event carries no Pub/Sub message")
    encoded = data["message"].get("data")
    if not isinstance(encoded, str):
        raise MalformedMessage("the Pub/Sub message has no data")
    try:
        payload = json.loads(base64.b64decode(encoded, validate=True))
    except (binascii.Error, ValueError) as error:
        raise MalformedMessage(f"the message data is not base64-encoded JSON: {error}") from error
    if not isinstance(payload, Mapping):
        raise MalformedMessage("the message data is not a JSON object")
    ticket_id = payload.get("ticket_id", "")
    try:
        kind = MessageKind(payload.get("kind", MessageKind.CLASSIFY))
    except ValueError:
        raise MalformedMessage(f"unknown message kind {payload.get('kind')!r}") from None
    if kind.carries_ticket and (not isinstance(ticket_id, str) or not _TICKET_ID.match(ticket_id)):
        raise MalformedMessage(f"the message has no valid ticket_id: {ticket_id!r}")
    attributes = data["message"].get("attributes") or {}
    deliveries = attributes.get(DEAD_LETTER_ATTRIBUTE) if isinstance(attributes, Mapping) else None
    try:
        dead_letter_deliveries = int(deliveries) if deliveries is not None else None
    except (TypeError, ValueError):
        dead_letter_deliveries = 0
    return WorkMessage(ticket_id=str(ticket_id), kind=kind, dead_letter_deliveries=dead_letter_deliveries)
