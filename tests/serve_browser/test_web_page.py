"""The page at GET / in a real headless Chromium (Debian's chromium + chromium-driver, driven by selenium): it
loads without script errors, streams a chat answer token by token, shows the running razor sequence in the KV
panel (compressed heads, a reduction, a drawn heatmap) while it streams and drops it after, and its stop button
aborts a stream. Skips only when chromium or chromedriver is not installed."""
import os
import shutil
import time

import pytest

from serve_web_support import LONG_PROMPT, Server, wait_until

CHROMIUM = os.environ.get("RAZOR_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("RAZOR_CHROMEDRIVER", "/usr/bin/chromedriver")

# One sample of the page's state, taken in the browser: the last answer's text, whether its stream ended, and
# each sequence card's data attributes with what its canvas holds (pixels lit, and of which colour family).
SAMPLE_JS = """
const answers = document.querySelectorAll('#messages .msg.assistant');
const last = answers[answers.length - 1];
const cards = [...document.querySelectorAll('#kv-panel .seq-card')].map((card) => {
  const c = card.querySelector('canvas');
  const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let lit = 0, blue = 0, orange = 0;
  for (let i = 0; i < px.length; i += 4) {
    if (px[i + 3] === 0) continue;
    if (px[i] + px[i + 1] + px[i + 2] > 120) ++lit;
    if (px[i + 2] > px[i] + 40) ++blue;
    if (px[i] > px[i + 2] + 40) ++orange;
  }
  return Object.assign({}, card.dataset, {width: c.width, height: c.height, lit, blue, orange,
                                          png: c.toDataURL().length});
});
return {text: last ? last.querySelector('.text').textContent : null, done: !!(last && last.dataset.done),
        cards, send_disabled: document.getElementById('send').disabled};
"""


@pytest.fixture(scope="module")
def browser():
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not (os.path.exists(p) or shutil.which(p))]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (scripts/install_apt_deps.sh installs chromium, "
                    "chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,900"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # The driver named explicitly: selenium never looks for (or downloads) one.
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_script_timeout(30)
    yield driver
    driver.quit()


def severe_logs(driver):
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def open_page(browser, server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.get(server.url + "/")
    assert browser.title == "razor serve"
    # The KV panel polled once: the server is idle.
    assert wait_until(lambda: browser.find_element(By.ID, "kv-status").text == "no sequence running", 10), \
        browser.find_element(By.ID, "kv-status").text
    for field, value in (("max-tokens", "96"), ("temperature", "0")):
        el = browser.find_element(By.ID, field)
        el.clear()
        el.send_keys(value)
    Select(browser.find_element(By.ID, "kv")).select_by_value("razor")
    return By


def test_chat_streams_and_kv_panel_shows_the_sequence(browser, razor_server):
    By = open_page(browser, razor_server)
    assert severe_logs(browser) == []
    browser.find_element(By.ID, "prompt").send_keys(LONG_PROMPT)
    browser.find_element(By.ID, "send").click()
    start = time.monotonic()
    samples = []
    while time.monotonic() - start < 180:
        s = browser.execute_script(SAMPLE_JS)
        samples.append(s)
        if s["done"]:
            break
        time.sleep(0.03)
    final = samples[-1]
    print(f"stream: {time.monotonic() - start:.2f} s, {len(samples)} samples, "
          f"{sum(1 for s in samples if s['cards'])} with a card, "
          f"{len({len(s['text'] or '') for s in samples})} distinct answer lengths")
    assert final["done"], f"the answer did not finish in 180 s; last text: {final['text']!r}"
    errors = browser.find_elements(By.CSS_SELECTOR, "#messages .msg.error")
    assert not errors, errors[0].text

    # (a) the answer grew in steps while it streamed, and ended non-empty.
    lengths = sorted({len(s["text"]) for s in samples[:-1] if s["text"]})
    assert len(lengths) >= 2, f"the answer did not grow in steps while streaming: lengths {lengths}"
    assert final["text"].strip()
    assert any(s["send_disabled"] for s in samples[:-1])  # send is off while a stream runs

    # (b) while it streamed, a razor card with compressed heads, a reduction and a drawn heatmap.
    cards = [c for s in samples for c in s["cards"]]
    assert cards, f"no sequence card appeared in the KV panel during {len(samples)} samples"
    good = [c for c in cards if c["kv"] == "razor" and int(c["headsCompressed"]) > 0 and float(c["reduction"]) > 0]
    assert good, f"no card with compressed heads and a reduction: {cards[:3]}"
    c = good[-1]
    assert int(c["headsCompressed"]) < int(c["heads"])
    assert 0 < int(c["kvBytes"]) < int(c["fullBytes"])
    assert c["width"] > 1 and c["height"] > 1 and c["lit"] > 0, c
    assert c["blue"] > 0 and c["orange"] > 0, f"full and compressed heads not both drawn: {c}"
    assert c["png"] > 200

    # (c) after it finished, the panel drops the sequence.
    assert wait_until(lambda: not browser.find_elements(By.CSS_SELECTOR, "#kv-panel .seq-card"), 5), \
        "the finished sequence's card is still in the KV panel"
    assert wait_until(lambda: razor_server.get_json("/razor/sequences")["running"] == 0, 5)
    assert severe_logs(browser) == []


def test_stop_aborts_the_stream(browser, razor_server):
    By = open_page(browser, razor_server)
    browser.find_element(By.ID, "max-tokens").clear()
    browser.find_element(By.ID, "max-tokens").send_keys("1000")
    browser.find_element(By.ID, "prompt").send_keys("Tell me a very long story about a fox.")
    browser.find_element(By.ID, "send").click()
    first = wait_until(lambda: browser.execute_script(SAMPLE_JS)["text"], 60, interval=0.02)
    assert first, "no token arrived"
    browser.find_element(By.ID, "stop").click()
    assert wait_until(lambda: browser.execute_script(SAMPLE_JS)["done"], 10), "stop did not end the stream"
    assert browser.find_element(By.ID, "chat-status").text == "stopped"
    assert browser.find_element(By.ID, "send").is_enabled()
    # The server saw the client leave and dropped its sequence (long before 1000 tokens).
    assert wait_until(lambda: razor_server.get_json("/razor/sequences")["running"] == 0, 10)
    assert wait_until(lambda: not browser.find_elements(By.CSS_SELECTOR, "#kv-panel .seq-card"), 5)
    assert severe_logs(browser) == []


def test_api_key_field(browser, tmp_path):
    from selenium.webdriver.common.by import By

    server = Server(["-t", "1", "--kv", "full", "--api-key", "sekrit"], tmp_path / "key_serve.log", start_timeout=120)
    try:
        browser.get(server.url + "/")  # the page needs no key
        assert browser.title == "razor serve"
        status = lambda: browser.find_element(By.ID, "kv-status").text
        assert wait_until(lambda: "API key" in status(), 10), status()  # the panel's polls answer 401
        browser.find_element(By.ID, "api-key").send_keys("sekrit")
        assert wait_until(lambda: status() == "no sequence running", 10), status()  # sent as Bearer
    finally:
        server.stop()
