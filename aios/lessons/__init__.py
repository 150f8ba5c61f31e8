"""Lessons: repeated failures turned into knowledge, with the fix that works and how sure AIOS
is of it (draft, verified, hardened). See ``model`` for the lifecycle, ``extract`` for how
lessons are made and judged, ``index`` for finding them by meaning."""
