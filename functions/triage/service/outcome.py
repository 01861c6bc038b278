"""What one message or request did: the action taken, for the log and the tests."""

from __future__ import annotations

import dataclasses
import enum

from ..domain import Status


class Action(enum.StrEnum):
    CLASSIFIED = "classified"
    SKIPPED = "skipped"
    FAILED = "failed"
    REMEMBERED = "remembered"
    WARMED_UP = "warmed_up"
    WRITTEN_BACK = "written_back"
    DEAD_LETTERED = "dead_lettered"
    RECONCILED = "reconciled"
    AUDITED = "audited"
    WAITING = "waiting"  # the classifier refuses its credentials and there is no fallback


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What one delivery did."""

    action: Action
    ticket_id: str
    status: Status | None = None
    detail: str = ""
