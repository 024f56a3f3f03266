"""The web UI in a real Chromium against a real agent: the pages an operator uses, end to end.

Create a job through the form, watch it fire and its output stream in (Server-Sent Events), edit it, see a
validation error, toggle it, delete it; log in when API tokens are on; serve it behind a proxy on a sub-path.
Every page is screenshotted (test-results/ui/<test>/) and no page may log a console error.
"""

from __future__ import annotations

import re
import urllib.parse

import pytest

from tests.e2e.ui_support import browser_for, sub_path_proxy
from tests.integration.agent_process import AgentProcess
from tests.integration.cluster_support import agreed_leader, by_name, running_cluster
from tests.support import wait_until

# Six lines a second apart: long enough to be seen arriving one by one.
LINES_COMMAND = "for i in 1 2 3 4 5 6; do echo line$i; sleep 1; done"
WRITE_SECRET = "write-secret-0123456789"
READ_SECRET = "read-secret-0123456789ab"
ADMIN_SECRET = "admin-secret-0123456789"


@pytest.fixture
def agent(tmp_path):
    with AgentProcess(tmp_path / "node", node_name="ui-node") as running:
        yield running


def _live_text(page) -> str:
    return page.locator("#live-output").text_content() or ""


def test_a_job_is_created_watched_edited_toggled_and_deleted_in_the_browser(agent, request):
    with browser_for(request) as browser:
        page = browser.page
        page.goto(agent.url + "/")
        assert page.url == agent.url + "/ui/", "/ redirects to the UI"
        assert page.locator("#leader").text_content().startswith("ui-node")
        browser.shot("dashboard-empty")

        # Create: the schedule is previewed as it is typed.
        page.click("text=New job")
        page.fill("#name", "ui-lines")
        page.fill("#schedule", "@every 3s")
        page.wait_for_selector("#schedule-preview time")
        page.fill("#cfg-command", LINES_COMMAND)
        page.select_option("#cfg-shell", "true")
        page.click("summary")
        page.select_option("#concurrency", "forbid")
        browser.shot("job-form")
        page.click("button:has-text('Create')")
        assert page.url.startswith(agent.url + "/ui/jobs/ui-lines"), page.url
        assert page.locator("#next-times li").count() == 5

        # It fires on its own; the page picks the execution up and streams its output while it runs.
        page.wait_for_function("document.getElementById('live-output').textContent.includes('line')", timeout=20_000)
        first_seen = _live_text(page)
        assert "line6" not in first_seen, f"the output should arrive while the job runs, got {first_seen!r}"
        browser.shot("job-live-output")
        page.wait_for_function("document.getElementById('live-output').textContent.includes('line6')", timeout=15_000)
        page.wait_for_selector("#live .live-status:has-text('finished')")
        assert re.findall(r"line\d", _live_text(page)) == [f"line{i}" for i in range(1, 7)], _live_text(page)
        row = page.locator("table.executions tbody tr").filter(has_text="success").first
        row.wait_for(timeout=10_000)
        cells = row.locator("td").all_text_contents()
        assert cells[2] == "ui-node" and cells[4] == "0", cells  # node, exit code
        assert cells[3].endswith(" s") and cells[5], cells  # duration, peak memory
        browser.shot("job-finished")
        raw = row.locator("a:has-text('raw')").get_attribute("href")
        assert raw is not None and page.request.get(agent.url + raw).text() == "".join(
            f"line{i}\n" for i in range(1, 7)
        )

        # Edit: a bad schedule comes back next to its field; a good one is saved.
        page.click("a:has-text('Edit')")
        page.fill("#schedule", "every now and then")
        page.wait_for_selector("#schedule-preview .field-error")
        page.click("button:has-text('Save')")
        error = page.locator("#error-schedule")
        assert error.is_visible() and "schedule" in (error.text_content() or "").lower(), page.content()[:2000]
        browser.shot("job-form-error")
        page.fill("#schedule", "@every 1h")
        page.fill("#displayname", "Six lines")
        page.click("button:has-text('Save')")
        assert page.url.startswith(agent.url + "/ui/jobs/ui-lines")
        assert page.locator("h1 + p").text_content() == "Six lines"

        # Toggle.
        page.click("button:has-text('Disable')")
        assert page.locator("#job-state").text_content() == "disabled"
        with agent.client() as http:
            assert http.get("/v1/jobs/ui-lines").json()["disabled"] is True

        # The list, its filters and a bulk toggle.
        page.click("header >> text=Jobs")
        page.fill("input[name=q]", "lines")
        page.select_option("select[name=disabled]", "true")
        page.click("button:has-text('Filter')")
        assert page.locator("table.jobs tbody tr").count() == 1
        browser.shot("jobs")
        page.check("input[name=names][value=ui-lines]")
        page.click("button[value=toggle]")
        assert "toggled 1 job" in (page.locator(".flash").text_content() or "")
        with agent.client() as http:
            assert http.get("/v1/jobs/ui-lines").json()["disabled"] is False

        # Paging and sorting: 30 more jobs, 25 a page.
        with agent.client() as http:
            many = [
                {
                    "name": f"bulk-{i:02d}",
                    "schedule": "@manually",
                    "executor": "shell",
                    "executor_config": {"command": "true"},
                }
                for i in range(30)
            ]
            assert http.post("/v1/restore", json=many).status_code in (200, 201)
        page.goto(agent.url + "/ui/jobs?sort=name&order=desc&page=2")
        names = page.locator("table.jobs tbody tr td:nth-child(2) a").all_text_contents()
        assert names == [f"bulk-{i:02d}" for i in range(5, -1, -1)], names  # ui-lines, bulk-29..bulk-06 on page 1
        assert page.locator(".pager").text_content().split() == ["←", "previous", "page", "2", "of", "2"]

        for name in ("busy", "members", "plugins"):
            page.click(f"header >> text={name.capitalize()}")
            browser.shot(name)
        assert page.locator("td", has_text="shell").count() >= 1
        page.click("header >> text=Dashboard")
        assert page.locator("svg.chart rect").count() >= 1, "the finished execution is on the chart"
        browser.shot("dashboard")

        # Delete.
        page.goto(agent.url + "/ui/jobs/ui-lines")
        page.click("button:has-text('Delete')")
        assert "deleted job ui-lines" in (page.locator(".flash").text_content() or "")
        with agent.client() as http:
            assert http.get("/v1/jobs/ui-lines").status_code == 404
        assert browser.errors == [], browser.errors


def test_with_api_tokens_the_ui_asks_for_a_login_and_then_works(tmp_path, request):
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(
        f"tokens:\n  - {{name: ci, secret: {WRITE_SECRET}, role: write}}\n"
        f"  - {{name: viewer, secret: {READ_SECRET}, role: read}}\n"
        f"  - {{name: root, secret: {ADMIN_SECRET}, role: admin}}\n"
    )
    with (
        AgentProcess(tmp_path / "node", node_name="ui-node", extra_args=["--acl-tokens", str(tokens)]) as agent,
        browser_for(request) as browser,
    ):
        page = browser.page
        page.goto(agent.url + "/ui/jobs")
        assert urllib.parse.urlsplit(page.url).path == "/ui/login"
        browser.shot("login")
        page.fill("#token", "not-a-token-at-all")
        page.click("button:has-text('Log in')")
        assert "not one of this agent's tokens" in (page.locator(".field-error").text_content() or "")

        page.fill("#token", WRITE_SECRET)
        page.click("button:has-text('Log in')")
        assert page.url == agent.url + "/ui/jobs", "back to the page asked for"
        cookie = next(c for c in browser.context.cookies() if c["name"] == "horae_token")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        page.click("text=New job")
        page.fill("#name", "with-token")
        page.fill("#schedule", "@manually")
        page.fill("#cfg-command", "echo hi")
        page.click("button:has-text('Create')")
        assert page.url.startswith(agent.url + "/ui/jobs/with-token")
        # The cookie opens the API too (TokenGate reads it).
        assert page.evaluate("fetch('/v1/jobs/with-token').then(r => r.status)") == 200
        browser.shot("logged-in-job")

        # A secret in a job's settings is masked for a non-admin, and saving the form as shown keeps it.
        nats = {"url": "nats://127.0.0.1:4222", "subject": "x", "password": "hunter2-in-the-config"}
        job = {"name": "with-secret", "schedule": "@manually", "executor": "nats", "executor_config": nats}
        admin = {"Authorization": f"Bearer {ADMIN_SECRET}"}
        with agent.client(headers=admin) as http:
            assert http.post("/v1/jobs", json=job).status_code == 201
        page.goto(agent.url + "/ui/jobs/with-secret")
        assert "hunter2" not in page.content() and "********" in page.content()
        page.click("a:has-text('Edit')")
        assert page.locator("#cfg-password").input_value() == "********"
        page.fill("#displayname", "Has a secret")
        page.click("button:has-text('Save')")
        with agent.client(headers=admin) as http:
            saved = http.get("/v1/jobs/with-secret").json()
        assert saved["displayname"] == "Has a secret"
        assert saved["executor_config"]["password"] == "hunter2-in-the-config"

        # A read token sees pages but may not change jobs.
        page.click("button:has-text('Log out')")
        page.fill("#token", READ_SECRET)
        page.click("button:has-text('Log in')")
        page.goto(agent.url + "/ui/jobs/with-token")
        assert page.locator("h1").first.text_content().startswith("with-token")
        response = page.goto(agent.url + "/ui/new-job")
        assert response is not None and response.status == 403
        assert "needs role write" in (page.locator(".problem").text_content() or "")
        browser.shot("read-only-refused")
        with agent.client() as http:
            assert http.get("/ui/jobs", follow_redirects=False).status_code == 303, "no cookie: to the login page"
        # The 403 page is a console error by design; nothing else may be.
        assert [e for e in browser.errors if "403" not in e] == [], browser.errors


def test_the_ui_works_behind_a_proxy_on_a_sub_path(tmp_path, request):
    with (
        AgentProcess(tmp_path / "node", node_name="ui-node", extra_args=["--ui-base-path", "/x"]) as agent,
        sub_path_proxy("/x", agent.http_port) as base,
        browser_for(request) as browser,
    ):
        page = browser.page
        paths: list[str] = []
        page.on("request", lambda r: paths.append(urllib.parse.urlsplit(r.url).path))
        page.goto(base + "/")
        assert page.url == base + "/ui/"
        page.click("text=New job")
        page.fill("#name", "behind-proxy")
        page.fill("#schedule", "@every 1h")
        page.wait_for_selector("#schedule-preview time")  # htmx loaded and calls through the proxy
        page.fill("#cfg-command", "echo hi")
        page.click("button:has-text('Create')")
        assert page.url.startswith(base + "/ui/jobs/behind-proxy"), page.url
        page.click("header >> text=Jobs")
        assert page.locator("table.jobs a", has_text="behind-proxy").count() == 1
        browser.shot("jobs-behind-proxy")
        wrong = [path for path in paths if not path.startswith("/x/")]
        assert wrong == [], f"requests that bypass the sub-path: {wrong}"
        assert browser.errors == [], browser.errors


def test_live_output_streams_on_the_leader_and_a_follower_says_where_to_look(tmp_path, request):
    """The leader holds every running execution's output; a follower not running it points to the leader."""
    with running_cluster(tmp_path, 3) as agents, browser_for(request) as browser:
        leader = by_name(agents, agreed_leader(agents, 30))
        job = {
            "name": "cluster-lines",
            "schedule": "@manually",
            "executor": "shell",
            "executor_config": {"command": LINES_COMMAND, "shell": "true"},
        }
        with leader.client() as http:
            assert http.post("/v1/jobs", json=job).status_code == 201
            assert http.post("/v1/jobs/cluster-lines/run").status_code == 202

            def running_on() -> str:
                found = http.get("/v1/jobs/cluster-lines/executions").json()
                return next((e["node_name"] for e in found if e.get("running") and e.get("node_name")), "")

            node = wait_until(running_on, timeout=15, interval=0.1, what="the execution to start")
        follower = next(a for a in agents if a.node_name not in (leader.node_name, node))
        page = browser.page
        page.goto(follower.url + "/ui/jobs/cluster-lines")
        status = page.locator("#live .live-status")
        status.filter(has_text="open this page on the leader").wait_for()
        assert leader.node_name in (status.text_content() or "")
        browser.shot("follower-points-to-leader")

        page.goto(leader.url + "/ui/jobs/cluster-lines")
        page.wait_for_function("document.getElementById('live-output').textContent.includes('line')")
        browser.shot("leader-streams")

        # Stopped from the page: it ends as failed, wherever it ran.
        page.click("table.executions button:has-text('Stop')")
        assert "stop requested" in (page.locator(".flash").text_content() or "")
        page.locator("table.executions tbody tr").filter(has_text="failed").first.wait_for()
        assert "line6" not in (page.locator("table.executions").text_content() or "")
        browser.shot("leader-stopped")
        assert browser.errors == [], browser.errors
