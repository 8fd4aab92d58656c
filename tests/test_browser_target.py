"""Issue 26 in a real Chromium against `streamlit run app.py`: a first model of a target from the Train
page (the folder above `images/`, the labels CSV beside them with its `objID` column, the target and
its units; train; then Browse and Evaluate on the new model), and an upload that is one of the loaded
galaxies. The steps are benchmarks.first_target's, which times them on the real metallicity set.
Screenshots (1280x720) go to artifacts/screenshots/."""
import re

import pytest
from conftest import ROOT
from test_own_target import survey  # noqa: F401  (the fixture: images/ + labels.csv with `oh [dex]`)

from benchmarks.browser import CHROMIUM, chromium, goto, settle
from benchmarks.first_target import first_target
from gzcore import data
from gzcore.dashboard import navigation

SHOTS = ROOT / "artifacts" / "screenshots"
pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(not CHROMIUM.is_file(),
                                 reason=f"{CHROMIUM} not found (apt-get install chromium)")]


@pytest.fixture(scope="module")
def page(url):
    SHOTS.mkdir(parents=True, exist_ok=True)
    with chromium(1280, 720) as page:
        yield page


def visit(page, target: navigation.Page, ready: str) -> None:
    """Go to `target` through the sidebar, in the same session (its choices kept), and wait for `ready`."""
    page.get_by_test_id("stSidebarNav").get_by_text(target.title, exact=True).click()
    page.get_by_text(ready).first.wait_for()
    settle(page)


def test_a_first_target_model_from_folder_to_evaluate(page, url, survey):  # noqa: F811
    found = first_target(page, url, survey, epochs=1, shots=SHOTS, timeout_s=300)
    assert page.get_by_text("Trains oh [dex] from").count() == 1  # the CSV beside images/, its first number
    assert found["after"].startswith("After: RMSE on") and found["after"].endswith("dex"), found
    page.get_by_role("button", name="Use the new model everywhere").click()
    settle(page)
    page.wait_for_url(re.compile(r"labels=.*model=|model=.*labels="))  # the choices, kept in the URL
    visit(page, navigation.BROWSE, "galaxies match")
    assert page.get_by_text(" dex").count(), "Browse shows the target in its units"
    page.screenshot(path=SHOTS / "browse-target.png")
    visit(page, navigation.EVALUATE, "Predicted vs true, with residuals")
    assert page.get_by_text("RMSE in the labels' units (dex)").count() == 1
    page.screenshot(path=SHOTS / "evaluate-target.png")


def test_an_upload_of_a_loaded_galaxy_says_so(page, url, dashboard_env):
    goto(page, f"{url}/?model={dashboard_env['GZ_CHECKPOINT']}&data={dashboard_env['GZ_DATA']}", "Validation RMSE")
    image = sorted(data.find_images(dashboard_env["GZ_DATA"]).glob("*.jpg"))[3]
    goto(page, f"{url}/{navigation.YOUR_GALAXY.url_path}", "Upload an image to see")
    page.locator("input[type=file]").set_input_files(str(image))
    page.get_by_text(f"This is galaxy {image.stem} of the loaded data").wait_for()
    page.get_by_text("Crowd's path:").wait_for()
    settle(page)
    page.screenshot(path=SHOTS / "your-galaxy-known.png")
    page.get_by_role("button", name="Open its Galaxy page").click()
    page.get_by_role("heading", name=f"Galaxy {image.stem}").wait_for()
