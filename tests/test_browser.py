"""The dashboard in a real Chromium against `streamlit run app.py`: deep links into a fresh server,
browse, open a galaxy, explain it, evaluate, play a round, train a tiny model; the uncertainty views,
a regression model with its labels CSV, and partial labels; the Atlas (a lasso to Browse, the
outreach view), Oddballs (seeds, a mark, the list in Browse), an upload on Your galaxy and two models
compared. Screenshots go to artifacts/screenshots/."""
import re
from urllib.parse import parse_qs, urlencode, urlsplit

import pandas as pd
import pytest
from conftest import ROOT

from benchmarks.browser import CHROMIUM, chromium, goto, server, settle, snap
from gzcore import data
from gzcore.dashboard import navigation

SHOTS = ROOT / "artifacts" / "screenshots"
pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(not CHROMIUM.is_file(),
                                 reason=f"{CHROMIUM} not found (apt-get install chromium)")]


@pytest.fixture(scope="module")
def page(url):
    SHOTS.mkdir(parents=True, exist_ok=True)
    with chromium() as page:
        yield page


@pytest.mark.parametrize("target", [navigation.HOME, navigation.BROWSE, navigation.GALAXY],
                         ids=lambda p: p.name)
def test_a_fresh_servers_first_request_deep_links_through_app(dashboard_env, tmp_path, target):
    """Until st.navigation has run once, Streamlit runs a deep-linked pages/<name>.py without app.py
    (its pages/ folder mode), and / as app.py inside that mode: the page config, URL sync and
    sidebar must still be there."""
    ids = pd.read_csv(f"{dashboard_env['GZ_DATA']}/{data.LABELS_FILE}").GalaxyID
    gid = int(ids.iloc[-1])  # not the first: without the URL sync the Galaxy page shows the first one
    ready = {navigation.HOME: "Validation RMSE", navigation.BROWSE: "galaxies match",
             navigation.GALAXY: "Galaxies like this one"}[target]
    SHOTS.mkdir(parents=True, exist_ok=True)
    with server({**dashboard_env, "GZ_CACHE": str(tmp_path / "gzcache")}) as base, chromium() as page:
        goto(page, f"{base}/{target.url_path}?galaxy={gid}", ready)  # the server's first session
        assert page.title() == "Galaxy Zoo 2 morphology"  # app.py's set_page_config
        caption = page.get_by_test_id("stSidebar").get_by_test_id("stCaptionContainer").inner_text()
        assert "Data: universe" in caption and "Model: quick.pt" in caption  # app.py's sidebar
        nav = page.get_by_test_id("stSidebarNav")
        links = nav.get_by_test_id("stSidebarNavLink").all_inner_texts()  # "<icon name>\n\n<title>"
        assert [text.splitlines()[-1] for text in links] == [p.title for p in navigation.PAGES]
        assert all(nav.get_by_text(s, exact=True).count() == 1 for s in navigation.SECTIONS if s)
        address = urlsplit(page.url)
        assert address.path == f"/{target.url_path}" and parse_qs(address.query)["galaxy"] == [str(gid)]
        if target is navigation.GALAXY:
            assert page.get_by_role("heading", name=f"Galaxy {gid}").count() == 1
        snap(page, SHOTS / f"deep-link-{target.name}.png")


def test_home_browse_galaxy_explain(page, url):
    goto(page, url, "Validation RMSE")
    snap(page, SHOTS / "home.png")
    goto(page, f"{url}/{navigation.BROWSE.url_path}", "galaxies match")
    snap(page, SHOTS / "browse.png")
    page.get_by_role("button", name=re.compile(r"^Open \d+$")).first.click()
    page.get_by_role("heading", name="The 11 questions").wait_for()
    settle(page)
    answers_shown(page)
    snap(page, SHOTS / "galaxy.png")
    page.get_by_role("button", name="Explain").click()
    page.get_by_text("Integrated Gradients (32 passes) · model").first.wait_for()
    page.get_by_role("combobox", name="Method").click()
    page.get_by_role("option", name="SmoothGrad (16 passes)").click()
    page.get_by_role("button", name="Compute SmoothGrad").first.click()
    page.get_by_text("SmoothGrad (16 passes) · model").first.wait_for()
    settle(page)
    snap(page, SHOTS / "explain.png")


def test_evaluate_and_dataset(page, url):
    goto(page, f"{url}/{navigation.EVALUATE.url_path}", "Top answer: crowd vs model")
    page.wait_for_function("document.querySelectorAll('[data-testid=stPlotlyChart]').length >= 6")
    snap(page, SHOTS / "evaluate.png")
    goto(page, f"{url}/{navigation.DATASET.url_path}", "The most confident galaxy for each answer")
    snap(page, SHOTS / "dataset.png")


def test_play_a_round(page, url):
    goto(page, f"{url}/{navigation.PLAY.url_path}", "Question 1")
    verdict = page.get_by_text("How you compare")
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
    goto(page, f"{url}/{navigation.TRAIN.url_path}", "Start training")
    page.get_by_label("Epochs").fill("1")
    page.get_by_label("Training galaxies (0 = all)").fill("64")
    page.get_by_role("button", name="Start training").click()
    page.get_by_role("heading", name="Before and after").wait_for(timeout=300_000)
    settle(page)
    snap(page, SHOTS / "train.png")


def test_uncertainty_views(page, url):
    goto(page, f"{url}/{navigation.BROWSE.url_path}", "galaxies match")
    page.get_by_role("combobox", name="Sort by").click()
    page.get_by_role("option", name=re.compile("^uncertainty")).click()
    page.get_by_text("sorted by uncertainty").first.wait_for()
    settle(page)
    snap(page, SHOTS / "browse-least-certain.png")
    goto(page, f"{url}/{navigation.GALAXY.url_path}", "Galaxies like this one")
    q1 = answers_shown(page).first
    assert q1.locator('[title^="crowd · "]').count() == 3 and q1.locator(".gzb-e").count() >= 1  # the model's ± spread as whiskers
    assert q1.locator('[title^="model · Smooth: "]').get_attribute("title").count(" ± ") == 1  # exact on hover
    page.wait_for_timeout(800)
    q1.screenshot(path=SHOTS / "galaxy-error-bars.png")
    goto(page, f"{url}/{navigation.EVALUATE.url_path}", "Calibration: does the spread predict the error?")
    view = page.get_by_test_id("stHorizontalBlock").filter(has=page.get_by_text("Spearman ρ")).last
    view.scroll_into_view_if_needed()
    page.wait_for_timeout(800)
    view.screenshot(path=SHOTS / "evaluate-calibration.png")  # binned spread vs RMSE, and Spearman's ρ


def answers_shown(page, key: str = "galaxy"):
    """Wait for the 11 questions' bars (gzcore.dashboard.bars, one HTML block) and the galaxy's image
    (a Plotly chart) to be drawn; the questions' locator."""
    questions = page.locator(f".st-key-{key}_answers .gzb-q")
    page.wait_for_function(f"document.querySelectorAll('.st-key-{key}_answers .gzb-q').length == 11 && "
                           "document.querySelectorAll('[data-testid=stPlotlyChart]').length >= 1")
    assert questions.nth(0).locator('[title^="model · "]').count() == 3  # the model's bar for Q1's 3 answers
    return questions


def snap_views(page, url: str, query: str, views) -> None:
    """Open each (page, text shown when ready, Plotly charts to wait for, screenshot) with `query`."""
    for target, ready, charts, name in views:
        goto(page, f"{url}/{target.url_path}?{query}", ready)
        page.wait_for_function(f"document.querySelectorAll('[data-testid=stPlotlyChart]').length >= {charts}")
        snap(page, SHOTS / name)


def test_a_regression_models_pages(page, url, target_env):  # noqa: F811
    query = urlencode({"model": target_env["GZ_CHECKPOINT"], "labels": target_env["labels"]})
    known = pd.read_csv(target_env["labels"]).dropna().id.iat[0]
    snap_views(page, url, query, [
        (navigation.HOME, "The model predicts", 0, "target-home.png"),
        (navigation.BROWSE, "galaxies match", 0, "target-browse.png"),
        (navigation.EVALUATE, "Calibration: does the spread predict", 3, "target-evaluate.png"),
        (navigation.EXPLAIN, "Integrated Gradients (32 passes) · model oh", 1, "target-explain.png"),
        (navigation.DATASET, "for Galaxy Zoo decision-tree models", 0, "target-dataset.png")])
    snap_views(page, url, f"{query}&galaxy={known}", [
        (navigation.GALAXY, "Predicted vs true", 2, "target-galaxy.png")])


def test_partial_labels(page, url, partial_dir):  # noqa: F811
    snap_views(page, url, urlencode({"data": str(partial_dir)}), [
        (navigation.HOME, "none for the other questions", 0, "partial-home.png"),
        (navigation.EVALUATE, "Partial labels: 5 of 11 questions", 6, "partial-evaluate.png"),
        (navigation.GALAXY, "Galaxies like this one", 1, "partial-galaxy.png")])
    assert "no crowd labels for this question" in answers_shown(page).nth(2).inner_text()  # Q3


def test_a_predictions_table_deep_link_browses_it_and_opens_a_galaxy(page, url, dashboard_env, tmp_path):
    from test_large_catalog import predictions
    ids = pd.read_csv(f"{dashboard_env['GZ_DATA']}/{data.LABELS_FILE}").GalaxyID.to_numpy()
    table = predictions(len(ids))
    table["GalaxyID"] = ids
    table.to_parquet(tmp_path / "p.parquet", index=False)
    query = urlencode({"predictions": str(tmp_path / "p.parquet"), "images": dashboard_env["GZ_DATA"]})
    goto(page, f"{url}/{navigation.BROWSE.url_path}?{query}", f"{len(ids)} of {len(ids)} galaxies match")
    page.wait_for_function("document.querySelectorAll('[data-testid=stImage] img').length >= 24")
    assert page.get_by_text("Browsing: p.parquet").count() == 1  # the sidebar says what is browsed
    snap(page, SHOTS / "predictions-browse.png")
    page.get_by_role("button", name=re.compile("^Open ")).first.click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Model's path:").wait_for()
    page.wait_for_function("document.querySelectorAll('[role=dialog] [data-testid=stPlotlyChart]').length >= 11")
    page.wait_for_timeout(800)
    page.screenshot(path=SHOTS / "predictions-galaxy.png")


def test_a_public_demo_refuses_a_deep_link_outside_its_roots(page, dashboard_env, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "123.jpg").write_bytes((ROOT / "checkpoints" / "README.md").read_bytes()[:10])
    env = {**dashboard_env, "GZ_PUBLIC": "1", "GZ_CACHE": str(tmp_path / "cache")}
    with server(env) as base:  # a second server, seen through the module's browser (one Playwright per thread)
        goto(page, f"{base}/{navigation.BROWSE.url_path}?{urlencode({'data': str(outside)})}", "galaxies match")
        assert page.get_by_text("the data chosen is not available here").count() == 1
        assert page.get_by_text("of 96 galaxies match").count() == 1  # the default data, not the link's
        assert str(tmp_path) not in page.content()
        assert "data=" not in page.url
        snap(page, SHOTS / "public-refusal.png")


def test_oddballs_more_like_these_then_browse(page, url):
    goto(page, f"{url}/{navigation.ODDBALLS.url_path}", "Tick Seed under galaxies")
    page.wait_for_function("document.querySelectorAll('[data-testid=stImage] img').length >= 24")
    snap(page, SHOTS / "oddballs.png")
    for k in range(2):
        page.locator('[class*="st-key-odd_pick_"] label').nth(k).click()
        settle(page)
    page.get_by_role("button", name="More like these (2 picked)").click()
    page.get_by_text("2 seed(s), 0 marked interesting").wait_for()
    settle(page)
    page.locator('[class*="st-key-like_interesting_"] button').first.click()
    page.get_by_text("2 seed(s), 1 marked interesting").wait_for()
    settle(page)
    snap(page, SHOTS / "oddballs-more-like-these.png")
    page.get_by_role("button", name="Open all in Browse").click()
    page.get_by_text("Oddballs: the seeds and the galaxies marked interesting").wait_for()
    settle(page)
    assert page.get_by_text("in the order listed").count() == 1
    snap(page, SHOTS / "browse-from-oddballs.png")
    page.get_by_role("button", name="Show every galaxy").click()
    page.get_by_text("of 96 galaxies match").wait_for()


def test_your_galaxy_takes_an_upload(page, url, dashboard_env):
    image = sorted((ROOT / dashboard_env["GZ_DATA"] / data.IMAGE_DIRS[0]).glob("*.jpg"))[0]
    goto(page, f"{url}/{navigation.YOUR_GALAXY.url_path}", "Upload an image to see")
    page.locator("input[type=file]").set_input_files(str(image))
    page.get_by_text("The most similar galaxies of the loaded data").wait_for()
    settle(page)
    page.wait_for_function("document.querySelectorAll('[data-testid=stPlotlyChart]').length >= 3")  # 2 images, saliency
    answers_shown(page, "your")
    assert page.get_by_text("Model's path:").count() == 1
    snap(page, SHOTS / "your-galaxy.png")


def test_compare_two_models_and_a_galaxy_with_both(page, url):
    goto(page, f"{url}/{navigation.COMPARE.url_path}", "Choose a second checkpoint")
    box = page.get_by_label("…or another checkpoint file")
    box.fill(str(ROOT / "checkpoints" / "synthetic.pt"))
    box.press("Enter")
    page.get_by_text("Where they disagree most").wait_for()
    settle(page)
    snap(page, SHOTS / "compare.png")
    page.locator('[class*="st-key-compare_open_"] button').first.click()
    page.get_by_role("heading", name="The 11 questions").wait_for()
    page.locator('.st-key-galaxy_answers [title^="synthetic.pt · "]').first.wait_for()  # its bars, once computed
    settle(page)
    assert answers_shown(page).nth(0).locator('[title^="synthetic.pt · "]').count() == 3  # one per answer
    snap(page, SHOTS / "galaxy-compare.png")
    assert page.get_by_text("Beside synthetic.pt (chosen on Compare)").count() == 1


def test_atlas_lasso_to_browse_and_the_wall_view(page, url):
    goto(page, f"{url}/{navigation.ATLAS.url_path}", "galaxies on the PCA map")
    page.wait_for_function("document.querySelectorAll('[data-testid=stPlotlyChart] .nsewdrag').length >= 1")
    page.wait_for_timeout(800)
    snap(page, SHOTS / "atlas.png")
    box = page.locator("[data-testid=stPlotlyChart] .nsewdrag").first.bounding_box()
    corners = [(0.1, 0.1), (0.9, 0.1), (0.9, 0.9), (0.1, 0.9), (0.1, 0.12)]  # a lasso round most of the map
    page.mouse.move(box["x"] + box["width"] * 0.1, box["y"] + box["height"] * 0.1)
    page.mouse.down()
    for fx, fy in corners:
        page.mouse.move(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy, steps=8)
    page.mouse.up()
    page.get_by_text(re.compile(r"^[\d,]+ galaxies selected$")).wait_for()
    settle(page)
    page.wait_for_function("document.querySelectorAll('[data-testid=stImage] img').length >= 12")
    snap(page, SHOTS / "atlas-selection.png")
    page.get_by_role("button", name=re.compile(r"^Open [\d,]+ in Browse$")).click()
    page.get_by_text("selected on the Atlas (PCA map)").first.wait_for()
    settle(page)
    snap(page, SHOTS / "browse-from-atlas.png")
    page.get_by_role("button", name="Show every galaxy").click()
    settle(page)
    goto(page, f"{url}/{navigation.ATLAS.url_path}", "galaxies on the PCA map")
    page.get_by_role("button", name="Wall view").click()
    page.get_by_text("galaxies, placed by how alike").wait_for()
    settle(page)
    page.wait_for_timeout(1500)
    snap(page, SHOTS / "atlas-outreach.png")
