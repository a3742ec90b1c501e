"""sp-export: a trained prompt with every part that labels new audio, as one model bundle.

    sp-export --prompt exp/SCR/prompt.pt --verbalizer exp/SCR/verbalizer.json --kmeans exp/SCR/km.bin \
        --encoder logmel --deltas --cmvn --subsample 2 --max-units 1000 --crop center \
        --metrics exp/SCR/metrics.json -o exp/SCR/bundle --tar exp/SCR/bundle.tar

`make TASK=X export` runs it with the experiment's own settings. The encoder options and the unit
settings must be those the chain ran with (sp-quantize's, sp-lmdata's `--max-units --crop`); the
k-means, uLM and verbalizer are checked against what they record. Parts fetched by `--assets NAME`
(Make passes ASSETS) are named, not copied. The bundle directory is built beside `-o` and renamed
into place; the tar is written atomically. Format: docs/classify.md.
"""
import click

from .encoders import EncoderOptionError, encoder_options
from .io import command, log, usage_errors
from .model_bundle import export
from .units import CROPS


@command("Write a model bundle: prompt, verbalizer, k-means, encoder settings, uLM and dict, with a manifest "
         "of sha256s (sp-classify reads it).")
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False),
              help="The bundle directory to write (an existing bundle is replaced).")
@click.option("--tar", "tar_path", type=click.Path(dir_okay=False), help="Also write a tar of the bundle here.")
@click.option("--prompt", required=True, type=click.Path(exists=True, dir_okay=False), help="From sp-train.")
@click.option("--verbalizer", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The verbalizer the prompt was trained with.")
@click.option("--kmeans", required=True, type=click.Path(exists=True, dir_okay=False), help="As sp-quantize's.")
@click.option("--kmeans-rate", type=click.FloatRange(min=0, min_open=True), metavar="HZ",
              help="As sp-quantize's: the frame rate of a k-means file that does not record it.")
@encoder_options
@click.option("--base", type=click.Path(exists=True, dir_okay=False), help="The uLM [default: as the prompt records].")
@click.option("--base-dict", type=click.Path(exists=True, dir_okay=False),
              help="Its dict.txt [default: as the prompt records, else beside --base].")
@click.option("--max-units", type=click.IntRange(min=1), help="As sp-lmdata's [default: no crop].")
@click.option("--crop", type=click.Choice(CROPS), default="center", show_default=True, help="As sp-lmdata's.")
@click.option("--metrics", type=click.Path(exists=True, dir_okay=False), help="sp-score's metrics on test.")
@click.option("--name", help="A name for the bundle (Make: the task).")
@click.option("--assets", "asset_names", multiple=True, metavar="NAME",
              help="Named asset bundles the parts may come from (Make: ASSETS): their cached files are named "
                   "by asset and sha256, not copied; repeatable.")
@click.option("--copy-assets", is_flag=True, help="Copy parts from the asset cache too: a bundle that needs no cache.")
def main(out_dir, tar_path, prompt, verbalizer, kmeans, kmeans_rate, base, base_dict, max_units, crop, metrics, name,
         asset_names, copy_assets, **options):
    name_of_encoder = options.pop("encoder_name")
    with usage_errors(EncoderOptionError):
        manifest = export(out_dir, prompt=prompt, verbalizer=verbalizer, kmeans=kmeans, encoder_name=name_of_encoder,
                          encoder_options=options, kmeans_rate=kmeans_rate, base=base, base_dict=base_dict,
                          max_units=max_units, crop=crop, metrics=metrics, name=name, assets=list(asset_names),
                          copy_assets=copy_assets, tar=tar_path)
    named = [role for role, part in manifest["parts"].items() if "asset" in part]
    size = sum(part["bytes"] for part in manifest["parts"].values() if "file" in part)
    log(f"wrote {out_dir} ({len(manifest['parts'])} parts, {size / 1e6:.1f} MB copied"
        + (f"; named from the asset cache: {', '.join(named)}" if named else "") + ")"
        + (f" and {tar_path}" if tar_path else ""))
