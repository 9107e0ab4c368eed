"""norm converters (filled in by the op-family work)."""

from __future__ import annotations
