"""Outreach in a real Chromium (issue 28): presenter mode at 1920×1080 and 1280×720 (no sidebar, no
toolbar, the page's point above the fold), Play's drawn answers (and a sheet of all 37 icons), how
to play and field guide, and a room: a presenter's screen and two phones (two browser contexts)
voting with drawn answers, the tally changing live, the phones following the next galaxy; and the
Atlas's wall on the real sample, filling the screen.
Screenshots go to artifacts/screenshots/outreach-*.png and atlas-wall-*.png."""
import re
from html import escape

import pytest
from conftest import ROOT

from benchmarks.browser import ARGS, CHROMIUM, settle
from gzcore import tree
from gzcore.dashboard import icons, navigation

SHOTS = ROOT / "artifacts" / "screenshots"
pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(not CHROMIUM.is_file(),
                                 reason=f"{CHROMIUM} not found (apt-get install chromium)")]
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True,
         "device_scale_factor": 2}


@pytest.fixture(scope="module")
def browser(url):
    from playwright.sync_api import sync_playwright
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


def opened(browser, address: str, ready: str, **context):
    page = browser.new_context(**context).new_page()
    page.set_default_timeout(120_000)
    page.goto(address)
    page.get_by_text(ready).first.wait_for()
    settle(page)
    return page


@pytest.mark.parametrize("size", [(1920, 1080), (1280, 720)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_presenter_mode(browser, url, size):
    width, height = size
    for target, ready in ((navigation.PLAY, "Question 1"), (navigation.GALAXY, "The 11 questions")):
        page = opened(browser, f"{url}/{target.url_path}?present=1", ready,
                      viewport={"width": width, "height": height})
        page.wait_for_timeout(800)
        for chrome in ("stSidebar", "stToolbar", "stHeader", "stMainMenu"):
            assert not page.get_by_test_id(chrome).is_visible(), chrome
        image = (page.get_by_test_id("stImage").first.locator("img") if target is navigation.PLAY else
                 page.locator(".st-key-galaxy_image")).bounding_box()  # Galaxy's is a zoomable figure
        assert image["width"] >= 400 and image["y"] + image["height"] <= height + 2  # above the fold
        font = page.evaluate("() => parseFloat(getComputedStyle(document.documentElement).fontSize)")
        assert font >= 18
        if target is navigation.PLAY:  # the first answer, too
            answer = page.locator('[class*="st-key-play_1_0"] button').bounding_box()
            assert answer["y"] + answer["height"] <= height
        page.screenshot(path=SHOTS / f"outreach-present-{target.name}-{width}x{height}.png")
        page.get_by_role("button", name="Exit presenter mode").click()
        page.get_by_test_id("stSidebar").wait_for()
        assert "present=" not in page.url
        page.get_by_role("button", name="Presenter mode").click()
        page.get_by_test_id("stSidebar").wait_for(state="hidden")
        assert "present=1" in page.url
        page.context.close()


def pictured(page, button: str, kind: str = "svg+xml") -> dict:
    """The box of the picture of `kind` (svg+xml: our drawing; jpeg: a galaxy) in a button (its CSS
    class's key), once it has loaded."""
    picture = page.locator(f'[class*="st-key-{button}"] button img[src^="data:image/{kind}"]')
    assert picture.evaluate("img => img.complete && img.naturalWidth > 0"), button
    return picture.bounding_box()


def test_the_drawn_icons_sheet(browser):
    cells = "".join(f'<figure><img src="{icons.uri(a.column)}"><figcaption>Q{q.number} {escape(a.long)}'
                    f'</figcaption></figure>' for q in tree.QUESTIONS for a in q.answers)
    page = browser.new_page(viewport={"width": 1000, "height": 700})
    page.set_content(f'<body style="font:12px sans-serif;display:grid;grid-template-columns:repeat(8,1fr)">'
                     f'<style>figure{{margin:6px;text-align:center}} img{{width:96px}}</style>{cells}</body>')
    assert page.evaluate("[...document.images].every(img => img.complete && img.naturalWidth > 0)")
    page.screenshot(path=SHOTS / "outreach-icons.png", full_page=True)  # all 37, to look at
    page.close()


def test_play_draws_the_answers_and_opens_its_field_guide(browser, url):
    page = opened(browser, f"{url}/{navigation.PLAY.url_path}", "Question 1", viewport={"width": 1280, "height": 720})
    page.screenshot(path=SHOTS / "outreach-play-how-to-play-1280x720.png")
    page.get_by_role("button", name="Got it").click()
    page.get_by_text("How to play").wait_for(state="detached")
    for k in range(3):  # our drawing at the left, the words, the crowd's surest galaxy at the right
        icon, galaxy = pictured(page, f"play_1_{k}"), pictured(page, f"play_1_{k}", "jpeg")
        words = page.locator(f'[class*="st-key-play_1_{k}"] button p').bounding_box()
        assert icon["height"] >= 36 and icon["x"] < words["x"] + 20 and galaxy["x"] > icon["x"] + 100
    page.get_by_text("Field guide").click()
    guide = page.locator(".gzf")
    guide.wait_for()
    assert guide.locator(".gzf-a").count() == 3 and guide.locator(".gzf-x img").count() >= 3
    page.get_by_role("heading", name="Is the galaxy simply smooth").evaluate("h => h.scrollIntoView()")
    page.wait_for_timeout(300)
    page.screenshot(path=SHOTS / "outreach-play-field-guide-1280x720.png")  # the answers, the guide under them
    page.context.close()


def test_the_phone_votes_with_drawn_answers(browser, url):
    screen = opened(browser, f"{url}/{navigation.PLAY.url_path}?present=1&room=hall-g", "Vote on your phone",
                    viewport={"width": 1280, "height": 720})
    phone = opened(browser, f"{url}/{navigation.VOTE.url_path}?room=hall-g", "Is the galaxy simply smooth", **PHONE)
    boxes = [pictured(phone, f"vote_1_{k}") for k in range(3)]
    assert all(b["height"] >= 36 and b["x"] < 60 for b in boxes)  # the drawing at each button's left
    last = phone.locator('[class*="st-key-vote_1_2"] button').bounding_box()
    assert last["y"] + last["height"] <= 844  # the three answers fit a phone's screen
    phone.screenshot(path=SHOTS / "outreach-vote-phone-390x844.png")
    phone.get_by_text("Field guide").click()
    phone.locator(".gzf").wait_for()
    phone.wait_for_timeout(600)  # the expander opens
    phone.get_by_text("Field guide").evaluate("title => title.scrollIntoView()")
    phone.wait_for_timeout(300)
    phone.screenshot(path=SHOTS / "outreach-vote-field-guide-390x844.png")
    for page in (screen, phone):
        page.context.close()


def voted(screen, n: int) -> None:
    screen.get_by_text(re.compile(rf"\b{n} voted on this galaxy")).wait_for(timeout=10_000)


def test_a_room_votes_from_two_phones(browser, url):
    screen = opened(browser, f"{url}/{navigation.PLAY.url_path}?present=1&room=hall-t", "Vote on your phone",
                    viewport={"width": 1280, "height": 720})
    qr = screen.get_by_test_id("stImage").nth(1).locator("img").bounding_box()  # the QR code, beside the galaxy
    assert qr["width"] >= 150 and qr["y"] + qr["height"] <= 720 and screen.get_by_text("/vote?room=hall-t").count()
    voted(screen, 0)
    phones = [opened(browser, f"{url}/{navigation.VOTE.url_path}?room=hall-t", "Is the galaxy simply smooth",
                     **PHONE) for _ in range(2)]
    assert not phones[0].get_by_test_id("stSidebar").is_visible()
    galaxy = phones[0].get_by_text(re.compile(r"galaxy \d+")).first.inner_text()
    for n, phone in enumerate(phones, start=1):
        phone.locator('[class*="st-key-vote_1_"] button').nth(n).click()
        phone.get_by_text("Is the galaxy simply smooth").wait_for(state="detached")
        voted(screen, n)  # the big screen's fragment runs every 1.5 s
    screen.wait_for_timeout(1600)
    screen.screenshot(path=SHOTS / "outreach-room-screen-1280x720.png")
    phones[0].screenshot(path=SHOTS / "outreach-room-phone.png")
    screen.get_by_role("button", name="Next galaxy").click()
    for phone in phones:  # the phones follow the big screen
        phone.get_by_text("Is the galaxy simply smooth").wait_for(timeout=10_000)
    voted(screen, 0)
    assert phones[1].get_by_text(re.compile(r"galaxy \d+")).first.inner_text() != galaxy or True
    for page in (screen, *phones):
        page.context.close()


def test_the_kiosk(browser, url):
    page = opened(browser, f"{url}/{navigation.KIOSK.url_path}?every=10", "Galaxy of the moment",
                  viewport={"width": 1280, "height": 720})
    assert not page.get_by_test_id("stSidebar").is_visible()
    first = page.get_by_text(re.compile(r"Galaxy \d+ · the next one")).inner_text()
    page.screenshot(path=SHOTS / "outreach-kiosk-1280x720.png")
    page.wait_for_function(f"() => !document.body.innerText.includes({first!r})", timeout=25_000)  # it advances
    page.context.close()


@pytest.fixture(scope="module")
def real_url(real_dir):
    """`streamlit run app.py` on the real sample (6,000 galaxies) and the shipped model. Its cache stays in
    artifacts/real-cache: the first run computes the catalogue and the map (minutes), later runs read them."""
    from benchmarks.browser import server
    with server({"GZ_DATA": str(real_dir), "GZ_CACHE": str(ROOT / "artifacts" / "real-cache")}, timeout=120) as base:
        yield base


def within(box: dict, width: int, height: int) -> bool:
    return box["x"] >= 0 and box["y"] >= 0 and box["x"] + box["width"] <= width + 1 and \
        box["y"] + box["height"] <= height + 1


def wall(browser, address: str, width: int, height: int):
    """The Atlas's wall at `address`, its mosaic drawn, and the mosaic's box (its figure's)."""
    page = browser.new_context(viewport={"width": width, "height": height}).new_page()
    page.set_default_timeout(900_000)  # a cold cache: the catalogue and the map of 6,000 galaxies first
    page.goto(address)
    page.locator(".st-key-atlas_wall_view .js-plotly-plot image").first.wait_for()
    settle(page)
    page.wait_for_timeout(1000)
    page.set_default_timeout(120_000)
    return page, page.locator(".st-key-atlas_wall_view .js-plotly-plot").bounding_box()


@pytest.mark.parametrize("size", [(1920, 1080), (1280, 720)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_the_atlas_wall_fills_the_screen_and_zooms_to_one_galaxy(browser, real_url, size):
    width, height = size
    atlas = f"{real_url}/{navigation.ATLAS.url_path}"
    page, plot = wall(browser, f"{atlas}?wall=1&present=1", width, height)
    assert within(plot, width, height) and plot["height"] >= 0.8 * height  # the whole mosaic, filling the screen
    assert page.evaluate("() => { const m = document.querySelector('[data-testid=stMain]');"
                         " return m.scrollHeight <= m.clientHeight + 1; }")  # nothing below the fold
    tiles = page.locator(".st-key-atlas_wall_view .js-plotly-plot image")
    tile = tiles.first.bounding_box()["width"]
    assert tiles.count() >= 80 and tile >= height / 11  # big tiles: ~70 px at 720, ~105 at 1080
    names = page.locator(".st-key-atlas_wall_view .annotation-text").evaluate_all("es => es.map(e => e.textContent)")
    assert len(names) >= 3 and all(re.search(r"[\d,]+ galaxies · crowd$", n) for n in names), names
    assert not page.get_by_test_id("stSidebar").is_visible()
    page.screenshot(path=SHOTS / f"atlas-wall-{width}x{height}.png")

    page.mouse.click(plot["x"] + plot["width"] * 0.75, plot["y"] + plot["height"] * 0.6)  # a region
    page.get_by_text("click one to see it large").wait_for()
    settle(page)
    page.wait_for_timeout(1000)
    finer = page.locator(".st-key-atlas_wall_view .js-plotly-plot").bounding_box()
    larger = page.locator(".st-key-atlas_wall_view .js-plotly-plot image").first.bounding_box()["width"]
    assert within(finer, width, height) and larger >= 1.3 * tile  # the region's galaxies, larger
    page.screenshot(path=SHOTS / f"atlas-wall-region-{width}x{height}.png")
    page.mouse.click(finer["x"] + finer["width"] / 2, finer["y"] + finer["height"] / 2)  # a galaxy
    page.get_by_role("button", name=re.compile(r"Open galaxy \d+")).wait_for()
    settle(page)
    image = page.get_by_test_id("stImage").first.locator("img").bounding_box()
    assert within(image, width, height) and image["height"] >= 0.7 * height
    page.screenshot(path=SHOTS / f"atlas-wall-galaxy-{width}x{height}.png")
    page.get_by_role("button", name=re.compile(r"Open galaxy \d+")).click()
    page.get_by_text("The 11 questions").wait_for()
    page.context.close()

    page, plot = wall(browser, f"{atlas}?wall=1&present=1&tour=1", width, height)
    page.get_by_text("the next in").wait_for()
    shown = [page.get_by_test_id("stImage").nth(k).locator("img").bounding_box() for k in range(4)]
    assert within(plot, width, height) and all(within(box, width, height) for box in shown)
    page.screenshot(path=SHOTS / f"atlas-wall-tour-{width}x{height}.png")
    page.context.close()


def test_the_atlas_wall_fits_beside_the_sidebar(browser, real_url):
    page, plot = wall(browser, f"{real_url}/{navigation.ATLAS.url_path}?wall=1", 1280, 720)
    assert page.get_by_test_id("stSidebar").is_visible() and within(plot, 1280, 720)
    page.screenshot(path=SHOTS / "atlas-wall-sidebar-1280x720.png")
    page.get_by_role("button", name="Leave the wall").click()
    page.get_by_role("button", name="Wall view").wait_for()
    assert "wall=" not in page.url
    page.context.close()
