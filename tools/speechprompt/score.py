"""Placeholder until issue 5 lands."""
from .io import not_built

main = not_built("sp-score", "issue 5")
