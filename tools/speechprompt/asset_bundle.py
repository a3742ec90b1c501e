"""A bundle of named assets: the files one experiment needs, each by a path on its download host, and the
Make settings they imply. The built-in bundles are in `asset_registry.py` (GSLM's) and `twist_assets.py`."""
from __future__ import annotations

import dataclasses
import re

GSLM_HOST = "https://dl.fbaipublicfiles.com/"  # the host fairseq's GSLM README links


@dataclasses.dataclass
class Asset:
    """One file of a bundle: `url` is a path on the host (and in the cache); `member` a file inside it."""

    url: str
    member: str | None = None


@dataclasses.dataclass
class Bundle:
    name: str
    about: str
    files: dict[str, Asset]
    make: dict[str, str]  # Make variable -> value, `{key}` standing for the local path of files[key]
    base_url: str = GSLM_HOST
    sha256: dict[str, str] = dataclasses.field(default_factory=dict)  # url path -> pinned hash
    units_only: str | None = None  # why this bundle's units cannot be made here (its uLM needs UNITS=)
    hosts: dict[str, str] = dataclasses.field(default_factory=dict)  # url path -> its host, where not base_url

    def make_keys(self) -> list[str]:
        """The files the Make settings name, in bundle order."""
        named = {ref for value in self.make.values() for ref in re.findall(r"{(\w+)}", value)}
        return [key for key in self.files if key in named]

    def downloads(self, keys) -> list[str]:
        """The url paths to fetch for `keys`, each once, in bundle order."""
        return list(dict.fromkeys(self.files[k].url for k in keys))
