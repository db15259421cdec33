"""Every benchmark at full size, one after the other (``make bench``); JSON on stdout.

python -m bench.all            # minutes: the figures of docs/benchmarks.md
python -m bench.all --small    # seconds: what tests/stress/test_bench_smoke.py runs
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from . import (
    attribution_cost,
    budget,
    check_cost,
    d1_cost,
    feed_budget,
    listing_memory,
    page_scale,
    serve_latency,
    session_end,
    webhook_soak,
)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", action="store_true")
    args = parser.parse_args(argv)
    flags = ["--small"] if args.small else []
    results = {
        "check_cost": check_cost.main(flags),
        "serve_latency": serve_latency.main(flags),
        "budget": budget.main(flags),
        "listing_memory": listing_memory.main(flags),
        "d1_cost": d1_cost.main(flags),
        "page_scale": page_scale.main(flags),
        "attribution_cost": attribution_cost.main(flags),
        "webhook_soak": webhook_soak.main(flags),
        "session_end": session_end.main(flags),
        "feed_budget": feed_budget.main(flags),
    }
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
