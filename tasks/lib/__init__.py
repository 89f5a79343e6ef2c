"""Library code behind the task collections: plain functions, no Invoke tasks.

Imports go one way: collections (``tasks/*.py``) import from here, never the reverse."""
