"""``python -m pave.serving --deployments FILE``: the gateway without the CLI (what `pave serve` runs)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from pave.config import load_settings
from pave.serving.server import run_gateway


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pave.serving", description=__doc__)
    parser.add_argument("--deployments", type=Path, required=True, help="deployments JSON file")
    parser.add_argument("--host", help="interface (default: PAVE_GATEWAY_HOST)")
    parser.add_argument("--port", type=int, help="port (default: PAVE_GATEWAY_PORT, 8080)")
    parser.add_argument(
        "--grpc-port", type=int, help="gRPC port (default: PAVE_GATEWAY_GRPC_PORT, 8081; 0: none)"
    )
    parser.add_argument("--workers", type=int, help="processes (default: PAVE_GATEWAY_WORKERS; 0 = per core)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings(gateway_host=args.host, gateway_port=args.port, gateway_grpc_port=args.grpc_port)
    run_gateway(settings, args.deployments, workers=args.workers)


if __name__ == "__main__":
    main()
