"""The composition root: one builder of a data directory's components for the server, the
validator and init; and handlers that receive their spec's narrow domain, never the service."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest
from tests.pipeline import open_pipeline

from trailkeeper.api import s3
from trailkeeper.api.operations import CLOUDTRAIL, CloudTrailDomain
from trailkeeper.api.services import DEFAULT_REGISTRY
from trailkeeper.bootstrap import init_with_config
from trailkeeper.config import load_config
from trailkeeper.errors import SpoolError
from trailkeeper.runtime import Runtime

# What a handler's domain may not be: the whole service, or anything at all.
WHOLE = {"Service", "Any", "object", "Runtime"}


def _first_parameter(handler: Any) -> str:
    first = next(iter(inspect.signature(handler).parameters.values()))
    annotation = first.annotation
    return annotation if isinstance(annotation, str) else getattr(annotation, "__name__", repr(annotation))


@pytest.mark.parametrize(("service", "name", "handler"),
                         [(spec.name, name, op.handler) for spec in DEFAULT_REGISTRY.services
                          for name, op in spec.operations.items()],
                         ids=lambda v: v if isinstance(v, str) else "")
def test_every_handler_takes_a_narrow_domain(service: str, name: str, handler: Any) -> None:
    assert _first_parameter(handler) not in WHOLE, f"{service}.{name} takes {_first_parameter(handler)}"


def test_every_context_builds_a_narrow_domain() -> None:
    for spec in DEFAULT_REGISTRY.services:
        returned = inspect.signature(spec.context).return_annotation
        assert returned not in WHOLE, f"{spec.name}'s context returns {returned}"


def test_the_s3_gateway_takes_a_bucket_source() -> None:
    assert _first_parameter(s3.handle_s3) == "BucketSource"


def _config(tmp_path: Path) -> Any:
    return load_config(tmp_path / "data", None)


def test_init_builds_through_the_runtime_and_the_validator_needs_no_root_of_trust(tmp_path: Path) -> None:
    config = _config(tmp_path)
    creds = init_with_config(config)
    runtime = Runtime(config)
    try:
        assert runtime.account().account_id == creds.account_id
        assert runtime.trails.all() == []
        # Reading trails (the validator's stored mode) opened neither the root of trust nor the KMS.
        assert "keyring" not in runtime.__dict__ and runtime._kms is None
        assert runtime.trails is runtime.trails  # built once
    finally:
        runtime.close()


def test_the_service_runs_the_components_its_runtime_built(tmp_path: Path) -> None:
    with open_pipeline(tmp_path) as pipe:
        service, runtime = pipe.service, pipe.service.runtime
        assert (service.trails, service.identity, service.keys, service.spool, service.history, service.channels) == (
            runtime.trails, runtime.identity, runtime.signing_keys, runtime.spool, runtime.history, runtime.channels)
        assert service.kms is runtime.kms("ignored", "ignored")  # one KMS, built with the account
        domain = CLOUDTRAIL.context(service)
        assert isinstance(domain, CloudTrailDomain)
        assert (domain.region, domain.history, domain.keys, domain.kms) == (
            service.account.region, runtime.history, runtime.signing_keys, service.kms)


def test_close_closes_what_was_built_and_only_that(tmp_path: Path) -> None:
    config = _config(tmp_path)
    init_with_config(config)
    runtime = Runtime(config)
    spool = runtime.spool
    runtime.close()
    assert "history" not in runtime.__dict__ and "identity" not in runtime.__dict__
    with pytest.raises(SpoolError, match="closed"):
        spool.append([b"{}"])
    again = Runtime(config)  # the spool's directory lock was released
    try:
        assert again.spool.next_seq() == spool.next_seq()
    finally:
        again.close()
