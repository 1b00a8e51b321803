"""tinyfed's Flower ClientApp: what a Flower node runs per message.

On a gateway (``tinyfed gateway`` started the SuperNode and put the path of
its relay socket in the node config), the ClientApp hands the message's
relay request to the gateway process, which owns the boards, and returns the
gateway's reply.  Flower starts this ClientApp in a fresh process per
message, so it holds nothing itself: the boards, their serial ports and
their round state live in the gateway (and on the boards).

By default a gateway executes its SuperNode's messages itself
(``--isolation process``, :mod:`tinyfed_host.flower.executor`) and Flower
never starts this ClientApp; it is what a gateway started with
``--isolation subprocess`` runs.  Flower's simulation engine uses its own
ClientApp (:mod:`tinyfed_host.flower.simulation`).
"""

from __future__ import annotations

from typing import Any

from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp

from .relay import NODE_SOCKET_KEY, RECORD

app = ClientApp()


@app.query("tinyfed")
def relay(msg: Message, context: Context) -> Message:
    fields: dict[str, Any] = dict(msg.content.config_records[RECORD])
    path = context.node_config.get(NODE_SOCKET_KEY)
    if not (isinstance(path, str) and path):
        raise RuntimeError("this Flower node is not a tinyfed gateway (start nodes with `tinyfed gateway`)")
    from .gateway import call_gateway

    reply = call_gateway(path, fields)
    if "fault" in reply:
        raise RuntimeError(str(reply["fault"]))
    return Message(RecordDict({RECORD: ConfigRecord(reply)}), reply_to=msg)


__all__ = ["app"]
