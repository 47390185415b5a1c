"""`aggregator demo`: the whole pipeline offline, on bundled sample blogs.

Five made-up contributors (Blogger, WordPress, Medium, Substack and Mastodon
style feeds, with untagged posts and one cross-post) are served on loopback,
registered from their homepages, polled and published into `output/demo/`.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from .config import settings_from_dict
from .core import Aggregator
from .errors import ConfigError
from .loopback import LoopbackSite, MailSink, Response

# (contributor, homepage path, feed path, sample file, feed type)
SAMPLE_BLOGS = [
    (
        "Patrick Wood",
        "/patrick/",
        "/patrick/feeds/posts/default",
        "patrick-blogger.xml",
        "application/atom+xml",
    ),
    (
        "Four Seasons Community Trust",
        "/seasons/",
        "/seasons/feed/",
        "seasons-wordpress.xml",
        "application/rss+xml",
    ),
    ("Jo Ellis", "/jo/", "/jo/feed", "jo-medium.xml", "application/rss+xml"),
    ("Sam Okafor", "/sam/", "/sam/feed", "sam-substack.xml", "application/rss+xml"),
    ("Lee Brown", "/lee/", "/lee.rss", "lee-mastodon.xml", "application/rss+xml"),
]


DEMO_SUBSCRIBERS = ["reader@example.org", "organiser@example.org"]


def demo_settings(output_dir: Path, database: Path, smtp_port: int = 25) -> dict:
    return {
        "event": {
            "name": "Co-production Week 2017",
            "site_url": "http://localhost:8000/",
            "timezone": "Europe/London",
            "collect_from": "2017-05-01",
            "collect_until": "2017-07-31",
            "tags": ["Co-production Week", "#CoProductionWeek"],
            "keywords": ["co-production week"],
        },
        "database": {"url": f"sqlite:///{database}"},
        "polling": {"allow_private_addresses": True, "timeout_seconds": 10},
        "publish": {"output_dir": str(output_dir)},
        "digest": {
            "sender": "Co-production Week <digest@example.org>",
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp_port,
        },
    }


def sample(name: str) -> str:
    return resources.files("aggregator").joinpath("demo_data", name).read_text("utf-8")


def serve_samples(site: LoopbackSite) -> None:
    page = sample("homepage.html")
    for name, home, feed, filename, feed_type in SAMPLE_BLOGS:
        body = sample(filename).replace("{base}", site.base).encode("utf-8")
        site.routes[feed] = Response(body, content_type=f"{feed_type}; charset=utf-8")
        html = page.format(
            title=name, feed=feed, feed_type=feed_type, comments=home + "comments/feed/"
        )
        site.routes[home] = Response(html.encode(), content_type="text/html; charset=utf-8")


@dataclass
class DemoReport:
    paths: list[Path] = field(default_factory=list)


def run_demo(output_dir: Path, echo: Callable[[str], None] = print) -> DemoReport:
    output_dir = output_dir.resolve()
    if (
        output_dir.is_dir()
        and any(output_dir.iterdir())
        and not (output_dir / "feed.atom").exists()
    ):
        raise ConfigError(
            f"--output-dir {output_dir}: not empty and not a demo's folder; the demo starts by "
            "emptying it, so give a new or a demo folder"
        )
    # a fresh start each time: the loopback port (and so every feed address) changes per run
    if output_dir.exists():
        shutil.rmtree(output_dir)
    output_dir.mkdir(parents=True)
    report = DemoReport()
    # the demo's database lives only while it runs, and never in the published folder
    with LoopbackSite() as site, MailSink() as mail, tempfile.TemporaryDirectory() as data:
        serve_samples(site)
        database = Path(data) / "aggregator.db"
        settings = settings_from_dict(
            demo_settings(output_dir, database, mail.port), "demo settings"
        )
        with Aggregator(settings) as agg:
            echo(f"Serving {len(SAMPLE_BLOGS)} sample blogs at {site.base}")
            for name, home, *_ in SAMPLE_BLOGS:
                result = agg.add_contributor(name, site.url(home))
                for feed in result.feeds:
                    echo(f"  registered {name}: {feed.title} ({feed.entries} entries)")
            summary = agg.update_feeds()
            echo("Poll: " + summary.line())
            report.paths += agg.publish()
            echo(f"Published {agg.post_count()} event posts.")
            for email in DEMO_SUBSCRIBERS:
                agg.add_subscriber(email)
            digest = agg.send_digest()
            echo(digest.line() + f", caught by a local mail server on port {mail.port}")
            for number, (recipients, content) in enumerate(mail.messages, start=1):
                path = output_dir / f"digest-{number}.eml"
                path.write_bytes(content)
                report.paths.append(path)
                echo(f"  mail to {', '.join(recipients)} saved as {path.name}")
            report.paths.append(output_dir / "digests" / f"{digest.date.isoformat()}.html")
    echo("Outputs:")
    return report
