"""Who hears of a result: a job's notify block per its `on`, Dkron's global mail and webhook, the settings."""

from __future__ import annotations

import pytest

from horae.config import AgentConfig, ConfigError, Layer, build_config, from_environment
from horae.notifier import Mail, Notifier, Webhook, parse_headers, unsendable_email, wanted

EXECUTION = {"id": "1-n-1", "job_name": "backup", "success": False, "attempt": 1, "group": 1, "output": ""}
HOOK = {"url": "http://hooks.test/x", "headers": {"X-Token": "t"}, "payload": ""}


@pytest.mark.parametrize(
    ("on", "success", "final", "expected"),
    [
        (["failure"], False, True, True),
        (["failure"], False, False, False),  # a retry follows: only the last attempt counts
        (["failure"], True, True, False),
        (["success"], True, True, True),
        (["success"], False, True, False),
        (["always"], True, True, True),
        (["always"], False, True, True),
        (["always"], False, False, False),
        (["failure", "success"], True, True, True),
    ],
)
def test_wanted(on: list[str], success: bool, final: bool, expected: bool) -> None:
    assert wanted(on, success, final) is expected


def test_job_block_without_global_settings() -> None:
    notifier = Notifier(AgentConfig(mail_host="smtp.test"))
    job = {"name": "backup", "notify": {"on": ["failure"], "email": ["a@x.test"], "webhook": HOOK}}
    assert notifier.plan(EXECUTION, job, final=True) == [
        Mail(("a@x.test",), "notify.email"),
        Webhook("http://hooks.test/x", (("X-Token", "t"),), "", "notify.webhook"),
    ]
    assert notifier.plan(EXECUTION, job, final=False) == []
    assert notifier.plan({**EXECUTION, "success": True}, job, final=True) == []


def test_job_email_without_mail_host_is_logged_not_sent(caplog: pytest.LogCaptureFixture) -> None:
    notifier = Notifier(AgentConfig())
    job = {"name": "backup", "notify": {"on": ["failure"], "email": ["a@x.test"], "webhook": None}}
    assert notifier.plan(EXECUTION, job, final=True) == []
    (record,) = [r for r in caplog.records if r.getMessage() == "notification failed"]
    assert record.fields["job"] == "backup" and record.fields["execution"] == "1-n-1"
    assert "--mail-host" in record.fields["error"]


def test_global_settings_fire_for_every_execution_like_dkron() -> None:
    config = AgentConfig(
        mail_host="smtp.test", webhook_endpoint="http://hooks.test/all", webhook_payload="{{.JobName}}"
    )
    notifier = Notifier(config)
    job = {"name": "backup", "owner_email": "owner@x.test"}
    expected = [
        Mail(("owner@x.test",), "owner_email"),
        Webhook("http://hooks.test/all", (), "{{.JobName}}", "webhook-endpoint"),
    ]
    for success in (True, False):
        for final in (True, False):
            assert notifier.plan({**EXECUTION, "success": success}, job, final) == expected


def test_owner_already_told_by_the_job_block_gets_one_mail() -> None:
    notifier = Notifier(AgentConfig(mail_host="smtp.test"))
    job = {
        "name": "b",
        "owner_email": "a@x.test",
        "notify": {"on": ["failure"], "email": ["a@x.test"], "webhook": None},
    }
    assert notifier.plan(EXECUTION, job, final=True) == [Mail(("a@x.test",), "notify.email")]


def test_unsendable_email_names_the_flag() -> None:
    job = {"notify": {"email": ["a@x.test"]}}
    assert "--mail-host" in (unsendable_email(job, AgentConfig()) or "")
    assert unsendable_email(job, AgentConfig(mail_host="smtp.test")) is None
    assert unsendable_email({"notify": {"email": [], "webhook": HOOK}}, AgentConfig()) is None


def test_parse_headers_keeps_colons_in_values() -> None:
    assert parse_headers(["Authorization: Bearer a:b", "X-Empty:", ": nameless"]) == (
        ("Authorization", "Bearer a:b"),
        ("X-Empty", ""),
    )


def test_settings_from_environment_and_alias() -> None:
    environment = {
        "HORAE_MAIL_HOST": "smtp.test",
        "HORAE_MAIL_PORT": "2525",
        "HORAE_WEBHOOK_URL": "https://hooks.test/x",
        "HORAE_WEBHOOK_HEADERS": "Content-Type: application/json, Authorization: Bearer x, y",
    }
    config = build_config([from_environment(environment)])
    assert (config.mail_host, config.mail_port, config.webhook_endpoint) == ("smtp.test", 2525, "https://hooks.test/x")
    assert config.webhook_headers == ["Content-Type: application/json", "Authorization: Bearer x, y"]


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("mail_port", "0", "port"),
        ("webhook_endpoint", "hooks.test/x", "http:// or https://"),
        ("webhook_headers", ["X-Token"], "Name: value"),
    ],
)
def test_bad_settings_are_refused(name: str, value: object, says: str) -> None:
    layer = Layer("flags")
    layer.set(name, value, spelling=name)
    with pytest.raises(ConfigError, match=says):
        build_config([layer])


def test_mail_password_is_not_repeated_in_errors() -> None:
    layer = Layer("flags")
    layer.set("mail_password", ["s3cret"], spelling="--mail-password")
    with pytest.raises(ConfigError, match="mail_password") as caught:
        build_config([layer])
    assert "s3cret" not in str(caught.value)
