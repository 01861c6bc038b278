"""Publisher on Cloud Pub/Sub (or its emulator, when PUBSUB_EMULATOR_HOST is set).

``publish`` returns only once Pub/Sub has acknowledged the message, so the API
answers 202 only for a ticket that is on its way. The client's own retry is the
one retry layer here, bounded by the publish timeout.
"""

from __future__ import annotations

import concurrent.futures

import grpc
from google.api_core import exceptions as google_exceptions
from google.api_core.retry import Retry
from google.cloud import pubsub_v1

from ..domain import MessageKind, messages
from ..errors import PublishFailed

# A warm-up connection at instance start waits no longer than this; it is best effort.
WARM_UP_TIMEOUT_SECONDS = 5.0


class PubSubPublisher:
    def __init__(self, client: pubsub_v1.PublisherClient, topic_path: str, *, timeout_seconds: float = 10.0):
        self._client = client
        self._topic_path = topic_path
        self._timeout = timeout_seconds
        self._retry = Retry(initial=0.1, maximum=2.0, multiplier=2.0, timeout=timeout_seconds)

    @classmethod
    def create(cls, project: str, topic: str, *, timeout_seconds: float = 10.0) -> PubSubPublisher:
        # A short batch window: each request waits for its own acknowledgement.
        client = pubsub_v1.PublisherClient(batch_settings=pubsub_v1.types.BatchSettings(max_latency=0.002))
        return cls(client, client.topic_path(project, topic), timeout_seconds=timeout_seconds)

    def warm_up(self) -> None:
        """Connect the channel before the first request needs it (no message is sent)."""
        channel = self._client.transport.grpc_channel
        grpc.channel_ready_future(channel).result(timeout=WARM_UP_TIMEOUT_SECONDS)

    def publish(self, ticket_id: str, kind: MessageKind) -> str:
        try:
            future = self._client.publish(
                self._topic_path,
                messages.encode(ticket_id, kind),
                retry=self._retry,
                timeout=self._timeout,
                ticket_id=ticket_id,
                kind=str(kind),
            )
            return future.result(timeout=self._timeout)
        except (google_exceptions.GoogleAPIError, concurrent.futures.TimeoutError, TimeoutError) as error:
            raise PublishFailed(f"Pub/Sub did not acknowledge the publish: {type(error).__name__}: {error}") from error
