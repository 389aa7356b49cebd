"""Bot recall, precision, humans flagged and device-type agreement of the useragent processor,
on labelled user agents nobody on the project wrote.

Labelled data, installed by this script from registries (pinned versions, into --cache):
- robots: every `instances` example of the npm package `crawler-user-agents` (its list of
  crawler patterns, each with real user agents seen in logs);
- people: the npm package `user-agents` (real browsers' user agents collected from sites'
  visitors, each with its `deviceCategory`: desktop, mobile or tablet), and the desktop,
  smartphone, phablet, feature-phone and tablet fixtures of the PyPI package `device-detector`
  (Matomo's test set, installed with sitelog) whose client is a browser, with Matomo's device type.
device-detector is tuned on its own fixtures, so its humans-flagged figure there is optimistic;
the npm sets are independent of every rule sitelog uses.

`--candidates` also measures the bot libraries alone (crawlerdetect, device-detector's full
parser and its bot parser), recall, humans flagged and µs per user agent, for
docs/dependencies.md. Usage: .venv/bin/python scripts/eval_useragents.py [--candidates]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterable
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace

import device_detector
import yaml_rs

from sitelog.shipper.enrich import useragent

NPM = {"crawler-user-agents": "1.60.0", "user-agents": "2.1.198"}
MATOMO_TYPES = {"desktop": "desktop", "smartphone": "mobile", "phablet": "mobile",
                "feature phone": "mobile", "tablet": "tablet"}
MATOMO_FILES = ("desktop", "smartphone", "phablet", "feature_phone", "tablet")
TARGETS = {"recall": 95.0, "precision": 99.0, "humans flagged": 0.1}


def npm_package(name: str, version: str, cache: Path) -> Path:
    """The unpacked `package/` folder of an npm package, fetched once with `npm pack`."""
    folder = cache / f"{name}-{version}"
    if not (folder / "package").is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        out = subprocess.run(["npm", "pack", f"{name}@{version}", "--silent"], cwd=folder,
                             check=True, capture_output=True, text=True).stdout.split()[-1]
        with tarfile.open(folder / out) as tar:
            tar.extractall(folder, filter="data")
    return folder / "package"


def robots(cache: Path) -> list[str]:
    """The distinct example user agents of crawler-user-agents."""
    package = npm_package("crawler-user-agents", NPM["crawler-user-agents"], cache)
    entries = json.loads((package / "crawler-user-agents.json").read_text())
    return sorted({ua for entry in entries for ua in entry.get("instances", ())})


def intoli_people(cache: Path) -> dict[str, str]:
    """user agent → device category, from the npm package user-agents."""
    package = npm_package("user-agents", NPM["user-agents"], cache)
    entries = json.loads((package / "dist" / "user-agents.json").read_text())
    return {entry["userAgent"]: entry["deviceCategory"] for entry in entries}


def matomo_people() -> dict[str, str]:
    """user agent → desktop/mobile/tablet, from device-detector's fixtures of browsers."""
    folder = Path(device_detector.__file__).parent / "tests" / "fixtures" / "upstream"
    found: dict[str, str] = {}
    for path in sorted(folder.glob("*.yml")):
        if path.stem.rsplit("-", 1)[0] not in MATOMO_FILES:
            continue
        for entry in yaml_rs.loads(path.read_text()):
            kind = MATOMO_TYPES.get((entry.get("device") or {}).get("type", ""))
            if kind and (entry.get("client") or {}).get("type") == "browser":
                found[str(entry["user_agent"])] = kind
    return found


def share(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else 0.0


def evaluate(is_bot: Callable[[str], bool], bots: list[str],
             people: dict[str, dict[str, str]]) -> dict[str, float]:
    """Recall on `bots`, humans flagged per set and over all, precision over all."""
    caught = sum(map(is_bot, bots))
    flagged = {name: sum(map(is_bot, uas)) for name, uas in people.items()}
    humans = sum(len(uas) for uas in people.values())
    wrong = sum(flagged.values())
    result = {"recall": share(caught, len(bots)),
              "precision": share(caught, caught + wrong),
              "humans flagged": share(wrong, humans)}
    for name, count in flagged.items():
        result[f"humans flagged ({name})"] = share(count, len(people[name]))
    return result


def agreement(device_type: Callable[[str], str], labelled: dict[str, str]) -> float:
    """The share of `labelled` user agents whose device type is the label."""
    return share(sum(device_type(ua) == kind for ua, kind in labelled.items()), len(labelled))


def candidates() -> dict[str, Callable[[str], bool]]:
    """The bot libraries alone, as docs/dependencies.md compares them."""
    from crawlerdetect import CrawlerDetect
    from device_detector import DeviceDetector
    from device_detector.parser import Bot

    crawler = CrawlerDetect()
    return {
        "crawlerdetect": crawler.is_crawler,
        "device-detector (full parse)": lambda ua: DeviceDetector(
            ua, skip_device_detection=True, check_cache=False).parse().is_bot(),
        "device-detector (bot parser)": lambda ua: Bot(ua, None).parse().is_bot(),
    }


def timed(function: Callable[[str], object], uas: Iterable[str]) -> float:
    """µs per call of `function` over `uas` (each distinct: no cache helps)."""
    uas = list(uas)
    start = time.perf_counter()
    for ua in uas:
        function(ua)
    return (time.perf_counter() - start) / len(uas) * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "sitelog-eval")
    parser.add_argument("--candidates", action="store_true", help="also measure the libraries")
    args = parser.parse_args(argv)
    bots = robots(args.cache)
    intoli, matomo = intoli_people(args.cache), matomo_people()
    people = {"user-agents": sorted(intoli), "device-detector fixtures": sorted(matomo)}
    print(f"robots: {len(bots)} (crawler-user-agents {NPM['crawler-user-agents']}); people: "
          f"{len(intoli)} (user-agents {NPM['user-agents']}) + {len(matomo)} (device-detector "
          f"{metadata.version('device-detector')})")
    describe = useragent.build(SimpleNamespace(useragent={"cache_size": 1}))

    def device(ua: str) -> dict[str, object]:
        found = describe({"ua": ua})
        assert found is not None
        return found["device"]  # type: ignore[no-any-return]

    start = time.perf_counter()
    result = evaluate(lambda ua: device(ua)["bot"] is True, bots, people)
    seconds = time.perf_counter() - start
    print("\nsitelog useragent processor:")
    for key, value in result.items():
        target = TARGETS.get(key)
        verdict = ""
        if target is not None:
            at_most = key == "humans flagged"
            met = value <= target if at_most else value >= target
            verdict = (f"  (target {'≤' if at_most else '≥'} {target:g} %: "
                       f"{'met' if met else 'MISSED'})")
        print(f"  {key:38} {value:7.3f} %{verdict}")
    for name, labelled in (("user-agents", intoli), ("device-detector fixtures", matomo)):
        value = agreement(lambda ua: str(device(ua)["type"]), labelled)
        print(f"  {'device type agrees (' + name + ')':38} {value:7.3f} %")
    total = len(bots) + sum(map(len, people.values()))
    print(f"  {'µs per distinct user agent (uncached)':38} {seconds / total * 1e6:7.0f}")
    missed = [ua for ua in bots if device(ua)["bot"] is not True]
    flagged = [ua for uas in people.values() for ua in uas if device(ua)["bot"] is True]
    print(f"\nfirst robots missed ({len(missed)}):", *missed[:10], sep="\n  ")
    print(f"humans flagged ({len(flagged)}):", *flagged[:10], sep="\n  ")
    if args.candidates:
        sample = bots[:300] + people["user-agents"][:300]
        print("\ncandidates alone:")
        for name, is_bot in candidates().items():
            found = evaluate(is_bot, bots, people)
            print(f"  {name:30} recall {found['recall']:6.2f} %  precision "
                  f"{found['precision']:6.2f} %  humans flagged {found['humans flagged']:6.3f} %"
                  f"  {timed(is_bot, sample):6.0f} µs/UA")
    return 0


if __name__ == "__main__":
    sys.exit(main())
