"""ListTrails paging through boto3's own paginator: against a real server process, and against
the same App under uvicorn in-process with a small page size (a region holds at most five
trails, fewer than one page of 50)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
import uvicorn
from botocore.exceptions import ClientError
from tests.e2e.harness import Server, free_port
from tests.pipeline import open_pipeline

from trailkeeper.api import operations
from trailkeeper.api.app import App

NAMES = ["trail-c", "trail-a", "trail-e", "trail-b", "trail-d"]


def _cloudtrail(endpoint: str, region: str, key_id: str, secret: str) -> Any:
    return boto3.client("cloudtrail", endpoint_url=endpoint, region_name=region,
                        aws_access_key_id=key_id, aws_secret_access_key=secret)


def _create_trails(client: Any) -> None:
    for name in NAMES:
        client.create_trail(Name=name, S3BucketName=f"bucket-{name}")


def _paged_names(client: Any) -> list[list[str]]:
    pages = client.get_paginator("list_trails").paginate()
    return [[t["Name"] for t in page["Trails"]] for page in pages]


def test_paginator_against_a_server_process(tmp_path: Path) -> None:
    server = Server(tmp_path / "data")
    server.init()
    server.start()
    try:
        client = _cloudtrail(server.endpoint, server.creds["region"], server.creds["rootAccessKeyId"],
                             server.creds["rootSecretAccessKey"])
        _create_trails(client)
        assert _paged_names(client) == [sorted(NAMES)]
        assert "NextToken" not in client.list_trails()
        with pytest.raises(ClientError) as bad:
            client.list_trails(NextToken="bm90LWEtdG9rZW4")
        assert bad.value.response["Error"]["Code"] == "InvalidNextTokenException"
    finally:
        assert server.terminate() == 0


@pytest.fixture
def small_pages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A boto3 client of an in-process server whose ListTrails pages hold two trails."""
    monkeypatch.setattr(operations, "LIST_TRAILS_PAGE_SIZE", 2)
    with open_pipeline(tmp_path) as p:
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(App(p.service), host="127.0.0.1", port=port, lifespan="off",
                                               log_level="warning", access_log=False))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        endpoint = f"http://127.0.0.1:{port}"
        try:
            for _ in range(200):
                if server.started and httpx.get(f"{endpoint}/health").status_code == 200:
                    break
                thread.join(0.025)
            yield _cloudtrail(endpoint, p.creds.region, p.creds.access_key_id, p.creds.secret_access_key)
        finally:
            server.should_exit = True
            thread.join(10)


def test_paginator_follows_next_tokens(small_pages: Any) -> None:
    _create_trails(small_pages)
    assert _paged_names(small_pages) == [["trail-a", "trail-b"], ["trail-c", "trail-d"], ["trail-e"]]
    first = small_pages.list_trails()
    small_pages.delete_trail(Name="trail-c")
    # A token names the last trail it returned, so deletions between pages skip nothing.
    assert [t["Name"] for t in small_pages.list_trails(NextToken=first["NextToken"])["Trails"]] == ["trail-d", "trail-e"]
