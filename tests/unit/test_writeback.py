"""Write-back planning (what to send to Jira and ServiceNow) and its orchestration, on fakes."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any

import pytest

from tests.fakes import FakeClock
from tests.harness import Engine
from triage import bootstrap, domain, service
from triage.domain import AnswerPath, Call, Classification, Labels, Status, Submission, WritebackRules, WritebackStatus
from triage.errors import WritebackFailed
from triage.ports import WritebackTarget
from triage.sources import jira, servicenow

RULES = WritebackRules(min_confidence=0.7, jira_fields=frozenset({"labels", "components", "priority"}))
NETWORK = Labels("Network", "High", "Network Operations")


def ticket(source: str = "jira", confidence: float = 0.9, **changes: Any) -> domain.Ticket:
    now = FakeClock()()
    base = domain.Ticket(
        ticket_id="t1",
        tenant="OPS",
        title="VPN drops",
        description="",
        created_at=now,
        updated_at=now,
        source=source,
        external_id="10040" if source == "jira" else "abc123",
        metadata={"jira": {"key": "OPS-7"}} if source == "jira" else {"servicenow": {"sys_id": "abc123"}},
    )
    classified = domain.ticket.complete(
        base, Classification(NETWORK, confidence, "Mentions the VPN tunnel.", AnswerPath.CLASSIFIER, "m"), now=now
    )
    return dataclasses.replace(classified, **changes)


# --------------------------------------------------------------------------- Jira plans


def test_jira_plan_adds_labels_and_components_sets_an_empty_priority_and_comments():
    plan = jira.plan(ticket(), {"labels": ["customer"], "components": [], "priority": None}, RULES)
    put, comment = plan.calls
    assert (put.method, put.path) == ("PUT", "/rest/api/3/issue/OPS-7")
    assert put.body == {
        "update": {"labels": [{"add": "triage-network"}], "components": [{"add": {"name": "Network Operations"}}]},
        "fields": {"priority": {"name": "High"}},
    }
    assert (comment.method, comment.path) == ("POST", "/rest/api/3/issue/OPS-7/comment")
    text = comment.body["body"]["content"][0]["content"][0]["text"]
    assert "category Network (confidence 90%)" in text and "Mentions the VPN tunnel." in text
    assert plan.written == {"label": "triage-network", "component": "Network Operations", "priority": "High"}
    assert plan.skipped == ()


def test_jira_plan_never_overwrites_a_priority_a_human_set():
    plan = jira.plan(ticket(), {"labels": [], "components": [], "priority": "Lowest"}, RULES)
    assert "fields" not in plan.calls[0].body
    assert plan.skipped == ("priority: 'Lowest' was set in Jira by someone else, left alone",)


def test_after_a_correction_jira_gets_the_new_label_instead_of_our_old_one():
    earlier = domain.Writeback(
        WritebackStatus.DONE, FakeClock()(), written={"label": "triage-network", "priority": "High"}
    )
    corrected = domain.ticket.correct(
        ticket(writeback=earlier),
        Labels("Access", "Low", "Identity & Access Management"),
        reviewer="ana",
        comment="IAM",
        now=FakeClock()(),
    )
    plan = jira.plan(corrected, {"labels": ["triage-network", "customer"], "components": [], "priority": "High"}, RULES)
    body = plan.calls[0].body
    assert body["update"]["labels"] == [{"remove": "triage-network"}, {"add": "triage-access"}]
    assert body["fields"] == {"priority": {"name": "Low"}}  # "High" was ours, so it may change
    assert "set by a reviewer" in plan.calls[1].body["body"]["content"][0]["content"][0]["text"]


def test_below_the_confidence_bar_jira_only_gets_a_needs_review_label_and_comment():
    plan = jira.plan(ticket(confidence=0.4), {"labels": [], "components": [], "priority": None}, RULES)
    assert plan.calls[0].body == {"update": {"labels": [{"add": "triage-needs-review"}]}}
    assert "needs review" in plan.calls[1].body["body"]["content"][0]["content"][0]["text"]


# --------------------------------------------------------------------------- ServiceNow plans


def test_servicenow_plan_sets_empty_fields_by_name_and_adds_a_work_note():
    (call,) = servicenow.plan(ticket("servicenow"), {"category": "", "assignment_group": ""}, RULES).calls
    assert (call.method, call.path, dict(call.params)) == (
        "PATCH",
        "/api/now/table/incident/abc123",
        {"sysparm_input_display_value": "true"},
    )
    assert call.body["category"] == "Network" and call.body["assignment_group"] == "Network Operations"
    assert call.body["work_notes"].startswith("Triage: category Network")


def test_servicenow_plan_leaves_values_a_human_set():
    plan = servicenow.plan(ticket("servicenow"), {"category": "hardware", "assignment_group": "Desk"}, RULES)
    assert set(plan.calls[0].body) == {"work_notes"}
    assert len(plan.skipped) == 2 and plan.written == {}


def test_servicenow_category_names_can_be_mapped():
    rules = dataclasses.replace(RULES, category_map={"Network": "network"})
    plan = servicenow.plan(ticket("servicenow"), {"category": "", "assignment_group": ""}, rules)
    assert plan.calls[0].body["category"] == "network"


def test_below_the_confidence_bar_servicenow_only_gets_a_work_note():
    plan = servicenow.plan(ticket("servicenow", confidence=0.5), {"category": "", "assignment_group": ""}, RULES)
    assert list(plan.calls[0].body) == ["work_notes"] and "needs review" in plan.calls[0].body["work_notes"]


# --------------------------------------------------------------------------- orchestration


class FakeSourceClient:
    base_url = "https://example.atlassian.net"

    def __init__(self, current: Mapping[str, Any], fail: Exception | None = None):
        self.current = current
        self.fail = fail
        self.sent: list[Call] = []

    def read(self, ticket: domain.Ticket) -> Mapping[str, Any]:
        return self.current

    def send(self, call: Call) -> int:
        if self.fail:
            raise self.fail
        self.sent.append(call)
        return 204


def jira_engine(taxonomy, client: FakeSourceClient, dry_run: bool = False) -> Engine:
    """An engine whose Jira write-back goes to ``client``; it classifies as Network at 0.9."""
    plan = functools.partial(jira.plan, rules=RULES)
    return Engine(
        taxonomy,
        labels=NETWORK,
        confidence=0.9,
        writeback_sources=frozenset({"jira"}),
        targets={"jira": WritebackTarget(client, plan, dry_run)},
    )


def source_of(engine: Engine) -> FakeSourceClient:
    return bootstrap.targets()["jira"].client  # type: ignore[return-value]


def submit(engine: Engine) -> str:
    submission = Submission(
        title="VPN tunnel drops", source="jira", external_id="10040", metadata={"jira": {"key": "OPS-7"}}
    )
    return engine.submit_and_process(submission).ticket_id


@pytest.fixture
def engine(taxonomy) -> Engine:
    return jira_engine(taxonomy, FakeSourceClient({"labels": [], "components": [], "priority": None}))


def test_classification_queues_a_write_back_that_sends_and_records_the_calls(engine: Engine):
    ticket_id = submit(engine)
    assert engine.writeback_publisher.messages == [(ticket_id, "write_back")]
    assert engine.store.tickets[ticket_id].writeback.status is WritebackStatus.PENDING
    outcome = engine.write_back(ticket_id)
    state = engine.store.tickets[ticket_id].writeback
    assert outcome.detail == "done" and state.status is WritebackStatus.DONE
    assert [c["method"] for c in state.calls] == ["PUT", "POST"]
    assert state.calls[0]["url"] == "https://example.atlassian.net/rest/api/3/issue/OPS-7"
    assert state.calls[0]["status_code"] == 204
    assert state.written["label"] == "triage-network"
    assert len(source_of(engine).sent) == 2
    assert engine.write_back(ticket_id).action == "skipped"  # a redelivery sends nothing again
    assert len(source_of(engine).sent) == 2


def test_a_dry_run_records_the_calls_and_sends_nothing(taxonomy):
    engine = jira_engine(taxonomy, FakeSourceClient({"labels": [], "components": [], "priority": None}), dry_run=True)
    ticket_id = submit(engine)
    engine.write_back(ticket_id)
    state = engine.store.tickets[ticket_id].writeback
    assert state.status is WritebackStatus.DRY_RUN
    assert [c["status_code"] for c in state.calls] == [None, None]
    assert state.calls[0]["body"]["update"]["labels"] == [{"add": "triage-network"}]
    assert source_of(engine).sent == []


def test_a_failed_write_back_is_recorded_and_never_touches_the_classification(taxonomy):
    client = FakeSourceClient({"labels": [], "components": [], "priority": None}, WritebackFailed("Jira answered 500"))
    engine = jira_engine(taxonomy, client)
    ticket_id = submit(engine)
    before = engine.store.tickets[ticket_id]
    outcome = engine.write_back(ticket_id)
    after = engine.store.tickets[ticket_id]
    assert outcome.detail == "failed"
    assert after.writeback.status is WritebackStatus.FAILED and after.writeback.last_error == "Jira answered 500"
    assert (after.status, after.classification) == (Status.CLASSIFIED_BY_AI, before.classification)


def test_a_write_back_lost_between_labels_and_publish_is_queued_by_the_redelivery(engine: Engine):
    engine.writeback_publisher.failures = 1
    submission = Submission(
        title="VPN tunnel drops", source="jira", external_id="1", metadata={"jira": {"key": "OPS-1"}}
    )
    ticket_id = engine.ingest(submission).ticket.ticket_id
    with pytest.raises(Exception, match="injected"):
        engine.process(ticket_id)
    assert engine.store.tickets[ticket_id].status is Status.CLASSIFIED_BY_AI
    assert engine.process(ticket_id).action == "skipped"
    assert engine.writeback_publisher.messages == [(ticket_id, "write_back")]


def test_a_correction_writes_back_again(engine: Engine, taxonomy):
    ticket_id = submit(engine)
    engine.write_back(ticket_id)
    source_of(engine).current = {"labels": ["triage-network"], "components": ["Network Operations"], "priority": "High"}
    engine.feedback(ticket_id, service.Feedback(category="Access", reviewer="ana"))
    assert engine.writeback_publisher.messages[-1] == (ticket_id, "write_back")
    engine.write_back(ticket_id)
    put = source_of(engine).sent[-2]
    assert put.body["update"]["labels"] == [{"remove": "triage-network"}, {"add": "triage-access"}]


def test_a_correction_during_a_running_write_back_leaves_another_one_pending(engine: Engine):
    ticket_id = submit(engine)
    engine.store.update(ticket_id, lambda t: domain.writeback.begin_writeback(t, now=engine.clock(), lease_seconds=60))
    started_for = engine.store.tickets[ticket_id].writeback.started_for
    engine.clock.advance(1)
    engine.store.update(ticket_id, lambda t: domain.writeback.request_writeback(t, now=engine.clock()))
    finished = engine.store.update(
        ticket_id,
        lambda t: domain.writeback.finish_writeback(
            t,
            status=WritebackStatus.DONE,
            calls=(),
            written={},
            skipped=(),
            error=None,
            started_for=started_for,
            now=engine.clock(),
        ),
    )
    assert finished.writeback.status is WritebackStatus.PENDING


@pytest.mark.parametrize(
    ("rationale", "kept", "gone"),
    [
        ("See [the runbook](https://evil.example/x) now", "the runbook", "evil.example"),
        ("Ask [~admin] and read [docs|http://intranet/wiki]", "docs", "[~admin]"),
        ("<script>alert(1)</script>Printer *jammed* {color:red}urgent{color}", "Printer jammed urgent", "<script>"),
        ("Visit www.phish.example or mailto:x@y.z !logo.png!", "(link removed)", "phish"),
    ],
)
def test_a_rationale_is_plain_text_without_links_before_it_reaches_the_source(rationale, kept, gone):
    safe = domain.writeback.safe_rationale(rationale)
    assert kept in safe and gone not in safe
    assert not any(mark in safe for mark in "<>[]{}*|")


def test_a_long_rationale_is_cut_to_its_limit():
    safe = domain.writeback.safe_rationale("word " * 200)
    assert len(safe) == domain.writeback.RATIONALE_MAX_CHARS and safe.endswith("\u2026")
