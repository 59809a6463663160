"""The trainer page: a FastAPI app over the rep log and the live station state."""
from web.app import create_app

__all__ = ["create_app"]
