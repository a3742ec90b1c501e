"""Placeholder until issue 3 lands."""
from .io import not_built

main = not_built("sp-quantize", "issue 3")
