"""The PACS-facing node and the admin surface. Never imports torch."""
