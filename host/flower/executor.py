"""The gateway as its SuperNode's ClientApp executor (``--isolation process``).

By default a Flower SuperNode starts ``flower-superexec``, which starts a new
``flwr-clientapp`` process for every message: importing Flower and
unpacking the app costs seconds of CPU per message (more on a Raspberry
Pi), several times per round.  A tinyfed gateway instead starts its
SuperNode with ``--isolation process`` and executes the ClientApp tasks
itself, in its long-lived process, next to the boards it owns: it acquires
each task from the SuperNode's local Runtime API, pulls the message, runs
tinyfed's relay handler on it and pushes the reply -- what
``flower-superexec`` + ``flwr-clientapp`` do, without a process per message.

It only ever runs tinyfed's own handler (never code from the run's app
bundle): a message of another type gets an error reply.  The Runtime API
calls are Flower's own client functions (``flwr.supernode.runtime``,
``flwr.supercore``) of the pinned flwr 1.42; ``tinyfed gateway --isolation
subprocess`` keeps Flower's standard executor (the ClientApp then reaches the
gateway over a Unix socket) should they change.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from flwr.app import ConfigRecord, Context, Error, Message, RecordDict
from flwr.common.constant import ErrorCode, SubStatus
from flwr.proto.runtime_pb2 import AcquireTaskRequest  # pylint: disable=E0611
from flwr.supercore.constant import TaskType
from flwr.supercore.heartbeat import HeartbeatSender, make_task_heartbeat_fn_http
from flwr.supercore.interceptors import RuntimeTokenHttpInterceptor, RuntimeVersionHttpInterceptor
from flwr.supercore.retry import make_simple_http_retry_invoker
from flwr.supercore.runtime import RuntimeHttpClient
from flwr.supernode.runtime.run_clientapp import pull_task_input, push_message, push_task_output

from .relay import MESSAGE_TYPE, RECORD, RelayError

Handler = Callable[[dict[str, Any]], dict[str, Any]]  # relay request fields -> reply fields


def _client(address: str, *interceptors: Any, retry: bool = True) -> RuntimeHttpClient:
    invoker = make_simple_http_retry_invoker()
    if not retry:
        invoker.max_tries = 1  # the acquire loop retries itself (quietly, and stops when asked)
    return RuntimeHttpClient.from_server_address(server_address=address, insecure=True, root_certificates=None,
                                                 interceptors=list(interceptors), retry_invoker=invoker)


class InProcessExecutor:
    """Acquires the SuperNode's ClientApp tasks and answers them with ``handler`` (one at a time,
    as the SuperNode hands out one message at a time)."""

    def __init__(self, runtime_address: str, handler: Handler, *, poll: float = 0.2,
                 log: Callable[[str], None] = print) -> None:
        self.address = runtime_address
        self.handler = handler
        self.poll = poll
        self.log = log
        self.tasks = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="clientapp-executor", daemon=True)

    def start(self) -> "InProcessExecutor":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        client: RuntimeHttpClient | None = None
        while not self._stop.is_set():
            try:
                if client is None:
                    client = _client(self.address, RuntimeVersionHttpInterceptor(component_name="SuperExec"),
                                     retry=False)
                res = client.AcquireTask(AcquireTaskRequest(supported_task_types=[TaskType.CLIENT_APP],
                                                            agentapp_fab_hashes=[]))
            except Exception:  # noqa: BLE001 - the SuperNode is (re)starting: try again
                if client is not None:
                    client.close()
                    client = None
                self._stop.wait(0.5)
                continue
            if res.HasField("task") and res.token:
                self._run(res.token)
            else:
                self._stop.wait(self.poll)
        if client is not None:
            client.close()

    def _run(self, token: str) -> None:
        client = _client(self.address, RuntimeVersionHttpInterceptor(component_name="flwr-clientapp"),
                         RuntimeTokenHttpInterceptor(token))
        hb = HeartbeatSender(make_task_heartbeat_fn_http(client))
        context: Context | None = None
        reply: Message | None = None
        status, details = SubStatus.FAILED, "tinyfed gateway: task failed"
        t0 = time.monotonic()
        try:
            hb.start()
            message, context, _, _ = pull_task_input(client)
            try:
                if message.metadata.message_type != MESSAGE_TYPE:
                    raise RelayError(f"message type {message.metadata.message_type!r}: a tinyfed gateway only "
                                     f"answers {MESSAGE_TYPE!r}")
                out = self.handler(dict(message.content.config_records[RECORD]))
                if "fault" in out:
                    raise RelayError(str(out["fault"]))
                reply = Message(RecordDict({RECORD: ConfigRecord(out)}), reply_to=message)
                status, details = SubStatus.COMPLETED, ""
            except Exception as e:  # noqa: BLE001 - answered as a Flower error, the gateway goes on
                reason = f"{type(e).__name__}: {e}"
                reply = Message(Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=reason), reply_to=message)
                details = reason
                self.log(f"[gateway] message refused: {reason}")
            push_message(client, reply, context)
            self.tasks += 1
        except Exception as e:  # noqa: BLE001 - a lost task: the ServerApp times it out
            self.log(f"[gateway] task failed after {time.monotonic() - t0:.1f} s: {type(e).__name__}: {e}")
        finally:
            try:
                push_task_output(client=client, context=context, sub_status=status, details=details)
            finally:
                if hb.is_running:
                    hb.stop()
                client.close()


__all__ = ["InProcessExecutor"]
