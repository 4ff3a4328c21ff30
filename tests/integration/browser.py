"""A real browser for the dashboard's tests: Debian's chromium, headless, driven by Selenium through Debian's
chromedriver (scripts/bootstrap --browser installs both; Selenium is never let to fetch a browser or driver of
its own). Screenshots go to artifacts/ (or $OSD_ARTIFACTS)."""

from __future__ import annotations

import contextlib
import os
import shutil

from selenium import webdriver
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from tests.integration.conftest import ROOT

ARTIFACTS = os.environ.get("OSD_ARTIFACTS") or os.path.join(ROOT, "artifacts")
WAIT = 60  # seconds any page may take to show what is looked for


@contextlib.contextmanager
def chromium():
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert browser and driver, "Debian's chromium and chromium-driver are not installed: run scripts/bootstrap --browser"
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager, if anything called it, must not download
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1366,900", "--no-first-run", "--disable-background-networking"):
        options.add_argument(argument)
    session = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    session.set_page_load_timeout(WAIT)
    try:
        yield session
    finally:
        session.quit()


def screenshot(session, name: str) -> str:
    os.makedirs(os.path.join(ARTIFACTS, "dashboard"), exist_ok=True)
    path = os.path.join(ARTIFACTS, "dashboard", f"{name}.png")
    session.save_screenshot(path)
    return path


def sign_in(session, url: str, user: str, password: str) -> None:
    session.get(url)
    WebDriverWait(session, WAIT).until(expected_conditions.presence_of_element_located((By.ID, "id_username")))
    session.find_element(By.ID, "id_username").send_keys(user)
    session.find_element(By.ID, "id_password").send_keys(password)
    session.find_element(By.ID, "loginBtn").click()


def shows(session, text: str) -> bool:
    """Waits until the page's text has `text` (the tables of newer panels are drawn by scripts after loading; a
    page still being replaced, after a form's redirect, is read again)."""
    def has_text(s) -> bool:
        try:
            return text in s.find_element(By.TAG_NAME, "body").text
        except WebDriverException:
            return False

    try:
        WebDriverWait(session, WAIT).until(has_text)
        return True
    except TimeoutException:
        return False
