"""Secrets: operator keys, SOPS files and recipients, the plaintext-secret scanner."""
