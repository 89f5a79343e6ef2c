"""Talos and bootstrap planning: parsing talhelper/talosctl/kubectl output, choosing what to run."""
