"""The HTTP server behind `crossemo serve`: MLflow's own scoring app, behind a guard for hostile bodies.

MLflow's scoring server reads any body whole and answers some malformed JSON (nesting deeper than
Python's recursion limit, a bare `null`) with HTTP 500. The guard refuses those first, with a 4xx
and a reason, and hands everything else to MLflow's app unchanged: the same routes (/invocations,
/ping, /health, /version), input formats, schema enforcement and errors.

It also answers `GET /` with a page to try the model in a browser (upload or record a clip; the
page posts it to /invocations like any client) and `GET /card` with the model card's first lines.
The page's files ship in the package (`page/`): nothing is fetched from elsewhere. CROSSEMO_PAGE=0
(`crossemo serve --no-page`) leaves them out for API-only deployments.

Run by uvicorn: `uvicorn --factory crossemo.serving.http_guard:create_app` with CROSSEMO_MODEL_URI set.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

MODEL_URI_ENV = "CROSSEMO_MODEL_URI"
SERVING_MODEL_CONFIG = "SERVING_MODEL_CONFIG"  # MLflow's scoring server loads the model with this config (JSON)
MAX_BODY_ENV = "CROSSEMO_MAX_BODY_BYTES"
MAX_BODY_BYTES = 96 * 1024 * 1024  # 256 rows of base64 audio fit; the model caps the audio itself at 64 MiB
PAGE_ENV = "CROSSEMO_PAGE"  # "0": no page, the API alone
PAGE = Path(__file__).with_name("page")
#: The page's routes and the only files they serve (no path from the request reaches the disk).
PAGE_FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/page/page.js": ("page.js", "text/javascript; charset=utf-8"),
    "/page/page.css": ("page.css", "text/css; charset=utf-8"),
}
PAGE_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; media-src 'self' blob:; img-src 'self' data:"),
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"no-cache"),
]


class RequestGuard:
    """ASGI middleware for /invocations: caps the body (413), refuses a missing or foreign content type
    (415), an empty body, and JSON that is not an object or nests past the recursion limit (400),
    before MLflow's app sees it."""

    def __init__(self, app, max_body: int = MAX_BODY_BYTES, card: dict | None = None):
        self.app, self.max_body = app, max_body
        self.card = card  # the page's model card; None: no page

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "GET" and self.card is not None:
            if scope["path"] in PAGE_FILES:
                name, content_type = PAGE_FILES[scope["path"]]
                return await _send(send, 200, (PAGE / name).read_bytes(), content_type, PAGE_HEADERS)
            if scope["path"] == "/card":
                return await _send(send, 200, json.dumps(self.card).encode(), "application/json")
        if scope["type"] != "http" or scope["path"] != "/invocations":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body:
            return await _reply(send, 413, self._too_large(int(declared)))
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            body += message.get("body", b"")
            if len(body) > self.max_body:  # chunked bodies have no Content-Length: count as they come
                return await _reply(send, 413, self._too_large(len(body)))
            if not message.get("more_body"):
                break
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type not in ("application/json", "text/csv"):
            return await _reply(
                send, 415, f"Content-Type {content_type or '(none)'}: send application/json (or text/csv)"
            )
        if not body.strip():
            return await _reply(send, 400, 'empty request body: send {"dataframe_records": [...]}')
        if content_type == "application/json":
            problem = _json_problem(bytes(body))
            if problem:
                return await _reply(send, 400, problem)
        return await self.app(scope, _replay(bytes(body)), send)

    def _too_large(self, size: int) -> str:
        return (
            f"request body too large: {size} bytes > {self.max_body}; send fewer rows per request "
            f"(the server's limit: {MAX_BODY_ENV})"
        )


def _json_problem(body: bytes) -> str | None:
    try:
        parsed = json.loads(body)
    except RecursionError:
        return 'JSON nested too deeply: send {"dataframe_records": [...]} or {"dataframe_split": {...}}'
    except (ValueError, UnicodeDecodeError) as error:
        return f"invalid JSON: {error}"
    if not isinstance(parsed, dict):
        return f'the JSON body must be an object such as {{"dataframe_records": [...]}}, not {type(parsed).__name__}'
    return None


def _replay(body: bytes):
    sent = False

    async def receive():
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def _reply(send, status: int, message: str) -> None:
    codes = {400: "BAD_REQUEST", 413: "REQUEST_TOO_LARGE", 415: "UNSUPPORTED_MEDIA_TYPE"}
    payload = json.dumps({"error_code": codes[status], "message": message}).encode()
    await _send(send, status, payload, "application/json")


async def _send(send, status: int, payload: bytes, content_type: str, headers=()) -> None:
    start = [(b"content-type", content_type.encode()), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": start + list(headers)})
    await send({"type": "http.response.body", "body": payload})


def model_card(model_uri: str) -> dict:
    """What the page shows of the model: the card's first lines and whether it is the synthetic demo's."""
    from crossemo.serving.versions import is_synthetic, model_summary, resolve_version

    version = resolve_version(model_uri)
    return {
        "model_uri": model_uri,
        "version": str(version.version) if version is not None else None,
        "lines": model_summary(model_uri).splitlines(),
        "synthetic": version is not None and is_synthetic(version),
    }


def create_app():
    """MLflow's scoring app for the model at CROSSEMO_MODEL_URI, behind the guard."""
    from mlflow.pyfunc import scoring_server

    uri = os.environ[MODEL_URI_ENV]
    model = scoring_server.load_model_with_mlflow_config(uri)
    card = model_card(uri) if os.environ.get(PAGE_ENV, "1") != "0" else None
    return RequestGuard(scoring_server.init(model), int(os.environ.get(MAX_BODY_ENV, MAX_BODY_BYTES)), card)
