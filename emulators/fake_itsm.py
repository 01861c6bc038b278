"""Fake Jira Cloud and ServiceNow REST APIs, for the write-back tests (and a local demo).

Each speaks the calls the engine makes, with the real paths, Basic auth and status codes,
keeps the issues' or incidents' fields so a GET shows what earlier calls wrote, and records
every call (method, path, query, Authorization, body) for the tests to assert on:

* Jira: ``GET /rest/api/3/issue/{key}``, ``PUT /rest/api/3/issue/{key}`` (``update`` with
  ``add``/``remove``/``set`` operations, ``fields``; 204), ``POST /rest/api/3/issue/{key}/comment`` (201);
* ServiceNow: ``GET`` and ``PATCH /api/now/table/incident/{sys_id}`` (``{"result": {...}}``; 200).

``script([{"status": 500}, ...])`` makes the next calls fail, one step per call; a step
with ``"retry_after"`` adds that header. Control over HTTP: ``POST /_fake/script``,
``GET /_fake/calls``, ``DELETE /_fake/calls``. Standard library only.
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


class _FakeApi:
    name = "fake"

    def __init__(self, user: str, password: str, host: str = "127.0.0.1", port: int = 0):
        self.credentials = base64.b64encode(f"{user}:{password}".encode()).decode()
        self.calls: list[dict[str, Any]] = []
        self.steps: deque[dict[str, Any]] = deque()
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                status, body, headers = fake.dispatch(self.command, self.path, dict(self.headers), raw)
                payload = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                if body is not None:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = _handle

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> _FakeApi:
        threading.Thread(target=self.server.serve_forever, name=self.name, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def script(self, steps: list[dict[str, Any]]) -> None:
        with self.lock:
            self.steps.extend(steps)

    def reset(self) -> None:
        with self.lock:
            self.calls.clear()
            self.steps.clear()

    def calls_to(self, method: str) -> list[dict[str, Any]]:
        return [c for c in self.calls if c["method"] == method]

    def dispatch(self, method: str, target: str, headers: dict[str, str], raw: bytes) -> tuple[int, Any, dict]:
        parts = urlsplit(target)
        path, query = parts.path, dict(parse_qsl(parts.query))
        if path.startswith("/_fake/"):
            return self._control(method, path, raw)
        try:
            body = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            return 400, {"error": "body is not JSON"}, {}
        call = {
            "method": method,
            "path": path,
            "query": query,
            "authorization": headers.get("Authorization"),
            "body": body,
        }
        with self.lock:
            self.calls.append(call)
            step = self.steps.popleft() if self.steps else {}
        if headers.get("Authorization") != f"Basic {self.credentials}":
            call["status"] = 401
            return 401, {"error": "authentication failed"}, {}
        if "status" in step:
            call["status"] = int(step["status"])
            extra = {"Retry-After": str(step["retry_after"])} if "retry_after" in step else {}
            return int(step["status"]), {"error": step.get("message", "scripted failure")}, extra
        with self.lock:
            status, answer = self.route(method, path, query, body)
        call["status"] = status
        return status, answer, {}

    def _control(self, method: str, path: str, raw: bytes) -> tuple[int, Any, dict]:
        if path == "/_fake/calls" and method == "GET":
            with self.lock:
                return 200, {"calls": list(self.calls)}, {}
        if path == "/_fake/calls" and method == "DELETE":
            self.reset()
            return 200, {"status": "reset"}, {}
        if path == "/_fake/script" and method == "POST":
            self.script(json.loads(raw or b"{}").get("steps", []))
            return 200, {"queued": len(self.steps)}, {}
        return 404, {"error": "no such control route"}, {}

    def route(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        raise NotImplementedError


class FakeJira(_FakeApi):
    name = "fake-jira"
    _ISSUE = re.compile(r"^/rest/api/3/issue/([A-Za-z0-9_-]+)(/comment)?$")

    def __init__(self, user: str = "bot@example.com", token: str = "jira-token", **server: Any):  # noqa: S107 (a fake)
        super().__init__(user, token, **server)
        self.issues: dict[str, dict[str, Any]] = {}

    def add_issue(self, key: str, *, labels=(), components=(), priority: str | None = None) -> None:
        self.issues[key] = {
            "labels": list(labels),
            "components": [{"name": c} for c in components],
            "priority": {"name": priority} if priority else None,
            "comments": [],
        }

    def route(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        match = self._ISSUE.match(path)
        if not match or match.group(1) not in self.issues:
            return 404, {"errorMessages": ["Issue does not exist or you do not have permission to see it."]}
        key, issue = match.group(1), self.issues[match.group(1)]
        if match.group(2):
            if method != "POST":
                return 405, {"errorMessages": ["method not allowed"]}
            issue["comments"].append(body["body"])
            return 201, {"id": str(len(issue["comments"])), "body": body["body"]}
        if method == "GET":
            fields = {k: v for k, v in issue.items() if k != "comments"}
            return 200, {"key": key, "fields": fields}
        if method == "PUT":
            for field, operations in (body.get("update") or {}).items():
                for operation in operations:
                    for verb, value in operation.items():
                        current = issue.setdefault(field, [])
                        if verb == "add" and value not in current:
                            current.append(value)
                        elif verb == "remove" and value in current:
                            current.remove(value)
                        elif verb == "set":
                            issue[field] = value
            for field, value in (body.get("fields") or {}).items():
                issue[field] = value
            return 204, None
        return 405, {"errorMessages": ["method not allowed"]}


class FakeServiceNow(_FakeApi):
    name = "fake-servicenow"
    _INCIDENT = re.compile(r"^/api/now/table/incident/([A-Za-z0-9]+)$")

    def __init__(self, user: str = "triage.bot", password: str = "sn-password", **server: Any):  # noqa: S107
        super().__init__(user, password, **server)
        self.incidents: dict[str, dict[str, Any]] = {}

    def add_incident(self, sys_id: str, *, category: str = "", assignment_group: str = "") -> None:
        self.incidents[sys_id] = {"category": category, "assignment_group": assignment_group, "work_notes": []}

    def _view(self, sys_id: str) -> dict[str, Any]:
        incident = self.incidents[sys_id]
        group = incident["assignment_group"]
        return {
            "sys_id": sys_id,
            "category": incident["category"],
            "assignment_group": (
                {"display_value": group, "link": f"/api/now/table/sys_user_group/{group}"} if group else ""
            ),
            "work_notes": "\n".join(incident["work_notes"]),
        }

    def route(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        match = self._INCIDENT.match(path)
        if not match or match.group(1) not in self.incidents:
            return 404, {"error": {"message": "No Record found", "detail": "Record doesn't exist"}, "status": "failure"}
        sys_id = match.group(1)
        if method == "GET":
            return 200, {"result": self._view(sys_id)}
        if method == "PATCH":
            incident = self.incidents[sys_id]
            for field, value in (body or {}).items():
                if field == "work_notes":
                    incident["work_notes"].append(value)
                else:
                    incident[field] = value
            return 200, {"result": self._view(sys_id)}
        return 405, {"error": {"message": "method not allowed"}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jira-port", type=int, default=8091)
    parser.add_argument("--servicenow-port", type=int, default=8092)
    arguments = parser.parse_args()
    jira = FakeJira(port=arguments.jira_port).start()
    servicenow = FakeServiceNow(port=arguments.servicenow_port)
    print(f"fake Jira on {jira.base_url}, fake ServiceNow on {servicenow.base_url}", flush=True)
    try:
        servicenow.server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
