"""Commands from the controller (``edgewatch/v1/<gw>/cmd/<id>``), run off paho's thread.

Each command is answered on ``cmd-result/<id>``: ``accepted`` at once, then ``succeeded``
or ``failed`` with a detail. A command past its ``deadline_ms``, or of a type no handler is
registered for, fails without running. Handlers are registered by type (the others are in
``agent.uplink.handlers``); this module brings ``replay``:

    {"type": "replay", "args": {"from_seq": 120, "to_seq": 480}}

re-publishes the stored rows of that seq range (acked rows are kept for
``[buffer] acked_retention_s``) on the backlog lane; the detail is JSON
``{"replayed": n, "unavailable": m}`` (``unavailable``: purged, evicted or never used).
The outcome is ``succeeded`` when every seq was replayed, else ``failed``. While it runs,
its progress (seqs done of the range) is logged every few seconds and kept in status.json
(``agent.uplink.replay_progress``).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Callable

from pydantic import ValidationError

import wire.commands
from agent.uplink.publisher import Publisher
from agent.uplink.replay_progress import await_replay
from agent.uplink.session import MqttSession
from wire import MAX_REPLAY_SPAN, CommandRequest, CommandResult, CommandType, TopicKind, encode
from wire.commands import CommandArgs
from wire.validation import problems

log = logging.getLogger(__name__)

REPLAY_TIMEOUT_S = 600.0
QUEUE_MAX_COMMANDS = 100
MAX_DETAIL_CHARS = 2048  # wire.CommandResult.detail

# A handler returns (succeeded, detail); it may raise ValueError for bad arguments.
Handler = Callable[[CommandRequest], tuple[bool, str]]


class CommandRunner:
    def __init__(
        self, *, session: MqttSession, publisher: Publisher, now_ms: Callable[[], int]
    ) -> None:
        self._session = session
        self._now_ms = now_ms
        self._queue: queue.Queue[CommandRequest | None] = queue.Queue(QUEUE_MAX_COMMANDS)
        self._thread: threading.Thread | None = None
        self.handlers: dict[str, Handler] = {CommandType.REPLAY: self._replay}
        self._publisher = publisher

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="commands")
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=5)
            self._thread = None

    def submit(self, request: CommandRequest) -> None:
        """Called on paho's thread: queue, never block it."""
        try:
            self._queue.put_nowait(request)
        except queue.Full:
            self._answer(request, "failed", "too many commands waiting")

    def _run(self) -> None:
        while (request := self._queue.get()) is not None:
            try:
                self._execute(request)
            except Exception as exc:
                log.exception("command %s (%s) crashed", request.id, request.type)
                self._answer(request, "failed", f"internal error: {exc!r}")

    def _execute(self, request: CommandRequest) -> None:
        handler = self.handlers.get(request.type)
        if handler is None:
            self._answer(request, "failed", f"unknown command type {request.type!r}")
            return
        if request.deadline_ms and self._now_ms() > request.deadline_ms:
            self._answer(request, "failed", "deadline passed before the command ran")
            return
        self._answer(request, "accepted", "")
        try:
            succeeded, detail = handler(request)
        except ValidationError as exc:
            self._answer(request, "failed", f"bad arguments: {explain_args(exc, request.args)}")
            return
        except ValueError as exc:
            self._answer(request, "failed", f"bad arguments: {exc}")
            return
        self._answer(request, "succeeded" if succeeded else "failed", detail)

    def _answer(self, request: CommandRequest, outcome: str, detail: str) -> None:
        if len(detail) > MAX_DETAIL_CHARS:
            detail = detail[: MAX_DETAIL_CHARS - 3] + "..."
        result = CommandResult.model_validate(
            {"id": request.id, "outcome": outcome, "detail": detail, "ts_ms": self._now_ms()}
        )
        topic = self._session.topic(TopicKind.CMD_RESULT, request.id)
        if not self._session.publish(topic, encode(result)):
            log.warning("command %s: could not publish its %s result", request.id, outcome)

    def _replay(self, request: CommandRequest) -> tuple[bool, str]:
        from_seq, to_seq = request.args.get("from_seq"), request.args.get("to_seq")
        if not isinstance(from_seq, int) or not isinstance(to_seq, int):
            raise ValueError("from_seq and to_seq must be integers")
        if not 1 <= from_seq <= to_seq or to_seq - from_seq >= MAX_REPLAY_SPAN:
            raise ValueError(f"need 1 <= from_seq <= to_seq, at most {MAX_REPLAY_SPAN} seqs")
        log.info("replaying seqs %d..%d on the backlog lane", from_seq, to_seq)
        future = self._publisher.replay(from_seq, to_seq)
        progress = self._publisher.replay_progress
        detail = await_replay(future, progress, timeout_s=REPLAY_TIMEOUT_S)
        return json.loads(detail)["unavailable"] == 0, detail


def explain_args(exc: ValidationError, args: object = None) -> str:
    """``args.interval_s: missing required key; args.devce: unknown key (did you mean
    'device'?)``: each error names its key, in the words of every config error."""
    model = vars(wire.commands).get(exc.title)  # pydantic names the model that refused
    known = model if isinstance(model, type) and issubclass(model, CommandArgs) else None
    return "; ".join(problems(exc, known, args, prefix="args"))
