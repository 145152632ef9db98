"""The `trailkeeper` command line: parsing, output shapes and error printing, no server needed.

Client.call / Client.put_events are replaced by a recorder, so every test also checks the
AWS-shaped parameters the typed client conveniences send for each command.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import orjson
import pytest
from click.testing import CliRunner, Result

from trailkeeper import cli
from trailkeeper.client import ApiError, Client
from trailkeeper.errors import RecordError


@dataclass
class FakeApi:
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    answers: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, Exception] = field(default_factory=dict)
    batches: list[tuple[list[dict[str, Any]], str | None]] = field(default_factory=list)
    clients: list[Client] = field(default_factory=list)

    def call(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        self.calls.append((operation, params))
        if operation in self.errors:
            raise self.errors[operation]
        answer = self.answers.get(operation, {})
        if isinstance(answer, list):  # successive pages
            return dict(answer.pop(0))
        return dict(answer)

    def operations(self) -> list[str]:
        return [operation for operation, _ in self.calls]


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> FakeApi:
    fake = FakeApi()
    original_init = Client.__init__

    def init(self: Client, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        fake.clients.append(self)

    def call(self: Client, operation: str, **params: Any) -> dict[str, Any]:
        return fake.call(operation, params)

    def put_events(self: Client, records: Any, idempotency_key: str | None = None) -> list[str]:
        fake.batches.append((list(records), idempotency_key))
        start = sum(len(batch) for batch, _ in fake.batches[:-1])
        return [f"ev-{start + i}" for i in range(len(records))]

    monkeypatch.setattr(Client, "__init__", init)
    monkeypatch.setattr(Client, "call", call)
    monkeypatch.setattr(Client, "put_events", put_events)
    for name in ("TRAILKEEPER_ENDPOINT", "TRAILKEEPER_CONFIG", "TRAILKEEPER_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TRAILKEEPER_REGION", "eu-west-3")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "TKIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("COLUMNS", "200")
    return fake


def run(*args: str, stdin: str | bytes | None = None, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli.main, list(args), input=stdin, env=env)


def run_json(*args: str, stdin: str | bytes | None = None) -> Any:
    result = run(*args, stdin=stdin)
    assert result.exit_code == 0, result.output
    return orjson.loads(result.stdout)


# -- pure parsers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T12:00:00Z", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T14:00:00+02:00", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T12:00:00", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01", datetime(2024, 5, 1, tzinfo=UTC)),
        ("1714564800", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("1714564800.25", datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=UTC)),
        (" 0 ", datetime(1970, 1, 1, tzinfo=UTC)),
    ],
)
def test_parse_time(text: str, expected: datetime) -> None:
    parsed = cli.parse_time(text)
    assert parsed == expected
    assert parsed.utcoffset() is not None and parsed.utcoffset().total_seconds() == 0  # type: ignore[union-attr]


@pytest.mark.parametrize("text", ["yesterday", "", "2024-13-01", "12:00"])
def test_parse_time_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="ISO 8601"):
        cli.parse_time(text)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1s", 1), ("30s", 30), ("1m", 60), ("2h", 7200), ("90", 90), ("1d", 86400), ("5M", 300)],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert cli.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["0", "0s", "-5", "1.5m", "1x", "", "m", "1 hour"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        cli.parse_duration(text)


def test_parse_attribute() -> None:
    assert cli.parse_attribute("Username=alice") == ("Username", "alice")
    assert cli.parse_attribute("ResourceName=a=b") == ("ResourceName", "a=b")
    for bad in ("Username", "=alice"):
        with pytest.raises(ValueError, match="Key=Value"):
            cli.parse_attribute(bad)


@pytest.mark.parametrize(
    "data",
    [
        b'[{"a": 1}, {"a": 2}]',
        b'{"Records": [{"a": 1}, {"a": 2}]}',
        b'{"a": 1}\n\n{"a": 2}\n',
        b'  {"a": 1}\r\n{"a": 2}',
    ],
)
def test_load_records_formats(data: bytes) -> None:
    assert cli.load_records(data, "f") == [{"a": 1}, {"a": 2}]


def test_load_records_single_object_is_one_record() -> None:
    assert cli.load_records(b'{"eventName": "X"}', "f") == [{"eventName": "X"}]


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "holds no records"),
        (b"[]", "holds no records"),
        (b'[{"a": 1}, 5]', "record 1: is a int"),
        (b'{"a": 1}\n{"a": \n', "line 2 of f is not valid JSON"),
        (b'{"a": 1}\n[1]\n', "line 2 of f is not a JSON object"),
        (b'"text"', "neither an array nor an object"),
    ],
)
def test_load_records_errors(data: bytes, match: str) -> None:
    with pytest.raises(RecordError, match=match) as caught:
        cli.load_records(data, "f")
    assert "NDJSON" in caught.value.hint or "per line" in caught.value.hint


# -- help ----------------------------------------------------------------------------------


def _command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield prefix
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _command_paths(command, (*prefix, name))
        else:
            yield (*prefix, name)


ALL_COMMANDS = list(_command_paths(cli.main))


def test_every_documented_command_exists() -> None:
    expected = {
        ("init",), ("server",), ("validate",), ("record",), ("lookup",), ("public-keys",),
        ("status",), ("user", "create"), ("user", "list"), ("user", "delete"),
        ("key", "create"), ("key", "list"), ("key", "deactivate"), ("key", "activate"),
        ("key", "delete"), ("trail", "create"), ("trail", "update"), ("trail", "delete"),
        ("trail", "start"), ("trail", "stop"), ("trail", "describe"), ("trail", "status"),
        ("trail", "list"),
    }  # fmt: skip
    assert expected <= set(ALL_COMMANDS)


@pytest.mark.parametrize("path", ALL_COMMANDS, ids=lambda p: " ".join(p) or "main")
def test_help(path: tuple[str, ...]) -> None:
    for flag in ("--help", "-h"):
        result = run(*path, flag)
        assert result.exit_code == 0, result.output
        assert result.stdout.startswith("Usage: ")
        assert " ".join(("main", *path)) in result.stdout.split("\n", 1)[0]


# -- errors --------------------------------------------------------------------------------


def test_api_error_is_printed_once_on_stderr_with_exit_1(api: FakeApi) -> None:
    api.errors["GetTrailStatus"] = ApiError("TrailNotFoundException", "no trail nope", 404)
    result = run("trail", "status", "nope")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("error: TrailNotFoundException: no trail nope")
    assert "hint: list the trails with `trailkeeper trail list`" in result.stderr
    assert result.stderr.count("error:") == 1


@pytest.mark.parametrize("missing", ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"])
def test_missing_credentials_say_what_to_set(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    monkeypatch.delenv(missing)
    result = run("user", "list")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: missing credentials: {missing} not set")
    assert "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in result.stderr
    assert api.calls == []


@pytest.mark.parametrize(
    "args",
    [
        ["trail", "create", "t", "--flush-interval", "soon"],
        ["trail", "create", "t", "--read-write-type", "Sometimes"],
        ["lookup", "--start-time", "yesterday"],
        ["lookup", "--attribute", "alice"],
        ["lookup", "--max-results", "0"],
        ["record", "--batch-size", "101"],
        ["user", "create", "bob"],
        ["validate", "--trail", "t"],
        ["validate", "--trail", "t", "--start-time", "2024-01-01", "--mode", "quick"],
        ["key", "deactivate"],
        ["no-such-command"],
    ],
)
def test_usage_errors_exit_2(api: FakeApi, args: list[str]) -> None:
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert "Usage:" in result.stderr
    assert api.calls == []


# -- settings ------------------------------------------------------------------------------


def test_endpoint_defaults_and_region_from_env(api: FakeApi) -> None:
    run_json("trail", "list", "--json")
    (client,) = api.clients
    assert client.endpoint == cli.DEFAULT_ENDPOINT
    assert client.region == "eu-west-3"


def test_endpoint_option_on_command_beats_root_and_env(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRAILKEEPER_ENDPOINT", "http://env:1")
    run_json("trail", "list", "--json")
    run_json("--endpoint-url", "http://root:2", "trail", "list", "--json")
    run_json("--endpoint-url", "http://root:2", "trail", "list", "--endpoint-url", "http://cmd:3/", "--json")  # fmt: skip
    assert [c.endpoint for c in api.clients] == ["http://env:1", "http://root:2", "http://cmd:3"]


@pytest.mark.parametrize(
    ("host", "endpoint"),
    [
        ("10.1.2.3", "http://10.1.2.3:9999"),
        ("0.0.0.0", "http://127.0.0.1:9999"),
        ("::", "http://[::1]:9999"),
    ],
)
def test_endpoint_from_the_server_config_file(
    api: FakeApi, tmp_path: Path, host: str, endpoint: str
) -> None:
    config = tmp_path / "tk.toml"
    config.write_text(f'host = "{host}"\nport = 9999\n')
    run_json("status", "--config", str(config), "--json")
    run_json("--config", str(config), "status", "--endpoint-url", "http://typed:1", "--json")
    assert [c.endpoint for c in api.clients] == [endpoint, "http://typed:1"]


def test_unreadable_config_is_an_error(api: FakeApi, tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[client\n")
    result = run("--config", str(config), "status")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: cannot read config file {config}")
    assert api.calls == []


# -- init / server / validate (modules of the server side, replaced here) -----------------


@pytest.fixture
def fake_module(monkeypatch: pytest.MonkeyPatch) -> Any:
    def install(name: str, **functions: Any) -> None:
        module = types.ModuleType(f"trailkeeper.{name}")
        for attr, value in functions.items():
            setattr(module, attr, value)
        monkeypatch.setitem(sys.modules, f"trailkeeper.{name}", module)

    monkeypatch.delenv("TRAILKEEPER_DATA_DIR", raising=False)
    monkeypatch.delenv("TRAILKEEPER_CONFIG", raising=False)
    return install


def recorder(seen: list[tuple[Any, ...]], answer: Any) -> Any:
    def record(*args: Any, **kwargs: Any) -> Any:
        seen.append((*args, kwargs) if kwargs else args)
        return answer

    return record


def _root(region: str | None) -> Any:
    return types.SimpleNamespace(
        account_id="123456789012",
        region=region or "us-east-1",
        access_key_id="TKIAROOT",
        secret_access_key="rootsecret",
    )


def test_init_json(fake_module: Any, tmp_path: Path) -> None:
    seen: list[tuple[Any, ...]] = []
    packs: list[tuple[Any, ...]] = []
    fake_module("bootstrap", init_data_dir=recorder(seen, _root("eu-north-1")),
                install_pack_in=recorder(packs, {"logGroupName": "aws-cloudtrail-logs-1-ab", "topicArn": "arn:t"}))
    document = run_json(
        "init", "--data-dir", str(tmp_path / "d"), "--region", "eu-north-1", "--json"
    )
    assert document == {
        "accountId": "123456789012",
        "region": "eu-north-1",
        "rootAccessKeyId": "TKIAROOT",
        "rootSecretAccessKey": "rootsecret",
        "monitoringLogGroup": "aws-cloudtrail-logs-1-ab",
        "monitoringTopicArn": "arn:t",
    }
    assert list(document)[:4] == ["accountId", "region", "rootAccessKeyId", "rootSecretAccessKey"]
    assert seen == [(tmp_path / "d", "eu-north-1", {"config_path": None})]
    assert packs == [(tmp_path / "d", {"config_path": None})]


def test_init_without_the_cis_pack(fake_module: Any, tmp_path: Path) -> None:
    seen: list[tuple[Any, ...]] = []
    packs: list[tuple[Any, ...]] = []
    fake_module("bootstrap", init_data_dir=recorder(seen, _root("eu-north-1")), install_pack_in=recorder(packs, {}))
    document = run_json("init", "--data-dir", str(tmp_path / "d"), "--no-cis-pack", "--json")
    assert "monitoringLogGroup" not in document and packs == [] and len(seen) == 1


def test_init_human_output_warns_the_secret_is_shown_once(fake_module: Any) -> None:
    seen: list[tuple[Any, ...]] = []
    fake_module("bootstrap", init_data_dir=recorder(seen, _root(None)),
                install_pack_in=recorder([], {"logGroupName": "g", "topicArn": "arn:t"}))
    result = run("init", "--config", "tk.toml")
    assert result.exit_code == 0, result.output
    assert "shown once" in result.stdout
    assert "export AWS_SECRET_ACCESS_KEY=rootsecret" in result.stdout
    assert seen == [(cli.DEFAULT_DATA_DIR, None, {"config_path": Path("tk.toml")})]


def test_server_passes_settings_and_exit_code(fake_module: Any, tmp_path: Path) -> None:
    seen: list[tuple[Any, ...]] = []
    fake_module("server", serve=recorder(seen, 3))
    config = tmp_path / "c.toml"
    result = run("server", "--data-dir", str(tmp_path), "--host", "0.0.0.0", "--port", "9001", "--config", str(config))  # fmt: skip
    assert result.exit_code == 3
    assert seen == [(tmp_path, "0.0.0.0", 9001, config)]
    run("server")
    assert seen[1] == (None, None, None, None)


def test_validate_passes_parsed_arguments(fake_module: Any, tmp_path: Path) -> None:
    from trailkeeper.validate.command import Selection

    seen: list[tuple[Any, ...]] = []
    fake_module("validate.command", validate_command=recorder(seen, 0), Selection=Selection)
    result = run(
        "validate", "--data-dir", str(tmp_path), "--trail", "main",
        "--start-time", "2024-05-01", "--end-time", "1714564800",
        "--verbose", "--json", "--mode", "stored",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    start, end = datetime(2024, 5, 1, tzinfo=UTC), datetime(2024, 5, 1, 12, tzinfo=UTC)
    main = Selection("main")
    assert seen == [(tmp_path, main, start, end, True, True, "stored", {"config_path": None})]
    fake_module("validate.command", validate_command=recorder(seen, 1), Selection=Selection)
    result = run("validate", "--trail", "main", "--start-time", "2024-05-01T00:00:00Z")
    assert result.exit_code == 1
    assert seen[1] == (None, main, start, None, False, False, "full", {"config_path": None})
    run("validate", "--trail", "main", "--start-time", "2024-05-01T00:00:00Z", "--s3-bucket", "old-logs",
        "--s3-prefix", "p", "--account-id", "111122223333")
    assert seen[2][1] == Selection("main", "old-logs", "p", "111122223333")


def test_data_dir_from_env(
    fake_module: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen: list[tuple[Any, ...]] = []
    fake_module("server", serve=recorder(seen, 0))
    monkeypatch.setenv("TRAILKEEPER_DATA_DIR", str(tmp_path))
    assert run("server").exit_code == 0
    assert seen[0][0] == tmp_path


# -- users and keys ------------------------------------------------------------------------


def test_user_commands(api: FakeApi) -> None:
    user = {"UserName": "bob", "UserId": "U1", "Arn": "arn:x", "Role": "reader", "CreateDate": 0}
    api.answers = {"CreateUser": {"User": user}, "ListUsers": {"Users": [user]}}
    assert run_json("user", "create", "bob", "--role", "reader", "--json") == user
    assert run_json("user", "list", "--json") == {"Users": [user]}
    listed = run("user", "list")
    assert "bob" in listed.stdout and "1970-01-01T00:00:00Z" in listed.stdout
    assert run("user", "delete", "bob").stdout == "user bob deleted\n"
    assert api.calls == [
        ("CreateUser", {"UserName": "bob", "Role": "reader"}),
        ("ListUsers", {}),
        ("ListUsers", {}),
        ("DeleteUser", {"UserName": "bob"}),
    ]


def test_key_commands(api: FakeApi) -> None:
    created = {
        "UserName": "bob",
        "AccessKeyId": "TKIA2",
        "SecretAccessKey": "s2",
        "Status": "Active",
    }
    api.answers = {
        "CreateAccessKey": {"AccessKey": created},
        "ListAccessKeys": {"AccessKeyMetadata": [{"AccessKeyId": "TKIA2", "Status": "Active"}]},
    }
    document = run_json("key", "create", "bob", "--json")
    assert (document["AccessKeyId"], document["SecretAccessKey"]) == ("TKIA2", "s2")
    human = run("key", "create")
    assert "shown once" in human.stdout and "TKIA2" in human.stdout
    assert run_json("key", "list", "bob", "--json") == {
        "AccessKeyMetadata": [{"AccessKeyId": "TKIA2", "Status": "Active"}]
    }
    assert run("key", "deactivate", "TKIA2", "--user", "bob").exit_code == 0
    assert run("key", "activate", "TKIA2").stdout == "access key TKIA2 is Active\n"
    assert run("key", "delete", "TKIA2", "--user", "bob").exit_code == 0
    assert api.calls == [
        ("CreateAccessKey", {"UserName": "bob"}),
        ("CreateAccessKey", {}),
        ("ListAccessKeys", {"UserName": "bob"}),
        ("UpdateAccessKey", {"UserName": "bob", "AccessKeyId": "TKIA2", "Status": "Inactive"}),
        ("UpdateAccessKey", {"AccessKeyId": "TKIA2", "Status": "Active"}),
        ("DeleteAccessKey", {"UserName": "bob", "AccessKeyId": "TKIA2"}),
    ]


# -- trails --------------------------------------------------------------------------------


def test_trail_create_maps_every_option(
    api: FakeApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    api.answers = {
        "CreateTrail": {"Name": "main", "TrailARN": "arn:t"},
        "PutEventSelectors": {"EventSelectors": [{"ReadWriteType": "WriteOnly"}]},
    }
    document = run_json(
        "trail", "create", "main", "--destination", "out", "--prefix", "audit",
        "--validation", "--flush-interval", "1s", "--digest-interval", "1m",
        "--read-write-type", "writeonly", "--json",
    )  # fmt: skip
    assert document == {
        "Name": "main",
        "TrailARN": "arn:t",
        "EventSelectors": [{"ReadWriteType": "WriteOnly"}],
    }
    assert api.calls == [
        (
            "CreateTrail",
            {
                "Name": "main",
                "Destination": str(tmp_path / "out"),
                "S3KeyPrefix": "audit",
                "EnableLogFileValidation": True,
                "FlushIntervalSeconds": 1,
                "DigestIntervalSeconds": 60,
            },
        ),
        (
            "PutEventSelectors",
            {
                "TrailName": "main",
                "EventSelectors": [{"ReadWriteType": "WriteOnly", "IncludeManagementEvents": True}],
            },
        ),
    ]


def test_trail_create_minimal_and_human_output(api: FakeApi) -> None:
    api.answers = {"CreateTrail": {"Name": "t", "LogFileValidationEnabled": False}}
    result = run("trail", "create", "t", "--destination", "/srv/out")
    assert result.exit_code == 0, result.output
    assert "trail t created" in result.stdout and "false" in result.stdout
    assert api.calls == [("CreateTrail", {"Name": "t", "Destination": "/srv/out"})]


def test_trail_update_sends_only_given_options(api: FakeApi) -> None:
    assert run("trail", "update", "t", "--no-validation", "--flush-interval", "90").exit_code == 0
    assert api.calls == [
        ("UpdateTrail", {"Name": "t", "EnableLogFileValidation": False, "FlushIntervalSeconds": 90})
    ]


def test_trail_lifecycle_commands(api: FakeApi) -> None:
    for verb, message in [
        ("start", "logging started"),
        ("stop", "logging stopped"),
        ("delete", "deleted"),
    ]:
        result = run("trail", verb, "t")
        assert result.exit_code == 0 and message in result.stdout
    assert api.calls == [
        ("StartLogging", {"Name": "t"}),
        ("StopLogging", {"Name": "t"}),
        ("DeleteTrail", {"Name": "t"}),
    ]


def test_trail_describe_list_status(api: FakeApi) -> None:
    trail = {
        "Name": "t",
        "Destination": "/d",
        "LogFileValidationEnabled": True,
        "TrailARN": "arn:t",
    }
    status = {"IsLogging": True, "LatestDeliveryTime": 1714564800}
    api.answers = {
        "DescribeTrails": {"trailList": [trail]},
        "ListTrails": {"Trails": [{"Name": "t", "TrailARN": "arn:t", "HomeRegion": "eu-west-3"}]},
        "GetTrailStatus": status,
    }
    assert run_json("trail", "describe", "t", "u", "--json") == {"trailList": [trail]}
    assert "arn:t" in run("trail", "describe").stdout
    assert run_json("trail", "list", "--json")["Trails"][0]["Name"] == "t"
    assert "eu-west-3" in run("trail", "list").stdout
    assert run_json("trail", "status", "t", "--json") == status
    assert "2024-05-01T12:00:00Z" in run("trail", "status", "t").stdout
    assert api.calls[:2] == [
        ("DescribeTrails", {"trailNameList": ["t", "u"]}),
        ("DescribeTrails", {}),
    ]
    assert api.calls[-1] == ("GetTrailStatus", {"Name": "t"})


# -- record --------------------------------------------------------------------------------


def test_record_file_in_batches_with_idempotency_keys(api: FakeApi, tmp_path: Path) -> None:
    source = tmp_path / "events.json"
    source.write_bytes(orjson.dumps({"Records": [{"n": i} for i in range(250)]}))
    document = run_json(
        "record", "--file", str(source), "--batch-size", "100", "--idempotency-key-prefix", "run1", "--json"
    )  # fmt: skip
    assert document == {"Count": 250, "EventIds": [f"ev-{i}" for i in range(250)]}
    assert [(len(batch), key) for batch, key in api.batches] == [
        (100, "run1-0"),
        (100, "run1-1"),
        (50, "run1-2"),
    ]


def test_record_ndjson_from_stdin(api: FakeApi) -> None:
    result = run("record", stdin='{"eventName": "A"}\n{"eventName": "B"}\n')
    assert result.exit_code == 0, result.output
    assert result.stdout == "recorded 2 events in 1 batch(es)\n"
    [(records, key)] = api.batches
    assert records == [{"eventName": "A"}, {"eventName": "B"}]
    assert key is not None and key.startswith("record-0-")  # a re-run stores nothing twice
    assert run("record", "--file", "-", stdin="[{}]").exit_code == 0


def test_record_bad_input_is_an_error_before_sending(api: FakeApi) -> None:
    result = run("record", stdin='{"a": 1}\nnot json\n')
    assert result.exit_code == 1
    assert result.stderr.startswith("error: line 2 of stdin is not valid JSON")
    assert api.batches == []


def test_record_progress_bar_only_on_a_terminal_for_big_uploads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import rich.progress

    seen: list[int] = []

    class Bar:
        def __init__(self, **_: Any) -> None:
            seen.append(0)

        def __enter__(self) -> Bar:
            return self

        def __exit__(self, *_: object) -> None:
            pass

        def add_task(self, *_: Any, **__: Any) -> int:
            return 0

        def advance(self, _: int, count: int) -> None:
            seen[-1] += count

    class Recorder:
        def put_events(self, records: Any, idempotency_key: Any = None) -> list[str]:
            return ["x"] * len(records)

    monkeypatch.setattr(rich.progress, "Progress", Bar)
    many: list[dict[str, Any]] = [{}] * (cli.events.PROGRESS_BAR_MIN_RECORDS + 1)
    places = [f"record {i}" for i in range(len(many))]
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert len(cli.events._send_records(Recorder(), many, places, 100, None, "f")) == len(many)  # type: ignore[arg-type]
    cli.events._send_records(Recorder(), many[:10], places, 100, None, "f")  # type: ignore[arg-type]
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False)
    cli.events._send_records(Recorder(), many, places, 100, None, "f")  # type: ignore[arg-type]
    assert seen == [len(many)]  # one bar, for the big upload to a terminal, that reached the end


def test_record_of_any_length_names_the_refused_records_place_and_what_was_stored(
        api: FakeApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = [orjson.dumps({"eventName": f"E{i}"}).decode() for i in range(151)]
    path = tmp_path / "events.ndjson"
    path.write_text("\n".join(lines) + "\n")

    def refuse_the_last(self: Client, records: Any, idempotency_key: str | None = None) -> list[str]:
        api.batches.append((list(records), idempotency_key))
        if any(r.get("eventName") == "E150" for r in records):
            raise ApiError("InvalidRecord", "field eventTime: is required", 400, index=len(records) - 1,
                           path="eventTime")
        return [f"ev-{r['eventName']}" for r in records]

    monkeypatch.setattr(Client, "put_events", refuse_the_last)
    failed = run("record", "--file", str(path))
    assert failed.exit_code == 1
    assert "100 record(s) stored" in failed.stderr and "line 151 of" in failed.stderr
    first_keys = [key for _, key in api.batches]
    lines[150] = orjson.dumps({"eventName": "Fixed"}).decode()
    path.write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(Client, "put_events", lambda self, records, idempotency_key=None: (
        api.batches.append((list(records), idempotency_key)) or ["x"] * len(records)))
    assert run("record", "--file", str(path)).exit_code == 0
    again = [key for _, key in api.batches[len(first_keys):]]
    assert again[0] == first_keys[0] and again[1] != first_keys[1]  # the stored batch keeps its key


# -- lookup --------------------------------------------------------------------------------

EVENT = {
    "EventId": "e-1",
    "EventName": "PutObject",
    "EventTime": 1714564800,
    "Username": "alice",
    "EventSource": "s3.amazonaws.com",
    "CloudTrailEvent": "{}",
}


def test_lookup_json_one_page(api: FakeApi) -> None:
    api.answers = {"LookupEvents": {"Events": [EVENT], "NextToken": "n1"}}
    document = run_json(
        "lookup", "--attribute", "Username=alice", "--start-time", "2024-05-01T00:00:00Z",
        "--end-time", "1714564800", "--max-results", "5", "--next-token", "n0", "--json",
    )  # fmt: skip
    assert document == {"Events": [EVENT], "NextToken": "n1"}
    assert api.calls == [
        (
            "LookupEvents",
            {
                "LookupAttributes": [{"AttributeKey": "Username", "AttributeValue": "alice"}],
                "StartTime": 1714521600,
                "EndTime": 1714564800,
                "MaxResults": 5,
                "NextToken": "n0",
            },
        )
    ]


def test_lookup_all_follows_tokens(api: FakeApi) -> None:
    second = dict(EVENT, EventId="e-2")
    api.answers = {"LookupEvents": [{"Events": [EVENT], "NextToken": "n1"}, {"Events": [second]}]}
    document = run_json("lookup", "--all", "--json")
    assert document == {"Events": [EVENT, second], "NextToken": None}
    assert [params.get("NextToken") for _, params in api.calls] == [None, "n1"]


def test_lookup_human_table(api: FakeApi) -> None:
    api.answers = {"LookupEvents": {"Events": [EVENT], "NextToken": "n1"}}
    result = run("lookup", "--attribute", "EventName=PutObject")
    assert result.exit_code == 0, result.output
    header = next(line for line in result.stdout.splitlines() if "EventTime" in line)
    assert [
        c for c in ("EventTime", "EventName", "Username", "EventSource", "EventId") if c in header
    ]
    assert header.index("EventTime") < header.index("EventName") < header.index("EventId")
    for text in ("2024-05-01T12:00:00Z", "PutObject", "alice", "s3.amazonaws.com", "e-1"):
        assert text in result.stdout
    assert "--next-token n1" in result.stderr


# -- public keys and status ----------------------------------------------------------------


def test_public_keys(api: FakeApi) -> None:
    key = {
        "Fingerprint": "ab12",
        "ValidityStartTime": 1714564800,
        "ValidityEndTime": None,
        "Value": "MII",
    }
    api.answers = {"ListPublicKeys": {"PublicKeyList": [key]}}
    assert run_json("public-keys", "--json") == {"PublicKeyList": [key]}
    human = run("public-keys", "--start-time", "2024-05-01")
    assert "ab12" in human.stdout and "2024-05-01T12:00:00Z" in human.stdout
    assert api.calls[1] == ("ListPublicKeys", {"StartTime": 1714521600})


def test_status(api: FakeApi) -> None:
    answer = {"Spool": {"Lag": 0}, "Healthy": True}
    api.answers = {"GetServerStatus": answer}
    document = run_json("status", "--json")
    assert document == answer and list(document) == ["Spool", "Healthy"]
    human = run("status")
    assert "Spool.Lag" in human.stdout and "true" in human.stdout and "{" not in human.stdout  # fields, not JSON


def test_tables_fit_80_columns(api: FakeApi) -> None:
    event = {"EventId": "0193a0b2-7c41-7d2e-9f3a-1b2c3d4e5f60", "EventName": "ConsoleLogin",
             "EventTime": 1714564800, "Username": "alice.longname", "EventSource": "signin.amazonaws.com",
             "CloudTrailEvent": '{"metadata": {"ingestionTime": "2024-05-01T12:00:01Z"}}'}
    api.answers = {"LookupEvents": {"Events": [event, event]}}
    human = run("lookup", env={"COLUMNS": "80"})
    assert max(len(line) for line in human.stdout.splitlines()) <= 80
    assert "EventId      0193a0b2-7c41-7d2e-9f3a-1b2c3d4e5f60" in human.stdout  # whole, never folded
    assert "Received     2024-05-01T12:00:01Z" in human.stdout
