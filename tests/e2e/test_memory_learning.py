"""History loaded with ``triage backfill`` answers a new ticket by neighbourhood vote; a human
correction of that ticket then changes what the memory answers for the next similar one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from emulators import demo

HISTORY = [
    "Outlook calendar does not sync with my iPhone",
    "Calendar events from Outlook missing on my phone",
    "iPhone calendar not updating from Outlook",
    "Outlook meetings do not show up on my mobile calendar",
    "Mobile Outlook app calendar out of sync",
    "Shared calendar not syncing to phone",
    "Outlook calendar sync broken on Android phone",
    "Calendar on my iPhone stopped syncing with Exchange",
]


def test_a_correction_changes_what_the_memory_answers_next(local_lane, tmp_path):
    history = tmp_path / "history.jsonl"
    history.write_text(
        "".join(
            json.dumps({"id": f"CAL-{i}", "summary": text, "queue": "Email & Collaboration"}) + "\n"
            for i, text in enumerate(HISTORY)
        )
    )
    environment = {**os.environ, **local_lane.env}  # the lane's Firestore, memory record and Chroma
    command = [
        str(Path(sys.executable).parent / "triage"),
        "backfill",
        str(history),
        "--title-column",
        "summary",
        "--category-column",
        "queue",
        "--id-column",
        "id",
        "--json",
    ]
    loaded = json.loads(subprocess.run(command, env=environment, check=True, capture_output=True, text=True).stdout)
    assert loaded["loaded"] == len(HISTORY)

    api = local_lane.api_url
    first = demo.wait_until_processed(
        api, demo.submit(api, {"title": "My Outlook calendar stopped syncing to my iPhone"}, None)[0], None
    )
    assert first["status"] == "Classified_By_Cache"
    assert first["labels"]["category"] == "Email & Collaboration"
    assert "close neighbours agree" in first["classification"]["rationale"]
    assert first["classification"]["matched_ticket_id"].startswith("CAL-")

    status, corrected = demo.call(
        "POST", f"{api}/tickets/{first['ticket_id']}/feedback", {"category": "Software", "reviewer": "e2e"}
    )
    assert status == 200 and corrected["status"] == "Corrected_By_Human"

    second = demo.wait_until_processed(
        api, demo.submit(api, {"title": "Outlook calendar will not sync to my iPhone anymore"}, None)[0], None
    )
    assert second["status"] == "Classified_By_Cache"
    assert second["labels"]["category"] == "Software"
    assert second["classification"]["matched_ticket_id"] == first["ticket_id"]
    assert "labels by human" in second["classification"]["rationale"]
