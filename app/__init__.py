"""AquaScene content engine: one FastAPI package serving five roles."""

from app.settings import VERSION as __version__

__all__ = ["__version__"]
