"""sp-assets: named pretrained bundles (GSLM's HuBERT, k-means, unit LM, dict), fetched on demand.

    sp-assets list                          NAME<TAB>what it holds
    sp-assets get gslm-hubert100            KEY<TAB>PATH (hubert, kmeans, ulm, dict), downloaded once
    sp-assets urls gslm-hubert100           URL<TAB>PATH: what to download, and where to place it by hand

The bundles are in `asset_registry.py`; the cache, the mirror, hashes and safe unpacking in `asset_store.py`.
"""
import click

from .asset_registry import registry
from .asset_store import Store, cache_dir
from .io import BadInput, Group, atomic_output, output_option

registry_option = click.option(
    "--registry", "registries", multiple=True, type=click.Path(exists=True, dir_okay=False),
    envvar="SPEECHPROMPT_REGISTRY",
    help="A JSON file of more bundles (docs/assets.md); repeatable; "
         "env SPEECHPROMPT_REGISTRY (':'-separated).")
mirror_option = click.option("--mirror", envvar="SPEECHPROMPT_MIRROR", metavar="URL",
                             help="Take the same paths from this host instead [env SPEECHPROMPT_MIRROR].")
cache_option = click.option("--cache", default=cache_dir, metavar="DIR", show_default="$SPEECHPROMPT_CACHE, else "
                            "$XDG_CACHE_HOME/speechprompt, else ~/.cache/speechprompt", help="The cache directory.")


def bundle_named(name, registries):
    bundles = registry(list(registries))
    if name not in bundles:
        raise BadInput(f"no bundle {name!r}; `sp-assets list` names them: {', '.join(bundles)}")
    return bundles[name]


def make_value(text: str) -> str:
    return text.replace("$", "$$").replace("#", r"\#")


@click.group(cls=Group, help="Named pretrained bundles (GSLM's HuBERT, k-means, unit LM and dict), fetched on "
                             "demand into a verified cache.", context_settings={"help_option_names": ["-h", "--help"]})
def main():
    pass


@main.command("list", help="Print the bundles: NAME<TAB>what it holds.")
@registry_option
def list_command(registries):
    for name, bundle in registry(list(registries)).items():
        click.echo(f"{name}\t{bundle.about}")


@main.command("urls", help="Print URL<TAB>PATH for each download of bundle NAME: where to place it by hand.")
@click.argument("name")
@registry_option
@mirror_option
@cache_option
def urls_command(name, registries, mirror, cache):
    bundle = bundle_named(name, registries)
    store = Store(cache, mirror)
    for url in bundle.downloads(bundle.files):
        click.echo(f"{store.url(bundle, url)}\t{store.local(url)}")


def parse_hashes(values) -> dict:
    hashes = {}
    for value in values:
        key, _, digest = value.partition("=")
        if not key or len(digest) != 64 or any(c not in "0123456789abcdefABCDEF" for c in digest):
            raise click.BadParameter(f"{value!r}: expected KEY=SHA256 (64 hex digits)", param_hint="--sha256")
        hashes[key] = digest
    return hashes


@main.command("get", help="Fetch bundle NAME into the cache (once) and print KEY<TAB>PATH for its files.")
@click.argument("name")
@click.argument("keys", nargs=-1)
@click.option("--skip", multiple=True, metavar="KEY", help="Do not fetch this file (keys the bundle lacks are "
              "ignored); repeatable.")
@click.option("--sha256", "hashes", multiple=True, metavar="KEY=HASH",
              help="The sha256 that file KEY must have (wins over pinned and recorded hashes); repeatable.")
@click.option("--format", "fmt", type=click.Choice(["tsv", "make"]), default="tsv", show_default=True,
              help="make: the bundle's Make settings with the fetched paths, as `VAR := value` lines "
                   "(without KEYs, only the files the settings name are fetched).")
@output_option
@registry_option
@mirror_option
@cache_option
def get_command(name, keys, skip, hashes, fmt, output, registries, mirror, cache):
    bundle = bundle_named(name, registries)
    store = Store(cache, mirror)
    if not keys:  # Make needs only the files its settings name (not, say, a CPC checkpoint it cannot run)
        keys = bundle.make_keys() if fmt == "make" else list(bundle.files)
    keys = [key for key in keys if key not in skip]
    paths = store.fetch(bundle, keys, parse_hashes(hashes))
    with atomic_output(output) as out:
        if fmt == "tsv":
            out.writelines(f"{key}\t{path}\n" for key, path in paths.items())
            return
        out.write(f"# sp-assets get {name}: {bundle.about}\n")
        for var, value in store.make_settings(bundle, paths).items():
            out.write(f"{var} := {make_value(value)}\n")
        out.write(f"ASSETS_FILES := {' '.join(make_value(p) for p in paths.values())}\n")
        if bundle.units_only:
            out.write(f"ASSETS_UNITS_ONLY := {make_value(bundle.units_only)}\n")
