"""Screenshot of the fleet dashboard for the README (docs/img/dashboard.png).

Runs ``p2p-node demo --dashboard 0`` (a live mesh on 127.0.0.1), lets the sampler gather
`--seconds` of history, opens the printed URL in headless Chromium and saves the page.

    python tools/dashboard/screenshot.py docs/img/dashboard.png [--seconds 90] [--dark]
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path)
    parser.add_argument("--seconds", type=float, default=90.0)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=1000)
    parser.add_argument("--dark", action="store_true", help="prefers-color-scheme: dark")
    args = parser.parse_args()

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    exe = Path(sys.executable).parent / "p2p-node"
    demo = subprocess.Popen(
        [str(exe), "demo", "--no-color", "--dashboard", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert demo.stdout is not None
        for line in demo.stdout:
            m = re.search(r"(http://127\.0\.0\.1:\d+/\?token=\S+)", line)
            if m and not url:
                url.append(m.group(1))
            if "Ctrl-C stops" in line:
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        if not ready.wait(60) or not url:
            print("the demo did not open its dashboard", file=sys.stderr)
            return 1
        time.sleep(args.seconds)
        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium") or "chromium"
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"):
            options.add_argument(arg)
        options.add_argument(f"--window-size={args.width},{args.height}")
        if args.dark:
            options.add_argument("--force-dark-mode")
            options.add_argument("--blink-settings=preferredColorScheme=0")
        service = Service(executable_path=shutil.which("chromedriver") or "chromedriver")
        driver = webdriver.Chrome(service=service, options=options)
        try:
            driver.get(url[0])
            time.sleep(3.0)  # history fetched, a few live updates drawn
            args.output.parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(args.output))
        finally:
            driver.quit()
        print(f"wrote {args.output}")
        return 0
    finally:
        demo.send_signal(signal.SIGINT)
        try:
            demo.wait(30)
        except subprocess.TimeoutExpired:
            demo.kill()


if __name__ == "__main__":
    sys.exit(main())
