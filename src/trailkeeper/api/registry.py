"""The one registry of AWS operations: per service, how it is spoken and what each operation is.

A `ServiceSpec` says how a service is reached (SigV4 signing name, wire protocol, JSON target
prefix), under which event source its calls are recorded, and which botocore model it
follows. Each `OperationSpec` says what an operation needs (permission), whether CloudTrail
counts it as read-only, what its audit record keeps, and which handler runs it. The router
(`api/app.py`), the audit record, the permission check, the role table (`api/roles.py`) and
the native client all derive from it: adding an operation is one entry in its spec.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal, NoReturn, TypeVar

if TYPE_CHECKING:
    from trailkeeper.identity import Principal
    from trailkeeper.service import Service

# The wire protocols of botocore's models, and trailkeeper's own JSON API.
Protocol = Literal["json", "query", "rest-xml", "rest-json", "smithy-rpc-v2-cbor", "native"]
Params = dict[str, Any]
# The narrow domain a service's handlers take (Kms, IdentityStore, CloudTrailDomain, ...),
# never the whole runtime: `ServiceSpec.context` builds it from the service, once per app.
Ctx = TypeVar("Ctx")
Handler = Callable[[Ctx, "Principal", Params], dict[str, Any]]
# (requestParameters, responseElements, resources) an audit record keeps of one call; the
# response is None when the call was refused or failed.
AuditShape = tuple[dict[str, Any], dict[str, Any] | None, list[dict[str, str]] | None]
Auditor = Callable[[Ctx, str, Params, "dict[str, Any] | None"], AuditShape]


@dataclass(frozen=True)
class OperationSpec(Generic[Ctx]):
    """One operation: the handler, who may call it, and how its audit record is shaped."""

    handler: Handler[Ctx]
    permission: str
    read_only: bool  # CloudTrail's readOnly; read-only calls keep no responseElements
    auditor: Auditor[Ctx] | None = None  # None: the API's default (no secrets, trail/user resources)
    # Members beyond the AWS model's that the operation takes or answers (documented in
    # docs/contracts.md); AWS clients leave them out, and ignore them in answers.
    extensions: frozenset[str] = frozenset()
    # Bounded work answered on the event loop instead of the thread pool (see App._operation_inline).
    inline: bool = False


def _no_context(service: Service) -> NoReturn:
    raise TypeError("this service's operations are routed by its REST adapter, not by the registry")


@dataclass(frozen=True)
class ServiceSpec(Generic[Ctx]):
    """One AWS (or trailkeeper) service: how it is reached and the operations it answers."""

    name: str  # botocore's service name, or "trailkeeper" for the native-only operations
    title: str  # how messages name it ("CloudTrail", "KMS")
    signing_name: str  # the service of the SigV4 credential scope; requests are routed by it
    protocol: Protocol
    event_source: str  # the eventSource of its calls' audit records
    api_version: str = ""
    target_prefix: str = ""  # JSON protocol: X-Amz-Target is "<prefix>.<Operation>"
    # JSON 1.1 services differ in the HTTP status of client errors: CloudTrail answers them all
    # with 400 (the code is in the body), KMS keeps each error's own status.
    client_errors_as_400: bool = False
    # The AWS JSON version a JSON-speaking client uses ("1.1"; "1.0" for CloudWatch, whose older
    # botocore, the one the AWS CLI v1 carries, speaks JSON 1.0 where newer ones speak CBOR).
    json_version: str = "1.1"
    # Services once spoken in Query (botocore's `awsQueryCompatible`): errors also name the Query
    # code in `x-amzn-query-error`, which botocore prefers to the body's `__type`.
    query_compatible: bool = False
    has_model: bool = True  # False only for trailkeeper's own, native-only operations
    context: Callable[[Service], Ctx] = _no_context
    operations: Mapping[str, OperationSpec[Ctx]] = field(default_factory=dict)

    def operation_of_target(self, target: str) -> str | None:
        """The operation an X-Amz-Target names, if this service has it."""
        prefix = f"{self.target_prefix}."
        if not self.target_prefix or not target.startswith(prefix):
            return None
        name = target[len(prefix):]
        return name if name in self.operations else None


@dataclass(frozen=True)
class Found:
    service: ServiceSpec[Any]
    operation: OperationSpec[Any]


class Registry:
    """Every service spec, indexed by signing name and by operation name.

    Signing names are unique. An operation is found by its service and name (the AWS protocol
    adapters know the service); by name alone (the native API `POST /v1/ops/{Operation}`) only
    when one service has it: `TagResource`, say, is both CloudWatch Logs' and EventBridge's."""

    def __init__(self, specs: Iterable[ServiceSpec[Any]]) -> None:
        self.services: tuple[ServiceSpec[Any], ...] = tuple(specs)
        self._by_signing: dict[str, ServiceSpec[Any]] = {}
        self._by_operation: dict[str, Found] = {}
        self._by_service: dict[tuple[str, str], Found] = {}
        shared: set[str] = set()
        for spec in self.services:
            if spec.signing_name in self._by_signing:
                raise ValueError(f"two services sign as {spec.signing_name!r}; each needs its own signing name")
            self._by_signing[spec.signing_name] = spec
            for name, op in spec.operations.items():
                self._by_service[(spec.name, name)] = Found(spec, op)
                if name in self._by_operation:
                    shared.add(name)
                self._by_operation[name] = Found(spec, op)
        for name in shared:
            del self._by_operation[name]

    def with_spec(self, spec: ServiceSpec[Any]) -> Registry:
        """This registry and one more service (tests add test-only services this way)."""
        return Registry([*self.services, spec])

    @property
    def signing_names(self) -> frozenset[str]:
        return frozenset(self._by_signing)

    def service(self, signing_name: str) -> ServiceSpec[Any] | None:
        return self._by_signing.get(signing_name)

    def find(self, operation: str, service: str | None = None) -> Found | None:
        """The operation of `service` (botocore's name), or the one service's that has it."""
        if service is not None:
            return self._by_service.get((service, operation))
        return self._by_operation.get(operation)

    def operations(self) -> Mapping[tuple[str, str], Found]:
        """Every operation, by (service, operation name)."""
        return dict(self._by_service)
