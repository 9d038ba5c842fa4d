"""The fit report in a real browser: headless Chromium renders it offline, the full-page
screenshot is not blank, and every embedded image decodes (naturalWidth > 0).

Set BAYESMIX_SCREENSHOT_DIR to keep the screenshot (report_screenshot.png) there.
Without Chromium the tests skip (install Debian's chromium, or point BAYESMIX_CHROMIUM at a
Chromium binary); with BAYESMIX_REQUIRE_BROWSER=1, as ``.ci/run`` sets it, they fail instead."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from bayesmix.report import render_fit_report
from bayesmix.report.example import write_example_fit

pytestmark = pytest.mark.browser

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
    "--mute-audio",
)
PROBE = """<script>
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var broken = imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); });
  document.body.setAttribute("data-images", String(imgs.length));
  document.body.setAttribute("data-broken", String(broken.length));
  document.body.setAttribute("data-height", String(document.documentElement.scrollHeight));
});
</script>"""


HOW_TO_ENABLE = (
    "install Debian's chromium (apt-get install chromium) or set "
    "BAYESMIX_CHROMIUM=/path/to/chromium to run the browser test"
)


def _starts(path: str) -> bool:
    try:
        return subprocess.run([path, "--version"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def find_chromium() -> tuple[str | None, str]:
    """(path, "") of a Chromium that starts, or (None, why not).

    $BAYESMIX_CHROMIUM when set (and then only it), else /usr/bin/chromium or a Chrome/Chromium
    on PATH.
    """
    forced = os.environ.get("BAYESMIX_CHROMIUM")
    if forced:
        if os.access(forced, os.X_OK) and _starts(forced):
            return forced, ""
        return None, f"BAYESMIX_CHROMIUM={forced} is not an executable Chromium that starts"
    paths = ["/usr/bin/chromium", *(shutil.which(name) for name in CANDIDATES)]
    for path in paths:
        if path and os.access(path, os.X_OK) and _starts(path):
            return path, ""
    return None, f"looked at /usr/bin/chromium and {', '.join(CANDIDATES)} on PATH"


CHROMIUM, NOT_FOUND = find_chromium()
# CI (.ci/run) sets BAYESMIX_REQUIRE_BROWSER=1: a missing Chromium then fails the tests here
# instead of skipping them, so that the browser test really runs there.
REQUIRE_BROWSER = os.environ.get("BAYESMIX_REQUIRE_BROWSER", "") not in ("", "0")
if CHROMIUM is None and not REQUIRE_BROWSER:
    pytest.skip(f"Chromium not found ({NOT_FOUND}): {HOW_TO_ENABLE}", allow_module_level=True)


@pytest.fixture(scope="module", autouse=True)
def chromium() -> str:
    if CHROMIUM is None:
        pytest.fail(
            f"Chromium not found ({NOT_FOUND}) and BAYESMIX_REQUIRE_BROWSER is set: {HOW_TO_ENABLE}",
            pytrace=False,
        )
    return CHROMIUM


def run_chromium(profile: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90)


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    out = write_example_fit(tmp_path_factory.mktemp("browser_fit"), d=2, loo=True)
    html, _ = render_fit_report(out, classical=False)
    return html


@pytest.fixture(scope="module")
def dom(report, tmp_path_factory) -> dict:
    """Attributes the inline probe wrote into <body> after load, plus the <img> count."""
    tmp = tmp_path_factory.mktemp("probe")
    html = report.read_text(encoding="utf-8")
    probe = tmp / "probe.html"
    probe.write_text(html.replace("</body>", PROBE + "\n</body>"), encoding="utf-8")
    res = run_chromium(
        tmp / "profile",
        "--window-size=1200,900",
        "--virtual-time-budget=10000",
        "--dump-dom",
        probe.as_uri(),
    )
    assert res.returncode == 0, res.stderr[-2000:]
    body = re.search(r"<body[^>]*>", res.stdout)
    assert body, res.stdout[:500]
    attrs = dict(re.findall(r'data-(\w+)="(\d+)"', body.group(0)))
    return attrs | {"n_img": len(re.findall(r"<img\b", html)), "body": body.group(0)}


def test_every_image_loads(dom):
    assert dom["n_img"] >= 5
    assert dom.get("images") == str(dom["n_img"]), dom["body"]
    assert dom.get("broken") == "0", dom["body"]
    assert int(dom["height"]) > 2000  # a long page, laid out


def test_full_page_screenshot_is_not_blank(report, dom, tmp_path):
    import matplotlib.image as mpimg

    keep = os.environ.get("BAYESMIX_SCREENSHOT_DIR")
    target_dir = Path(keep) if keep else tmp_path
    target_dir.mkdir(parents=True, exist_ok=True)
    shot = target_dir / "report_screenshot.png"
    height = min(int(dom["height"]) + 40, 16000)
    res = run_chromium(
        tmp_path / "profile",
        f"--window-size=1200,{height}",
        "--virtual-time-budget=10000",
        f"--screenshot={shot}",
        report.as_uri(),
    )
    assert res.returncode == 0 and shot.exists(), res.stderr[-2000:]
    img = mpimg.imread(shot)
    assert img.shape[0] >= height - 1 and img.shape[1] >= 1200
    rgb = img[..., :3].astype(float)
    assert rgb.var() > 0.005  # text, tables and figures, not a flat page
    assert np.mean(rgb < 0.95) > 0.02  # a real share of non-white pixels
    coloured = np.ptp(rgb, axis=2) > 0.2  # the figures and traffic lights bring colour
    assert coloured.mean() > 0.002
    bottom = rgb[int(0.8 * rgb.shape[0]) :]  # the page is drawn to its end
    assert np.mean(bottom < 0.95) > 0.003


SORT_PROBE = """<script>
window.addEventListener("load", function () {
  function order() {
    return Array.prototype.map.call(document.querySelectorAll("#groups tbody tr"),
      function (r) { return r.cells[0].dataset.sort; }).join("|");
  }
  var heads = document.querySelectorAll("#groups th");
  heads[3].click();  // P(mode), ascending
  document.body.setAttribute("data-asc", order());
  heads[3].click();  // and descending
  document.body.setAttribute("data-desc", order());
  heads[1].click();  // n, ascending: numbers, not text (9 before 10)
  document.body.setAttribute("data-n", order());
});
</script>"""


def test_fit_many_table_sorts_by_a_clicked_column(tmp_path):
    """The fit-many overview's table sorts numerically on a click, and reverses on a second."""
    import json

    from bayesmix.many.report import render_many_report
    from bayesmix.many.summary import error_row, summary_frame

    def row(g, n, p):
        r = error_row(g, g, n, 1, "", 1)
        pmf = {"1": 1 - p, "2": p}
        return r | {"k_mode": 2, "p_mode": p, "set_90": "{1, 2}", "k_mean": 1 + p,
                    "light": "green", "engine": "collapsed Gibbs", "k_pmf": json.dumps(pmf)}  # fmt: skip

    frame = summary_frame([row("a", 10, 0.9), row("b", 9, 0.6), row("c", 100, 0.75)])
    record = {"settings": {"by": "g", "seed": 1, "spec": {"name": "dp"}}, "command": "x"}
    html = render_many_report(tmp_path, frame, record).read_text(encoding="utf-8")
    probe = tmp_path / "probe.html"
    probe.write_text(html.replace("</body>", SORT_PROBE + "\n</body>"), encoding="utf-8")
    res = run_chromium(
        tmp_path / "profile", "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()
    )
    assert res.returncode == 0, res.stderr[-2000:]
    body = re.search(r"<body[^>]*>", res.stdout).group(0)
    attrs = dict(re.findall(r'data-(\w+)="([^"]*)"', body))
    assert attrs["asc"] == "b|c|a" and attrs["desc"] == "a|c|b" and attrs["n"] == "b|a|c"
