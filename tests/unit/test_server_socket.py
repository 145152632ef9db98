"""The listening socket: its receive buffer, set before listen(), is every connection's."""

from __future__ import annotations

import socket

import pytest
import uvicorn

from trailkeeper.server import listening_socket


def _accepted_receive_buffer(receive_buffer_bytes: int) -> tuple[int, int]:
    """(the listening socket's SO_RCVBUF, an accepted connection's)"""
    listener = listening_socket(uvicorn.Config(app=None, host="127.0.0.1", port=0), receive_buffer_bytes)
    with listener:
        listener.listen()
        with socket.create_connection(listener.getsockname()[:2], timeout=5):
            accepted, _ = listener.accept()
            with accepted:
                return (listener.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF),
                        accepted.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))


@pytest.mark.parametrize("size", [16 * 1024, 64 * 1024])
def test_accepted_connections_inherit_the_configured_receive_buffer(size: int) -> None:
    listening, accepted = _accepted_receive_buffer(size)
    # Linux reports twice the value set (room for its bookkeeping); other kernels the value.
    assert listening in (size, 2 * size) and accepted == listening


def test_zero_leaves_the_kernel_default() -> None:
    with socket.socket() as plain:
        default = plain.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    listening, _ = _accepted_receive_buffer(0)
    assert listening == default
