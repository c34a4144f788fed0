"""ComfyUI's page in a real browser: Debian's Chromium driven by Playwright (tests/test_page.py, which also
takes the README's picture of the page).

Playwright's own browser builds are never downloaded: it launches the system Chromium (`/usr/bin/chromium`,
installed by tools/setup_env.sh), headless.
"""

import contextlib
import json
import re
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
# Headless in a container: no sandbox (root), no GPU, /dev/shm is small.
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
VIEWPORT = {"width": 1600, "height": 900}
EXTENSION = "ltx2_a2v.page"
PACK_NODES = ("LoadLTX2Quantized", "A2VSampler", "VRAMGuard")
UNITS = {"GiB": 2**30, "MiB": 2**20, "KiB": 2**10}
# A dialog and its close button: PrimeVue's (frontend 1.32, ComfyUI 0.3.75) and Reka's (1.48, ComfyUI 0.33).
DIALOG = ".p-dialog, [role=dialog]"
CLOSE = '.p-dialog button:has(.pi-times), [role=dialog] button[aria-label="Close dialog"]'


@contextlib.contextmanager
def open_page(url: str, timeout: float = 120.0):
    """Yields a Playwright page with ComfyUI's app loaded, the pack's extension registered and the first-run
    template browser closed; page.ltx2_console holds the page's console messages and uncaught errors."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.is_file():
        raise FileNotFoundError(f"{CHROMIUM} is missing: install Debian's chromium (`make setup` does)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.ltx2_console = []
            page.on("console", lambda message: page.ltx2_console.append(f"{message.type}: {message.text}"))
            page.on("pageerror", lambda error: page.ltx2_console.append(f"pageerror: {error.message}\n{error.stack}"))
            page.goto(url)
            page.wait_for_function(
                "window.app?.graph && window.LiteGraph && window.app.extensionManager", timeout=timeout * 1000
            )
            page.wait_for_function(
                f"app.extensions.some(e => e.name === {json.dumps(EXTENSION)})", timeout=timeout * 1000
            )
            close_dialogs(page)
            yield page
        finally:
            browser.close()


def close_dialogs(page) -> None:
    """Closes whatever dialog is open (on a first visit ComfyUI opens its template browser)."""
    for _ in range(10):
        if not page.locator(DIALOG).count():
            return
        close = page.locator(CLOSE)
        if close.count():
            close.first.click()
        else:
            page.keyboard.press("Escape")
        page.wait_for_timeout(300)
    raise TimeoutError(f"a dialog stays open: {page.locator(DIALOG).first.inner_text()[:300]}")


def template_thumbnail(page, pack: str, name: str) -> dict:
    """Opens the template browser at the pack's entry and returns the card's image: {src, width, height}."""
    page.evaluate("app.extensionManager.command.execute('Comfy.BrowseTemplates')")
    page.locator(DIALOG).locator("nav").get_by_text(pack, exact=True).click()
    card = page.locator(f'[data-testid="template-workflow-{name}"]')
    card.wait_for(timeout=20_000)
    page.wait_for_function(
        "card => { const img = card.querySelector('img'); return img && img.complete && img.naturalWidth > 0 }",
        arg=card.element_handle(),
        timeout=20_000,
    )
    image = card.evaluate(
        "card => { const i = card.querySelector('img'); "
        "return {src: i.src, width: i.naturalWidth, height: i.naturalHeight} }"
    )
    close_dialogs(page)
    return image


def drop_workflow(page, path: Path) -> None:
    """Loads a workflow file the way dragging it onto the canvas does: a drop event holding the file."""
    data_transfer = page.evaluate_handle(
        """([name, text]) => {
            const transfer = new DataTransfer();
            transfer.items.add(new File([text], name, {type: "application/json"}));
            return transfer;
        }""",
        [path.name, path.read_text()],
    )
    page.dispatch_event("#graph-canvas", "drop", {"dataTransfer": data_transfer})
    count = len(json.loads(path.read_text())["nodes"])
    page.wait_for_function(f"app.graph.nodes.length === {count}", timeout=30_000)
    wait_unblocked(page)


def wait_unblocked(page, timeout: float = 30.0) -> None:
    """Waits until the page takes clicks again. Frontend 1.48 covers it with PrimeVue's BlockUI mask while its
    spinner is on (loading a dropped workflow); unblocking starts the mask's leave animation and removes the mask
    at the animation's end event. In headless Chromium that event sometimes never comes (about one drop in three
    here) and the finished mask stays over the page, taking every click: once the spinner is off, such a mask,
    already leaving, is removed here."""
    page.wait_for_function("() => !app.extensionManager.spinner", timeout=timeout * 1000)
    page.evaluate("() => document.querySelectorAll('.p-blockui-mask.p-overlay-mask-leave').forEach(m => m.remove())")
    page.wait_for_function("() => !document.querySelector('.p-blockui-mask')", timeout=timeout * 1000)


def missing_node_types(page) -> list[str]:
    """Node types of the loaded graph that the page does not know (ComfyUI would list them in its dialog)."""
    return page.evaluate("app.graph.nodes.filter(n => !(n.type in LiteGraph.registered_node_types)).map(n => n.type)")


def set_widgets(page, node_type: str, **values) -> None:
    """Sets widget values on every node of a type, as typing them in would."""
    page.evaluate(
        """([type, values]) => {
            for (const node of app.graph.nodes.filter(n => n.type === type))
                for (const [name, value] of Object.entries(values)) {
                    const widget = node.widgets.find(w => w.name === name);
                    widget.value = value;
                    widget.callback?.(value);
                }
            app.graph.setDirtyCanvas(true, true);
        }""",
        [node_type, values],
    )


def widget_values(page, node_type: str, name: str) -> list:
    """The widget's value on every node of a type."""
    return page.evaluate(
        "([type, name]) => app.graph.nodes.filter(n => n.type === type)"
        ".map(n => n.widgets.find(w => w.name === name).value)",
        [node_type, name],
    )


def queue_errors(page) -> tuple[dict, list[str]]:
    """Clicks Run when the server refuses the workflow: ({node id: [(input, details)]} as the page keeps them to
    mark inputs red, the errors the page lists). Frontend 1.32 lists them in an error dialog, one "- ..." line each;
    1.48 in its errors panel (the toast's "View details"), one "<node title> - <input>" entry each, opened here to
    its details. The dialog or panel is closed again."""
    logged = len(page.ltx2_console)
    queue(page)
    page.wait_for_selector(f"{DIALOG}, :text('View details')", timeout=10_000)
    errors = page.evaluate("() => JSON.parse(JSON.stringify(app.lastNodeErrors ?? {}))")
    if page.locator(DIALOG).count():
        text = page.locator(DIALOG).first.inner_text()
        listed = [line for line in text.splitlines() if line.startswith("- ")]
        close_dialogs(page)
    else:
        wait_unblocked(page)
        page.get_by_text("View details").click()
        panel = page.locator('[data-testid="error-group-execution"]')
        panel.wait_for(timeout=10_000)
        for info in panel.locator('button[aria-label^="Info for"]').all():
            info.click()
        page.wait_for_timeout(300)
        listed = [item.inner_text().replace("\n", " ") for item in panel.locator("li").all()]
        page.evaluate("() => app.extensionManager.setting.set('Comfy.RightSidePanel.IsOpen', false)")
    # ComfyUI logs the refusal it shows (its stack passes through the pack's queuePrompt wrapper): expected here.
    page.ltx2_console[logged:] = [
        m for m in page.ltx2_console[logged:] if not m.startswith("error: PromptExecutionError")
    ]
    return {
        node: [(e.get("extra_info", {}).get("input_name"), e["details"]) for e in error["errors"]]
        for node, error in errors.items()
    }, listed


def search_nodes(page, query: str) -> list[str]:
    """The node search box's results for `query` (what typing it after a double click shows): display names, best
    first."""
    page.evaluate("app.extensionManager.command.execute('Workspace.SearchBox.Toggle')")
    box = page.locator("input[placeholder='Add a node...']")
    box.wait_for(timeout=10_000)
    box.fill(query)
    page.wait_for_timeout(1000)  # the list follows the typing after a debounce
    found = page.evaluate("[...document.querySelectorAll('[role=option]')].map(e => e.innerText.split('\\n')[0])")
    page.keyboard.press("Escape")
    return found


def missing_models(page) -> list[dict]:
    """The model files the page says are missing after a workflow was loaded, with the address it offers to
    download each from: [{name, directory, url}]. Frontend 1.32 opens its missing-models dialog (an entry "<folder> /
    <name>" with the address as its title); 1.48 lists them in its errors panel (the toast's "View details"), the
    address behind each row's "Copy URL". The dialog or panel is closed again."""
    page.wait_for_selector(f"{DIALOG}, :text('View details')", timeout=10_000)
    found = []
    if page.locator(DIALOG).count():
        for entry in page.locator(DIALOG).first.locator("li[role=option] span[title]").all():
            directory, name = entry.inner_text().split(" / ")
            found.append({"name": name, "directory": directory, "url": entry.get_attribute("title")})
        close_dialogs(page)
        return found
    wait_unblocked(page)
    page.get_by_text("View details").click()
    rows = page.locator('[data-testid="missing-model-importable-rows"] > div')
    rows.first.wait_for(timeout=10_000)
    page.evaluate("() => { navigator.clipboard.writeText = async (text) => { window.ltx2Copied = text } }")
    for row in rows.all():
        row.locator('button[aria-label="Copy URL"]').click()
        name = row.locator("button[title]").first.get_attribute("title")
        directory = row.locator("span > span").nth(1).inner_text()
        found.append({"name": name, "directory": directory, "url": page.evaluate("window.ltx2Copied")})
    page.evaluate("() => app.extensionManager.setting.set('Comfy.RightSidePanel.IsOpen', false)")
    return found


def record_guard_panel(page) -> None:
    """From now on, every state the VRAMGuard panel shows is kept in window.ltx2Seen (for the live check)."""
    page.evaluate(
        """() => {
            window.ltx2Seen = [];
            const panel = document.querySelector('.ltx2-panel[data-ltx2="VRAMGuard"]');
            new MutationObserver(() => window.ltx2Seen.push({
                status: panel.querySelector('[data-role=summary]')?.textContent,
                used: Number(panel.querySelector('[data-role=used]')?.dataset.bytes),
            })).observe(panel, {childList: true, subtree: true});
        }"""
    )


def queue(page) -> None:
    """Clicks the Run button."""
    page.click('[data-testid="queue-button"]')


def wait_for_video(page, timeout: float = 180.0) -> str:
    """Waits until SaveVideo's preview holds a playable mp4; returns its address."""
    page.wait_for_function(
        "() => [...document.querySelectorAll('video')].some(v => v.src.includes('.mp4') && v.readyState >= 2)",
        timeout=timeout * 1000,
    )
    return page.evaluate("[...document.querySelectorAll('video')].find(v => v.src.includes('.mp4')).src")


def panels(page) -> dict:
    """What the pack's widgets show: per node type, one entry per node: its text, whether it is visible, and
    its parts ({role, text, cells, and the figures behind them as data attributes})."""
    return page.evaluate(
        """() => {
            const out = {};
            for (const panel of document.querySelectorAll('.ltx2-panel')) {
                const rows = [...panel.querySelectorAll('[data-role]')].map(e => ({
                    ...e.dataset, text: e.textContent, cells: [...e.children].map(c => c.textContent)}));
                const visible = panel.offsetParent !== null;
                (out[panel.dataset.ltx2] ??= []).push({text: panel.innerText, rows, visible});
            }
            return out;
        }"""
    )


def parse_bytes(text: str) -> float:
    """'953.6 MiB' -> bytes (the page's formatting, read back)."""
    match = re.fullmatch(r"([\d.]+) (GiB|MiB|KiB)", text.strip())
    if match is None:
        return 0.0 if text.strip() == "0" else float("nan")
    return float(match.group(1)) * UNITS[match.group(2)]


def shows_bytes(text: str, nbytes: int) -> bool:
    """Whether the page's '6.6 MiB' is `nbytes` as formatted: within half a unit of its last digit."""
    match = re.fullmatch(r"([\d.]+) (GiB|MiB|KiB)", text.strip())
    if match is None:
        return text.strip() == "0" and nbytes == 0
    decimals = len(match.group(1).partition(".")[2])
    return abs(parse_bytes(text) - nbytes) <= 0.5 * 10**-decimals * UNITS[match.group(2)] + 1


def pack_errors(page) -> list[str]:
    """Errors and warnings of the page that name the pack (its extension's file or its messages)."""
    kinds = ("error", "warning", "pageerror")
    return [m for m in page.ltx2_console if m.split(":")[0] in kinds and ("ltx2" in m.lower() or "ltx-2" in m.lower())]


def screenshot(page, path: Path) -> Path:
    """The page as a user sees it, without the release banner and the minimap."""
    banner = page.get_by_text("Introducing Nodes 2.0")
    if banner.count():
        banner.locator("xpath=../..").locator("button").last.click()
    page.add_style_tag(content=".minimap-main-container { display: none !important; }")
    page.mouse.move(VIEWPORT["width"] - 5, VIEWPORT["height"] - 5)  # no hover highlight
    page.wait_for_timeout(500)
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path))
    return path
