"""`trailkeeper server`: run the service behind uvicorn until SIGTERM/SIGINT, then flush."""

from __future__ import annotations

import gc
import logging
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import uvicorn

from trailkeeper.api.app import App
from trailkeeper.api.protocol import guarded_protocol
from trailkeeper.bootstrap import init_with_config, install_monitoring_pack, is_initialised
from trailkeeper.config import load_config
from trailkeeper.service import Service
from trailkeeper.storage.base import ObjectStore

log = logging.getLogger("trailkeeper")


def _ignore_reraised_signal(signum: int, frame: FrameType | None) -> None:
    """uvicorn re-raises the signal that stopped it; the stop is already under way (and logged)."""


def listening_socket(server_config: uvicorn.Config, receive_buffer_bytes: int) -> socket.socket:
    """The bound socket uvicorn listens on. Its receive buffer is set before listen(), so every
    accepted connection inherits it (0: leave the kernel's autotuning)."""
    sock = server_config.bind_socket()
    if receive_buffer_bytes:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer_bytes)
    return sock


def serve(data_dir: Path | None, host: str | None, port: int | None, config_path: Path | None,
          wrap_store: Callable[[ObjectStore], ObjectStore] | None = None) -> int:
    """`wrap_store` wraps every destination store (the e2e outage test's fault injection)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = load_config(data_dir, config_path, host=host, port=port)
    if not is_initialised(config):
        creds = init_with_config(config)
        pack = install_monitoring_pack(config)  # on by default, as `trailkeeper init` does
        # First start on embedded defaults: the root secret is shown this once, never again.
        endpoint = f"http://{config.host}:{config.port}"
        print(f"Initialised account {creds.account_id} in {creds.region} (data dir {config.data_dir}).\n"
              "The root secret access key is shown this once: store it now. In another shell, sign\n"
              "commands as the root with:\n\n"
              f"  export AWS_ACCESS_KEY_ID={creds.access_key_id}\n"
              f"  export AWS_SECRET_ACCESS_KEY={creds.secret_access_key}\n"
              f"  export AWS_DEFAULT_REGION={creds.region}\n"
              f"  export TRAILKEEPER_ENDPOINT={endpoint} AWS_ENDPOINT_URL={endpoint}\n"
              "  export PATH=\"$PWD/.venv/bin:$PATH\"   # trailkeeper (and aws, after scripts/setup.sh dev)\n\n"
              f"The CIS monitoring pack watches log group {pack['logGroupName']}; to be told of its alarms:\n"
              f"  trailkeeper monitoring install-cis --subscribe email:you@example.com\n\n"
              "Then: trailkeeper status; and README.md, \"A 5-minute tour\".\n", file=sys.stderr)
    service = Service(config, wrap_store=wrap_store)
    service.start()
    app = App(service)
    # Everything built so far lives as long as the server: moved out of the collector's reach,
    # a full collection no longer walks it, which cut event-loop stalls under load by half.
    gc.freeze()
    protocol = guarded_protocol(config.header_timeout.total_seconds(), app.refusals)
    server = uvicorn.Server(uvicorn.Config(
        app, host=config.host, port=config.port, loop="uvloop", http=protocol, lifespan="on",
        log_level="warning", access_log=False, timeout_graceful_shutdown=10,
    ))
    log.info("trailkeeper listening on http://%s:%d (account %s, region %s, data %s)",
             config.host, config.port, service.account.account_id, service.account.region, config.data_dir)
    # uvicorn re-raises the signal that stopped it once it has shut down; with these
    # handlers in place that re-raise is a no-op and we get to flush and exit 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _ignore_reraised_signal)
    try:
        server.run(sockets=[listening_socket(server.config, config.receive_buffer_bytes)])
    finally:
        log.info("trailkeeper stopping: delivering pending events")
        left = service.close()
        if left:
            waiting = ", ".join(f"{count} for trail {name}" for name, count in sorted(left.items()))
            log.warning("trailkeeper stopped with events not yet delivered (%s); they are kept in the spool "
                        "and delivered at the next start", waiting)
        else:
            log.info("trailkeeper stopped; every acknowledged event is delivered to its logging trails")
    return 0
