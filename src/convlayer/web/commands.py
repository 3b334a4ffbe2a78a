"""``convlayer serve CHECKPOINT``: run the web page on this machine with uvicorn."""

from __future__ import annotations

import argparse
import socket
import sys

from ..clitools import UsageError, add_preprocess_option

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def _port(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number in 1..65535, got {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number in 1..65535, got {text!r}")
    return value


def _check_port_free(host: str, port: int) -> None:
    """Fail with one clear line before uvicorn would log a bind error and exit."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ValueError(f"cannot resolve --host {host!r} ({exc.strerror}).") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise ValueError(f"cannot listen on {host}:{port} ({exc.strerror}); pick another --port.") from None


def cmd_serve(args) -> int:
    import uvicorn

    from .app import create_app

    if args.checkpoint is None and not args.train:
        raise UsageError("pass a CHECKPOINT to serve (e.g. runs/fashion-mnist/best.npz), or --train to train one "
                         "in the page.")
    if args.dataset and not args.train:
        raise UsageError("--dataset goes with --train (the served checkpoint knows its own dataset).")
    _check_port_free(args.host, args.port)
    served = args.checkpoint
    if served is None:  # --train alone: the Draw and Gallery tabs show a fresh, untrained model
        from .. import checkpoint, datasets
        from ..models import MNISTModel
        from ..preprocess import style_for

        name = args.dataset or "digits"
        data = datasets.load(name, data_dir=args.data_dir)
        served = checkpoint.Checkpoint(MNISTModel(data.input_dim, data.num_classes), meta={
            "dataset": name, "class_names": list(data.class_names), "input_dim": data.input_dim,
            "preprocess": style_for(name)})
    trainer = None
    if args.train:
        from .train import Trainer

        trainer = Trainer()
    app = create_app(served, data_dir=args.data_dir, preprocess=args.preprocess, trainer=trainer)
    if args.host not in LOOPBACK_HOSTS:
        print(f"warning: listening on {args.host}, not 127.0.0.1: other machines on the network can reach this "
              "page. It has no login; use --host 127.0.0.1 unless you mean to share it.", file=sys.stderr)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    what = args.checkpoint or "an untrained model"
    print(f"Serving {what}{' with the Train tab' if args.train else ''} at http://{shown}:{args.port}/  "
          "(Ctrl+C to stop)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "serve", help="a local web page: draw a digit, browse test images, step a convolution",
        description="Start a web page for CHECKPOINT: draw a digit and see the top 3 classes, the 28x28 input "
                    "and the conv1/conv2 feature maps; browse the test set; step a convolution window.")
    p.add_argument("checkpoint", nargs="?", help="a .npz written by `convlayer train` (e.g. "
                                                 "runs/fashion-mnist/best.npz); optional with --train")
    p.add_argument("--train", action="store_true",
                   help="add the Train tab: train in a background process and watch the loss, conv1's filters "
                        "and feature maps live; pause, change the learning rate, fork from an epoch")
    p.add_argument("--dataset", choices=("digits", "fashion-mnist", "mnist"),
                   help="with --train and no checkpoint: the dataset of the untrained model shown (default digits)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: 127.0.0.1, this machine only; anything else is reachable "
                        "from the network)")
    p.add_argument("--port", type=_port, default=8000, help="default: 8000")
    add_preprocess_option(p)
    p.add_argument("--data-dir", help="folder with the dataset's IDX files, for the gallery (default: the usual "
                                      "search, as in `convlayer evaluate`)")
    p.set_defaults(func=cmd_serve)
