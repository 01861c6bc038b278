"""A fake Gemini API server for tests and for a demo of the AI path without a key.

It speaks the real REST protocol of both backends, so the real google-genai client reaches
it through ``HttpOptions(base_url=...)`` and every line of our Gemini adapter runs:

* the Gemini API: ``POST /{v1,v1beta}/models/{model}:generateContent`` with ``x-goog-api-key``;
* Vertex AI: ``POST /v1beta1/projects/P/locations/L/publishers/google/models/M:generateContent``
  with ``Authorization: Bearer <token>``; ``POST /token`` plays Google's OAuth token endpoint for
  a service-account key whose ``token_uri`` points here (Application Default Credentials).

It has the real API's manners, as documented and reported (see the README, "Gemini"):

* a wrong API key is ``400 INVALID_ARGUMENT`` with an ``ErrorInfo`` of reason ``API_KEY_INVALID``
  (not 401/403); a wrong bearer token is ``401 UNAUTHENTICATED``. Any key named ``revoked-...``
  is wrong, and ``POST /token/revoked`` issues a token that is, for tests of a whole stack;
* a response schema with more enum values than ``max_enum_values`` (all enums together) is
  ``400 INVALID_ARGUMENT``, "The specified schema produces a constraint that has too many
  states for serving" (python-genai #660, #950, #2133);
* the model thinks before it answers, by ``thinkingConfig.thinkingLevel`` (a Gemini 3 Flash
  thinks at ``high`` when told nothing), and thinking tokens count against
  ``maxOutputTokens``: when they do not leave room for the answer, the candidate stops with
  ``finishReason: MAX_TOKENS`` and the text cut (python-genai #782); ``usageMetadata`` carries
  ``thoughtsTokenCount``;
* a 429 says when to come back in its body (``google.rpc.RetryInfo.retryDelay``), not in a
  ``Retry-After`` header.

Its answers are plausible, not clever: it reads the taxonomy from the request's
response schema and system instruction, follows a few-shot example whose ticket
shares most words with the new one (as a model would), and otherwise picks the
category whose description shares the most words with the ticket.

Control endpoints (not part of the Gemini API):

* ``POST /_fake/script`` with ``{"steps": [...]}`` queues behaviours for the next
  calls, one step per call: ``{"status": 429, "retry_delay": "2s"}`` (RetryInfo in the body),
  ``{"status": 429, "retry_after": "2"}`` (a header, as a proxy might add), ``{"status": 500}``,
  ``{"status": 400}`` (a request refused for its content), ``{"malformed": true}``,
  ``{"category": "Not-A-Category"}``, ``{"delay_seconds": 3}`` (then answers normally),
  ``{"text": "..."}`` (answers this raw text), ``{"thoughts": 5000}`` (thinks this many tokens),
  ``{"empty": true}`` (no candidate at all), ``{"answer": {...}}`` (these fields in the answer).
* ``GET /_fake/calls``: every generateContent request received, in order.
* ``DELETE /_fake/calls``: forget calls, queued steps and any schedule.
* ``POST /_fake/schedule`` with ``{"phases": [{"seconds": 30, "status": 429, "every": 2}, ...]}``:
  from now on, for each phase in turn, every ``every``-th call (default every call) fails
  with ``status``; after the last phase the server answers normally again.
* ``GET /_fake/health``.

Standard library only, so it runs from any Python.
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import time
import uuid
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_GENERATE = re.compile(
    r"^/(?:(v1|v1beta|v1alpha)/models|(v1|v1beta1)/projects/[^/]+/locations/[^/]+/publishers/google/models)"
    r"/([A-Za-z0-9._-]+):generateContent$"
)
# Tokens a Gemini 3 Flash spends thinking at each level (it thinks at "high" when told nothing).
THOUGHTS = {"MINIMAL": 0, "LOW": 180, "MEDIUM": 700, "HIGH": 2400, None: 2400}
MAX_ENUM_VALUES = 60
REVOKED_TOKEN = "ya29.revoked"  # noqa: S105 (a fake token the fake refuses)
TOO_COMPLEX = (
    "The specified schema produces a constraint that has too many states for serving.  Typical causes of this "
    "error are schemas with lots of text (for example, very long property or enum names), schemas with long "
    "array length limits (especially when nested), or schemas using complex value matchers (for example, "
    "integers or numbers with minimum/maximum bounds or strings with complex formats like date-time)"
)
_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    "a an and are as at be by for from has have i in is it its my of on or our the to we with "
    "this that not can cannot no please after when while".split()
)
_TICKET = re.compile(r"<ticket>\n?(.*?)\n?</ticket>", re.DOTALL)
_URGENT = ("outage", "down", "production", "prod", "blocked", "breach", "urgent", "critical", "all users")


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 1}


def _text_of(content: dict[str, Any]) -> str:
    return "".join(part.get("text", "") for part in content.get("parts", []))


def _ticket_text(turn: str) -> str:
    match = _TICKET.search(turn)
    return match.group(1) if match else turn


def _listed(instruction: str) -> dict[str, list[str]]:
    """The names under each "Heading:" of a system instruction's "- Name: description" lists."""
    found: dict[str, list[str]] = {}
    heading = None
    for line in instruction.splitlines():
        if line.endswith(":") and not line.startswith("- "):
            heading = line[:-1]
            found[heading] = []
        elif heading and line.startswith("- "):
            found[heading].append(line[2:].split(":", 1)[0].strip())
    return found


def _google_error(code: int, status: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status}}


def _enum_values(schema: Any) -> int:
    """How many enum values a response schema holds, in all its properties together."""
    if isinstance(schema, dict):
        return len(schema.get("enum") or []) + sum(_enum_values(v) for k, v in schema.items() if k != "enum")
    if isinstance(schema, list):
        return sum(_enum_values(v) for v in schema)
    return 0


_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


class FakeGemini:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        max_enum_values: int = MAX_ENUM_VALUES,
    ):
        self.api_key = api_key  # None: any key is valid
        self.max_enum_values = max_enum_values
        self.issued_tokens: set[str] = set()  # bearer tokens /token handed out (Vertex AI)
        self.calls: list[dict[str, Any]] = []
        self.steps: deque[dict[str, Any]] = deque()
        self.phases: list[dict[str, Any]] = []
        self.schedule_started = 0.0
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
                raw = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(raw)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(raw)

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def do_GET(self) -> None:
                if self.path == "/_fake/health":
                    self._send(200, {"status": "ok"})
                elif self.path == "/_fake/calls":
                    with fake._lock:
                        self._send(200, {"calls": list(fake.calls)})
                else:
                    self._send(404, _google_error(404, "NOT_FOUND", f"no route {self.path}"))

            def do_DELETE(self) -> None:
                if self.path == "/_fake/calls":
                    fake.reset()
                    self._send(200, {"status": "reset"})
                else:
                    self._send(404, _google_error(404, "NOT_FOUND", f"no route {self.path}"))

            def do_POST(self) -> None:
                body = self._body()
                if self.path == "/_fake/script":
                    fake.script(json.loads(body or b"{}").get("steps", []))
                    self._send(200, {"queued": len(fake.steps)})
                    return
                if self.path == "/_fake/schedule":
                    fake.schedule(json.loads(body or b"{}").get("phases", []))
                    self._send(200, {"phases": len(fake.phases)})
                    return
                if self.path == "/token":  # Google's OAuth 2.0 token endpoint, for a service account's JWT
                    self._send(200, fake.token())
                    return
                if self.path == "/token/revoked":  # a token endpoint whose tokens the API then refuses
                    self._send(200, {"access_token": REVOKED_TOKEN, "expires_in": 3600, "token_type": "Bearer"})
                    return
                path = self.path.split("?", 1)[0]
                match = _GENERATE.match(path)
                if not match:
                    self._send(404, _google_error(404, "NOT_FOUND", f"no route {path}"))
                    return
                status, answer, headers = fake.generate(match.group(3), self.headers, body, vertex=bool(match.group(2)))
                self._send(status, answer, headers)

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeGemini:
        self._thread = threading.Thread(target=self.server.serve_forever, name="fake-gemini", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def reset(self) -> None:
        with self._lock:
            self.issued_tokens.clear()
            self.calls.clear()
            self.steps.clear()
            self.phases = []

    def schedule(self, phases: list[dict[str, Any]]) -> None:
        with self._lock:
            self.phases = list(phases)
            self.schedule_started = time.monotonic()
            self._scheduled_calls = 0

    def _scheduled_step(self) -> dict[str, Any]:
        """The failure the current phase of the schedule asks for, if any (call under the lock)."""
        elapsed = time.monotonic() - self.schedule_started
        for phase in self.phases:
            if elapsed < float(phase["seconds"]):
                self._scheduled_calls += 1
                if self._scheduled_calls % int(phase.get("every", 1)) == 0:
                    return {"status": int(phase["status"])}
                return {}
            elapsed -= float(phase["seconds"])
        return {}

    def script(self, steps: list[dict[str, Any]]) -> None:
        with self._lock:
            self.steps.extend(steps)

    # ------------------------------------------------------------------ the API

    def token(self) -> dict[str, Any]:
        token = f"ya29.fake-{uuid.uuid4().hex}"
        with self._lock:
            self.issued_tokens.add(token)
        return {"access_token": token, "expires_in": 3600, "token_type": "Bearer"}

    def _refused_credential(self, headers: Any, vertex: bool) -> tuple[int, Any] | None:
        if vertex:
            authorization = headers.get("Authorization") or ""
            token = authorization[7:] if authorization.startswith("Bearer ") else ""
            with self._lock:
                known = token in self.issued_tokens or (not self.issued_tokens and bool(token))
            known = known and token != REVOKED_TOKEN
            if not known:
                message = "Request had invalid authentication credentials. Expected OAuth 2 access token."
                return 401, _google_error(401, "UNAUTHENTICATED", message)
            return None
        key = headers.get("x-goog-api-key") or ""
        if (self.api_key is not None and key != self.api_key) or key.startswith("revoked-"):
            error = _google_error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.")
            error["error"]["details"] = [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                    "metadata": {"service": "generativelanguage.googleapis.com"},
                }
            ]
            return 400, error
        return None

    def generate(self, model: str, headers: Any, raw: bytes, vertex: bool = False) -> tuple[int, Any, dict[str, str]]:
        try:
            request = json.loads(raw)
        except json.JSONDecodeError:
            request = None
        with self._lock:
            step = self.steps.popleft() if self.steps else self._scheduled_step()
            call = {"model": model, "request": request, "step": step, "time": time.time(), "vertex": vertex}
            self.calls.append(call)
        refused = self._refused_credential(headers, vertex)
        if refused is not None:
            call["status"] = refused[0]
            return refused[0], refused[1], {}
        if request is None or not isinstance(request.get("contents"), list) or not request["contents"]:
            call["status"] = 400
            return 400, _google_error(400, "INVALID_ARGUMENT", "contents is required"), {}
        config = request.get("generationConfig") or {}
        schema = config.get("responseSchema") or config.get("responseJsonSchema") or {}
        if _enum_values(schema) > self.max_enum_values:
            call["status"] = 400
            return 400, _google_error(400, "INVALID_ARGUMENT", TOO_COMPLEX), {}
        if "delay_seconds" in step:
            time.sleep(float(step["delay_seconds"]))
        if "status" in step:
            status = int(step["status"])
            call["status"] = status
            extra = {"Retry-After": str(step["retry_after"])} if "retry_after" in step else {}
            name = _STATUS_NAMES.get(status, "UNKNOWN")
            error = _google_error(status, name, step.get("message", f"fake {name}"))
            if "retry_delay" in step:
                error["error"]["details"] = [
                    {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": str(step["retry_delay"])}
                ]
            return status, error, extra
        call["status"] = 200
        prompt_tokens = len(json.dumps(request)) // 4
        if step.get("empty"):
            return (
                200,
                {"candidates": [], "usageMetadata": {"promptTokenCount": prompt_tokens}, "modelVersion": model},
                {},
            )
        if step.get("malformed"):
            text = '{"category": "unterminated'
        elif "text" in step:
            text = str(step["text"])
        else:
            answer = self.answer(request)
            if "category" in step:
                answer["category"] = step["category"]
            answer.update(step.get("answer") or {})
            text = json.dumps(answer)
        # Proto JSON takes either spelling of a field (google-genai 3.6.1 sends thinking_level).
        thinking = config.get("thinkingConfig") or config.get("thinking_config") or {}
        level = thinking.get("thinkingLevel") or thinking.get("thinking_level")
        thoughts = int(step.get("thoughts", THOUGHTS.get(level.upper() if level else None, THOUGHTS[None])))
        budget = int(config.get("maxOutputTokens") or 65_536)
        finish = "STOP"
        if thoughts + len(text) // 4 > budget:  # thinking ate the output budget: the answer is cut
            room = max(0, budget - thoughts) * 4
            text, finish = text[:room], "MAX_TOKENS"
            thoughts = min(thoughts, budget)
        usage = {
            "promptTokenCount": prompt_tokens,
            "candidatesTokenCount": len(text) // 4,
            "thoughtsTokenCount": thoughts,
            "totalTokenCount": prompt_tokens + len(text) // 4 + thoughts,
        }
        parts = [{"text": text}] if text else []
        return (
            200,
            {
                "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": finish, "index": 0}],
                "usageMetadata": usage,
                "modelVersion": model,
                "responseId": uuid.uuid4().hex[:16],
            },
            {},
        )

    @staticmethod
    def answer(request: dict[str, Any]) -> dict[str, Any]:
        config = request.get("generationConfig") or {}
        schema = config.get("responseSchema") or config.get("responseJsonSchema") or {}
        properties = schema.get("properties") or {}

        def enum(name: str) -> list[str]:
            return list((properties.get(name) or {}).get("enum") or [])

        system = _text_of(request.get("systemInstruction") or {})
        listed = _listed(system)  # under a schema without enums, a model reads the names in its instruction
        categories = enum("category") or listed.get("Categories", [])
        priorities = enum("priority") or listed.get("Priorities", [])
        groups = enum("assignment_group") or listed.get("Assignment groups", [])
        contents = request["contents"]
        ticket = _ticket_text(_text_of(contents[-1]))
        words = _words(ticket)

        # Follow the most similar example, as a model shown few-shot turns would.
        best_example, best_overlap = None, 0.0
        for turn, reply in zip(contents[:-1:2], contents[1:-1:2], strict=False):
            overlap = len(words & _words(_ticket_text(_text_of(turn)))) / max(1, len(words))
            if overlap > best_overlap:
                try:
                    best_example, best_overlap = json.loads(_text_of(reply)), overlap
                except json.JSONDecodeError:
                    continue
        if best_example and best_overlap >= 0.6:
            return {
                **{k: best_example[k] for k in ("category", "priority", "assignment_group") if k in best_example},
                "confidence": round(0.6 + 0.4 * best_overlap, 2),
                "rationale": "Matches a similar past ticket.",
            }

        descriptions = {}
        routes = {}
        for line in system.splitlines():
            for name in categories:
                if line.startswith(f"- {name}:"):
                    descriptions[name] = line[len(name) + 3 :]
                    routed = re.search(r"\(usually routed to (.+)\)$", line)
                    if routed:
                        routes[name] = routed.group(1)
        scores = {name: len(words & _words(f"{name} {descriptions.get(name, '')}")) for name in categories}
        category = max(categories, key=lambda name: scores[name]) if categories else "General"
        urgent = any(marker in ticket.lower() for marker in _URGENT)
        priority = (priorities[1] if urgent else priorities[len(priorities) // 2]) if priorities else "Medium"
        group = routes.get(category) if routes.get(category) in groups else (groups[0] if groups else "Service Desk")
        mentioned = sorted(words & _words(descriptions.get(category, "")))[:4]
        return {
            "category": category,
            "priority": priority,
            "assignment_group": group,
            "confidence": round(min(0.95, 0.5 + 0.1 * scores.get(category, 0)), 2),
            "rationale": f"The ticket mentions {', '.join(mentioned) or 'nothing specific'}.",
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--api-key", default=None, help="accept only this key (default: any)")
    parser.add_argument("--max-enum-values", type=int, default=MAX_ENUM_VALUES, help="schema complexity limit")
    arguments = parser.parse_args()
    fake = FakeGemini(arguments.host, arguments.port, arguments.api_key, arguments.max_enum_values)
    print(f"fake Gemini listening on {fake.base_url}", flush=True)
    try:
        fake.server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
