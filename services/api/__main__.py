"""`python -m services.api`: run the API and the wall board."""

from __future__ import annotations

import uvicorn

from services.api.app import create_app
from services.api.settings import ApiSettings
from shared.logs import setup_logging


def main() -> None:
    settings = ApiSettings()
    setup_logging(settings.log_level)
    app = create_app(settings)
    uvicorn.run(app, host=settings.api_host, port=settings.api_port, log_config=None)


if __name__ == "__main__":
    main()
