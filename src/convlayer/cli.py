"""The ``convlayer`` command line: train, evaluate, predict, summary, datasets (and more).

User mistakes end with one line on stderr and a non-zero exit, never a traceback.
Other modules add commands through ``register(subparsers)`` (see ``COMMAND_MODULES``).
"""

from __future__ import annotations

import importlib
import json
import os
import sys

import numpy as np

from .clitools import (PROG, Parser, UsageError, add_preprocess_option, error_line, fraction, load_checkpoint,
                       missing_extra_line, non_negative_int, output_path, positive_float, positive_int, say)

COMMAND_MODULES = ("convlayer.viz.commands", "convlayer.web.commands", "convlayer.interop.commands",
                   "convlayer.learn.commands")


# ---------------------------------------------------------------------------- helpers


def resolve_dataset(name: str, data_dir=None) -> str:
    """'auto': MNIST when its files are here or downloadable, else Fashion-MNIST, else digits."""
    if name != "auto":
        return name
    from . import datasets

    status = {d["name"]: d for d in datasets.available()}
    if status.get("mnist", {}).get("available"):
        return "mnist"
    try:  # MNIST "whenever downloadable": try it (fails fast offline)
        datasets.load("mnist", data_dir=data_dir)
        return "mnist"
    except datasets.DatasetError:
        pass
    if status.get("fashion-mnist", {}).get("available"):
        return "fashion-mnist"
    return "digits"


# ---------------------------------------------------------------------------- commands


def cmd_train(args):
    from .training import TrainConfig, train

    dataset = resolve_dataset(args.dataset, args.data_dir)
    output_dir = args.output_dir or f"runs/{dataset}"
    config = TrainConfig(dataset=dataset, epochs=args.epochs, batch_size=args.batch_size, optimizer=args.optimizer,
                         learning_rate=args.learning_rate, momentum=args.momentum, schedule=args.schedule,
                         seed=args.seed, validation_split=args.validation_split, output_dir=output_dir,
                         data_dir=args.data_dir, limit=args.limit, shift=args.shift)
    if args.learning_rate is None:
        config.learning_rate = 1e-3 if args.optimizer == "adam" else 0.05
    from . import distributed

    callbacks = [] if args.quiet or not distributed.is_root() else [_ProgressBar()]
    if args.resume:
        say(f"Resuming {args.resume} up to epoch {args.epochs}")
    else:
        say(f"Training the lesson's CNN on {dataset} for {args.epochs} epoch{'s' * (args.epochs != 1)} "
             f"(batch {args.batch_size}, "
             f"{args.optimizer}, {args.schedule} schedule) -> {output_dir}/")
    world = distributed.world()
    if world is not None:
        from . import parallel

        threads = parallel.get_num_threads()
        say(f"Data-parallel over {world.size} MPI processes, {threads} thread{'s' * (threads != 1)} each; "
            f"--batch-size {args.batch_size} is the global batch")
        if args.batch_size % world.size:
            say(f"Note: {world.size} processes do not divide batch {args.batch_size}: shards of "
                f"{args.batch_size // world.size} and {args.batch_size // world.size + 1} images, each gradient "
                "weighted by its shard's size")
    result = train(config, resume=args.resume, callbacks=callbacks)
    say(f"Data: {result.dataset_source}")
    criterion = "validation accuracy" if result.config.validation_split else "training loss (no validation split)"
    say(f"Best epoch by {criterion}: {result.best_epoch}; checkpoint {result.best_path}")
    say(f"Per-epoch log: {result.log_path}")
    say(f"Test accuracy: {result.test_accuracy * 100:.2f}% (loss {result.test_loss:.4f}) on "
         f"{result.config.dataset} test set")
    if result.config.dataset != "mnist":
        say("To train on MNIST: put its four IDX files in a folder and run "
             "`convlayer train --dataset mnist --data-dir FOLDER` (or let it download them).")
    return 0


class _ProgressBar:
    """tqdm bar per epoch with loss, accuracy and images/s (the CLI's only printing)."""

    def __init__(self):
        from tqdm import tqdm

        self._tqdm = tqdm
        self.bar = None

    def on_epoch_begin(self, epoch, model):
        self.epoch = epoch

    def on_batch_begin(self, step, model):
        pass

    def on_batch_end(self, step, logs, model):
        if self.bar is None:
            total = getattr(model, "steps_per_epoch", None)
            self.bar = self._tqdm(total=total, desc=f"epoch {self.epoch + 1}", unit="batch", leave=True,
                                  dynamic_ncols=True, file=sys.stderr)
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{logs['loss']:.4f}", acc=f"{logs['accuracy']:.4f}",
                             img_s=f"{logs['images_per_second']:.0f}", refresh=False)

    def on_epoch_end(self, epoch, logs, model):
        if self.bar is not None:
            extra = ""
            if "val_accuracy" in logs:
                extra = f", val_loss={logs['val_loss']:.4f}, val_acc={logs['val_accuracy']:.4f}"
            self.bar.set_postfix_str(f"loss={logs['loss']:.4f}, acc={logs['accuracy']:.4f}{extra}, "
                                     f"{logs['images_per_second']:.0f} img/s")
            self.bar.close()
            self.bar = None


def cmd_evaluate(args):
    from .training import confusion_matrix

    ck = load_checkpoint(args.checkpoint)
    data = ck.test_data(args.dataset, args.data_dir)
    logits = ck.model.predict(data.x_test)
    predictions = logits.argmax(axis=1)
    matrix = confusion_matrix(data.y_test, predictions, data.num_classes)
    per_class = matrix.diagonal() / np.maximum(matrix.sum(axis=1), 1)
    accuracy = float((predictions == data.y_test).mean())
    if args.json:
        say(json.dumps({"dataset": data.name, "accuracy": accuracy, "per_class_accuracy": per_class.tolist(),
                         "class_names": list(data.class_names), "confusion_matrix": matrix.tolist()}))
        return 0
    say(f"{data.name} test set: {len(data.y_test)} images, accuracy {accuracy * 100:.2f}%")
    say("\nPer-class accuracy:")
    for name, value, count in zip(data.class_names, per_class, matrix.sum(axis=1)):
        say(f"  {name:>12s}  {value * 100:6.2f}%  ({count} images)")
    width = max(5, len(str(matrix.max())) + 1)
    say("\nConfusion matrix (rows: true class, columns: predicted):")
    say("      " + "".join(f"{i:>{width}d}" for i in range(data.num_classes)))
    for i, row in enumerate(matrix):
        say(f"  {i:>3d} " + "".join(f"{v:>{width}d}" for v in row))
    return 0


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def image_paths(arguments) -> list[str]:
    """Files as given; a folder stands for the images in it (sorted by name)."""
    from pathlib import Path

    paths = []
    for argument in arguments:
        folder = Path(argument)
        if folder.is_dir():
            found = sorted(str(p) for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not found:
                raise UsageError(f"folder {argument!r} holds no images ({', '.join(IMAGE_SUFFIXES)}).")
            paths += found
        else:
            paths.append(argument)
    return paths


def cmd_predict(args):
    from .preprocess import ImageError
    from .viz.figures import top_predictions

    from . import distributed

    out = output_path(args.out, suffixes=(".csv",), what="--out") if args.out else None
    ck = load_checkpoint(args.checkpoint)
    paths = image_paths(args.images)
    world = distributed.world()
    if world is not None:  # MPI: each rank classifies its contiguous share of the images
        start, stop = distributed.shard_bounds(len(paths), world.rank, world.size)
        paths = paths[start:stop]
    prepared, failed = [], 0
    for path in paths:  # a bad image is one line; the others are still classified
        try:
            prepared.append((path, ck.prepare_image(path, args.preprocess)))
        except ImageError as exc:
            failed += 1
            print(error_line("predict", exc), file=sys.stderr, flush=True)
    results = []  # (path, [(class, probability)] top 3, method, note)
    if prepared:
        names = ck.class_names()
        probabilities = ck.model.probabilities(np.stack([p.image for _, p in prepared]))
        results = [(path, top_predictions(probs, names, k=3), p.method, p.note)
                   for (path, p), probs in zip(prepared, probabilities)]
    if world is not None:  # rank 0 gathers the shards, in input order
        gathered = world.comm.gather(results, root=0)
        failed = int(world.sum([failed])[0])
        if not world.is_root:
            return 1 if failed else 0
        results = [row for part in gathered for row in part]
    for path, top, method, note in results:
        if out is None:
            say(f"{path}: {', '.join(f'{name} {q * 100:.1f}%' for name, q in top)}  [{method}]")
        if note:
            print(f"{PROG} predict: warning: {path}: {note}", file=sys.stderr)
    if out is not None:
        write_predictions(out, results)
        say(f"Wrote {len(results)} prediction{'s' * (len(results) != 1)} to {out}")
    return 1 if failed else 0  # each unreadable image had its line


def write_predictions(path, results) -> None:
    """A CSV: file, top class, its probability, and the top 3 as 'class:probability' joined by ';'."""
    import csv
    import io

    from .fileio import atomic_write_text

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["file", "class", "probability", "top3"])
    for file, top, _, _ in results:
        writer.writerow([file, top[0][0], f"{top[0][1]:.6f}", ";".join(f"{name}:{q:.6f}" for name, q in top)])
    atomic_write_text(path, buffer.getvalue())


def cmd_summary(args):
    from .models import MNISTModel

    if args.checkpoint:
        model = load_checkpoint(args.checkpoint).model
    else:
        model = MNISTModel(args.input_dim, args.output_size)
    say(model.summary())
    return 0


def cmd_datasets(args):
    from . import datasets

    for entry in datasets.available():
        mark = "yes" if entry["available"] else "no "
        note = f" - {entry['note']}" if entry.get("note") else ""
        say(f"  [{mark}] {entry['name']:<14s} {entry.get('source', '')}{note}")
    return 0


# ---------------------------------------------------------------------------- parser


def build_parser() -> Parser:
    parser = Parser(prog=PROG, description="The lesson's CNN and its convolution layer, on NumPy.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__import__('convlayer').__version__}")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="cores to split the work over (default: all this process may use)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True

    p = sub.add_parser("train", help="train the lesson's CNN and report test accuracy",
                       description="Train MNISTModel (conv1 -> pool -> conv2 -> pool -> dense -> dropout -> logits).")
    p.add_argument("--dataset", default="auto", choices=["auto", "mnist", "fashion-mnist", "digits"],
                   help="auto: MNIST if its files are here or downloadable, else Fashion-MNIST (default: auto)")
    p.add_argument("--data-dir", help="folder with the dataset's IDX files (or set CONVLAYER_DATA_DIR)")
    p.add_argument("--epochs", type=positive_int, default=15, help="total epochs (default: 15)")
    p.add_argument("--batch-size", type=positive_int, default=128, help="default: 128")
    p.add_argument("--optimizer", choices=["adam", "sgd"], default="adam", help="default: adam")
    p.add_argument("--learning-rate", type=positive_float, default=None, help="default: 1e-3 (adam), 0.05 (sgd)")
    p.add_argument("--momentum", type=fraction, default=0.9, help="SGD momentum (default: 0.9)")
    p.add_argument("--schedule", choices=["cosine", "constant"], default="cosine",
                   help="learning-rate schedule over all steps (default: cosine)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="initialization, shuffling, dropout (default: 0)")
    p.add_argument("--validation-split", type=fraction, default=1 / 12,
                   help="fraction of training images held out to pick the best epoch (default: 1/12)")
    p.add_argument("--output-dir", help="run folder for checkpoints and log.csv (default: runs/<dataset>)")
    p.add_argument("--limit", type=positive_int, help="train on the first N images only (quick runs)")
    p.add_argument("--shift", type=non_negative_int, default=0,
                   help="augment: shift each training image by up to N pixels (default: 0)")
    p.add_argument("--resume", metavar="CHECKPOINT", help="continue from a last.npz, with its optimizer state")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="accuracy, per-class accuracy and confusion matrix of a checkpoint")
    p.add_argument("checkpoint")
    p.add_argument("--dataset", choices=["mnist", "fashion-mnist", "digits"],
                   help="default: the dataset the checkpoint was trained on")
    p.add_argument("--data-dir")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="classify PNG/JPEG images (or the images in a folder), top 3 classes",
                       description="Classify images with a checkpoint, prepared the way its dataset's images were "
                                   "made; each line ends with what was done to the image, in brackets.")
    p.add_argument("checkpoint")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders of images")
    add_preprocess_option(p)
    p.add_argument("--out", metavar="CSV", help="write file, class, probability, top 3 to this CSV instead of "
                                                "printing (under mpirun: one CSV, in input order)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("summary", help="layers, output shapes and parameter counts")
    p.add_argument("checkpoint", nargs="?", help="a checkpoint (default: a fresh model)")
    p.add_argument("--input-dim", type=positive_int, default=28)
    p.add_argument("--output-size", type=positive_int, default=10)
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("datasets", help="which datasets are available here, and from where")
    p.set_defaults(func=cmd_datasets)

    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("convlayer"):
                continue  # that part of convlayer is not there (yet)
            raise
        module.register(sub)
    return parser


def main(argv=None) -> int:
    from . import distributed

    try:
        world = distributed.world()
    except distributed.DistributedError as exc:
        print(error_line(None, str(exc)), file=sys.stderr)
        return 1
    if world is None:
        return _main(argv)
    return distributed.run_or_abort(world, _main_on_rank, world, argv)


def _main_on_rank(world, argv) -> int:
    """One rank of an MPI job: threads = cores / ranks on this machine (unless --threads); only rank 0 prints
    results."""
    from . import distributed, parallel

    parallel.set_num_threads(distributed.default_threads(world))
    if world.is_root:
        return _main(argv)
    saved = sys.stdout
    with open(os.devnull, "w") as devnull:
        sys.stdout = devnull
        try:
            return _main(argv)
        finally:
            sys.stdout = saved


def _main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .checkpoint import CheckpointError

    if args.threads is not None:
        from . import parallel

        parallel.set_num_threads(args.threads)

    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `convlayer explain | head`: the reader left; not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except (UsageError, CheckpointError, ValueError, TypeError, FileNotFoundError, PermissionError,
            IsADirectoryError, NotADirectoryError) as exc:
        if os.environ.get("CONVLAYER_DEBUG"):
            raise
        print(error_line(args.command, str(exc) or type(exc).__name__), file=sys.stderr)
        return 1
    except ImportError as exc:
        print(missing_extra_line(args.command, exc), file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
