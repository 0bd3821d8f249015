#!/usr/bin/env python3
"""A small, deterministic OpenAI- and Anthropic-compatible mock server (standard library only).

Every Loupe client suite (Python instrumentors, the Vercel AI SDK) talks to this server instead
of a real LLM provider. Run it as

    python server.py --port 0          # prints MOCK_OPENAI_URL=http://127.0.0.1:PORT/v1

or import it and call ``start()``, which returns ``(url, stop)``.

Endpoints
---------
``POST /v1/chat/completions``  non-streaming, or ``"stream": true`` as server-sent events
                               (``data: {...}\\n\\n`` chunks, then ``data: [DONE]``); with
                               ``stream_options.include_usage`` a last chunk carries ``usage``
                               and an empty ``choices`` list, as OpenAI does.
``POST /v1/completions``       the legacy text completion API (non-streaming and streaming).
``POST /v1/embeddings``        deterministic small vectors (``encoding_format`` float or base64).
``POST /v1/messages``          Anthropic's Messages API, non-streaming, or ``"stream": true`` as
                               Anthropic's named server-sent events (``event: <type>\\n``
                               ``data: {...}\\n\\n``): message_start, ping, then per content block
                               content_block_start / content_block_delta... / content_block_stop,
                               then message_delta and message_stop. Point an Anthropic client at
                               the root (the URL without ``/v1``).
``GET  /v1/models``            a fixed model list.
``GET  /mock/requests``        (test helper) every request body received so far, in order.

Deterministic answers (tests compute the expected numbers from these rules)
--------------------------------------------------------------------------
``words(s)`` is ``len(s.split())``: the number of whitespace-separated words. The text of a
message is its ``content`` when that is a string, or its text parts joined by a single space
when it is a list of parts; ``None`` (an assistant message carrying only tool calls) is "".

Chat completions:
  * The reply text is ``"Mock answer to: " + <text of the last message whose role is "user">``.
  * When the request has ``tools`` and the LAST message has role ``user``, the reply is instead
    ONE tool call to the first tool: id ``call_mock_1``, type ``function``, arguments the JSON
    string ``{"city": "Paris"}`` when that tool is named ``get_weather``, else ``{}``;
    ``content`` is null and ``finish_reason`` is ``tool_calls``.
  * When the last message is a ``tool`` message the reply is the text reply above.
  * Structured outputs: with ``response_format`` ``{"type": "json_schema", "json_schema":
    {"name": ..., "schema": S, "strict": ...}}`` the reply is ALWAYS a text reply (never a tool
    call, even when the request has ``tools``) whose text is ``json.dumps(v)`` with Python's
    defaults, i.e. NOT compact (separators ``", "`` and ``": "``, ``ensure_ascii``), where v is
    built from S (``name`` and ``strict`` are ignored; a missing schema counts as ``{}``):
      - ``const`` gives its value; else a non-empty ``enum`` its first value; else ``$ref`` (a
        JSON pointer into S: ``#/$defs/X``, ``#/definitions/X``, ``#``) the value of the schema
        it points to (null when it does not resolve); else ``anyOf`` / ``oneOf`` / ``allOf``
        the value of their first alternative whose ``type`` is not "null" (null when there is
        none); else by ``type`` (a list: its first entry that is not "null"; absent: "object"
        when the schema has ``properties``, "array" when it has ``items`` or ``prefixItems``,
        else "null"):
      - object: every property of ``properties`` (required or not), in schema order; ``{}``
        when there are none. ``additionalProperties`` and ``required`` are ignored.
      - array: ONE item built from ``items``, or one per entry of ``prefixItems``; ``[]``
        when it has neither.
      - boolean: true. integer: 1. number: 1 (the integer 1, not 1.0). null: null.
      - string, decided by the object property the string is the value of (through ``$ref``,
        ``anyOf``/``oneOf``/``allOf``, type lists and array items; a root string has none), in
        this order: a property named exactly ``result`` gives "yes"; one named exactly
        ``rationale``, or whose description contains "explanation" or "reason"
        (case-insensitive; the innermost ``description`` met from the property down, so
        array items inherit their array's) gives ``"Mock rationale: "`` + the first
        RATIONALE_WORDS (= 12) words of the text of the last user message, joined by single
        spaces; any other string gives "mock".
      - recursion: a ``$ref`` met again inside its own expansion (the root schema counts as
        ``#``) gives null, except as an array's ``items``, where it makes the array ``[]``.
    The "no" verdict: when the text of ANY message (any role) contains NO_MARKER
    (``[[mock:no]]``, case-sensitive), every boolean is false (an ``enum`` holding false gives
    false) and a ``result`` string is "no" (a ``result`` ``enum`` holding "no" gives "no");
    ``const`` still gives its value.
  * With ``response_format`` ``{"type": "json_object"}`` the text reply is instead
    ``json.dumps({"answer": "Mock answer to: " + <text of the last user message>})`` (same
    defaults); the tool-call rule above still applies. ``{"type": "text"}`` changes nothing.
  * prompt_tokens     = sum(words(text of m) for m in messages) + 10
  * completion_tokens = words(reply text) for a text reply (for a structured reply the reply
                        text is the JSON text); TOOL_CALL_COMPLETION_TOKENS (= 7) for a
                        tool-call reply
  * total_tokens      = prompt_tokens + completion_tokens
  * Streaming sends the reply text one word per chunk (each word but the first preceded by a
    space), so the concatenated deltas equal the non-streaming reply. A JSON reply (the
    json_schema or json_object response formats) is sent instead in consecutive slices of
    STRUCTURED_CHUNK_CHARS (= 16) characters (the last may be shorter), so again the
    concatenated deltas equal the non-streaming reply.
Anthropic messages (``POST /v1/messages``):
  * The text of Anthropic content (a message's ``content``, or ``system``) is the string itself,
    or, for a list of blocks, the ``text`` of its text blocks and the text of each
    ``tool_result`` block's ``content`` (a string, or its text blocks joined by a single space),
    in order, joined by a single space; ``tool_use`` and other blocks contribute nothing.
  * The USER text of a message is its string content, or its text blocks only (tool_result
    blocks excluded) joined by a single space. A user message "has text" when its content is a
    string or holds at least one text block.
  * The reply text is ``"Mock answer to: " + <user text of the last user message that has text>``
    (so a user message made only of tool_result blocks is skipped, like a chat ``tool`` message).
  * When the request has ``tools`` and the LAST message has role ``user`` and holds no
    ``tool_result`` block, the reply is instead ONE ``tool_use`` block to the first tool: id
    ``toolu_mock_1``, input ``{"city": "Paris"}`` when that tool is named ``get_weather``, else
    ``{}``; ``stop_reason`` is ``tool_use``. Otherwise the reply is one text block and
    ``stop_reason`` is ``end_turn``. ``stop_sequence`` is always null.
  * input_tokens  = sum(words(text of m) for m in messages) + words(text of system) + 10
  * output_tokens = words(reply text) for a text reply; TOOL_CALL_COMPLETION_TOKENS (= 7) for a
                    tool_use reply
  * Missing ``model``, ``max_tokens`` or ``messages`` (or an empty ``messages``) is a 400 with
    Anthropic's error shape ``{"type": "error", "error": {"type": "invalid_request_error",
    "message": ...}}``.
  * Streaming: message_start carries the message with empty ``content`` and usage
    ``{"input_tokens": <as above>, "output_tokens": 1}``; a text block starts with ``text`` ""
    and gets one ``text_delta`` per word (each word but the first preceded by a space, so the
    concatenated deltas equal the non-streaming text); a tool_use block starts with ``input``
    {} and gets two ``input_json_delta`` events whose ``partial_json`` are the two halves
    (split at len // 2) of ``json.dumps(input)``; message_delta carries ``stop_reason``,
    ``stop_sequence`` null and usage ``{"output_tokens": <as above>}``.
Legacy completions:
  * reply ``"Mock answer to: " + prompt``; prompt_tokens = words(prompt) + 10 (summed over a
    list of prompts); completion_tokens = words(reply text).
Embeddings:
  * ``input`` a string or a list of strings (a list of token ids counts one token per id);
    prompt_tokens = total_tokens = sum(words(s) for s in inputs).
  * each vector has EMBEDDING_DIMENSIONS (= 8) floats, or ``dimensions`` if the request sets it,
    derived from the SHA-256 of the input text: value i = (byte_i - 127.5) / 127.5.
All responses echo the requested ``model``; ``created`` is the constant CREATED (1700000000);
ids are ``chatcmpl-mock-N`` / ``cmpl-mock-N`` / ``msg_mock_N`` with N counting from 1 per server
(one counter shared by all of them).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import struct
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CREATED = 1700000000
PROMPT_OVERHEAD_TOKENS = 10
TOOL_CALL_COMPLETION_TOKENS = 7
TOOL_CALL_ID = "call_mock_1"
ANTHROPIC_TOOL_USE_ID = "toolu_mock_1"
EMBEDDING_DIMENSIONS = 8
NO_MARKER = "[[mock:no]]"
RATIONALE_WORDS = 12
STRUCTURED_CHUNK_CHARS = 16
SYSTEM_FINGERPRINT = "fp_mock"
MODELS = [
    "gpt-4o-mini",
    "gpt-4o",
    "text-embedding-3-small",
    "gpt-3.5-turbo-instruct",
    "claude-sonnet-4-5",
    "claude-haiku-4-5",
]


def words(text: str) -> int:
    return len(text.split())


def message_text(message: dict) -> str:
    content = message.get("content")
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif isinstance(part, str):
                parts.append(part)
        return " ".join(parts)
    return str(content)


def last_user_text(messages: list) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return message_text(message)
    return ""


def tool_name(tool: dict) -> str:
    function = tool.get("function") if isinstance(tool, dict) else None
    if isinstance(function, dict) and function.get("name"):
        return str(function["name"])
    return str(tool.get("name", "tool")) if isinstance(tool, dict) else "tool"


_RECURSIVE = object()  # what a $ref met again inside its own expansion builds


class SchemaValue:
    """Builds the value a ``json_schema`` response format gets (rules in the module docstring)."""

    def __init__(self, root, messages: list) -> None:
        self.root = root
        self.no = any(NO_MARKER in message_text(m) for m in messages if isinstance(m, dict))
        cut = last_user_text(messages).split()[:RATIONALE_WORDS]
        self.rationale = "Mock rationale: " + " ".join(cut)

    def value(self):
        return self._final(self._build(self.root, None, None, ("#",)))

    @staticmethod
    def _final(value):
        return None if value is _RECURSIVE else value

    def _resolve(self, ref: str):
        if not ref.startswith("#"):
            return None
        node = self.root
        for part in ref[1:].split("/")[1:]:
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                return None
        return node

    def _build(self, schema, name, description, refs: tuple):
        if not isinstance(schema, dict):
            return None
        if isinstance(schema.get("description"), str):
            description = schema["description"]
        if "const" in schema:
            return schema["const"]
        enum = schema.get("enum")
        if isinstance(enum, list) and enum:
            if self.no and any(v is False for v in enum):
                return False
            if self.no and name == "result" and "no" in enum:
                return "no"
            return enum[0]
        ref = schema.get("$ref")
        if isinstance(ref, str):
            if ref in refs:
                return _RECURSIVE
            return self._build(self._resolve(ref), name, description, refs + (ref,))
        for key in ("anyOf", "oneOf", "allOf"):
            options = schema.get(key)
            if isinstance(options, list) and options:
                chosen = [o for o in options if isinstance(o, dict) and o.get("type") != "null"]
                return self._build(chosen[0], name, description, refs) if chosen else None
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind is None:
            if "properties" in schema:
                kind = "object"
            elif "items" in schema or "prefixItems" in schema:
                kind = "array"
        if kind == "object":
            properties = schema.get("properties")
            if not isinstance(properties, dict):
                return {}
            return {
                key: self._final(self._build(sub, key, None, refs))
                for key, sub in properties.items()
            }
        if kind == "array":
            if isinstance(schema.get("prefixItems"), list):
                return [
                    self._final(self._build(sub, name, description, refs))
                    for sub in schema["prefixItems"]
                ]
            if not isinstance(schema.get("items"), dict):
                return []
            item = self._build(schema["items"], name, description, refs)
            return [] if item is _RECURSIVE else [item]
        if kind == "boolean":
            return not self.no
        if kind in ("integer", "number"):
            return 1
        if kind == "string":
            if name == "result":
                return "no" if self.no else "yes"
            lowered = (description or "").lower()
            if name == "rationale" or "explanation" in lowered or "reason" in lowered:
                return self.rationale
            return "mock"
        return None


def structured_value(schema, messages: list):
    """The value v a ``json_schema`` response format with schema ``schema`` gets."""
    return SchemaValue(schema, messages).value()


def response_format_type(body: dict) -> str | None:
    response_format = body.get("response_format")
    return response_format.get("type") if isinstance(response_format, dict) else None


def plan_chat_reply(body: dict) -> dict:
    """Decides the reply of a chat completion request (shared by streaming and not)."""
    messages = body.get("messages") or []
    tools = body.get("tools") or []
    prompt_tokens = sum(words(message_text(m)) for m in messages if isinstance(m, dict))
    prompt_tokens += PROMPT_OVERHEAD_TOKENS
    last_role = messages[-1].get("role") if messages and isinstance(messages[-1], dict) else None
    format_type = response_format_type(body)
    if format_type == "json_schema":
        json_schema = body["response_format"].get("json_schema")
        schema = json_schema.get("schema", {}) if isinstance(json_schema, dict) else {}
        text = json.dumps(structured_value(schema, messages))
        return {
            "text": text,
            "tool_calls": None,
            "finish_reason": "stop",
            "usage": usage(prompt_tokens, words(text)),
            "structured": True,
        }
    if tools and last_role == "user":
        name = tool_name(tools[0])
        arguments = json.dumps({"city": "Paris"}) if name == "get_weather" else "{}"
        tool_call = {
            "id": TOOL_CALL_ID,
            "type": "function",
            "function": {"name": name, "arguments": arguments},
        }
        completion_tokens = TOOL_CALL_COMPLETION_TOKENS
        return {
            "text": None,
            "tool_calls": [tool_call],
            "finish_reason": "tool_calls",
            "usage": usage(prompt_tokens, completion_tokens),
            "structured": False,
        }
    text = "Mock answer to: " + last_user_text(messages)
    if format_type == "json_object":
        text = json.dumps({"answer": text})
    return {
        "text": text,
        "tool_calls": None,
        "finish_reason": "stop",
        "usage": usage(prompt_tokens, words(text)),
        "structured": format_type == "json_object",
    }


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def anthropic_text(content) -> str:
    """The text of Anthropic content: a message's ``content`` or ``system`` (module docstring)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, dict):
                if block.get("type") == "tool_result":
                    parts.append(anthropic_text(block.get("content")))
                elif block.get("type", "text") == "text" and isinstance(block.get("text"), str):
                    parts.append(block["text"])
        return " ".join(parts)
    return str(content)


def anthropic_text_blocks(message: dict) -> list[str] | None:
    """The texts a user typed in a message: its string content or its text blocks (not tool_result
    blocks); None when the message has no text (e.g. only tool_result blocks)."""
    content = message.get("content")
    if isinstance(content, str):
        return [content]
    texts = [
        block["text"]
        for block in content or []
        if isinstance(block, dict)
        and block.get("type", "text") == "text"
        and isinstance(block.get("text"), str)
    ]
    return texts or None


def has_tool_result(message: dict) -> bool:
    content = message.get("content")
    return isinstance(content, list) and any(
        isinstance(block, dict) and block.get("type") == "tool_result" for block in content
    )


def last_anthropic_user_text(messages: list) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            texts = anthropic_text_blocks(message)
            if texts is not None:
                return " ".join(texts)
    return ""


def plan_anthropic_reply(body: dict) -> dict:
    """Decides the reply of an Anthropic messages request (shared by streaming and not)."""
    messages = body.get("messages") or []
    tools = body.get("tools") or []
    input_tokens = sum(
        words(anthropic_text(m.get("content"))) for m in messages if isinstance(m, dict)
    )
    input_tokens += words(anthropic_text(body.get("system"))) + PROMPT_OVERHEAD_TOKENS
    last = messages[-1] if messages and isinstance(messages[-1], dict) else {}
    if tools and last.get("role") == "user" and not has_tool_result(last):
        name = tool_name(tools[0])
        block = {
            "type": "tool_use",
            "id": ANTHROPIC_TOOL_USE_ID,
            "name": name,
            "input": {"city": "Paris"} if name == "get_weather" else {},
        }
        return {
            "text": None,
            "content": [block],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": input_tokens, "output_tokens": TOOL_CALL_COMPLETION_TOKENS},
        }
    text = "Mock answer to: " + last_anthropic_user_text(messages)
    return {
        "text": text,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": input_tokens, "output_tokens": words(text)},
    }


def embedding_inputs(body: dict) -> list:
    raw = body.get("input", "")
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list) and raw and all(isinstance(x, int) for x in raw):
        return [raw]  # one input given as token ids
    return list(raw) if isinstance(raw, list) else [str(raw)]


def embedding_usage(body: dict) -> dict:
    """The usage an embeddings request gets (see the module docstring)."""
    tokens = 0
    for item in embedding_inputs(body):
        tokens += len(item) if isinstance(item, list) else words(str(item))
    return {"prompt_tokens": tokens, "total_tokens": tokens}


def embedding_vector(text: str, dimensions: int) -> list[float]:
    digest = b""
    counter = 0
    while len(digest) < dimensions:
        digest += hashlib.sha256(f"{counter}:{text}".encode()).digest()
        counter += 1
    return [round((b - 127.5) / 127.5, 6) for b in digest[:dimensions]]


def word_chunks(text: str) -> list[str]:
    pieces = text.split(" ")
    return [pieces[0]] + [" " + p for p in pieces[1:]]


def char_chunks(text: str, size: int = STRUCTURED_CHUNK_CHARS) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


class MockState:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counter = 0
        self.requests: list[dict] = []

    def next_id(self) -> int:
        with self.lock:
            self.counter += 1
            return self.counter

    def record(self, method: str, path: str, body) -> None:
        with self.lock:
            self.requests.append({"method": method, "path": path, "body": body})


class Handler(BaseHTTPRequestHandler):
    server_version = "LoupeMockOpenAI/1.0"
    protocol_version = "HTTP/1.1"

    @property
    def state(self) -> MockState:
        return self.server.state  # type: ignore[attr-defined]

    def log_message(self, format, *args):  # noqa: A002 - keep the stdout/stderr quiet
        if getattr(self.server, "verbose", False):
            sys.stderr.write("mock_openai: " + (format % args) + "\n")

    # -- helpers ---------------------------------------------------------------------------
    def _path(self) -> str:
        path = self.path.split("?", 1)[0]
        if path.startswith("/v1/v1/"):
            path = path[3:]
        return path.rstrip("/") or "/"

    def _send_json(self, status: int, payload) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", f"req_mock_{self.state.counter}")
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        self._send_json(
            status, {"error": {"message": message, "type": kind, "param": None, "code": None}}
        )

    def _anthropic_error(self, status: int, message: str, kind="invalid_request_error") -> None:
        self._send_json(status, {"type": "error", "error": {"type": kind, "message": message}})

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            body = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return bytes(body)
                body += self.rfile.read(size)
                self.rfile.readline()  # the CRLF after each chunk
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _read_json(self):
        raw = self._read_body()
        if not raw:
            return {}
        return json.loads(raw)

    def _start_sse(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def _sse(self, payload) -> None:
        data = payload if isinstance(payload, str) else json.dumps(payload)
        self.wfile.write(f"data: {data}\n\n".encode())
        self.wfile.flush()

    def _sse_event(self, payload: dict) -> None:
        """One Anthropic server-sent event, named after the payload's ``type``."""
        self.wfile.write(f"event: {payload['type']}\ndata: {json.dumps(payload)}\n\n".encode())
        self.wfile.flush()

    # -- routes ----------------------------------------------------------------------------
    def do_GET(self):  # noqa: N802
        path = self._path()
        if path == "/v1/models":
            self._send_json(
                200,
                {
                    "object": "list",
                    "data": [
                        {"id": m, "object": "model", "created": CREATED, "owned_by": "mock"}
                        for m in MODELS
                    ],
                },
            )
        elif path.startswith("/v1/models/"):
            model = path[len("/v1/models/") :]
            self._send_json(
                200, {"id": model, "object": "model", "created": CREATED, "owned_by": "mock"}
            )
        elif path == "/mock/requests":
            with self.state.lock:
                self._send_json(200, {"requests": list(self.state.requests)})
        elif path in ("/", "/healthz", "/v1"):
            self._send_json(200, {"status": "ok"})
        else:
            self._error(404, f"unknown path {path}")

    def do_POST(self):  # noqa: N802
        path = self._path()
        try:
            body = self._read_json()
        except (ValueError, UnicodeDecodeError) as exc:
            self._error(400, f"request body is not JSON: {exc}")
            return
        if not isinstance(body, dict):
            self._error(400, "request body must be a JSON object")
            return
        self.state.record("POST", path, body)
        if path == "/v1/chat/completions":
            self._chat(body)
        elif path == "/v1/completions":
            self._completions(body)
        elif path == "/v1/embeddings":
            self._embeddings(body)
        elif path == "/v1/messages":
            self._messages(body)
        else:
            self._error(404, f"unknown path {path}")

    def do_DELETE(self):  # noqa: N802
        if self._path() == "/mock/requests":
            with self.state.lock:
                self.state.requests.clear()
            self._send_json(200, {"status": "ok"})
        else:
            self._error(404, "unknown path")

    def _chat(self, body: dict) -> None:
        model = body.get("model") or "gpt-4o-mini"
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            self._error(400, "messages must be a non-empty list")
            return
        plan = plan_chat_reply(body)
        completion_id = f"chatcmpl-mock-{self.state.next_id()}"
        if body.get("stream"):
            self._chat_stream(body, model, completion_id, plan)
            return
        message = {"role": "assistant", "content": plan["text"], "refusal": None}
        if plan["tool_calls"]:
            message["tool_calls"] = plan["tool_calls"]
        self._send_json(
            200,
            {
                "id": completion_id,
                "object": "chat.completion",
                "created": CREATED,
                "model": model,
                "system_fingerprint": SYSTEM_FINGERPRINT,
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "logprobs": None,
                        "finish_reason": plan["finish_reason"],
                    }
                ],
                "usage": plan["usage"],
            },
        )

    def _chat_stream(self, body: dict, model: str, completion_id: str, plan: dict) -> None:
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def chunk(delta: dict, finish_reason=None) -> dict:
            payload = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": CREATED,
                "model": model,
                "system_fingerprint": SYSTEM_FINGERPRINT,
                "choices": [
                    {
                        "index": 0,
                        "delta": delta,
                        "logprobs": None,
                        "finish_reason": finish_reason,
                    }
                ],
            }
            if include_usage:
                payload["usage"] = None
            return payload

        self._start_sse()
        if plan["tool_calls"]:
            self._sse(chunk({"role": "assistant", "content": None}))
            for index, call in enumerate(plan["tool_calls"]):
                self._sse(
                    chunk(
                        {
                            "tool_calls": [
                                {
                                    "index": index,
                                    "id": call["id"],
                                    "type": "function",
                                    "function": {"name": call["function"]["name"], "arguments": ""},
                                }
                            ]
                        }
                    )
                )
                self._sse(
                    chunk(
                        {
                            "tool_calls": [
                                {
                                    "index": index,
                                    "function": {"arguments": call["function"]["arguments"]},
                                }
                            ]
                        }
                    )
                )
        else:
            self._sse(chunk({"role": "assistant", "content": ""}))
            pieces = char_chunks(plan["text"]) if plan["structured"] else word_chunks(plan["text"])
            for piece in pieces:
                self._sse(chunk({"content": piece}))
        self._sse(chunk({}, plan["finish_reason"]))
        if include_usage:
            self._sse(
                {
                    "id": completion_id,
                    "object": "chat.completion.chunk",
                    "created": CREATED,
                    "model": model,
                    "system_fingerprint": SYSTEM_FINGERPRINT,
                    "choices": [],
                    "usage": plan["usage"],
                }
            )
        self._sse("[DONE]")

    def _messages(self, body: dict) -> None:
        for field in ("model", "max_tokens", "messages"):
            if body.get(field) is None:
                self._anthropic_error(400, f"{field}: Field required")
                return
        messages = body["messages"]
        if not isinstance(messages, list) or not messages:
            self._anthropic_error(400, "messages: at least one message is required")
            return
        model = body["model"]
        plan = plan_anthropic_reply(body)
        message = {
            "id": f"msg_mock_{self.state.next_id()}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": plan["content"],
            "stop_reason": plan["stop_reason"],
            "stop_sequence": None,
            "usage": plan["usage"],
        }
        if not body.get("stream"):
            self._send_json(200, message)
            return
        self._start_sse()
        start = dict(
            message,
            content=[],
            stop_reason=None,
            usage={"input_tokens": plan["usage"]["input_tokens"], "output_tokens": 1},
        )
        self._sse_event({"type": "message_start", "message": start})
        self._sse_event({"type": "ping"})
        for index, block in enumerate(plan["content"]):
            if block["type"] == "text":
                self._sse_event(
                    {
                        "type": "content_block_start",
                        "index": index,
                        "content_block": {"type": "text", "text": ""},
                    }
                )
                deltas = [
                    {"type": "text_delta", "text": piece} for piece in word_chunks(block["text"])
                ]
            else:
                self._sse_event(
                    {
                        "type": "content_block_start",
                        "index": index,
                        "content_block": dict(block, input={}),
                    }
                )
                arguments = json.dumps(block["input"])
                half = len(arguments) // 2
                deltas = [
                    {"type": "input_json_delta", "partial_json": arguments[:half]},
                    {"type": "input_json_delta", "partial_json": arguments[half:]},
                ]
            for delta in deltas:
                self._sse_event({"type": "content_block_delta", "index": index, "delta": delta})
            self._sse_event({"type": "content_block_stop", "index": index})
        self._sse_event(
            {
                "type": "message_delta",
                "delta": {"stop_reason": plan["stop_reason"], "stop_sequence": None},
                "usage": {"output_tokens": plan["usage"]["output_tokens"]},
            }
        )
        self._sse_event({"type": "message_stop"})

    def _completions(self, body: dict) -> None:
        model = body.get("model") or "gpt-3.5-turbo-instruct"
        prompt = body.get("prompt", "")
        prompts = prompt if isinstance(prompt, list) else [prompt]
        prompts = [p if isinstance(p, str) else " ".join(map(str, p)) for p in prompts]
        completion_id = f"cmpl-mock-{self.state.next_id()}"
        texts = ["Mock answer to: " + p for p in prompts]
        prompt_tokens = sum(words(p) + PROMPT_OVERHEAD_TOKENS for p in prompts)
        completion_tokens = sum(words(t) for t in texts)
        use = usage(prompt_tokens, completion_tokens)
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            self._start_sse()
            for index, text in enumerate(texts):
                for piece in word_chunks(text):
                    self._sse(
                        {
                            "id": completion_id,
                            "object": "text_completion",
                            "created": CREATED,
                            "model": model,
                            "choices": [
                                {"index": index, "text": piece, "logprobs": None, "finish_reason": None}
                            ],
                        }
                    )
                self._sse(
                    {
                        "id": completion_id,
                        "object": "text_completion",
                        "created": CREATED,
                        "model": model,
                        "choices": [
                            {"index": index, "text": "", "logprobs": None, "finish_reason": "stop"}
                        ],
                    }
                )
            if include_usage:
                self._sse(
                    {
                        "id": completion_id,
                        "object": "text_completion",
                        "created": CREATED,
                        "model": model,
                        "choices": [],
                        "usage": use,
                    }
                )
            self._sse("[DONE]")
            return
        self._send_json(
            200,
            {
                "id": completion_id,
                "object": "text_completion",
                "created": CREATED,
                "model": model,
                "system_fingerprint": SYSTEM_FINGERPRINT,
                "choices": [
                    {"index": i, "text": t, "logprobs": None, "finish_reason": "stop"}
                    for i, t in enumerate(texts)
                ],
                "usage": use,
            },
        )

    def _embeddings(self, body: dict) -> None:
        model = body.get("model") or "text-embedding-3-small"
        inputs = embedding_inputs(body)
        dimensions = int(body.get("dimensions") or EMBEDDING_DIMENSIONS)
        encoding = body.get("encoding_format") or "float"
        data = []
        for index, item in enumerate(inputs):
            text = " ".join(map(str, item)) if isinstance(item, list) else str(item)
            vector = embedding_vector(text, dimensions)
            if encoding == "base64":
                embedding = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            else:
                embedding = vector
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        self._send_json(
            200,
            {
                "object": "list",
                "data": data,
                "model": model,
                "usage": embedding_usage(body),
            },
        )


def start(port: int = 0, host: str = "127.0.0.1", verbose: bool = False):
    """Starts the mock in a background thread. Returns ``(url, stop)``; url ends with ``/v1``."""
    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    server.state = MockState()  # type: ignore[attr-defined]
    server.verbose = verbose  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, name="mock-openai", daemon=True)
    thread.start()
    url = f"http://{host}:{server.server_address[1]}/v1"

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return url, stop


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    server.state = MockState()  # type: ignore[attr-defined]
    server.verbose = args.verbose  # type: ignore[attr-defined]
    print(f"MOCK_OPENAI_URL=http://{args.host}:{server.server_address[1]}/v1", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    import signal

    def _on_sigterm(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _on_sigterm)
    sys.exit(main())
