"""The dashboard in a real Chromium against `streamlit run app.py`: browse, open a galaxy, explain
it, evaluate, play a round, train a tiny model. Screenshots go to artifacts/screenshots/."""
import re

import pytest
from conftest import ROOT

from dashboard.browser import CHROMIUM, chromium, goto, server, settle, snap

SHOTS = ROOT / "artifacts" / "screenshots"
pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(not CHROMIUM.is_file(),
                                 reason=f"{CHROMIUM} not found (apt-get install chromium)")]


@pytest.fixture(scope="module")
def url(dashboard_env, tmp_path_factory):
    with server({**dashboard_env, "GZ_CACHE": str(tmp_path_factory.mktemp("gzcache"))}) as base:
        yield base


@pytest.fixture(scope="module")
def page(url):
    SHOTS.mkdir(parents=True, exist_ok=True)
    with chromium() as page:
        yield page


def test_home_browse_galaxy_explain(page, url):
    goto(page, url, "Validation RMSE")
    snap(page, SHOTS / "home.png")
    goto(page, f"{url}/browse", "galaxies match")
    snap(page, SHOTS / "browse.png")
    page.get_by_role("button", name=re.compile(r"^Open \d+$")).first.click()
    page.get_by_role("heading", name="The 11 questions").wait_for()
    settle(page)
    page.wait_for_function("document.querySelectorAll('[data-testid=stPlotlyChart]').length >= 12")
    snap(page, SHOTS / "galaxy.png")
    page.get_by_role("button", name="Explain").click()
    page.get_by_text("Saliency (fast) · model").first.wait_for()
    page.get_by_role("combobox", name="Method").click()
    page.get_by_role("option", name="SmoothGrad (16 passes)").click()
    page.get_by_role("button", name="Compute SmoothGrad").first.click()
    page.get_by_text("SmoothGrad (16 passes) · model").first.wait_for()
    settle(page)
    snap(page, SHOTS / "explain.png")


def test_evaluate_and_dataset(page, url):
    goto(page, f"{url}/evaluate", "Top answer: crowd vs model")
    page.wait_for_function("document.querySelectorAll('[data-testid=stPlotlyChart]').length >= 6")
    snap(page, SHOTS / "evaluate.png")
    goto(page, f"{url}/dataset", "The most confident galaxy for each answer")
    snap(page, SHOTS / "dataset.png")


def test_play_a_round(page, url):
    goto(page, f"{url}/play", "Question 1")
    verdict = page.get_by_text("with the crowd").or_(page.get_by_text("The crowd's top answer"))
    for n in range(2, 12):  # the longest walk through the tree is 9 questions
        # answer buttons have keys play_<q>_<k>; a stale button left from the last run would ignore the click
        page.locator('[class*="st-key-play_"][data-stale="false"] button').first.click()
        page.get_by_text(f"Question {n}", exact=True).or_(verdict).first.wait_for()
        settle(page)
        if verdict.count():
            break
    assert verdict.count()
    snap(page, SHOTS / "play.png")


def test_train_a_tiny_model(page, url):
    goto(page, f"{url}/train", "Start training")
    page.get_by_label("Epochs").fill("1")
    page.get_by_label("Training galaxies (0 = all)").fill("64")
    page.get_by_role("button", name="Start training").click()
    page.get_by_role("heading", name="Before and after").wait_for(timeout=300_000)
    settle(page)
    snap(page, SHOTS / "train.png")
