"""Section 5: latency of each Captum explanation method for one galaxy."""
from __future__ import annotations

from gzcore import checkpoint

from .common import Context, Row, Skip, median_ms

TITLE = "Explanations"
ABOUT = """\
`gzcore.explain.explain(model, image, question=1, method=M)` on one galaxy at the model's input
size, each method with its default options (`explain.METHODS`), median wall time of repeated calls.
The methods that push many images through the model (smoothgrad, integrated gradients, occlusion)
cost that many forward/backward passes."""


def run(ctx: Context) -> list[Row]:
    try:
        from gzcore import explain
    except ImportError as e:
        raise Skip(f"gzcore.explain cannot be imported ({e})") from e
    model, ckpt = checkpoint.load(ctx.checkpoint)
    size = ckpt["input_size"]
    crops = checkpoint.data_for(ckpt, ctx.unlabelled, labels=False, cache_dir=ctx.cache).crops
    image = explain.model_input(crops[0], size)
    rows = []
    for method in explain.METHODS:
        ms = median_ms(lambda: explain.explain(model, image, 1, method=method), ctx.pick(5, 1), warmup=1)
        fast = method in ("saliency", "gradcam")  # the Explain page's default views
        rows.append(Row(f"{method} ({ctx.model_note}, {size} px, question 1)", ms, "ms",
                        goal="≤ 50 ms" if fast else "", met=ms <= 50 if fast else None))
    return rows
