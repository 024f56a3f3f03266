"""Notifications from a real `horae agent` to a real SMTP server (aiosmtpd) and a real HTTP receiver.

Four agents, each started when a test first needs it: `plain` has only --mail-host (jobs' own notify
blocks), `dkron` has every global --mail-*/--webhook-* flag, `broken` points its mail and global
webhook at closed ports, and `nomail` has no mail server at all. Each test uses its own job names
and receiver paths, so the tests share the receivers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.agent_process import AgentProcess, free_port
from tests.integration.cluster_support import executions, finished
from tests.notify_receivers import REFUSE_PREFIX, SLOW_PREFIX, HookReceiver, MailSink
from tests.support import wait_until

TIMEOUT = 20.0
JSON_TEMPLATE = (
    '{"text": "{{job_name}}|{{.JobName}}|{{success}}|{{.Success}}|{{output}}|{{.Output}}|{{node_name}}|{{.NodeName}}",'
    ' "times": ["{{started_at}}", "{{.StartTime}}", "{{finished_at}}", "{{.FinishedAt}}"],'
    ' "id": "{{execution_id}}", "attempt": {{attempt}}, "final": {{final}}, "exit": "{{exit_code}}",'
    ' "unknown": "{{nope}}"}'
)


# -- agents and receivers -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def mail() -> Iterator[MailSink]:
    with MailSink() as sink:
        yield sink


@pytest.fixture(scope="module")
def hooks() -> Iterator[HookReceiver]:
    with HookReceiver() as receiver:
        yield receiver


def _agent(root: Path, name: str, args: list[str]) -> Iterator[AgentProcess]:
    process = AgentProcess(root / name, node_name=name, extra_args=args).start()
    try:
        yield process
    finally:
        code = process.stop()
        assert code == 0, f"agent exited with {code} on SIGTERM:\n{process.log_text()}"


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory, mail: MailSink) -> Iterator[AgentProcess]:
    args = ["--mail-host", "127.0.0.1", "--mail-port", str(mail.port), "--mail-from", "horae@test.example"]
    yield from _agent(tmp_path_factory.mktemp("notify"), "plain-node", args)


@pytest.fixture(scope="module")
def dkron(tmp_path_factory: pytest.TempPathFactory, mail: MailSink, hooks: HookReceiver) -> Iterator[AgentProcess]:
    args = [
        *("--mail-host", "127.0.0.1", "--mail-port", str(mail.port), "--mail-from", "cron@test.example"),
        *("--mail-username", "horae", "--mail-password", "s3cret", "--mail-subject-prefix", "[ops] "),
        *("--mail-payload", "Job {{.JobName}} on {{.NodeName}}: {{.Success}}\n{{.Report}}"),
        # Dkron's older spelling of --webhook-endpoint.
        *("--webhook-url", hooks.url("/global")),
        *("--webhook-payload", '{"job": "{{.JobName}}", "ok": {{.Success}}, "out": "{{.Output}}", "try": {{attempt}}}'),
        *("--webhook-headers", "Content-Type: application/json", "--webhook-headers", "X-Auth: key:1"),
    ]
    yield from _agent(tmp_path_factory.mktemp("notify"), "dkron-node", args)


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    closed = free_port()  # nothing listens there
    args = [
        *("--mail-host", "127.0.0.1", "--mail-port", str(closed)),
        *("--webhook-endpoint", f"http://127.0.0.1:{closed}/hook"),
    ]
    yield from _agent(tmp_path_factory.mktemp("notify"), "broken-node", args)


@pytest.fixture(scope="module")
def nomail(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    yield from _agent(tmp_path_factory.mktemp("notify"), "nomail-node", [])


# -- helpers -------------------------------------------------------------------------------------


def shell_job(name: str, command: str, **fields: object) -> dict:
    job = {"name": name, "schedule": "@manually", "executor": "shell"}
    return {**job, "executor_config": {"shell": "true", "command": command}, **fields}


def create(agent: AgentProcess, job: dict) -> None:
    with agent.client() as http:
        response = http.post("/v1/jobs", json=job)
    assert response.status_code == 201, response.text


def run(agent: AgentProcess, name: str) -> None:
    with agent.client() as http:
        response = http.post(f"/v1/jobs/{name}/run")
    assert response.status_code == 202, response.text


def run_and_finish(agent: AgentProcess, name: str, count: int = 1) -> list[dict]:
    run(agent, name)
    return finished(agent, name, count, TIMEOUT)


def mails_to(mail: MailSink, address: str, count: int = 1) -> list:
    return wait_until(lambda: len(found := mail.to(address)) >= count and found, TIMEOUT, 0.05, f"mail to {address}")  # type: ignore[return-value]


def hook_calls(hooks: HookReceiver, path: str, count: int = 1) -> list:
    return wait_until(lambda: len(found := hooks.at(path)) >= count and found, TIMEOUT, 0.05, f"a call to {path}")  # type: ignore[return-value]


def log_line(agent: AgentProcess, *parts: str) -> str:
    """The agent's log line that holds every part (polled: the agent writes it in the background)."""

    def found() -> str | None:
        return next((line for line in agent.log_text(200_000).splitlines() if all(p in line for p in parts)), None)

    return wait_until(found, TIMEOUT, 0.05, f"a log line with {parts}")  # type: ignore[return-value]


# -- a job's own notify block --------------------------------------------------------------------


def test_failure_mails_and_calls_the_webhook_with_the_template_filled(
    plain: AgentProcess, mail: MailSink, hooks: HookReceiver
) -> None:
    notify = {
        "on": ["failure"],
        "email": ["ops@test.example", "dev@test.example"],
        "webhook": {"url": hooks.url("/failure"), "headers": {"X-Token": "abc"}, "payload": JSON_TEMPLATE},
    }
    create(plain, shell_job("fails", 'echo "disk \\"full\\""; exit 3', notify=notify))
    (execution,) = run_and_finish(plain, "fails")

    (message,) = mails_to(mail, "ops@test.example")
    assert message.recipients == ["ops@test.example", "dev@test.example"]
    assert message.sender == "horae@test.example"
    assert message.subject == "[horae]Failed fails execution report"
    # Without --mail-payload the body is Dkron's report.
    assert "Executed: fails\n" in message.body and "Success: false\n" in message.body
    assert 'Output: disk "full"\n' in message.body and f"Node: {plain.node_name}\n" in message.body

    (call,) = hook_calls(hooks, "/failure")
    assert call.headers["x-token"] == "abc" and call.headers["content-type"] == "application/json"
    body = json.loads(call.body)  # the output's quotes and newline did not break the JSON
    out = execution["output"]
    node = plain.node_name
    assert body["text"] == f"fails|fails|false|false|{out}|{out}|{node}|{node}"
    assert body["times"] == [execution["started_at"]] * 2 + [execution["finished_at"]] * 2
    assert body["id"] == execution["id"] and body["attempt"] == 1 and body["final"] is True
    assert body["exit"] == "3" and body["unknown"] == "{{nope}}"


def test_success_is_not_notified_under_on_failure(plain: AgentProcess, hooks: HookReceiver, tmp_path: Path) -> None:
    flag = tmp_path / "fail-now"
    # Succeeds until the flag file exists.
    hook = {"url": hooks.url("/quiet")}
    create(plain, shell_job("quiet", f"test ! -e {flag}", notify={"on": ["failure"], "webhook": hook}))
    (succeeded,) = run_and_finish(plain, "quiet")
    assert succeeded["success"] is True
    flag.touch()
    run(plain, "quiet")
    (call,) = hook_calls(hooks, "/quiet")
    # The default payload: the execution as JSON. Only the failed run was told.
    body = json.loads(call.body)
    assert body["success"] is False and body["id"] != succeeded["id"]
    assert body["job_name"] == "quiet" and body["final"] is True and body["reporting_node"] == plain.node_name
    assert len(hooks.at("/quiet")) == 1


def test_always_notifies_success_and_success_only_success(plain: AgentProcess, hooks: HookReceiver) -> None:
    for on in ("always", "success"):
        hook = {"url": hooks.url(f"/{on}"), "payload": "{{job_name}} {{success}}"}
        create(plain, shell_job(f"ok-{on}", "true", notify={"on": [on], "webhook": hook}))
        run_and_finish(plain, f"ok-{on}")
        (call,) = hook_calls(hooks, f"/{on}")
        assert call.body == f"ok-{on} true"
        assert call.headers["content-type"].startswith("text/plain")


def test_only_the_last_attempt_notifies(plain: AgentProcess, mail: MailSink, hooks: HookReceiver) -> None:
    hook = {"url": hooks.url("/retries"), "payload": '{"attempt": {{attempt}}, "final": {{final}}}'}
    notify = {"email": ["retries@test.example"], "webhook": hook}
    create(plain, shell_job("flaky", "exit 1", retries=2, notify=notify))
    run(plain, "flaky")
    (call,) = hook_calls(hooks, "/retries")
    assert json.loads(call.body) == {"attempt": 3, "final": True}
    (message,) = mails_to(mail, "retries@test.example")
    assert "Attempt: 3\n" in message.body
    # All three attempts ran and were recorded before the one notification.
    assert sorted(e["attempt"] for e in executions(plain, "flaky")) == [1, 2, 3]
    assert len(hooks.at("/retries")) == 1 and len(mail.to("retries@test.example")) == 1


def test_an_unreachable_webhook_is_logged_and_the_job_runs_on(plain: AgentProcess) -> None:
    hook = {"url": f"http://127.0.0.1:{free_port()}/nobody"}
    create(plain, shell_job("unheard", "echo ran", notify={"on": ["always"], "webhook": hook}))
    first, second = (run_and_finish(plain, "unheard", count)[-1] for count in (1, 2))
    assert first["success"] and second["success"]
    for execution in (first, second):
        line = log_line(plain, 'msg="notification failed"', f"execution={execution['id']}")
        assert "job=unheard" in line and "channel=webhook" in line and "why=notify.webhook" in line
        assert re.search(r"error=\S", line), line


def test_a_webhook_that_answers_an_error_is_logged(plain: AgentProcess, hooks: HookReceiver) -> None:
    hook = {"url": hooks.url(f"{REFUSE_PREFIX}/hook")}
    create(plain, shell_job("refused", "true", notify={"on": ["success"], "webhook": hook}))
    (execution,) = run_and_finish(plain, "refused")
    hook_calls(hooks, f"{REFUSE_PREFIX}/hook")
    line = log_line(plain, 'msg="notification failed"', f"execution={execution['id']}")
    assert "job=refused" in line and "answered 500" in line


def test_a_slow_webhook_does_not_hold_other_executions(plain: AgentProcess, hooks: HookReceiver) -> None:
    slow = {"url": hooks.url(f"{SLOW_PREFIX}/hook"), "payload": "{{execution_id}}"}
    fast = {"url": hooks.url("/fast"), "payload": "{{execution_id}}"}
    create(plain, shell_job("slow-told", "true", notify={"on": ["always"], "webhook": slow}))
    create(plain, shell_job("fast-told", "true", notify={"on": ["always"], "webhook": fast}))
    try:
        run_and_finish(plain, "slow-told", 1)
        (held,) = hook_calls(hooks, f"{SLOW_PREFIX}/hook")
        # While that call is held open, the job runs again, and another job is run and told.
        (again,) = run_and_finish(plain, "slow-told", 2)[-1:]
        (fast_run,) = run_and_finish(plain, "fast-told")
        (call,) = hook_calls(hooks, "/fast")
        assert call.body == fast_run["id"]
        assert not held.answered
        hook_calls(hooks, f"{SLOW_PREFIX}/hook", 2)
        assert again["success"]
    finally:
        hooks.release.set()


# -- Dkron's global flags ------------------------------------------------------------------------


def test_global_mail_goes_to_the_owner_and_the_webhook_fires_for_every_execution(
    dkron: AgentProcess, mail: MailSink, hooks: HookReceiver
) -> None:
    create(dkron, shell_job("owned", "echo done", owner_email="owner@test.example"))
    (execution,) = run_and_finish(dkron, "owned")

    (message,) = mails_to(mail, "owner@test.example")
    assert message.sender == "cron@test.example" and message.login == "horae"
    assert message.subject == "[ops] Success owned execution report"
    assert message.body.startswith(f"Job owned on {dkron.node_name}: true\nExecuted: owned\n")
    assert f"Reporting node: {dkron.node_name}\n" in message.body

    calls = hook_calls(hooks, "/global")
    (call,) = [c for c in calls if json.loads(c.body)["job"] == "owned"]
    assert json.loads(call.body) == {"job": "owned", "ok": True, "out": execution["output"], "try": 1}
    assert call.headers["x-auth"] == "key:1" and call.headers["content-type"] == "application/json"


def test_global_notifications_include_retried_attempts_like_dkron(
    dkron: AgentProcess, mail: MailSink, hooks: HookReceiver
) -> None:
    create(dkron, shell_job("owned-flaky", "exit 2", retries=1, owner_email="flaky-owner@test.example"))
    run(dkron, "owned-flaky")
    messages = mails_to(mail, "flaky-owner@test.example", 2)
    assert {m.subject for m in messages} == {"[ops] Failed owned-flaky execution report"}

    def calls() -> list[dict] | None:
        found = [json.loads(c.body) for c in hooks.at("/global")]
        found = [body for body in found if body["job"] == "owned-flaky"]
        return found if len(found) >= 2 else None

    found = wait_until(calls, TIMEOUT, 0.05, "two global webhook calls for owned-flaky")
    assert sorted(body["try"] for body in found) == [1, 2]  # type: ignore[union-attr]


def test_a_job_block_on_the_dkron_agent_uses_its_mail_settings(dkron: AgentProcess, mail: MailSink) -> None:
    create(dkron, shell_job("both", "exit 1", notify={"email": ["team@test.example"]}))
    run_and_finish(dkron, "both")
    (message,) = mails_to(mail, "team@test.example")
    assert message.subject == "[ops] Failed both execution report" and message.login == "horae"


# -- failures to send, and jobs that cannot be told ---------------------------------------------


def test_unreachable_mail_server_and_webhook_are_logged_not_fatal(broken: AgentProcess) -> None:
    create(broken, shell_job("unlucky", "echo hi", owner_email="owner@test.example"))
    (execution,) = run_and_finish(broken, "unlucky")
    assert execution["success"] is True
    ids = f"execution={execution['id']}"
    mail_line = log_line(broken, 'msg="notification failed"', ids, "channel=email")
    assert "job=unlucky" in mail_line and "to=owner@test.example" in mail_line and "why=owner_email" in mail_line
    hook_line = log_line(broken, 'msg="notification failed"', ids, "channel=webhook")
    assert "why=webhook-endpoint" in hook_line
    # The agent goes on running jobs.
    assert run_and_finish(broken, "unlucky", 2)[-1]["success"] is True


def test_notify_email_without_a_mail_server_is_refused(nomail: AgentProcess, hooks: HookReceiver) -> None:
    with nomail.client() as http:
        response = http.post("/v1/jobs", json=shell_job("mailless", "true", notify={"email": ["a@test.example"]}))
        assert response.status_code == 400, response.text
        problem = response.json()
        assert "--mail-host" in problem["error"]
        assert [f["field"] for f in problem["fields"]] == ["notify.email"]
        # A webhook needs no mail server.
        hook = {"url": hooks.url("/mailless")}
        response = http.post("/v1/jobs", json=shell_job("mailless", "false", notify={"webhook": hook}))
        assert response.status_code == 201, response.text
        # Restoring accepts the job with a warning (an export from an agent that had a mail server).
        restored = shell_job("restored", "true", notify={"email": ["a@test.example"]})
        response = http.post("/v1/restore", json=[restored])
    assert response.status_code == 200, response.text
    (warning,) = response.json()["warnings"]
    assert warning.startswith("restored: notify.email:") and "--mail-host" in warning
    run(nomail, "mailless")
    hook_calls(hooks, "/mailless")


def test_the_http_receiver_answers(hooks: HookReceiver) -> None:
    """The receiver itself: a webhook test that passes against a dead receiver would prove nothing."""
    assert httpx.post(hooks.url("/probe"), content=b"x", timeout=5).status_code == 200
    assert hook_calls(hooks, "/probe")[0].body == "x"
