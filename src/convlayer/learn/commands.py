"""The learner's commands: ``exercise`` (a starter file), ``check`` (names the mistake), ``quiz``.

Thin: each parses its flags and hands them to ``exercise``, ``check`` or ``quiz``, which return
the exit status.
"""

from __future__ import annotations

from ..clitools import positive_float, positive_int

EXERCISES = ("convolve", "conv2d", "backward", "model")


def cmd_exercise(args):
    from . import exercise

    return exercise.run(args.which, out=args.out, force=args.force)


def cmd_check(args):
    from . import check

    return check.run(args.file, function=args.function, timeout=args.timeout)


def cmd_quiz(args):
    from . import quiz

    return quiz.run(seed=args.seed, questions=args.questions)


def register(subparsers) -> None:
    """Add ``exercise``, ``check`` and ``quiz`` to the CLI's subparsers."""
    p = subparsers.add_parser(
        "exercise", help="write a starter file for your own convolution (convolve, conv2d, backward, model)",
        description="Write a Python file with the function's signature and its contract in the docstring, for you "
                    "to fill in; then run `convlayer check FILE`. Never a solution.")
    p.add_argument("which", nargs="?", choices=EXERCISES, default="convolve",
                   help="convolve: one channel, one filter (default); conv2d: a layer (N, H, W, C) with 'same'; "
                        "backward: its gradients; model: the lesson's MNISTModel with conv1 left to write")
    p.add_argument("--out", metavar="FILE", help="where to write it (default: my_<which>.py)")
    p.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    p.set_defaults(func=cmd_exercise)

    p = subparsers.add_parser(
        "check", help="check your convolution: which lesson rules hold, and the mistake it makes",
        description="Run the functions FILE defines (convolve, conv2d, conv2d_backward, MNISTModel) on small probes "
                    "in a child process, and compare with the reference and with each classic mistake, computed "
                    "exactly. Exit 0 only when everything passes.")
    p.add_argument("file", metavar="FILE", help="your Python file (start from `convlayer exercise`)")
    p.add_argument("--function", metavar="NAME", help="check only this function (default: every one FILE defines)")
    p.add_argument("--timeout", type=positive_float, default=60.0, metavar="S",
                   help="stop your code after S seconds (default 60)")
    p.set_defaults(func=cmd_check)

    p = subparsers.add_parser(
        "quiz", help="the lesson's rules as questions on small random cases",
        description="Questions on small random convolutions: an output cell's value, the padding on each side, "
                    "the output shape. A wrong answer is matched against the classic mistakes. Answers come from "
                    "the keyboard or piped on stdin (one per line).")
    p.add_argument("--seed", type=int, help="the same questions again (default: new ones each time)")
    p.add_argument("--questions", type=positive_int, default=5, metavar="N", help="how many (default 5)")
    p.set_defaults(func=cmd_quiz)
