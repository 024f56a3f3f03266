"""Plugin settings checked against the schemas plugins serve, and how the cluster state keeps those schemas."""

from __future__ import annotations

import copy
import json
import pickle

import pytest

from horae import config_check
from horae.cluster.schemas import plugin_key, schema_refs
from horae.cluster.state import COMMAND_FORMAT_VERSION, ClusterState
from horae.config_check import PluginConfigs, closest_key
from horae.model import Job, ValidationError
from horae_plugins.files import FilesProcessor
from horae_plugins.fluent.config import CONFIG_SCHEMA as FLUENT_SCHEMA
from horae_plugins.http.config import CONFIG_SCHEMA as HTTP_SCHEMA
from horae_plugins.kafka.config import CONFIG_SCHEMA as KAFKA_SCHEMA
from horae_plugins.log import LogProcessor
from horae_plugins.nats.config import CONFIG_SCHEMA as NATS_SCHEMA
from horae_plugins.noop import NoopExecutor
from horae_plugins.rabbitmq.config import CONFIG_SCHEMA as RABBITMQ_SCHEMA
from horae_plugins.shell.config import CONFIG_SCHEMA as SHELL_SCHEMA
from horae_plugins.syslog.config import CONFIG_SCHEMA as SYSLOG_SCHEMA

# What a node running every built-in plugin reports (PluginHost.config_schemas()).
BUILTIN = {
    "executor:shell": json.dumps(SHELL_SCHEMA),
    "executor:http": json.dumps(HTTP_SCHEMA),
    "executor:kafka": json.dumps(KAFKA_SCHEMA),
    "executor:nats": json.dumps(NATS_SCHEMA),
    "executor:rabbitmq": json.dumps(RABBITMQ_SCHEMA),
    "executor:noop": json.dumps(NoopExecutor.config_schema),
    "processor:log": json.dumps(LogProcessor.config_schema),
    "processor:files": json.dumps(FilesProcessor.config_schema),
    "processor:syslog": json.dumps(SYSLOG_SCHEMA),
    "processor:fluent": json.dumps(FLUENT_SCHEMA),
}
BUILTIN_EXECUTORS = sorted(key.split(":")[1] for key in BUILTIN if key.startswith("executor:"))


def put_member(state: ClusterState, name: str, reported: dict[str, str], status: str = "alive", **extra) -> None:
    """What the leader commits when a node registers (links._register), schemas included."""
    refs, texts = schema_refs(reported)
    executors = [key.split(":", 1)[1] for key in reported if key.startswith("executor:")]
    member = {"name": name, "role": "client", "executors": executors, "config_schemas": refs, "status": status}
    command = {"v": COMMAND_FORMAT_VERSION, "op": "put_member", "member": {**member, **extra}, "schemas": texts}
    assert state.apply(command).ok


def checker(state: ClusterState | None = None, local: dict[str, str] | None = None) -> PluginConfigs:
    return PluginConfigs(state or ClusterState(), "me", BUILTIN if local is None else local)


def job(executor: str = "shell", config: dict | None = None, **fields) -> dict:
    return {
        "name": "j",
        "schedule": "@daily",
        "executor": executor,
        "executor_config": {"command": "true"} if config is None else config,
        **fields,
    }


def problems_of(configs: PluginConfigs, data: dict) -> dict[str, str]:
    try:
        Job.from_json(data, check=configs.check)
    except ValidationError as error:
        return {e.field: e.message for e in error.errors}
    return {}


def warnings_of(configs: PluginConfigs, data: dict) -> list[str]:
    warnings: list[str] = []
    Job.from_json(data, strict=False, warnings=warnings, check=configs.check)
    return warnings


# -- the state keeps each schema once ----------------------------------------------------------------
def test_a_thousand_agents_with_the_same_plugins_store_each_schema_once() -> None:
    state = ClusterState()
    for i in range(1000):
        put_member(state, f"agent-{i}", BUILTIN)

    assert len(state.schemas) == len(BUILTIN)
    record = state.members["agent-7"]
    assert set(record["config_schemas"]) == set(BUILTIN)
    assert all(len(digest) == 32 for digest in record["config_schemas"].values())
    assert json.loads(state.schemas[record["config_schemas"]["executor:shell"]]) == SHELL_SCHEMA


def test_registering_again_changes_nothing_and_is_not_a_new_version() -> None:
    state = ClusterState()
    put_member(state, "a", BUILTIN)
    version = state.members_version
    refs, texts = schema_refs(BUILTIN)
    member = {"name": "a", "role": "client", "executors": BUILTIN_EXECUTORS, "config_schemas": refs}

    result = state.apply({"v": COMMAND_FORMAT_VERSION, "op": "put_member", "member": member, "schemas": texts})

    assert (result.ok, result.reason) == (True, "unchanged")
    assert state.members_version == version


def test_schemas_no_member_names_are_dropped() -> None:
    state = ClusterState()
    put_member(state, "old", {"executor:probe": '{"properties": {"a": {}}}'})
    put_member(state, "new", {"executor:probe": '{"properties": {"b": {}}}'})
    assert len(state.schemas) == 2

    put_member(state, "old", {"executor:probe": '{"properties": {"b": {}}}'})  # upgraded
    assert len(state.schemas) == 1
    assert state.apply({"v": COMMAND_FORMAT_VERSION, "op": "remove_member", "name": "old"}).ok
    assert len(state.schemas) == 1
    assert state.apply({"v": COMMAND_FORMAT_VERSION, "op": "remove_member", "name": "new"}).ok
    assert state.schemas == {}


def test_a_command_without_schema_refs_keeps_the_record_s_refs() -> None:
    state = ClusterState()
    put_member(state, "a", BUILTIN)
    refs = state.members["a"]["config_schemas"]
    older = {"name": "a", "role": "client", "executors": BUILTIN_EXECUTORS, "status": "alive"}

    assert state.apply({"v": COMMAND_FORMAT_VERSION, "op": "put_member", "member": older}).ok

    assert state.members["a"]["config_schemas"] == refs
    assert len(state.schemas) == len(BUILTIN)


def test_equal_schemas_share_a_digest_whatever_their_key_order() -> None:
    one, _ = schema_refs({"executor:x": '{"type": "object", "properties": {}}'})
    two, _ = schema_refs({"executor:x": '{"properties": {}, "type": "object"}'})
    none, texts = schema_refs({"executor:x": "", "executor:y": "not json", "executor:z": "[1]"})
    assert one == two
    assert none == {"executor:x": "", "executor:y": "", "executor:z": ""} and texts == {}


def test_a_snapshot_from_before_schemas_loads_and_one_with_them_round_trips() -> None:
    state = ClusterState()
    put_member(state, "a", BUILTIN)
    snapshot = pickle.loads(pickle.dumps(state.snapshot()))
    old = {key: value for key, value in copy.deepcopy(snapshot).items() if key != "schemas"}
    for record in old["members"].values():
        del record["config_schemas"]

    restored_old = ClusterState()
    restored_old.restore(old)
    restored = ClusterState()
    restored.restore(snapshot)

    assert restored_old.schemas == {} and "config_schemas" not in restored_old.members["a"]
    assert restored.schemas == state.schemas and restored.members == state.members
    # A record from before schemas: its executors are known, their settings are not checked.
    configs = checker(restored_old, local={})
    assert problems_of(configs, job(config={"command": "true", "anything": "goes"})) == {}


# -- unknown keys and bad values -----------------------------------------------------------------------
def test_an_unknown_key_is_refused_naming_it_and_the_closest_known_key() -> None:
    problems = problems_of(checker(), job(config={"command": "true", "timout": "30s"}))
    assert list(problems) == ["executor_config.timout"]
    assert 'did you mean "timeout"' in problems["executor_config.timout"]
    assert "shell executor" in problems["executor_config.timout"]


def test_a_key_in_the_wrong_case_is_pointed_at_the_right_one() -> None:
    config = {"method": "GET", "url": "http://example.com", "expectcode": "200"}
    problems = problems_of(checker(), job("http", config))
    assert 'did you mean "expectCode"' in problems["executor_config.expectcode"]


def test_an_unknown_key_with_nothing_close_lists_the_plugin_s_keys() -> None:
    problems = problems_of(checker(), job("noop", {"zzzzzz": "1"}))
    assert "whose settings are: text" in problems["executor_config.zzzzzz"]


def test_a_dotted_key_is_named_with_its_path() -> None:
    config = {"url": "amqp://localhost", "queue.name": "q", "queue.durabel": "true"}
    problems = problems_of(checker(), job("rabbitmq", config))
    assert 'did you mean "queue.durable"' in problems['executor_config["queue.durabel"]']


@pytest.mark.parametrize(
    ("config", "field", "says"),
    [
        ({"command": "true", "timeout": "forever"}, "executor_config.timeout", "Go duration such as `30s`"),
        ({"command": "true", "mem_limit": "lots"}, "executor_config.mem_limit", "K, M, G or T suffix"),
        ({"command": "true", "shell": "yes"}, "executor_config.shell", 'must be one of "", "0", "1"'),
        ({"shell": "true"}, "executor_config.command", "required by the shell executor"),
        ({"command": ""}, "executor_config.command", "should be non-empty"),
    ],
)
def test_a_bad_value_is_refused_naming_the_key_and_what_is_wanted(config: dict, field: str, says: str) -> None:
    problems = problems_of(checker(), job(config=config))
    assert list(problems) == [field]
    assert says in problems[field]


def test_every_problem_is_reported_at_once_with_the_model_s_own() -> None:
    data = job(config={"command": "true", "timeout": "forever", "colour": "red"}, concurrency="sometimes")
    assert sorted(problems_of(checker(), data)) == ["concurrency", "executor_config.colour", "executor_config.timeout"]


def test_a_value_the_reader_already_refused_is_not_reported_twice() -> None:
    problems = problems_of(checker(), job(config={"command": "true", "timeout": 30}))
    assert 'write "30"' in problems["executor_config.timeout"]


def test_processor_settings_are_checked_too() -> None:
    data = job(processors={"files": {"forwrad": "true"}, "log": {"forward": "perhaps"}})
    problems = problems_of(checker(), data)
    assert 'did you mean "forward"' in problems["processors.files.forwrad"]
    assert '"perhaps" is not accepted by the log processor' in problems["processors.log.forward"]


# -- what the plugins' own docs and tests use is accepted ----------------------------------------------
@pytest.mark.parametrize(
    ("executor", "config"),
    [
        ("shell", {"shell": "true", "command": "my_command", "env": "A=1,B=2", "cwd": "/app", "timeout": "24h"}),
        ("shell", {"command": "true", "timeout": "30", "mem_limit": "512MB", "output_limit": "1M", "su": "nobody"}),
        ("shell", {"command": "cat", "payload": "aGVsbG8=", "shell": ""}),
        ("shell", {"command": "true", "mem_limit_kb": "1048576"}),  # Dkron's spelling
        (
            "http",
            {
                "method": "GET",
                "url": "http://example.com",
                "headers": "[]",
                "body": "",
                "timeout": "30",
                "expectCode": "200",
                "expectBody": "",
                "debug": "true",
                "tlsNoVerifyPeer": "false",
            },
        ),
        ("kafka", {"brokerAddress": "localhost:9092", "key": "", "message": "", "topic": "publishTopic"}),
        ("kafka", {"brokerAddress": "a:9092,b:9092", "topic": "t", "tlsEnable": "true", "saslMechanism": "sha512"}),
        ("kafka", {"brokerAddress": "a:9092", "topic": "t", "saslMechanism": "SHA256", "saslUsername": "u"}),
        ("nats", {"url": "tls://nats.demo.io:4443", "message": "m", "subject": "s", "userName": "u", "password": "p"}),
        (
            "rabbitmq",
            {
                "url": "amqp://guest:guest@localhost:5672/",
                "queue.name": "test",
                "queue.create": "true",
                "queue.durable": "true",
                "queue.auto_delete": "false",
                "queue.exclusive": "false",
                "message.content_type": "application/json",
                "message.delivery_mode": "2",
                "message.messageId": "4373732772",
                "message.body": '{"key":"value"}',
            },
        ),
        ("noop", {"text": "hi"}),
    ],
)
def test_dkron_s_documented_settings_are_accepted(executor: str, config: dict) -> None:
    assert problems_of(checker(), job(executor, config)) == {}


def test_dkron_s_documented_processor_settings_are_accepted() -> None:
    processors = {
        "log": {"forward": "true"},
        "files": {"log_dir": "/var/log/dkron", "forward": "false"},
        "syslog": {"forward": "true"},
        "fluent": {"forward": "true", "host": "127.0.0.1", "port": "24224", "tag": "dkron"},
    }
    assert problems_of(checker(), job(processors=processors)) == {}


# -- which plugins the cluster has ---------------------------------------------------------------------
def test_an_executor_no_alive_node_has_is_refused_naming_the_ones_they_have() -> None:
    problems = problems_of(checker(), job("gohttp", {"url": "x"}))
    assert list(problems) == ["executor"]
    assert 'no alive node has the executor "gohttp"' in problems["executor"]
    assert ", ".join(BUILTIN_EXECUTORS) in problems["executor"]


def test_a_processor_no_alive_node_has_is_refused() -> None:
    problems = problems_of(checker(), job(processors={"elastic": {}}))
    assert 'no alive node has the processor "elastic"' in problems["processors.elastic"]
    assert "fluent" in problems["processors.elastic"]


def test_another_alive_node_s_plugin_is_valid_and_a_failed_node_s_is_not() -> None:
    state = ClusterState()
    put_member(state, "worker-1", {**BUILTIN, "executor:probe": '{"properties": {"mode": {}}}'})
    put_member(state, "worker-2", {"executor:gone": ""}, status="failed")
    configs = checker(state)

    assert problems_of(configs, job("probe", {"mode": "x"})) == {}
    assert 'no alive node has the executor "gone"' in problems_of(configs, job("gone", {}))["executor"]


def test_a_plugin_that_serves_no_schema_takes_any_settings() -> None:
    state = ClusterState()
    put_member(state, "worker-1", {"executor:thirdparty": "", "processor:elastic": ""})
    configs = checker(state)
    data = job("thirdparty", {"whatever": "1"}, processors={"elastic": {"index": "x"}})
    assert problems_of(configs, data) == {}


def test_mixed_plugin_versions_accept_a_config_valid_under_any_of_them() -> None:
    v1 = {"type": "object", "properties": {"url": {"type": "string"}}, "additionalProperties": False}
    v2 = {
        "type": "object",
        "properties": {"url": {}, "retries": {"pattern": "^[0-9]+$"}},
        "additionalProperties": False,
    }
    state = ClusterState()
    put_member(state, "old", {"executor:probe": json.dumps(v1)})
    put_member(state, "new", {"executor:probe": json.dumps(v2)})
    configs = checker(state)

    assert problems_of(configs, job("probe", {"url": "u"})) == {}
    assert problems_of(configs, job("probe", {"url": "u", "retries": "3"})) == {}
    problems = problems_of(configs, job("probe", {"url": "u", "retries": "many"}))
    assert list(problems) == ["executor_config.retries"]  # the closest version's one problem


def test_processors_are_not_judged_while_a_node_s_record_predates_plugin_reports() -> None:
    state = ClusterState()
    old = {"name": "old", "role": "client", "executors": ["shell"], "status": "alive"}
    assert state.apply({"v": COMMAND_FORMAT_VERSION, "op": "put_member", "member": old}).ok
    assert problems_of(checker(state), job(processors={"elastic": {}})) == {}


def test_the_checker_follows_member_changes() -> None:
    state = ClusterState()
    configs = checker(state)
    assert "executor" in problems_of(configs, job("probe", {}))
    put_member(state, "worker-1", {"executor:probe": ""})
    assert problems_of(configs, job("probe", {})) == {}
    assert state.apply({"v": COMMAND_FORMAT_VERSION, "op": "set_member_status", "name": "worker-1", "status": "failed"})
    assert "executor" in problems_of(configs, job("probe", {}))


def test_compiled_validators_are_cached_by_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    compiled = []
    real = config_check._compile
    monkeypatch.setattr(config_check, "_compile", lambda digest, text: compiled.append(digest) or real(digest, text))
    state = ClusterState()
    for i in range(50):
        put_member(state, f"agent-{i}", BUILTIN)
    configs = checker(state)

    for command in ("true", "false", "date"):
        assert problems_of(configs, job(config={"command": command})) == {}

    assert compiled == [schema_refs(BUILTIN)[0][plugin_key("executor", "shell")]]


# -- restore and import: warnings, not errors ----------------------------------------------------------
def test_restore_accepts_unknown_keys_and_executors_with_warnings() -> None:
    configs = checker()
    warnings = warnings_of(configs, job(config={"command": "true", "nice": "10"}))
    assert len(warnings) == 1 and warnings[0].startswith("executor_config.nice: not a setting of the shell executor")
    assert warnings[0].endswith("(accepted on import)")

    warnings = warnings_of(configs, job("gohttp", {"url": "x"}))
    assert warnings[0].startswith('executor: no alive node has the executor "gohttp"')


def test_closest_key() -> None:
    assert closest_key("timout", ["command", "timeout"]) == "timeout"
    assert closest_key("COMMAND", ["command", "timeout"]) == "command"
    assert closest_key("zzz", ["command", "timeout"]) is None


@pytest.mark.parametrize("port", ["0", "65536", "99999"])
def test_a_fluent_port_outside_1_to_65535_is_refused_at_save(port: str) -> None:
    problems = problems_of(checker(), job(processors={"fluent": {"port": port}}))
    assert "processors.fluent.port" in problems
