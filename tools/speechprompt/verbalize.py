"""Placeholder until issue 4 lands."""
from .io import not_built

main = not_built("sp-verbalize", "issue 4")
