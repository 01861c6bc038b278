"""The whole engine on one machine: the official Firestore and Pub/Sub emulators, a
Chroma server, both functions under functions-framework, and (optionally) the
fake Gemini server.

``python -m emulators.stack`` starts everything, creates the tickets and write-back
topics, a dead-letter topic and push subscriptions to the worker, waits until each process
answers its health check, prints the URLs and, on Ctrl-C, stops every process it
started (each runs in its own process group, so no java is orphaned). The tests,
the demo and the benchmark build the same stack through ``LocalStack``.

Standard library only: it runs before any dependency is importable.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS = ROOT / "functions"


# Prefixes of the engine's settings (see the README's configuration table).
ENGINE_SETTINGS = (
    "GEMINI_",
    "MEMORY_",
    "CHROMA_",
    "CALIBRATION_",
    "TICKETS_",
    "API_KEYS",
    "CLASSIFIER",
    "TAXONOMY_FILE",
    "FEW_SHOT_",
    "MAX_",
    "EMBEDDING_",
    "PUBLIC_BASE_URL",
    "DEFAULT_TENANT",
    "PROCESSING_",
    "PUBLISH_",
    "MODEL_TEXT_",
    "LOG_LEVEL",
)


class StackError(RuntimeError):
    pass


# --------------------------------------------------------------------------- helpers


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def ensure_port_free(host: str, port: int, what: str, option: str) -> None:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            raise StackError(
                f"port {port} for the {what} is already in use on {host}; "
                f"stop whatever holds it or choose another port with {option}"
            ) from None


def http_status(url: str, method: str = "GET", body: bytes | None = None, timeout: float = 2.0) -> int | None:
    """The HTTP status of a request, or None if nothing answered."""
    request = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return None


def warm_up_worker(worker_url: str, path: str) -> bool:
    """Deliver a warm-up event the way Pub/Sub push does; True once the worker acknowledged it."""
    data = base64.b64encode(json.dumps({"kind": "warm_up"}).encode()).decode()
    envelope = {
        "message": {"data": data, "messageId": "warm-up", "publishTime": "2026-01-01T00:00:00Z"},
        "subscription": "warm-up",
    }
    return http_status(f"{worker_url}{path}", "POST", json.dumps(envelope).encode(), timeout=60) == 200


def rest(url: str, method: str = "PUT", payload: Mapping | None = None) -> dict:
    body = json.dumps(payload).encode() if payload is not None else b""
    request = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        detail = error.read().decode(errors="replace")
        if error.code == 409:  # already exists: fine, creation is idempotent here
            return {}
        raise StackError(f"{method} {url} failed: {error.code} {detail}") from None


def sdk_platform() -> Path:
    """The Cloud SDK's ``platform`` folder, where the emulator binaries live."""
    candidates = []
    if os.environ.get("CLOUDSDK_ROOT"):
        candidates.append(Path(os.environ["CLOUDSDK_ROOT"]) / "platform")
    gcloud = shutil.which("gcloud")
    if gcloud:
        candidates.append(Path(gcloud).resolve().parent.parent / "platform")
    candidates.append(Path("/usr/lib/google-cloud-sdk/platform"))
    for candidate in candidates:
        if (candidate / "pubsub-emulator").is_dir() and (candidate / "cloud-firestore-emulator").is_dir():
            return candidate
    raise StackError(
        "the Firestore and Pub/Sub emulators were not found: install the Cloud SDK components "
        "`cloud-firestore-emulator` and `pubsub-emulator` (or set CLOUDSDK_ROOT)"
    )


def venv_bin(name: str, venv: Path | None = None) -> Path:
    folder = venv / "bin" if venv else Path(sys.executable).parent
    path = folder / name
    if not path.exists():
        raise StackError(f"{path} not found: run `make install` first")
    return path


# --------------------------------------------------------------------------- processes


@dataclasses.dataclass
class ManagedProcess:
    name: str
    argv: list[str]
    log_path: Path
    ready: Callable[[], bool]
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    process: subprocess.Popen | None = None

    def start(self, timeout: float) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            self.argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(self.env) if self.env is not None else None,
            cwd=self.cwd,
            start_new_session=True,  # its own process group: stop() takes its children too
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise StackError(f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}")
            if self.ready():
                return
            time.sleep(0.05)
        self.stop()
        raise StackError(f"{self.name} was not ready within {timeout:.0f}s:\n{self.log_tail()}")

    def kill(self) -> None:
        """Stop it the hard way (SIGKILL to its whole group), as a crash would."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> bool:
        """SIGTERM to its group, SIGKILL after 10 s; False if it had to be killed."""
        if self.process is None or self.process.poll() is not None:
            return True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
            return True
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)
            return False


# --------------------------------------------------------------------------- the stack


@dataclasses.dataclass
class Lane:
    """One API + worker pair with its own topic, subscription, collection and memory."""

    name: str
    api_url: str
    worker_url: str
    topic: str
    subscription: str
    dead_letter_topic: str
    env: dict[str, str]


@dataclasses.dataclass
class StackConfig:
    project: str = "triage-local"
    host: str = "127.0.0.1"
    firestore_port: int = 8081
    pubsub_port: int = 8085
    chroma_port: int = 8000
    fake_gemini_port: int = 8090
    workdir: Path = dataclasses.field(default_factory=lambda: ROOT / ".stack")
    chroma_venv: Path = ROOT / ".venv-chroma"
    firestore_emulator_host: str | None = None  # reuse a running emulator instead of starting one
    pubsub_emulator_host: str | None = None
    chroma_url: str | None = None  # reuse a running Chroma server
    start_fake_gemini: bool = False
    threads: int = 8
    inherit_settings: bool = True  # False: the engine's settings in this environment do not leak in (tests)


class LocalStack:
    def __init__(self, config: StackConfig):
        self.config = config
        self.processes: list[ManagedProcess] = []
        self.lanes: dict[str, Lane] = {}
        self.firestore_host = config.firestore_emulator_host or f"{config.host}:{config.firestore_port}"
        self.pubsub_host = config.pubsub_emulator_host or f"{config.host}:{config.pubsub_port}"
        self.chroma_url = config.chroma_url or f"http://{config.host}:{config.chroma_port}"
        self.fake_gemini_url = f"http://{config.host}:{config.fake_gemini_port}" if config.start_fake_gemini else None

    # ------------------------------------------------------------------ infrastructure

    def _spawn(self, process: ManagedProcess, timeout: float) -> None:
        self.processes.append(process)
        process.start(timeout)

    def start_infrastructure(self) -> None:
        """Start the emulators, Chroma and (if asked) the fake Gemini, each unless reused."""
        config = self.config
        logs = config.workdir / "logs"
        if not config.firestore_emulator_host:
            ensure_port_free(config.host, config.firestore_port, "Firestore emulator", "--firestore-port")
        if not config.pubsub_emulator_host:
            ensure_port_free(config.host, config.pubsub_port, "Pub/Sub emulator", "--pubsub-port")
        if not config.chroma_url:
            ensure_port_free(config.host, config.chroma_port, "Chroma server", "--chroma-port")
        if config.start_fake_gemini:
            ensure_port_free(config.host, config.fake_gemini_port, "fake Gemini server", "--fake-gemini-port")
        # Their heaps grow without bound under load (Pub/Sub: 2 GB after 50k messages).
        java_env = {**os.environ, "JAVA_TOOL_OPTIONS": "-Xmx512m"}
        if not config.firestore_emulator_host:
            self._spawn(
                ManagedProcess(
                    "firestore-emulator",
                    [
                        str(sdk_platform() / "cloud-firestore-emulator" / "cloud_firestore_emulator"),
                        f"--host={config.host}",
                        f"--port={config.firestore_port}",
                    ],
                    logs / "firestore.log",
                    lambda: http_status(f"http://{self.firestore_host}/") == 200,
                    env=java_env,
                ),
                timeout=60,
            )
        if not config.pubsub_emulator_host:
            self._spawn(
                ManagedProcess(
                    "pubsub-emulator",
                    [
                        str(sdk_platform() / "pubsub-emulator" / "bin" / "cloud-pubsub-emulator"),
                        f"--host={config.host}",
                        f"--port={config.pubsub_port}",
                    ],
                    logs / "pubsub.log",
                    lambda: http_status(f"http://{self.pubsub_host}/") == 200,
                    env=java_env,
                ),
                timeout=60,
            )
        if not config.chroma_url:
            chroma_data = config.workdir / "chroma"
            chroma_data.mkdir(parents=True, exist_ok=True)
            self._spawn(
                ManagedProcess(
                    "chroma",
                    [
                        str(venv_bin("chroma", config.chroma_venv)),
                        "run",
                        "--path",
                        str(chroma_data),
                        "--host",
                        config.host,
                        "--port",
                        str(config.chroma_port),
                    ],
                    logs / "chroma.log",
                    lambda: http_status(f"{self.chroma_url}/api/v2/heartbeat") == 200,
                    env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
                ),
                timeout=60,
            )
        if config.start_fake_gemini:
            self._spawn(
                ManagedProcess(
                    "fake-gemini",
                    [
                        sys.executable,
                        str(ROOT / "emulators" / "fake_gemini.py"),
                        "--host",
                        config.host,
                        "--port",
                        str(config.fake_gemini_port),
                    ],
                    logs / "fake-gemini.log",
                    lambda: http_status(f"{self.fake_gemini_url}/_fake/health") == 200,
                ),
                timeout=30,
            )

    # ------------------------------------------------------------------ lanes

    def add_lane(
        self,
        name: str,
        *,
        api_port: int | None = None,
        worker_port: int | None = None,
        env: Mapping[str, str] | None = None,
        gemini: bool = False,
    ) -> Lane:
        config = self.config
        api_port = api_port or free_port(config.host)
        worker_port = worker_port or free_port(config.host)
        ensure_port_free(config.host, api_port, f"{name} API", "--api-port")
        ensure_port_free(config.host, worker_port, f"{name} worker", "--worker-port")
        suffix = "" if name == "default" else f"-{name}"
        topic, dead_letter = f"tickets{suffix}", f"tickets{suffix}-dead-letter"
        writeback_topic = f"ticket-writeback{suffix}"
        subscription = f"tickets{suffix}-worker"
        project = config.project
        pubsub = f"http://{self.pubsub_host}/v1/projects/{project}"
        worker_url = f"http://{config.host}:{worker_port}"
        rest(f"{pubsub}/topics/{dead_letter}")  # for parity with production; nothing routes to it locally
        rest(f"{pubsub}/subscriptions/{dead_letter}-sub", payload={"topic": f"projects/{project}/topics/{dead_letter}"})
        # Classification work and write-back work: two topics, both pushed to the worker.
        for work_topic, work_subscription in ((topic, subscription), (writeback_topic, f"{writeback_topic}-worker")):
            rest(f"{pubsub}/topics/{work_topic}")
            rest(
                f"{pubsub}/subscriptions/{work_subscription}",
                payload={
                    "topic": f"projects/{project}/topics/{work_topic}",
                    "ackDeadlineSeconds": 120,
                    # The path makes functions-framework give the event the topic as its source.
                    "pushConfig": {"pushEndpoint": f"{worker_url}/projects/{project}/topics/{work_topic}"},
                    # No dead-letter policy here, unlike production's: with one, the emulator (0.8.20)
                    # dropped messages after a 15 s endpoint outage (of 300: 100 dead-lettered, 200
                    # lost, none delivered); without one, all 300 arrived, re-pushed every second.
                    # The worker's handling of dead-lettered messages is tested directly.
                },
            )
        chroma = urllib.parse.urlsplit(self.chroma_url)
        # The lane's API and worker share one folder of Prometheus values, so the API's
        # /metrics adds up both processes (prometheus-client multiprocess mode).
        metrics_dir = config.workdir / "metrics" / (name or "default")
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        wiring = {
            "GOOGLE_CLOUD_PROJECT": project,
            "FIRESTORE_EMULATOR_HOST": self.firestore_host,
            "PUBSUB_EMULATOR_HOST": self.pubsub_host,
            "TICKETS_TOPIC": topic,
            "WRITEBACK_TOPIC": writeback_topic,
            "TICKETS_COLLECTION": f"tickets{suffix}",
            "DELIVERIES_COLLECTION": f"webhook-deliveries{suffix}",
            "CHROMA_HOST": chroma.hostname or config.host,
            "CHROMA_PORT": str(chroma.port or 8000),
            "CHROMA_COLLECTION": f"tickets{suffix}",
            "MEMORY_COLLECTION": f"memory-entries{suffix}",
            "CALIBRATION_COLLECTION": f"calibration{suffix}",
            "HF_HUB_OFFLINE": "1",
            # The functions may import only what the deployed ones install (deployed/sitecustomize.py).
            "PYTHONPATH": str(ROOT / "emulators" / "deployed"),
            "THREADS": str(config.threads),
            "PYTHONUNBUFFERED": "1",
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        }
        if gemini:
            if not self.fake_gemini_url:
                raise StackError("a Gemini lane needs the fake Gemini server (--fake-gemini)")
            wiring |= {"CLASSIFIER": "gemini", "GEMINI_API_KEY": "fake-key", "GEMINI_BASE_URL": self.fake_gemini_url}
        # Precedence: the caller's env, then the stack's wiring, then your own settings
        # (MEMORY_*, API_KEYS, CLASSIFIER=gemini with a real key, ...), then the local classifier.
        process_env = {"CLASSIFIER": "local"} | dict(os.environ)
        if not config.inherit_settings:
            process_env = {k: v for k, v in process_env.items() if not k.startswith(ENGINE_SETTINGS)}
            process_env["CLASSIFIER"] = "local"
        process_env |= wiring | dict(env or {})
        lane_env = {k: process_env[k] for k in (*wiring, "CLASSIFIER", *(env or {}))}
        framework = str(venv_bin("functions-framework"))
        logs = config.workdir / "logs"
        api_url = f"http://{config.host}:{api_port}"
        for target, port, ready in (
            ("api", api_port, lambda: http_status(f"{api_url}/healthz") == 200),
            # The worker is ready once it has loaded the embedding model for a warm-up event.
            ("process_ticket", worker_port, lambda: warm_up_worker(worker_url, f"/projects/{project}/topics/{topic}")),
        ):
            self._spawn(
                ManagedProcess(
                    f"{name}-{target}",
                    [
                        framework,
                        "--target",
                        target,
                        "--source",
                        str(FUNCTIONS / "main.py"),
                        "--host",
                        config.host,
                        "--port",
                        str(port),
                    ],
                    logs / f"{name}-{target}.log",
                    ready,
                    env=process_env,
                    cwd=FUNCTIONS,
                ),
                timeout=60,
            )
        lane = Lane(name, api_url, worker_url, topic, subscription, dead_letter, lane_env)
        self.lanes[name] = lane
        return lane

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()

    def __enter__(self) -> LocalStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def running(
    config: StackConfig,
    *,
    gemini: bool = False,
    api_port: int = 8080,
    worker_port: int = 8082,
    env: Mapping[str, str] | None = None,
) -> Iterator[tuple[LocalStack, Lane]]:
    stack = LocalStack(config)
    try:
        stack.start_infrastructure()
        lane = stack.add_lane("default", api_port=api_port, worker_port=worker_port, gemini=gemini, env=env)
        yield stack, lane
    finally:
        stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Run the triage engine locally on the GCP emulators and a Chroma server.",
        epilog="Ports can also be set with the environment variables named in brackets.",
    )
    env = os.environ.get
    parser.add_argument("--project", default=env("GOOGLE_CLOUD_PROJECT", "triage-local"))
    parser.add_argument("--api-port", type=int, default=int(env("API_PORT", 8080)), help="[API_PORT] default 8080")
    parser.add_argument("--worker-port", type=int, default=int(env("WORKER_PORT", 8082)), help="[WORKER_PORT] 8082")
    parser.add_argument(
        "--firestore-port", type=int, default=int(env("FIRESTORE_PORT", 8081)), help="[FIRESTORE_PORT] 8081"
    )
    parser.add_argument("--pubsub-port", type=int, default=int(env("PUBSUB_PORT", 8085)), help="[PUBSUB_PORT] 8085")
    parser.add_argument("--chroma-port", type=int, default=int(env("CHROMA_PORT", 8000)), help="[CHROMA_PORT] 8000")
    parser.add_argument(
        "--fake-gemini",
        action="store_true",
        help="classify with the fake Gemini server through the real google-genai client",
    )
    parser.add_argument(
        "--fake-gemini-port", type=int, default=int(env("FAKE_GEMINI_PORT", 8090)), help="[FAKE_GEMINI_PORT] 8090"
    )
    parser.add_argument(
        "--workdir", type=Path, default=None, help="logs and Chroma data (default: a fresh temporary folder)"
    )
    arguments = parser.parse_args()
    workdir = arguments.workdir or Path(tempfile.mkdtemp(prefix="triage-stack-"))
    config = StackConfig(
        project=arguments.project,
        firestore_port=arguments.firestore_port,
        pubsub_port=arguments.pubsub_port,
        chroma_port=arguments.chroma_port,
        fake_gemini_port=arguments.fake_gemini_port,
        workdir=workdir,
        start_fake_gemini=arguments.fake_gemini,
    )
    started = time.monotonic()
    # Ctrl-C and a plain kill both stop everything (a background job inherits SIGINT ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        with running(
            config, gemini=arguments.fake_gemini, api_port=arguments.api_port, worker_port=arguments.worker_port
        ) as (stack, lane):
            print(f"\nTriage engine is up ({time.monotonic() - started:.1f}s); Ctrl-C stops everything.\n")
            print(f"  API                {lane.api_url}   (try {lane.api_url}/healthz)")
            print(f"  review console     {lane.api_url}/console   (stats: /stats, Prometheus: /metrics)")
            print(f"  worker             {lane.worker_url}   (push target of {lane.subscription})")
            print(f"  Firestore emulator http://{stack.firestore_host}")
            print(f"  Pub/Sub emulator   http://{stack.pubsub_host}   topic {lane.topic}")
            print(f"                     dead letters {lane.dead_letter_topic}")
            print(f"  Chroma             {stack.chroma_url}")
            classifier = {
                "local": "local embedding classifier",
                "gemini": f"Gemini {lane.env.get('GEMINI_BASE_URL') or ''} (GEMINI_MODEL or its default)",
            }.get(lane.env["CLASSIFIER"], lane.env["CLASSIFIER"])
            print(f"  classifier         {classifier}")
            print(f"  logs               {workdir / 'logs'}\n")
            print(
                f"  demo:  make demo ARGS='--api {lane.api_url}"
                + (f" --fake-gemini {stack.fake_gemini_url}" if arguments.fake_gemini else "")
                + "'",
                flush=True,
            )
            while True:
                for process in stack.processes:
                    if process.process and process.process.poll() is not None:
                        raise StackError(f"{process.name} stopped unexpectedly:\n{process.log_tail()}")
                time.sleep(0.5)
    except KeyboardInterrupt:
        print("\nstopping...", flush=True)
    except StackError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
