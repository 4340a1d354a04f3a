"""Error classes a failed batch is counted under; the report groups by these names."""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl

DNS = "dns_failure"  # the host name did not resolve
CONNECTION_REFUSED = "connection_refused"
CONNECTION_RESET = "connection_reset"
TIMEOUT = "timeout"
PROTOCOL = "protocol_error"
TLS = "tls_error"
OTHER = "other"
WRONG_ACK = "wrong_ack"  # WS-Management: the Ack is missing or relates to another message
EARLY_REPLY = "early_reply"  # a 2xx came before the whole request was written: nothing is acknowledged
NO_SUBSCRIPTION = "no_subscription"  # WS-Management: the host never subscribed, or its subscription expired


class WrongAck(Exception):
    """The collector's answer to an Events message is not its Ack (wrong Action or RelatesTo)."""


class EarlyReply(Exception):
    """The server answered 2xx before the request's last byte was written; the events it had not
    yet received cannot have been acknowledged, so the batch fails (and its connection is closed)."""


def http_status(status: int) -> str:
    return f"http_{status}"


def classify(exc: BaseException) -> str:
    """Map an exception from either sender to one class name."""
    if isinstance(exc, WrongAck):
        return WRONG_ACK
    if isinstance(exc, EarlyReply):
        return EARLY_REPLY
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return TIMEOUT
    if isinstance(exc, ssl.SSLError):
        return TLS
    try:
        import aiohttp

        if isinstance(exc, aiohttp.ServerTimeoutError):
            return TIMEOUT
        if isinstance(exc, aiohttp.ClientConnectorError):
            inner = exc.os_error
            return classify(inner) if inner is not exc else OTHER
        if isinstance(exc, aiohttp.ServerDisconnectedError):
            return CONNECTION_RESET
        if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ClientResponseError):
            return PROTOCOL
    except ImportError:  # pragma: no cover - aiohttp is a dependency
        pass
    if isinstance(exc, socket.gaierror):
        return DNS
    if isinstance(exc, ConnectionRefusedError):
        return CONNECTION_REFUSED
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        return CONNECTION_RESET
    if isinstance(exc, OSError):
        if exc.errno == errno.ECONNREFUSED:
            return CONNECTION_REFUSED
        if exc.errno in (errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED):
            return CONNECTION_RESET
        if exc.errno == errno.ETIMEDOUT:
            return TIMEOUT
    if type(exc).__name__ == "HttpParserError" or isinstance(exc, ValueError):
        return PROTOCOL
    return OTHER


def describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
