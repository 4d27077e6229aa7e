"""The dashboard in a real browser: headless Chromium against `make dev`'s servers, as a person would use it.

Each test goes on from where the one before left the page (one browser, one run of the servers per module);
screenshots of every page are written to build/screenshots/.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.dashboard.chromium import SCREENSHOTS, browser_missing

if (missing := browser_missing()) is not None:
    pytest.skip(missing, allow_module_level=True)

from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from scripts.local_aws import SECOND_ACCOUNT, LocalRun, local_run

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
KEY_STORAGE = "ecs-image-updater.key"


def call(
    run: LocalRun, method: str, path: str, body: dict[str, Any] | None = None, principal: str | None = None
) -> tuple[int, dict[str, Any]]:
    """The JSON API, as CI or another person would call it beside the page."""
    headers = {"x-api-key": run.api_key, "Content-Type": "application/json"}
    if principal:
        headers["x-local-principal"] = principal
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{run.api_url}/{path}", data=data, headers=headers, method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def wait_for(driver: Any, condition: Callable[[Any], Any], timeout: float = 10, what: str = "") -> Any:
    """Wait until `condition(driver)` is truthy (a re-render that replaced an element is retried)."""

    def attempt(browser: Any) -> Any:
        try:
            return condition(browser)
        except StaleElementReferenceException:
            return False

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(attempt, what)


def shown(element_id: str) -> Callable[[Any], Any]:
    """A condition: the element with that id, once it is displayed."""

    def displayed(driver: Any) -> Any:
        element = driver.find_element(By.ID, element_id)
        return element if element.is_displayed() else False

    return displayed


def update(run: LocalRun, tag: str, service: str = "", principal: str | None = None) -> tuple[int, dict[str, Any]]:
    """POST /update of the workload's service (or `service`) onto the tag of its image."""
    body = {"cluster": run.cluster, "service": service or run.service, "image": f"{run.image}:{tag}"}
    return call(run, "POST", "update", body, principal)


def text_of(driver: Any, css: str) -> str:
    return " ".join(element.text for element in driver.find_elements(By.CSS_SELECTOR, css))


def service_row(driver: Any, cluster_arn: str, service: str) -> Any:
    """The services page's row (a link) of one service, outside the "needs attention" list."""
    href = "#/service/" + urllib.parse.quote(cluster_arn, safe="") + "/" + service
    rows = driver.find_elements(By.CSS_SELECTOR, f'.cluster a.row[href="{href}"]')
    return rows[0] if rows else None


def screenshot(driver: Any, name: str) -> None:
    # The whole page, however long: the window grows to the document's height for the picture.
    driver.execute_script("document.activeElement && document.activeElement.blur()")
    width = driver.execute_script("return window.innerWidth")
    height = driver.execute_script("return document.documentElement.scrollHeight")
    original = driver.get_window_size()
    driver.set_window_size(original["width"], max(original["height"], height + 150))
    time.sleep(0.2)
    driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))
    driver.set_window_size(original["width"], original["height"])
    assert width > 0


def console_errors(driver: Any) -> list[str]:
    """The browser console's errors since the last look (a CSP violation, an uncaught exception, a failed load)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


@pytest.fixture(autouse=True)
def no_console_errors(request: pytest.FixtureRequest, driver: Any) -> Iterator[None]:
    """Every test leaves the console without an error, but for the refusals a test expects (marked)."""
    console_errors(driver)
    yield
    errors = console_errors(driver)
    expected = request.node.get_closest_marker("expects_refusal")
    if expected is not None:
        errors = [error for error in errors if "status of 403" not in error]
    assert errors == []


def home_arn(run: LocalRun) -> str:
    return f"arn:aws:ecs:us-east-1:123456789012:cluster/{run.cluster}"


def poll_now(driver: Any) -> None:
    """Have the page refresh at once, as it does when its tab becomes visible again (no wait for its timer)."""
    driver.execute_script("document.dispatchEvent(new Event('visibilitychange'))")


def intercept(driver: Any, path: str, edit: str = "", delay_ms: int = 0, method: str = "GET") -> None:
    """The page's next request to `path` (relative, as the page asks) gets its answer held `delay_ms` and changed
    by `edit` (JavaScript statements on `body` and `status`): what a slow or an odd answer would do, without
    touching the servers. Later requests go through untouched."""
    driver.execute_script(
        f"""
        const original = window.fetch;
        let left = 1;
        window.fetch = async (url, init) => {{
          if (String(url) !== {json.dumps(path)} || (init.method || "GET") !== {json.dumps(method)} || left <= 0) {{
            return original(url, init);
          }}
          left -= 1;
          const response = await original(url, init);
          let body = await response.json();
          let status = response.status;
          {edit}
          await new Promise((resolve) => setTimeout(resolve, {delay_ms}));
          return new Response(JSON.stringify(body), {{ status, headers: {{ "Content-Type": "application/json" }} }});
        }};
        """
    )


def history(run: LocalRun, service: str, limit: int = 20) -> list[dict[str, Any]]:
    status, answer = call(run, "GET", f"services/{run.cluster}/{service}/history?limit={limit}")
    assert status == 200, answer
    return list(answer["records"])


def rollback_buttons_only_on_completed_records(driver: Any) -> None:
    """Only a record whose revision ran to completion offers to roll back to it (read at once: a poll may redraw)."""
    outcomes = driver.execute_script(
        "return [...document.querySelectorAll('#history > li.event')]"
        ".filter((item) => item.querySelector('button.rollback'))"
        ".map((item) => item.querySelector('.badge').textContent)"
    )
    assert all(outcome == "COMPLETED" for outcome in outcomes), outcomes


def active_focus(driver: Any) -> str | None:
    return driver.execute_script("return document.activeElement && document.activeElement.dataset.focus || null")


def test_the_page_loads_without_a_key_and_asks_for_one(running: LocalRun, driver: Any) -> None:
    for path in ("", "dashboard/app.js", "dashboard/style.css"):
        with urllib.request.urlopen(f"{running.api_url}/{path}", timeout=10) as response:  # noqa: S310 - loopback
            assert response.headers["Content-Security-Policy"] == CSP, path
            assert response.headers["X-Content-Type-Options"] == "nosniff"
    with urllib.request.urlopen(f"{running.api_url}/", timeout=10) as response:  # noqa: S310 - loopback
        static = response.read().decode()
    # Until the script runs (or without JavaScript), the page says what to do rather than stay blank.
    assert "Loading the dashboard… If this stays, open the dashboard's URL with a trailing" in static
    assert "<noscript>" in static
    driver.get(f"{running.api_url}/")
    form = wait_for(driver, shown("sign-in"))
    assert not driver.find_element(By.ID, "loading").is_displayed()
    assert driver.find_element(By.CSS_SELECTOR, 'label[for="key"]').text == "API key"
    assert driver.switch_to.active_element == driver.find_element(By.ID, "key")
    assert not driver.find_element(By.ID, "iam-note").is_displayed()  # a key stage
    assert form.find_element(By.ID, "key").get_attribute("type") == "password"
    screenshot(driver, "key-prompt")


@pytest.mark.expects_refusal
def test_a_wrong_key_is_refused_with_a_clear_message(running: LocalRun, driver: Any) -> None:
    driver.find_element(By.ID, "key").send_keys("not-the-key\n")
    message = wait_for(driver, shown("sign-in-message"))
    assert message.text.startswith("The key was refused (403")
    assert "Type it again" in message.text
    assert driver.find_element(By.ID, "sign-in").is_displayed()
    assert driver.execute_script(f"return sessionStorage.getItem('{KEY_STORAGE}')") is None
    assert text_of(driver, "#view") == ""


def test_with_the_key_every_service_of_the_workload_shows(running: LocalRun, driver: Any) -> None:
    driver.find_element(By.ID, "key").send_keys(running.api_key + "\n")
    wait_for(driver, lambda d: service_row(d, home_arn(running), running.service), what="the services")
    assert not driver.find_element(By.ID, "sign-in").is_displayed()
    assert driver.find_element(By.ID, "principal").text == "Signed in as local"
    assert driver.execute_script(f"return sessionStorage.getItem('{KEY_STORAGE}')") == running.api_key
    assert driver.execute_script(f"return localStorage.getItem('{KEY_STORAGE}')") is None
    web = service_row(driver, home_arn(running), running.service)
    assert web.find_element(By.CSS_SELECTOR, ".tag").text == "1.27.0"
    assert web.find_element(By.CSS_SELECTOR, ".policy").text.startswith("follows semver:minor")
    assert service_row(driver, home_arn(running), running.reviewed_service) is not None
    assert service_row(driver, running.second_cluster_arn, running.service) is not None  # the other account
    places = [heading.text for heading in driver.find_elements(By.CSS_SELECTOR, "#services > .block > h2")]
    assert "123456789012 · us-east-1" in places
    assert f"{SECOND_ACCOUNT} · us-east-1" in places

    # Every service GET /services lists is a row, in its account's and cluster's group, and no other.
    status, listed = call(running, "GET", "services")
    assert status == 200, listed
    shown_rows = {
        row.get_attribute("href").split("#", 1)[1] for row in driver.find_elements(By.CSS_SELECTOR, ".cluster a.row")
    }
    expected = {
        "/service/" + urllib.parse.quote(entry["clusterArn"], safe="") + "/" + entry["service"]
        for entry in listed["services"]
    }
    assert shown_rows == expected

    driver.find_element(By.ID, "filter-name").send_keys("reviewed")
    rows = driver.find_elements(By.CSS_SELECTOR, ".cluster a.row .name")
    assert [row.text for row in rows] == [running.reviewed_service] * 2  # one in each account
    driver.find_element(By.ID, "filter-name").clear()
    Select(driver.find_element(By.ID, "filter-outcome")).select_by_value("COMPLETED")
    completed = [entry for entry in listed["services"] if (entry["newest"] or {}).get("outcome") == "COMPLETED"]
    if completed:
        assert len(driver.find_elements(By.CSS_SELECTOR, ".cluster a.row")) == len(completed)
    else:
        assert "No service matches the filter." in text_of(driver, "#services")
    Select(driver.find_element(By.ID, "filter-outcome")).select_by_value("")
    assert len(driver.find_elements(By.CSS_SELECTOR, ".cluster a.row")) == len(expected)


def test_a_deployment_made_through_the_api_shows_its_outcome_without_a_reload(running: LocalRun, driver: Any) -> None:
    driver.execute_script("window.notReloaded = true")
    status, answer = update(running, "1.27.1")
    assert status == 200, answer

    def deployed(d: Any) -> bool:
        row = service_row(d, home_arn(running), running.service)
        return bool(row) and row.find_element(By.CSS_SELECTOR, ".tag").text == "1.27.1" and "COMPLETED" in row.text

    wait_for(driver, deployed, timeout=30, what="the new tag, COMPLETED")  # the idle poll is every 15 s
    row = service_row(driver, home_arn(running), running.service)
    assert row.find_element(By.CSS_SELECTOR, ".by").text == "local"
    assert row.find_element(By.CSS_SELECTOR, "time").get_attribute("title").endswith("Z")
    assert driver.execute_script("return window.notReloaded") is True
    # Screen readers hear one line of what changed, not the whole list (which is no live region) at every poll.
    assert "web: COMPLETED" in driver.find_element(By.ID, "changes").get_attribute("textContent")
    assert driver.find_element(By.ID, "services").get_attribute("aria-live") is None


def test_an_older_answer_landing_last_is_not_drawn(running: LocalRun, driver: Any) -> None:
    # A poll's answer held 1.5 s, saying other tags, lands after the next poll's answer: it is dropped.
    older = "body.services.forEach((s) => (s.containers || []).forEach((c) => { c.tag = 'stale'; }));"
    intercept(driver, "services", older, 1500)
    poll_now(driver)
    poll_now(driver)
    time.sleep(2.5)
    assert "stale" not in text_of(driver, "#services .tag")
    web = service_row(driver, home_arn(running), running.service)
    assert web.find_element(By.CSS_SELECTOR, ".tag").text == "1.27.1"


def test_places_that_could_not_be_read_are_named_above_the_list(running: LocalRun, driver: Any) -> None:
    failure = "{account: '333333333333', region: 'eu-west-1', error: 'AccessDenied: the role could not be assumed'}"
    intercept(driver, "services", f"body.places = [...(body.places || []), {failure}];")
    poll_now(driver)
    failed = wait_for(driver, lambda d: d.find_element(By.CSS_SELECTOR, "#services .failed-places"), what="the place")
    assert failed.text == "333333333333 · eu-west-1: AccessDenied: the role could not be assumed"
    blocks = driver.find_elements(By.CSS_SELECTOR, "#services > .block")
    assert blocks[0].find_elements(By.CSS_SELECTOR, ".failed-places")  # first, above every group
    assert all(not block.find_elements(By.CSS_SELECTOR, ".failed-places") for block in blocks[1:])
    poll_now(driver)  # the next answer names no failed place
    wait_for(driver, lambda d: not d.find_elements(By.CSS_SELECTOR, "#services .failed-places"))


def test_a_malformed_address_shows_the_services_with_an_error(running: LocalRun, driver: Any) -> None:
    driver.execute_script("location.hash = '#/service/%E0%A4%A/web'")
    alert = wait_for(driver, shown("alert"), what="the error")
    assert alert.text.startswith("The address #/service/%E0%A4%A/web names no service (URI malformed)")
    wait_for(driver, lambda d: service_row(d, home_arn(running), running.service), what="the services")
    assert driver.find_element(By.CSS_SELECTOR, "#view h1").text == "Services"
    driver.execute_script("location.hash = '#/'")


def test_a_pending_approval_is_approved_from_the_page(running: LocalRun, driver: Any) -> None:
    status, answer = update(running, "1.28.1", running.reviewed_service, principal="bob")
    assert status == 202, answer
    approval = answer["approval"]["id"]
    driver.find_element(By.CSS_SELECTOR, 'nav a[href="#/approvals"]').click()
    selector = f'[data-approval="{approval}"]'
    card = wait_for(driver, lambda d: d.find_element(By.CSS_SELECTOR, selector), what="the approval")
    assert card.find_element(By.CSS_SELECTOR, ".votes").text == "0 of 1"
    assert "local:bob" in card.text
    assert "nginx:1.27.0 → nginx:1.28.1" in card.text
    screenshot(driver, "approvals")
    card.find_element(By.CSS_SELECTOR, "textarea").send_keys("release notes")

    # Another approval arrives while the comment is typed (ECS pauses web-paused's deployment: the next test
    # continues it): the list is redrawn, the comment, the focus and the caret stay.
    status, answer = update(running, "1.27.1", running.paused_service, principal="bob")
    assert status == 200, answer
    deadline = time.monotonic() + 40  # ECS's hook event reaches the service through EventBridge and a queue
    while not driver.find_elements(By.CSS_SELECTOR, '[data-kind="pause"]'):
        assert time.monotonic() < deadline, "the pause did not show"
        poll_now(driver)
        time.sleep(1)
    assert active_focus(driver) == f"comment:{approval}"
    driver.switch_to.active_element.send_keys(" read")  # the caret stayed at the end
    assert driver.find_element(By.ID, f"comment-{approval}").get_attribute("value") == "release notes read"

    # The time left is said anew at every poll, even when nothing else changed.
    left = f'{selector} time[data-format="left"]'
    driver.execute_script(f"document.querySelector('{left}').textContent = 'stale'")
    poll_now(driver)
    wait_for(driver, lambda d: d.find_element(By.CSS_SELECTOR, left).text not in ("stale", ""), what="time left")
    assert driver.find_element(By.ID, f"comment-{approval}").get_attribute("value") == "release notes read"

    driver.find_element(By.CSS_SELECTOR, f"{selector} button.approve").click()
    wait_for(driver, lambda d: f"Approval {approval}: DEPLOYED" in text_of(d, "#notice"), what="deployed")
    wait_for(driver, lambda d: not d.find_elements(By.CSS_SELECTOR, selector))
    status, ended = call(running, "GET", f"approvals/{approval}")
    assert (status, ended["status"], ended["approvedBy"]) == (200, "DEPLOYED", ["local"])
    assert ended["votes"][0]["comment"] == "release notes read"


def test_a_deployment_ecs_paused_is_continued_from_the_page(running: LocalRun, driver: Any) -> None:
    # The pause of web-paused's deployment, asked for by bob in the test before.
    card = wait_for(
        driver,
        lambda d: d.find_element(By.CSS_SELECTOR, '[data-kind="pause"]'),
        timeout=40,
        what="the pause",
    )
    approval = card.get_attribute("data-approval")
    assert f"{running.paused_service} (paused)" in card.text
    assert "ECS paused a deployment already under way at POST_TEST_TRAFFIC_SHIFT" in card.text
    assert "ECS will roll back at its timeout" in card.text
    screenshot(driver, "approvals-pause")
    card.find_element(By.CSS_SELECTOR, "button.approve").click()
    wait_for(driver, lambda d: f"Approval {approval}: CONTINUED" in text_of(d, "#notice"), what="continued")
    status, ended = call(running, "GET", f"approvals/{approval}")
    assert (status, ended["status"], ended["kind"]) == (200, "CONTINUED", "pause")


def test_a_rollback_from_the_history_confirms_with_its_own_dry_run_and_runs_once(
    running: LocalRun, driver: Any
) -> None:
    status, answer = update(running, "1.27.9")
    assert status == 200, answer
    running_revision = f"web:{answer['taskDefinition']['revision']}"
    target = f"web:{answer['previousTaskDefinition']['revision']}"
    driver.find_element(By.CSS_SELECTOR, 'nav a[href="#/"]').click()
    row = wait_for(driver, lambda d: service_row(d, home_arn(running), running.service))
    row.click()
    wait_for(driver, lambda d: d.find_element(By.CSS_SELECTOR, "#view h1").text == running.service)
    label = f"Roll back to {target}"

    def rollback_button(d: Any) -> Any:
        buttons = [b for b in d.find_elements(By.CSS_SELECTOR, "#history button.rollback") if b.text == label]
        return buttons[0] if buttons else None

    wait_for(driver, rollback_button, what="the rollback button")
    assert running_revision in text_of(driver, "#status")
    # Its deployment ends first (COMPLETED: a revision to go back to later, at 320 px).
    wait_for(
        driver,
        lambda d: (
            "COMPLETED" in text_of(d, "#status") and text_of(d, "#history > li:first-child .badge") == "COMPLETED"
        ),
        timeout=20,
        what="web:1.27.9 COMPLETED",
    )
    rollback_buttons_only_on_completed_records(driver)

    # A dry run refused: the dialog says the API's message, and offers no OK.
    refusal = "status = 409; body = {Code: 'ServiceNotUpdatableError', Message: 'not now: a test says so'};"
    intercept(driver, "rollback", refusal, method="POST")
    wait_for(driver, rollback_button).click()
    dialog = wait_for(driver, shown("confirm"))
    assert "The rollback's dry run was refused: 409: not now: a test says so" in dialog.text
    assert not dialog.find_element(By.ID, "confirm-ok").is_displayed()
    dialog.find_element(By.ID, "confirm-cancel").click()
    wait_for(driver, lambda d: not d.find_element(By.ID, "confirm").is_displayed())

    # A new record arriving (a no-op update beside the page) leaves the focus on the same button.
    driver.execute_script("arguments[0].focus()", wait_for(driver, rollback_button))
    focus = active_focus(driver)
    assert str(focus).startswith("rollback:")
    status, noop = update(running, "1.27.9")
    assert (status, noop["changed"]) == (200, False), noop
    poll_now(driver)
    wait_for(driver, lambda d: "NO_CHANGE" in d.find_element(By.CSS_SELECTOR, "#history > li").text, what="no-op")
    assert active_focus(driver) == focus

    # A double click starts one dry run and one dialog; one OK sends one rollback.
    driver.execute_script(
        """
        window.rollbacks = [];
        const original = window.fetch;
        window.fetch = (url, init) => {
          if (String(url) === "rollback") window.rollbacks.push(JSON.parse(init.body));
          return original(url, init);
        };
        """
    )
    ActionChains(driver).double_click(wait_for(driver, rollback_button)).perform()
    dialog = wait_for(driver, shown("confirm"))
    wait_for(driver, lambda d: "What changes" in dialog.text, what="the dry run's diff")
    assert f"from {running_revision} to {target}" in dialog.text
    assert f"containerDefinitions[web].image: {running.image}:1.27.9 → {running.image}:1.27.1" in dialog.text
    asked = {"cluster": home_arn(running), "service": running.service, "taskDefinition": target}
    status, dry = call(running, "POST", "rollback", {**asked, "dryRun": True})
    assert status == 200, dry
    for check in dry["verification"]:  # the rollback's own checks, each shown
        assert f"{check['check']} {check['target']}" in dialog.text
    screenshot(driver, "rollback-confirm")
    dialog.find_element(By.ID, "confirm-ok").click()
    wait_for(driver, lambda d: f"Rolled back to {target}" in text_of(d, "#notice"), what="rolled back")
    assert driver.execute_script("return window.rollbacks") == [{**asked, "dryRun": True}, asked]
    assert [record["action"] for record in history(running, running.service, 5)].count("rollback") == 1
    # The page follows the rollback's deployment on its own, every 3 s while it is in progress.
    wait_for(
        driver,
        lambda d: target in text_of(d, "#status") and "COMPLETED" in text_of(d, "#status"),
        timeout=20,
        what="the rollback COMPLETED",
    )
    newest = driver.find_elements(By.CSS_SELECTOR, "#history > li")[0]
    assert "rollback" in newest.text
    assert "nginx:1.27.9 → nginx:1.27.1" in newest.text
    assert driver.find_element(By.ID, "history").get_attribute("aria-live") is None
    rollback_buttons_only_on_completed_records(driver)
    screenshot(driver, "service-history")


def test_the_description_file_downloads_from_the_service_page(running: LocalRun, driver: Any) -> None:
    driver.find_element(By.ID, "description").click()
    link = wait_for(driver, shown("description-link"))
    assert link.get_attribute("download") == f"{running.service}.json"
    assert link.get_attribute("href").startswith("blob:")
    saved = driver.downloads / f"{running.service}.json"
    wait_for(driver, lambda d: saved.exists() and saved.stat().st_size > 0, what="the downloaded file")
    described = json.loads(saved.read_text())
    containers = {"web": f"{running.image}:1.27.1"}  # what the rollback put back
    assert described == {"cluster": running.cluster, "service": running.service, "containers": containers}


def test_a_deployment_in_progress_is_stopped_from_the_page(running: LocalRun, driver: Any) -> None:
    status, answer = update(running, "1.27.9", running.paused_service, principal="bob")
    assert status == 200, answer
    under_way = f"web:{answer['taskDefinition']['revision']}"
    before = f"web:{answer['previousTaskDefinition']['revision']}"
    deployment = answer["deployment"]["id"]

    # ECS holds the deployment at its PAUSE hook, maybe for an hour: the pages do not poll every 3 s for it.
    def polled_slowly(d: Any) -> bool:
        footer = d.find_element(By.ID, "updated").text
        return footer.startswith("Updated") and "every 3 s" not in footer

    driver.find_element(By.CSS_SELECTOR, 'nav a[href="#/"]').click()

    def paused_row(d: Any) -> bool:
        row = service_row(d, home_arn(running), running.paused_service)
        return row is not None and "POST_TEST_TRAFFIC_SHIFT" in row.text and polled_slowly(d)

    wait_for(driver, paused_row, timeout=20, what="the paused deployment, polled every 15 s")
    service_row(driver, home_arn(running), running.paused_service).click()
    wait_for(
        driver,
        lambda d: d.find_elements(By.CSS_SELECTOR, "#status .pause-note") and polled_slowly(d),
        timeout=20,
        what="the service page, paused, polled every 15 s",
    )
    rollback_buttons_only_on_completed_records(driver)

    driver.find_element(By.ID, "stop").click()
    dialog = wait_for(driver, shown("confirm"))
    assert f"Stop deployment {deployment} of {running.paused_service}?" in dialog.text
    assert f"Under way: {under_way}\nweb: {running.image}:1.27.9" in dialog.text
    assert f"A rollback returns to: {before}\nweb: {running.image}:1.27.1" in dialog.text
    assert dialog.find_element(By.CSS_SELECTOR, 'input[value="rollback"]').is_selected()
    screenshot(driver, "service-stop")
    dialog.find_element(By.ID, "confirm-ok").click()
    wait_for(driver, lambda d: "ECS took the stop (rollback)." in text_of(d, "#notice"), what="the stop taken")

    def ended(_: Any) -> dict[str, Any] | None:
        record = next(r for r in history(running, running.paused_service, 5) if r["deploymentId"] == deployment)
        return record if record["outcome"] in ("ROLLED_BACK", "STOPPED") else None

    record = wait_for(driver, ended, timeout=30, what="the deployment ROLLED_BACK or STOPPED")
    assert record["stop"]["action"] == "rollback"
    wait_for(
        driver,
        lambda d: record["outcome"] in d.find_element(By.CSS_SELECTOR, "#history > li").text,
        timeout=20,
        what="the page showing it",
    )


def test_a_freeze_made_on_the_page_shows_a_banner_on_every_page(running: LocalRun, driver: Any) -> None:
    driver.find_element(By.CSS_SELECTOR, 'nav a[href="#/freezes"]').click()
    wait_for(driver, lambda d: "No freeze in force." in text_of(d, "#freezes"))
    driver.find_element(By.ID, "freeze-clusters").send_keys(running.cluster)
    driver.find_element(By.ID, "freeze-services").send_keys(running.service)
    driver.find_element(By.ID, "freeze-reason").send_keys("release 2.0 launch")
    ActionChains(driver).double_click(driver.find_element(By.ID, "freeze-create")).perform()  # makes one freeze
    banner = wait_for(driver, shown("freeze-banner"))
    assert f"Frozen: clusters {running.cluster}; services {running.service}" in banner.text
    assert "release 2.0 launch" in banner.text
    freeze = wait_for(driver, lambda d: d.find_element(By.CSS_SELECTOR, "li.freeze"))
    assert len(call(running, "GET", "freezes")[1]["freezes"]) == 1
    screenshot(driver, "freezes")
    # A poll that finds the same freezes leaves the banner as it is (a role=status region: redrawn, it is read again).
    line = banner.find_element(By.TAG_NAME, "p")
    updated = driver.find_element(By.ID, "updated").text
    time.sleep(1.1)
    poll_now(driver)
    wait_for(driver, lambda d: d.find_element(By.ID, "updated").text != updated, what="a poll")
    assert line.text.startswith("Frozen:")  # the same element, not a stale one
    status, refused = update(running, "1.28.0")
    assert (status, refused["Code"]) == (423, "LockedError")
    driver.find_element(By.CSS_SELECTOR, 'nav a[href="#/"]').click()
    wait_for(driver, lambda d: service_row(d, home_arn(running), running.service))
    assert driver.find_element(By.ID, "freeze-banner").is_displayed()

    driver.find_element(By.CSS_SELECTOR, 'nav a[href="#/freezes"]').click()
    wait_for(driver, lambda d: d.find_element(By.CSS_SELECTOR, "li.freeze"))

    # Signing out while a refresh is on its way: its answer, landing after, shows nothing (no banner, no footer).
    intercept(driver, "freezes", delay_ms=1500)
    poll_now(driver)
    driver.find_element(By.ID, "sign-out").click()
    time.sleep(2)
    assert not driver.find_element(By.ID, "freeze-banner").is_displayed()
    assert driver.find_element(By.ID, "updated").text == ""
    assert text_of(driver, "#view") == ""
    driver.find_element(By.ID, "key").send_keys(running.api_key + "\n")

    freeze = wait_for(driver, lambda d: d.find_element(By.CSS_SELECTOR, "li.freeze"))
    ActionChains(driver).double_click(freeze.find_element(By.CSS_SELECTOR, "button.lift")).perform()
    wait_for(driver, lambda d: d.find_element(By.ID, "confirm").is_displayed())
    driver.find_element(By.ID, "confirm-ok").click()
    wait_for(driver, lambda d: not d.find_element(By.ID, "freeze-banner").is_displayed(), what="the banner gone")
    assert call(running, "GET", "freezes")[1]["freezes"] == []


def test_the_key_survives_a_reload_and_signing_out_forgets_it(running: LocalRun, driver: Any) -> None:
    driver.get(f"{running.api_url}/#/")
    wait_for(driver, lambda d: service_row(d, home_arn(running), running.service), what="the services after a reload")
    assert not driver.find_element(By.ID, "sign-in").is_displayed()
    screenshot(driver, "services")
    driver.find_element(By.ID, "sign-out").click()
    wait_for(driver, lambda d: d.find_element(By.ID, "sign-in").is_displayed())
    assert driver.execute_script(f"return sessionStorage.getItem('{KEY_STORAGE}')") is None
    assert driver.find_elements(By.CSS_SELECTOR, "a.row") == []
    driver.find_element(By.ID, "key").send_keys(running.api_key + "\n")
    wait_for(driver, lambda d: service_row(d, home_arn(running), running.service))


def test_the_services_page_fits_a_320_pixel_screen(running: LocalRun, driver: Any) -> None:
    original = driver.get_window_size()
    driver.set_window_size(320, 800)
    try:
        wait_for(driver, lambda d: d.execute_script("return window.innerWidth") <= 320)
        overflow = driver.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0  # no horizontal scrolling of the page
        row = service_row(driver, home_arn(running), running.service)
        assert row.rect["width"] <= 320
        screenshot(driver, "services-320")
        row.click()  # web: it has a revision to roll back to
        wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#history > li.event"))
        overflow = driver.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0
        screenshot(driver, "service-history-320")
        rollback = driver.find_elements(By.CSS_SELECTOR, "#history button.rollback")
        if rollback:  # its confirmation fits too
            rollback[0].click()
            dialog = wait_for(driver, shown("confirm"))
            wait_for(driver, lambda d: "What changes" in dialog.text, what="the dry run's diff")
            assert dialog.rect["width"] <= 320
            assert (
                driver.execute_script("return document.getElementById('confirm').scrollWidth") <= dialog.rect["width"]
            )
            screenshot(driver, "rollback-confirm-320")
            dialog.find_element(By.ID, "confirm-cancel").click()
    finally:
        driver.set_window_size(original["width"], original["height"])


def test_on_an_iam_stage_the_page_says_it_needs_a_key_stage_or_a_signing_proxy(driver: Any, tmp_path: Path) -> None:
    with (tmp_path / "servers.log").open("wb") as log, local_run(log=log.fileno(), auth_mode="iam") as iam:
        driver.get(f"{iam.api_url}/")
        note = wait_for(driver, shown("iam-note"))
        assert "needs a stage that signs in with an API key, or a signing proxy" in note.text
        assert driver.find_element(By.ID, "sign-in").is_displayed()
