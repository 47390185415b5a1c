"""Make the README's pictures: the organiser's dashboard on a phone and the public page
on a desktop, from the bundled demo blogs (offline, on loopback) in Debian's Chromium.

    .venv/bin/python scripts/screenshots.py            # writes docs/screenshots/*.png

Needs the test extras (Playwright) and `chromium`; everything runs on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import uvicorn
from playwright.sync_api import sync_playwright

from aggregator.config import settings_from_dict
from aggregator.core import Aggregator
from aggregator.demo import SAMPLE_BLOGS, demo_settings, serve_samples
from aggregator.loopback import LoopbackSite, MailSink, Response
from aggregator.web import create_app

OUT = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ORGANISER = ("organiser@example.org", "a long demo password")


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    with LoopbackSite() as site, MailSink() as mail, tempfile.TemporaryDirectory() as tmp:
        serve_samples(site)
        port = free_port()
        data = demo_settings(Path(tmp) / "output", Path(tmp) / "aggregator.db", mail.port)
        data["event"]["site_url"] = f"http://127.0.0.1:{port}/"
        data["event"]["about"] = (
            "A week of posts about **co-production**: people who use services and the people "
            "who run them, designing them together."
        )
        agg = Aggregator(settings_from_dict(data, "screenshot settings"))
        for name, home, *_ in SAMPLE_BLOGS:
            agg.add_contributor(name, site.url(home))
        # one blog whose server then breaks, and one waiting for approval
        site.routes["/kim/feed"] = site.routes[SAMPLE_BLOGS[2][2]]
        agg.add_contributor("Kim Adeyemi", site.url("/kim/feed"), feed=site.url("/kim/feed"))
        site.routes["/kim/feed"] = Response(b"down", status=503, content_type="text/plain")
        agg.update_feeds(include_not_due=True)
        agg.publish()
        site.routes["/ravi/feed"] = site.routes[SAMPLE_BLOGS[3][2]]
        agg.register_blog("Ravi Shah", site.url("/ravi/feed"), "ravi@example.org")
        for reader in ("reader@example.org", "carer@example.org", "nurse@example.org"):
            agg.add_subscriber(reader)
        agg.send_digest()
        agg.add_organiser(*ORGANISER)

        server = uvicorn.Server(
            uvicorn.Config(create_app(agg), host="127.0.0.1", port=port, log_level="warning")
        )
        thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port}"
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
                public = browser.new_page(viewport={"width": 1280, "height": 900})
                public.goto(base + "/")
                public.screenshot(path=str(OUT / "public-page.png"))
                phone = browser.new_page(viewport={"width": 375, "height": 812})
                phone.goto(base + "/admin/login")
                phone.get_by_label("Email").fill(ORGANISER[0])
                phone.get_by_label("Password").fill(ORGANISER[1])
                phone.get_by_role("button", name="Log in").click()
                phone.wait_for_url("**/admin")
                phone.set_viewport_size({"width": 375, "height": 1500})
                phone.screenshot(path=str(OUT / "dashboard-phone.png"))
                browser.close()
        finally:
            server.should_exit = True
            thread.join(10)
            agg.close()
    print(f"wrote {OUT / 'public-page.png'} and {OUT / 'dashboard-phone.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
