"""PubSubPublisher against the real Pub/Sub emulator."""

from __future__ import annotations

import base64
import uuid

import pytest
from google.cloud import pubsub_v1

from emulators.stack import free_port
from triage.adapters.pubsub import PubSubPublisher
from triage.domain import MessageKind, messages
from triage.errors import PublishFailed


@pytest.fixture
def topic(emulator_env):
    project = emulator_env.config.project
    name = f"tickets-{uuid.uuid4().hex[:8]}"
    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    topic_path = publisher.create_topic(name=publisher.topic_path(project, name)).name
    subscription = subscriber.create_subscription(
        name=subscriber.subscription_path(project, f"{name}-pull"), topic=topic_path
    ).name
    yield project, name, subscriber, subscription
    subscriber.close()


def test_publish_returns_once_acknowledged_and_the_worker_can_decode_it(topic):
    project, name, subscriber, subscription = topic
    publisher = PubSubPublisher.create(project, name, timeout_seconds=5)
    message_id = publisher.publish("ticket-1", MessageKind.CLASSIFY)
    assert message_id
    received = subscriber.pull(subscription=subscription, max_messages=10, timeout=10).received_messages
    assert [m.message.message_id for m in received] == [message_id]
    message = received[0].message
    assert dict(message.attributes) == {"ticket_id": "ticket-1", "kind": "classify"}
    envelope = {"message": {"data": base64.b64encode(message.data).decode()}}
    assert messages.decode_pubsub_event(envelope) == messages.WorkMessage("ticket-1", MessageKind.CLASSIFY)


def test_a_missing_topic_fails_the_publish(emulator_env):
    publisher = PubSubPublisher.create(emulator_env.config.project, "no-such-topic", timeout_seconds=2)
    with pytest.raises(PublishFailed):
        publisher.publish("ticket-1", MessageKind.CLASSIFY)


def test_an_unreachable_pubsub_fails_within_the_timeout(monkeypatch):
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", f"127.0.0.1:{free_port()}")
    publisher = PubSubPublisher.create("triage-test", "tickets", timeout_seconds=1)
    with pytest.raises(PublishFailed):
        publisher.publish("ticket-1", MessageKind.CLASSIFY)


def test_warm_up_connects_before_the_first_publish(topic):
    project, name, _, _ = topic
    publisher = PubSubPublisher.create(project, name, timeout_seconds=5)
    publisher.warm_up()
    assert publisher.publish("ticket-1", MessageKind.CLASSIFY)


def test_warm_up_of_an_unreachable_pubsub_gives_up(monkeypatch):
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", f"127.0.0.1:{free_port()}")
    with pytest.raises(Exception):  # noqa: B017 (grpc's FutureTimeoutError; the caller logs whatever it is)
        PubSubPublisher.create("triage-test", "tickets", timeout_seconds=1).warm_up()
