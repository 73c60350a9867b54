"""`python -m services.simulator`: play a scenario live against ingest."""

from __future__ import annotations

from services.simulator.live import SimulatorSettings, create_app
from shared.http import serve_forever


def main() -> None:
    settings = SimulatorSettings()
    serve_forever(create_app(settings), settings, settings.sim_host, settings.sim_port)


if __name__ == "__main__":
    main()
