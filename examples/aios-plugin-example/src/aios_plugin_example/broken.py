"""Deliberately broken: it needs a package nobody installs, so this entry point fails to load
(``aios plugins list`` shows why) while the package's other plugins work."""

from __future__ import annotations

import aios_plugin_example_missing_dependency  # type: ignore[import-not-found]  # noqa: F401

BrokenAction = None
