"""Placeholder until issue 2 lands."""
from .io import not_built

main = not_built("sp-manifest", "issue 2")
