"""A fake OpenRouter: a real HTTP server on 127.0.0.1 speaking /chat/completions and /models.

`GET /models` serves a recorded catalogue (data/openrouter_models.json: the documented shape,
a few dozen models); a slug absent from it answers chat requests with 404, as a retired model
does. `retire(slug)` takes one out. Each model's behaviour is configurable: latency, an HTTP
status for the first N requests (429 with Retry-After, 402, 401, 500), malformed content, the
vote to give, rejection of json_schema, per-key refusals, and whether `usage` carries a cost.
Every request is recorded (model, key, body).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

RECORDED_CATALOGUE = Path(__file__).with_name("data") / "openrouter_models.json"


def recorded_catalogue() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(RECORDED_CATALOGUE.read_text(encoding="utf-8"))
    return data

APPROVE = {"decision": "APPROVE", "risk": "LOW", "confidence": 0.9, "rationale": "looks sound"}


@dataclass
class Behaviour:
    latency_s: float = 0.0
    status: int = 200
    fail_times: int = 0  # return `status` for this many requests, then answer normally
    retry_after: str | None = None
    content: str | None = None  # raw content instead of the vote (malformed answers)
    vote: dict[str, Any] = field(default_factory=lambda: dict(APPROVE))
    reject_json_schema: bool = False
    no_schema_provider: bool = False  # 404 for json_schema with require_parameters, as OpenRouter does
    refused_keys: set[str] = field(default_factory=set)  # these keys get 401
    cost: float | None = 0.0005  # None: `usage` without a cost (Lyra prices it from the catalogue)


class FakeOpenRouter:
    def __init__(self) -> None:
        self.behaviour: dict[str, Behaviour] = {}
        self.default = Behaviour()
        self.requests: list[dict[str, Any]] = []
        self.catalogue: dict[str, Any] | None = recorded_catalogue()  # None: every slug answers
        self.catalogue_status = 200
        self.catalogue_gets = 0
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the real API

            def log_message(self, *_args: Any) -> None:
                return None

            def do_GET(self) -> None:
                status, payload = fake.models() if self.path.rstrip("/").endswith("/models") else (404, {})
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                key = self.headers.get("Authorization", "").removeprefix("Bearer ")
                status, headers, payload = fake.answer(body, key)
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (deadline): fine

        class Server(ThreadingHTTPServer):
            request_queue_size = 128  # the default backlog of 5 drops the 8th concurrent SYN for 1 s

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/api/v1"

    def start(self) -> FakeOpenRouter:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def calls(self, model: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.requests if model is None or r["model"] == model]

    def slugs(self) -> set[str]:
        return {m["id"] for m in (self.catalogue or {}).get("data", [])}

    def retire(self, *slugs: str) -> None:
        """Take models out of the catalogue: they 404 from now on, as retired slugs do."""
        assert self.catalogue is not None
        self.catalogue = {"data": [m for m in self.catalogue["data"] if m["id"] not in slugs]}

    def models(self) -> tuple[int, Any]:
        with self._lock:
            self.catalogue_gets += 1
        if self.catalogue_status != 200:
            return self.catalogue_status, {"error": {"code": self.catalogue_status, "message": "simulated"}}
        return 200, self.catalogue if self.catalogue is not None else {"data": []}

    def answer(self, body: dict[str, Any], key: str) -> tuple[int, dict[str, str], Any]:
        model = str(body.get("model"))
        b = self.behaviour.get(model, self.default)
        with self._lock:
            n = sum(1 for r in self.requests if r["model"] == model)
            self.requests.append({"model": model, "key": key, "body": body, "at": time.monotonic()})
        if b.latency_s:
            time.sleep(b.latency_s)
        if self.catalogue is not None and model not in self.slugs():
            return 404, {}, {"error": {"code": 404, "message": f"No endpoints found for {model}."}}
        if key in b.refused_keys:
            return 401, {}, {"error": {"code": 401, "message": "invalid key"}}
        if n < b.fail_times:
            headers = {"Retry-After": b.retry_after} if b.retry_after else {}
            return b.status, headers, {"error": {"code": b.status, "message": "simulated"}}
        if b.no_schema_provider and body.get("provider", {}).get("require_parameters"):
            message = "No endpoints found that can handle the requested parameters."
            return 404, {}, {"error": {"code": 404, "message": message}}
        if b.reject_json_schema and body.get("response_format", {}).get("type") == "json_schema":
            return 400, {}, {"error": {"code": 400, "message": "json_schema not supported"}}
        content = b.content if b.content is not None else json.dumps(b.vote)
        return (
            200,
            {},
            {
                "id": f"gen-{n}",
                "model": model,
                "choices": [{"message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 420, "completion_tokens": 35, "total_tokens": 455}
                | ({"cost": b.cost} if b.cost is not None else {}),
            },
        )
