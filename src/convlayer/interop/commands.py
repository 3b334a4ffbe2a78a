"""``convlayer export CHECKPOINT OUT`` and ``convlayer import IN OUT.npz [--like CHECKPOINT]``."""

from __future__ import annotations

from ..clitools import UsageError, load_checkpoint, output_path, say

OPENED_BY = {".keras": "keras.saving.load_model", ".onnx": "onnxruntime.InferenceSession (input: N x H x W x C)",
             ".safetensors": "torch: net.load_state_dict(safetensors.torch.load_file(...))"}


def cmd_export(args) -> int:
    from . import EXPORT_SUFFIXES, export_model

    out = output_path(args.out, suffixes=EXPORT_SUFFIXES, what="export file")
    ck = load_checkpoint(args.checkpoint)
    export_model(ck.model, out, meta=ck.meta)
    say(f"Wrote {out} ({ck.model.count_params():,} parameters); open it with {OPENED_BY[out.suffix.lower()]}.")
    return 0


def cmd_import(args) -> int:
    from .. import checkpoint
    from . import IMPORT_SUFFIXES, import_model

    source = args.source
    if not any(str(source).lower().endswith(s) for s in IMPORT_SUFFIXES):
        raise UsageError(f"cannot import {source!r}: it should end in {' or '.join(IMPORT_SUFFIXES)}.")
    out = output_path(args.out, suffixes=(".npz",), what="checkpoint")
    like = load_checkpoint(args.like) if args.like else None
    ck = import_model(source, like=like)
    checkpoint.save(out, ck.model, meta=ck.meta)
    layers = ", ".join(type(layer).__name__ for layer in ck.model.layers)
    say(f"Wrote {out}: {type(ck.model).__name__} ({layers}), {ck.model.count_params():,} parameters, input "
        f"{'x'.join(str(d) for d in ck.model.input_shape[1:])}; try `convlayer summary {out}`.")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "export", help="write a checkpoint as .keras, .onnx or .safetensors (format from OUT's suffix)",
        description="Write CHECKPOINT's model as a Keras 3 .keras file, an ONNX .onnx graph or a PyTorch "
                    "state_dict .safetensors; what a format cannot express is refused before writing.")
    p.add_argument("checkpoint", help="a .npz written by `convlayer train` or model.save")
    p.add_argument("out", help="the file to write: NAME.keras, NAME.onnx or NAME.safetensors")
    p.set_defaults(func=cmd_export)

    p = subparsers.add_parser(
        "import", help="read a .keras, .h5, .safetensors, .pt or .onnx model into a convlayer checkpoint",
        description="Read a Keras 3 .keras file, a Keras 2 full-model .h5, a PyTorch state_dict (.safetensors, "
                    ".pt) or a single-chain ONNX graph and write it as a convlayer checkpoint that evaluate, predict, show and serve use.")
    p.add_argument("source", metavar="IN", help="the model file to read")
    p.add_argument("out", metavar="OUT.npz", help="the checkpoint to write")
    p.add_argument("--like", metavar="CHECKPOINT",
                   help="for state_dicts: a checkpoint with the architecture the tensors belong to (default: the "
                        "architecture a convlayer export records, else the lesson's MNISTModel for the file's "
                        "input size)")
    p.set_defaults(func=cmd_import)
