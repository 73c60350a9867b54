"""`python -m services.simulator`: play a scenario live against ingest."""

from __future__ import annotations

import uvicorn

from services.simulator.live import SimulatorSettings, create_app
from shared.logs import setup_logging


def main() -> None:
    settings = SimulatorSettings()
    setup_logging(settings.log_level)
    uvicorn.run(
        create_app(settings), host=settings.sim_host, port=settings.sim_port, log_config=None
    )


if __name__ == "__main__":
    main()
