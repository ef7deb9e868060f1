"""The demo console in a real Chromium (Debian's package), driven by Playwright for Python.

A person's view: type /promote, see the approval message, switch to each approver and approve,
see the message updated and the execution in its thread; fill the /promote form and see its
validation errors; inject an OpenText failure and see the alert. Screenshots go to
test-artifacts/ (ignored by git).

Skips, with the reason, only when Playwright or a Chromium binary is missing (.ci/install-browser
installs Debian's chromium; Playwright's own browser download is never used).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.console import add_console_routes
from bot.demo import DEMO_SEED, DemoStack, start_demo
from bot.domain.policy import Action
from bot.emulators.slack import create_app as create_slack_app
from bot.emulators.slack_control import workspace_of
from connectors.emulators.faults import start_app

try:
    from playwright.async_api import Page, async_playwright, expect
except ImportError:  # the skip below names the fix
    async_playwright = None

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
# As the machine notes prescribe: no GPU, no sandbox as root, and no background connections,
# which this machine's closed network refuses.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
BOT_ROUND_TRIP_MS = 20_000
PROMOTE = "/promote orders-edi.orders-d96a-to-xml 2.4.0 test prod Map FTX+DEL free text"


def chromium_executable() -> str | None:
    """Debian's chromium (or $OPSGATE_CHROMIUM); never a browser downloaded by Playwright."""
    candidates = [
        os.environ.get("OPSGATE_CHROMIUM"),
        "/usr/bin/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
        shutil.which("google-chrome"),
    ]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


@pytest.fixture
async def page(tmp_path: Path) -> AsyncIterator[Page]:
    if async_playwright is None:
        pytest.skip("Playwright for Python is not installed: pip install -e '.[dev]'")
    executable = chromium_executable()
    if executable is None:
        pytest.skip(
            "no Chromium binary (looked for $OPSGATE_CHROMIUM, /usr/bin/chromium, chromium on PATH): "
            "run .ci/install-browser (apt-get install chromium)"
        )
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=executable,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 900},
        )
        context.set_default_timeout(BOT_ROUND_TRIP_MS)
        browser_page = context.pages[0] if context.pages else await context.new_page()
        errors: list[str] = []
        browser_page.on("pageerror", lambda error: errors.append(str(error)))
        try:
            yield browser_page
        finally:
            await context.close()
        assert errors == [], f"the page raised: {errors}"


@pytest.fixture
async def demo(tmp_path: Path) -> AsyncIterator[DemoStack]:
    stack = await start_demo(port=0, data_dir=tmp_path / "demo")
    try:
        yield stack
    finally:
        await stack.close()


async def open_console(page: Page, url: str) -> None:
    await page.goto(url + "/")
    await expect(page.locator("body")).to_have_attribute("data-live", "1")


async def act_as(page: Page, user_id: str) -> None:
    await page.select_option("#user-switcher", user_id)


async def run_command(page: Page, text: str) -> None:
    await page.fill("#composer-input", text)
    await page.press("#composer-input", "Enter")


async def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    await page.screenshot(path=str(path))
    return path


def approval_message(page: Page, ref: str) -> Any:
    return page.locator("#messages .message:not(.ephemeral)", has_text=f"Promotion {ref}")


async def test_promote_then_each_approver_approves_and_the_thread_shows_the_execution(page, demo):
    await open_console(page, demo.console_url)
    await act_as(page, "U_REQ")
    await page.click("#channel-list a[data-channel='C_APPROVALS']")
    await run_command(page, PROMOTE)

    message = approval_message(page, "PRM-1")
    approve = message.locator("button[data-action-id='request_approve']")
    await expect(approve).to_be_visible()
    await expect(message).to_contain_text("Approvals (0 of 2)")
    await expect(page.locator(".message.ephemeral", has_text="Checking")).to_be_visible()

    await act_as(page, "U_OUT")
    await approve.click()
    await expect(page.locator(".message.ephemeral", has_text="not an approver")).to_be_visible()

    await act_as(page, "U_APP1")
    await approve.click()
    await expect(message).to_contain_text("Approvals (1 of 2)")
    await expect(message.locator(".edited")).to_be_visible()

    await act_as(page, "U_APP2")
    await approve.click()
    await expect(message).to_contain_text("Approvals (2 of 2)")
    await expect(approve).to_have_count(0)

    await message.locator(".replies-link").click()
    thread = page.locator("#thread-messages")
    await expect(thread).to_contain_text("Execution started")
    if Action.PROMOTION in demo.workflows:  # wired to the OpenText emulator: the job really runs
        await expect(thread).to_contain_text("Execution succeeded", timeout=45_000)
    else:
        await expect(thread).to_contain_text("Execution failed")
    path = await screenshot(page, "console.png")
    assert path.stat().st_size > 10_000


async def test_the_promote_form_shows_validation_errors_submits_and_the_home_tab_lists_it(page, demo):
    await open_console(page, demo.console_url)
    await act_as(page, "U_REQ")
    await run_command(page, "/promote")
    modal = page.locator("#modal")
    await expect(modal).to_be_visible()
    await expect(page.locator("#modal-title")).to_have_text("New promotion")

    await page.click("#modal-submit")
    version_error = page.locator(".bk-input[data-block-id='version'] .bk-error")
    await expect(version_error).to_have_text("Enter the version to promote, like 1.4.0.")
    await expect(page.locator(".bk-input[data-block-id='artifact'] .bk-error")).to_be_visible()

    await page.select_option(
        ".bk-input[data-block-id='artifact'] select",
        label="orders-edi.orders-d96a-to-xml — solution orders-edi",
    )
    await page.fill(".bk-input[data-block-id='version'] input", "2.4.0")
    await page.select_option(".bk-input[data-block-id='from_env'] select", index=2)  # test
    await page.select_option(".bk-input[data-block-id='to_env'] select", index=2)  # test again
    await page.click("#modal-submit")
    await expect(version_error).to_be_hidden()
    await expect(page.locator(".bk-input[data-block-id='to_env'] .bk-error")).to_have_text(
        "Choose an environment other than the source."
    )
    await page.select_option(".bk-input[data-block-id='to_env'] select", index=3)  # prod
    await page.fill(".bk-input[data-block-id='reason'] textarea", "Sent from the console form")
    await page.click("#modal-submit")
    await expect(page.locator("#modal-backdrop")).to_be_hidden()
    await expect(approval_message(page, "PRM-1")).to_contain_text("Sent from the console form")

    await page.click("#app-list a[data-home='1']")
    home = page.locator("#home")
    await expect(home.locator(".bk-header").first).to_have_text("opsgate")
    await expect(home).to_contain_text("Your open requests")
    await expect(home).to_contain_text("PRM-1")


async def test_an_injected_opentext_failure_shows_up_as_an_alert(page, demo):
    if Action.PROMOTION not in demo.workflows:
        pytest.skip(
            "bot.wiring.root.build_workflows registers no promotion workflow yet, so a promotion never "
            "calls OpenText and its injected failure cannot raise an alert"
        )
    await open_console(page, demo.console_url)
    await page.click("#fault-buttons button[data-preset='opentext_promote_fails']")
    await expect(page.locator("#fault-status")).to_contain_text("opentext_promote_fails")

    await act_as(page, "U_REQ")
    await page.click("#channel-list a[data-channel='C_APPROVALS']")
    await run_command(
        page, "/promote orders-edi.orders-d96a-to-xml 2.4.1 dev test Fix NAD+DP qualifier mapping"
    )
    message = approval_message(page, "PRM-1")
    await act_as(page, "U_APP1")
    await message.locator("button[data-action-id='request_approve']").click()
    await expect(message.locator("button[data-action-id='request_approve']")).to_have_count(0)

    await page.click("#channel-list a[data-channel='C_ALERTS']")
    alert = page.locator("#messages .message:not(.ephemeral)").first
    await expect(alert).to_be_visible(timeout=45_000)
    await expect(alert).to_contain_text("orders-edi.orders-d96a-to-xml")
    await expect(alert).to_contain_text("failed")
    await screenshot(page, "console-alert.png")


async def test_message_text_is_rendered_from_mrkdwn_and_never_run_as_html(page, tmp_path):
    slack_app = create_slack_app(seed=DEMO_SEED)

    def no_bot() -> Any:
        raise AssertionError("this test sends nothing to a bot")

    add_console_routes(slack_app, driver_factory=no_bot, fault_targets={})
    runner, url = await start_app(slack_app)
    try:
        workspace = workspace_of(slack_app)
        workspace.post_message(
            "C_APPROVALS",
            text="fallback",
            blocks=[
                {"type": "header", "text": {"type": "plain_text", "text": "Release :rocket: review"}},
                {
                    "type": "section",
                    "text": {
                        "type": "mrkdwn",
                        "text": "*bold* _leaning_ ~gone~ `inline` <@U_APP1> <#C_ALERTS> <https://example.com/x|the docs> "
                        "<javascript:alert(1)|not a link> &lt;img src=x onerror=window.pwned=1&gt; snake_case_name\n"
                        "&gt; quoted line\n```pre <b>block</b>```",
                    },
                    "fields": [{"type": "mrkdwn", "text": "*Field*\nvalue"}],
                },
                {"type": "context", "elements": [{"type": "mrkdwn", "text": "context <!subteam^S_LEADS>"}]},
                {"type": "divider"},
                {
                    "type": "actions",
                    "elements": [
                        {
                            "type": "button",
                            "text": {"type": "plain_text", "text": "Go"},
                            "action_id": "go",
                            "style": "primary",
                        },
                        {
                            "type": "button",
                            "text": {"type": "plain_text", "text": "Stop"},
                            "action_id": "stop",
                            "style": "danger",
                        },
                        {
                            "type": "overflow",
                            "action_id": "more",
                            "options": [
                                {"text": {"type": "plain_text", "text": "Silence 1h"}, "value": "1h"}
                            ],
                        },
                    ],
                },
                {"type": "image", "image_url": "http://127.0.0.1:9/chart.png", "alt_text": "a chart"},
            ],
        )
        workspace.post_message(
            "C_APPROVALS", text="<script>window.pwned=2</script> plain <b>text</b>", blocks=[]
        )
        await page.goto(url + "/")
        message = page.locator("#messages .message").first
        await expect(message.locator(".bk-header")).to_have_text("Release 🚀 review")
        body = message.locator(".bk-section .mrkdwn").first
        await expect(body.locator("b")).to_have_text("bold")
        await expect(body.locator("i")).to_have_text("leaning")
        await expect(body.locator("s")).to_have_text("gone")
        await expect(body.locator("code")).to_have_text("inline")
        await expect(body.locator(".mention").nth(0)).to_have_text("@Alex Approver")
        await expect(body.locator(".mention").nth(1)).to_have_text("#alerts")
        await expect(body.locator("a")).to_have_count(1)
        await expect(body.locator("a")).to_have_attribute("href", "https://example.com/x")
        await expect(body.locator("blockquote")).to_have_text("quoted line")
        await expect(body.locator("pre")).to_have_text("pre <b>block</b>")
        await expect(body).to_contain_text("<img src=x onerror=window.pwned=1>")
        await expect(body).to_contain_text("not a link")
        await expect(body).to_contain_text("snake_case_name")
        await expect(message.locator(".bk-fields b")).to_have_text("Field")
        await expect(message.locator(".bk-context")).to_contain_text("@integration-leads")
        await expect(message.locator(".bk-divider")).to_have_count(1)
        await expect(message.locator("button.bk-primary")).to_have_text("Go")
        await expect(message.locator("button.bk-danger")).to_have_text("Stop")
        await message.locator("button[data-action-id='more']").click()
        await expect(message.locator(".bk-overflow-menu button")).to_have_text("Silence 1h")
        await expect(message.locator("img.bk-image")).to_have_attribute("alt", "a chart")
        plain = page.locator("#messages .message").nth(1)
        await expect(plain).to_contain_text("<script>window.pwned=2</script> plain")
        assert await page.evaluate("typeof window.pwned") == "undefined"
        assert await page.locator("#messages img:not(.bk-image), #messages script").count() == 0
    finally:
        await runner.cleanup()
