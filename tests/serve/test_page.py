"""lumi_serve_<preset>'s chat page in a real browser: Debian's chromium, headless, driven by Selenium. Types a
message, waits for the streamed answer, checks it equals the API's answer, stops a long answer, and keeps a
screenshot (chat_page.png in --work).

  python test_page.py --serve lumi_serve_nano --checkpoint DIR --tokenizer DIR --work DIR
"""
import argparse
import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait


def send(driver, message, temperature, max_tokens):
    """Sets the page's sampling fields, types the message and sends it."""
    for field, value in (("temperature", temperature), ("max_tokens", max_tokens)):
        driver.find_element(By.ID, field).clear()
        driver.find_element(By.ID, field).send_keys(str(value))
    driver.find_element(By.ID, "input").send_keys(message)
    driver.find_element(By.ID, "send").click()


def main():
    parser = argparse.ArgumentParser()
    for name in ("serve", "checkpoint", "tokenizer", "work"):
        parser.add_argument("--" + name, required=True)
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    proc = subprocess.Popen([args.serve, "--set", f"checkpoint={args.checkpoint}", "--set",
                             f"tokenizer={args.tokenizer}", "--set", "server.port=0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    port = None
    for line in proc.stdout:
        lines.append(line)
        m = re.search(r"listening on http://[0-9.]+:([0-9]+)", line)
        if m:
            port = int(m.group(1))
            break
    assert port, "".join(lines)
    threading.Thread(target=lambda: [lines.append(l) for l in proc.stdout], daemon=True).start()
    url = f"http://127.0.0.1:{port}"
    driver = None
    try:
        # The API's greedy answer, for the page's to equal.
        request = urllib.request.Request(url + "/v1/chat/completions", data=json.dumps({
            "model": "lumi-nano", "messages": [{"role": "user", "content": "Name a colour."}], "temperature": 0,
            "max_tokens": 32}).encode(), headers={"Content-Type": "application/json"})
        expected = json.load(urllib.request.urlopen(request))["choices"][0]["message"]["content"]

        options = webdriver.ChromeOptions()
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1000,700"):
            options.add_argument(flag)
        options.binary_location = "/usr/bin/chromium"
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        driver.get(url + "/")
        wait = WebDriverWait(driver, 60)
        wait.until(lambda d: d.find_element(By.ID, "model").text == "lumi-nano")
        send(driver, "Name a colour.", temperature=0, max_tokens=32)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".assistant[data-state=done]"))
        answer = driver.execute_script("return document.querySelector('.assistant').textContent")
        assert answer == expected, (answer, expected)
        assert driver.find_element(By.CSS_SELECTOR, ".user").text == "Name a colour."

        # A long sampled answer, stopped: the page says so and the server frees the row.
        send(driver, "Write a long story.", temperature=1, max_tokens=200)
        wait.until(lambda d: d.find_element(By.ID, "stop").is_enabled())
        driver.find_element(By.ID, "stop").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".assistant[data-state=stopped]") or
                   d.find_elements(By.CSS_SELECTOR, ".assistant[data-state=done]")[1:])
        driver.save_screenshot(os.path.join(args.work, "chat_page.png"))
        deadline = time.time() + 30
        while time.time() < deadline:
            metrics = urllib.request.urlopen(url + "/metrics").read().decode()
            if "lumi_active_requests 0" in metrics:
                break
            time.sleep(0.2)
        assert "lumi_active_requests 0" in metrics, metrics
        print(f"test_page: the page streamed {len(answer)} characters equal to the API's answer; "
              f"screenshot {os.path.join(args.work, 'chat_page.png')}")
    finally:
        if driver:
            driver.quit()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, "".join(lines)


if __name__ == "__main__":
    main()
