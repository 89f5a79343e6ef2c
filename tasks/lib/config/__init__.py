"""Configuration: schema and defaults, the template context, rendering, the configure pipeline."""
