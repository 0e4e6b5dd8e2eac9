"""Example storefront calls against a running `lookgraph serve` (stdlib only).

    python scripts/example_requests.py [--url http://127.0.0.1:8765] [--key KEY] [--wait SECONDS]

Shows a shopper's recommendations with their explanations, posts a view event, shows how the
next answer changes, and completes the look around a product for an anonymous visitor.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.request


def call(url: str, key: str, method: str = "GET", body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"X-API-Key": key, "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def wait_for(base: str, seconds: float) -> None:
    """Wait until the server answers /health, or give up after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(f"{base}/health", timeout=1)
            return
        except OSError:
            if time.monotonic() > deadline:
                sys.exit(f"the API at {base} did not come up within {seconds:.0f} s")
            time.sleep(0.5)


def show(title: str, answer: dict) -> None:
    print(f"\n{title}")
    for item in answer["items"]:
        tag = " [exploring]" if item["exploration"] else ""
        print(f"  {item['name']:<40} {item['category'] or '':<34} {item['reason']}{tag}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="http://127.0.0.1:8765")
    parser.add_argument("--key", default=os.environ.get("LOOKGRAPH_EXAMPLE_KEY", ""))
    parser.add_argument("--shopper", default="u000007")
    parser.add_argument("--product", default="p000500")
    parser.add_argument("--wait", type=float, default=0.0, help="Seconds to wait for the server to come up.")
    args = parser.parse_args()
    base = args.url.rstrip("/")
    if args.wait:
        wait_for(base, args.wait)
    show(f"GET /shoppers/{args.shopper}/recommendations?k=6",
         call(f"{base}/shoppers/{args.shopper}/recommendations?k=6", args.key))
    event = {"event_id": f"example-{args.shopper}-{args.product}", "session_id": f"example-{args.shopper}",
             "product_id": args.product, "type": "view", "shopper_id": args.shopper}
    print(f"\nPOST /events {json.dumps(event)}\n  -> {call(f'{base}/events', args.key, 'POST', event)}")
    show(f"GET /shoppers/{args.shopper}/recommendations?k=6 (after the view)",
         call(f"{base}/shoppers/{args.shopper}/recommendations?k=6", args.key))
    show(f"GET /products/{args.product}/complete-the-look?k=4 (anonymous)",
         call(f"{base}/products/{args.product}/complete-the-look?k=4", args.key))
    first = call(f"{base}/products/{args.product}/complete-the-look?k=1", args.key)["items"][0]
    print("\nmachine-readable path of the first item:\n" + json.dumps(first["paths"][0], indent=2))


if __name__ == "__main__":
    main()
