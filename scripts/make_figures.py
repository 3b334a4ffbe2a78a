"""Regenerate the README's pictures in docs/img/.

    python scripts/make_figures.py                        # the lesson's three examples (committed)
    python scripts/make_figures.py --checkpoint runs/mnist/best.npz --image my_digit.png

Always: example1.gif, example2.gif, example3.gif (``convlayer draw --example N``) and
example3.png (example 3's last step, the window on the padded corner, as a still).
With --checkpoint: filters.png, confusion.png, mistakes.png, curves.png (when log.csv sits
next to the checkpoint) and, with --image too, activations.png. Without a checkpoint those are
skipped. Each file is written atomically; the paths are printed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_BYTES = 200_000  # keep committed pictures small


def _show(args: list[str]) -> None:
    from convlayer.cli import main

    code = main(args)
    if code:
        raise SystemExit(f"make_figures: `convlayer {' '.join(args)}` failed (exit {code})")


def make_examples(out_dir: Path, fps: float) -> list[Path]:
    from convlayer.viz import draw
    from convlayer.viz.explain import EXAMPLES

    paths = []
    for number, example in EXAMPLES.items():
        trace = example.trace()
        paths.append(draw.write_gif(trace, out_dir / f"example{number}.gif", fps=fps))
    trace = EXAMPLES[3].trace()
    still = draw.frames(trace)[len(trace.steps) - 1]  # the window on the padded bottom-right corner
    paths.append(draw.write_png(still, out_dir / "example3.png"))
    return paths


def make_checkpoint_figures(out_dir: Path, checkpoint: Path, image: Path | None, data_dir: str | None,
                            limit: int | None) -> None:
    data = [] if data_dir is None else ["--data-dir", data_dir]
    data += [] if limit is None else ["--limit", str(limit)]
    _show(["show", "filters", str(checkpoint), "--out", str(out_dir / "filters.png")])
    _show(["show", "confusion", str(checkpoint), *data, "--out", str(out_dir / "confusion.png")])
    _show(["show", "mistakes", str(checkpoint), *data, "--out", str(out_dir / "mistakes.png")])
    log = checkpoint.parent / "log.csv"
    if log.is_file():
        _show(["show", "curves", str(log), "--out", str(out_dir / "curves.png")])
    else:
        print(f"skipped curves.png: no {log}")
    if image is not None:
        _show(["show", "activations", str(checkpoint), str(image), "--out", str(out_dir / "activations.png")])
    else:
        print("skipped activations.png: pass --image PATH (a digit picture)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", type=Path, default=ROOT / "docs" / "img", help="default: docs/img")
    parser.add_argument("--fps", type=float, default=1.5, help="GIF frames per second (default 1.5)")
    parser.add_argument("--checkpoint", type=Path, help="a trained checkpoint (best.npz) for the model figures")
    parser.add_argument("--image", type=Path, help="with --checkpoint: a digit picture for activations.png")
    parser.add_argument("--data-dir", help="with --checkpoint: folder of the dataset's IDX files")
    parser.add_argument("--limit", type=int, help="with --checkpoint: use only the first N test images")
    args = parser.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for path in make_examples(args.out_dir, args.fps):
        print(path)
    if args.checkpoint is None:
        print("skipped filters/activations/curves/confusion/mistakes: pass --checkpoint runs/<name>/best.npz")
    else:
        make_checkpoint_figures(args.out_dir, args.checkpoint, args.image, args.data_dir, args.limit)
    too_big = [p for p in sorted(args.out_dir.iterdir()) if p.is_file() and p.stat().st_size > MAX_BYTES]
    for path in too_big:
        print(f"warning: {path} is {path.stat().st_size // 1000} KB (over {MAX_BYTES // 1000} KB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
