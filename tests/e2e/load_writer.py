"""Load generator for the crash test: sends batches forever, logging each acknowledged id.

A batch is retried with the same Idempotency-Key until acknowledged, so a server killed
after its fsync but before its answer never gets the batch twice.
Usage: python load_writer.py ENDPOINT KEY SECRET REGION ACK_FILE
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime

from trailkeeper.client import Client


def main() -> None:
    endpoint, key, secret, region, ack_path = sys.argv[1:6]
    client = Client(endpoint, key, secret, region=region, timeout=5)
    with open(ack_path, "a", buffering=1) as acks:
        batch_no = 0
        while True:
            now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            records = [{"eventName": "Write", "eventSource": "load.example.com", "eventTime": now,
                        "sourceIPAddress": "192.0.2.1", "requestParameters": {"batch": batch_no, "i": i}}
                       for i in range(20)]
            key_id = f"crash-{batch_no}"
            while True:
                try:
                    ids = client.put_events(records, idempotency_key=key_id)
                    break
                except Exception:
                    time.sleep(0.05)
            acks.write(" ".join(ids) + "\n")
            batch_no += 1


if __name__ == "__main__":
    main()
