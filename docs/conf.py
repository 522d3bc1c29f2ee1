"""Sphinx configuration."""

project = "Flask-OIDC-Refresh"
copyright = "2026, the Flask-OIDC-Refresh developers"
extensions = ["sphinx.ext.autodoc", "sphinx.ext.intersphinx"]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
intersphinx_mapping: dict[str, tuple[str, None]] = {}
html_theme = "alabaster"
nitpicky = False
