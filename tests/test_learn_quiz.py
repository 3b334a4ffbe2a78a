"""``convlayer quiz``: its verdicts on piped answers, the mistakes it names, seeds, EOF, the CLI.

The right answers here are worked out independently of the quiz: the value by the loop reference
(``learn.reference``), the padding and the shape by TensorFlow's rule written out below.
"""

import io
import re
import shlex
import subprocess
import sys

import numpy as np
import pytest

from convlayer.cli import main
from convlayer.learn import quiz, reference


def _same_pair(n, k, s):
    out = -(-n // s)  # ceil(n / s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def _pads(case):
    if case.padding == "valid":
        return (0, 0), (0, 0)
    return tuple(_same_pair(n, k, s) for n, k, s in zip(case.x.shape, case.kernel.shape, case.strides))


def _value(case, kernel=None, bias=None):
    """output[cell] by the loop reference, with an optional other kernel or bias (a learner's mistake)."""
    kernel = case.kernel if kernel is None else kernel
    bias = case.bias if bias is None else bias
    y = reference.forward_with_padding(case.x[None, :, :, None], kernel[:, :, None, None], np.array([bias]),
                                       case.strides, _pads(case))
    return y[0, :, :, 0]


def _right(question):
    case = question.case
    if question.kind == "value":
        return f"{_value(case)[question.cell]:g}"
    if question.kind == "padding":
        (top, bottom), (left, right) = _pads(case)
        return f"{top} {bottom} {left} {right}"
    (top, bottom), (left, right) = _pads(case)
    rows = (case.x.shape[0] + top + bottom - case.kernel.shape[0]) // case.strides[0] + 1
    cols = (case.x.shape[1] + left + right - case.kernel.shape[1]) // case.strides[1] + 1
    return f"{rows}x{cols}"


def _run(answers, seed=3, questions=3, interactive=False):
    out = io.StringIO()
    status = quiz.run(seed=seed, questions=questions, stdin=io.StringIO("".join(a + "\n" for a in answers)),
                      stdout=out, interactive=interactive)
    return status, out.getvalue()


def _find(kind, accept, count=3):
    """(seed, question index) of the first question of ``kind`` for which ``accept(question)`` holds."""
    for seed in range(200):
        for index, question in enumerate(quiz.make_questions(seed, count)):
            if question.kind == kind and accept(question):
                return seed, index
    raise AssertionError(f"no {kind} question found")


def _answers_then(seed, index, wrong, count=3):
    """Right answers before question ``index``, then ``wrong``."""
    questions = quiz.make_questions(seed, count)
    return [_right(q) for q in questions[:index]] + [wrong]


# ---------------------------------------------------------------------------- verdicts


def test_right_answers_score_full_marks():
    questions = quiz.make_questions(5, 6)
    assert [q.kind for q in questions] == ["value", "padding", "shape"] * 2
    status, out = _run([_right(q) for q in questions], seed=5, questions=6)
    assert status == 0
    assert out.count("\nRight: ") == 6 and "Score: 6 of 6 right." in out
    assert "Not quite" not in out


def test_answers_accept_the_usual_forms():
    seed, index = _find("padding", lambda q: True)
    question = quiz.make_questions(seed, 3)[index]
    right = _right(question).split()
    assert question.parse(f"({', '.join(right)})") == tuple(int(v) for v in right)
    shape = quiz.make_questions(seed, 3)[2]
    assert shape.parse("3x4") == shape.parse("3, 4") == shape.parse("[3 4]") == (3, 4)
    with pytest.raises(ValueError, match="two whole numbers"):
        shape.parse("3 4 1")
    with pytest.raises(ValueError, match="two whole numbers"):
        shape.parse("2.5 3")


def test_a_flipped_kernel_value_is_named():
    seed, index = _find("value", lambda q: True)
    question = quiz.make_questions(seed, 3)[index]
    flipped = _value(question.case, kernel=question.case.kernel[::-1, ::-1])[question.cell]
    assert flipped != _value(question.case)[question.cell]  # the quiz picks a cell where the flip shows
    status, out = _run(_answers_then(seed, index, f"{flipped:g}"), seed=seed)
    assert status == 0
    assert f"Not quite: the answer is {_right(question)}, not {flipped:g}." in out
    assert f"{flipped:g} is what 'kernel flipped' gives" in out
    assert "cross-correlation" in out  # the lesson's rule
    # the right one explained with the trace of that cell: window, products, sum plus bias
    i, j = question.cell
    assert f"output[{i}, {j}] - the kernel covers" in out
    assert "sum of products:" in out and f"-> output[{i}, {j}] = {_right(question)}" in out


def test_a_missing_bias_is_named():
    seed, index = _find("value", lambda q: True)
    question = quiz.make_questions(seed, 3)[index]
    without = _value(question.case, bias=0.0)[question.cell]
    _, out = _run(_answers_then(seed, index, f"{without:g}"), seed=seed)
    assert "'bias missing' gives" in out


def test_the_window_of_another_cell_is_named():
    def two_distinct_cells(q):
        y = _value(q.case)
        return y.size > 1 and len(np.unique(y)) == y.size
    seed, index = _find("value", two_distinct_cells)
    question = quiz.make_questions(seed, 3)[index]
    y = _value(question.case)
    other = next((r, c) for r in range(y.shape[0]) for c in range(y.shape[1]) if (r, c) != question.cell)
    _, out = _run(_answers_then(seed, index, f"{y[other]:g}"), seed=seed)
    named = re.search(rf"{y[other]:g} is (what '[^']+' gives|output\[\d, \d\])", out)
    assert named, out  # a catalogued mistake (e.g. stride ignored) or the other cell itself


def test_an_unknown_wrong_value_says_no_mistake_gives_it():
    _, out = _run(["12345"], questions=1)
    assert "No classic mistake gives 12345" in out
    assert "Score: 0 of 1 right." in out


def test_the_explain_command_it_prints_spells_out_the_same_cell(capsys):
    _, out = _run(["12345"], questions=1)
    command = re.search(r"The whole trace: (convlayer explain .*)", out).group(1)
    question = quiz.make_questions(3, 1)[0]
    assert main(shlex.split(command)[1:]) == 0
    i, j = question.cell
    assert f"-> output[{i}, {j}] = {_right(question)}" in capsys.readouterr().out


# ---------------------------------------------------------------------------- padding and shape mistakes


def test_odd_padding_at_the_top_left_is_named():
    def odd_total(q):
        return any(sum(p) % 2 for p in _pads(q.case))
    seed, index = _find("padding", odd_total)
    question = quiz.make_questions(seed, 3)[index]
    (top, bottom), (left, right) = _pads(question.case)
    wrong = f"{bottom} {top} {right} {left}"  # the odd zero before instead of after
    _, out = _run(_answers_then(seed, index, wrong), seed=seed)
    assert f"{wrong} is what 'odd padding at the top/left' gives" in out
    assert "an odd extra row goes to the bottom" in out  # the rule
    assert "(the odd one goes to the" in out  # the trace's reason for the right answer


def test_symmetric_padding_is_named():
    def symmetric_differs(q):
        return tuple(((k - 1) // 2,) * 2 for k in q.case.kernel.shape) != _pads(q.case)
    seed, index = _find("padding", symmetric_differs)
    question = quiz.make_questions(seed, 3)[index]
    kh, kw = question.case.kernel.shape
    wrong = f"{(kh - 1) // 2} {(kh - 1) // 2} {(kw - 1) // 2} {(kw - 1) // 2}"
    _, out = _run(_answers_then(seed, index, wrong), seed=seed)
    assert f"{wrong} is what 'padding split symmetrically' gives" in out


def test_padding_rows_and_columns_swapped_is_named():
    seed, index = _find("padding", lambda q: _pads(q.case)[0] != _pads(q.case)[1])
    question = quiz.make_questions(seed, 3)[index]
    (top, bottom), (left, right) = _pads(question.case)
    _, out = _run(_answers_then(seed, index, f"{left} {right} {top} {bottom}"), seed=seed)
    assert "'rows and columns swapped' gives" in out


def _floor_size(n, p, k, s):
    return (n + p - k) // s + 1


def test_output_size_rounded_up_is_named():
    def valid_with_remainder(q):
        return q.case.padding == "valid" and any((n - k) % s for n, k, s in
                                                 zip(q.case.x.shape, q.case.kernel.shape, q.case.strides))
    seed, index = _find("shape", valid_with_remainder)
    question = quiz.make_questions(seed, 3)[index]
    ceil = [-(-(n - k) // s) + 1 for n, k, s in zip(question.case.x.shape, question.case.kernel.shape,
                                                    question.case.strides)]
    _, out = _run(_answers_then(seed, index, f"{ceil[0]} {ceil[1]}"), seed=seed)
    assert f"{ceil[0]} {ceil[1]} is what 'output size rounded up' gives" in out
    assert "floor((" in out  # the formula with the numbers, from the trace


def test_a_forgotten_stride_on_one_axis_is_named_for_that_axis():
    def valid_stride_on_columns(q):
        n, k, s = q.case.x.shape[1], q.case.kernel.shape[1], q.case.strides[1]
        return q.case.padding == "valid" and s > 1 and n - k + 1 != (n - k) // s + 1
    seed, index = _find("shape", valid_stride_on_columns)
    question = quiz.make_questions(seed, 3)[index]
    rows = _right(question).split("x")[0]
    cols = question.case.x.shape[1] - question.case.kernel.shape[1] + 1  # stride 1's size
    _, out = _run(_answers_then(seed, index, f"{rows} {cols}"), seed=seed)
    assert "The rows are right." in out
    assert f"For the columns, {cols} is what 'stride ignored' gives" in out


def test_shape_rows_and_columns_swapped_is_named():
    seed, index = _find("shape", lambda q: len(set(_right(q).split("x"))) == 2)
    question = quiz.make_questions(seed, 3)[index]
    rows, cols = _right(question).split("x")
    _, out = _run(_answers_then(seed, index, f"{cols} {rows}"), seed=seed)
    assert "'rows and columns swapped' gives" in out


# ---------------------------------------------------------------------------- input: unreadable, EOF, quit


def test_an_unreadable_piped_answer_counts_as_wrong_with_a_note():
    status, out = _run(["abc", "1 2"], questions=2)
    assert status == 0
    assert "Could not read 'abc' as one number, e.g. 12 or -3.5; counted as wrong." in out
    assert "Could not read '1 2' as four whole numbers: top bottom left right" in out
    assert "Score: 0 of 2 right." in out


def test_an_unreadable_interactive_answer_is_asked_again():
    question = quiz.make_questions(3, 1)[0]
    status, out = _run(["abc", "", _right(question)], questions=1, interactive=True)
    assert status == 0
    assert out.count("Expected one number, e.g. 12 or -3.5; try again") == 2
    assert out.count("answer> ") == 3
    assert "Right: " in out and "Score: 1 of 1 right." in out


def test_end_of_input_ends_with_the_score_so_far():
    questions = quiz.make_questions(3, 5)
    status, out = _run([_right(questions[0]), "0 0 0 0"], questions=5)
    assert status == 0
    assert "Question 3 of 5" in out and "Question 4 of 5" not in out
    assert "End of input after 2 of 5 questions." in out
    assert out.rstrip().endswith("Score: 1 of 2 right.")


def test_q_stops_the_quiz():
    status, out = _run(["q"], questions=4)
    assert status == 0
    assert "Stopped after 0 of 4 questions." in out and "Score: no answers." in out


# ---------------------------------------------------------------------------- seeds


def test_the_same_seed_asks_the_same_questions():
    a, b = quiz.make_questions(11, 6), quiz.make_questions(11, 6)
    for qa, qb in zip(a, b):
        assert qa.kind == qb.kind and qa.cell == qb.cell and qa.case.padding == qb.case.padding
        np.testing.assert_array_equal(qa.case.x, qb.case.x)
        np.testing.assert_array_equal(qa.case.kernel, qb.case.kernel)
    assert _run(["1", "2"], seed=11) == _run(["1", "2"], seed=11)
    assert _run(["1", "2"], seed=11)[1] != _run(["1", "2"], seed=12)[1]


def test_without_a_seed_it_prints_one_that_repeats_the_quiz():
    status, out = _run([], seed=None, questions=2)
    assert status == 0
    seed = int(re.search(r"`convlayer quiz --seed (\d+)` asks the same ones again", out).group(1))
    again = _run([], seed=seed, questions=2)[1]
    assert again == out


# ---------------------------------------------------------------------------- the CLI


def test_cli_reads_piped_stdin(monkeypatch, capsys):
    questions = quiz.make_questions(3, 2)
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{_right(questions[0])}\n{_right(questions[1])}\n"))
    assert main(["quiz", "--seed", "3", "--questions", "2"]) == 0
    out = capsys.readouterr().out
    assert "Score: 2 of 2 right." in out


def test_cli_bad_seed_is_one_line(capsys):
    assert main(["quiz", "--seed", "-1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--seed must be a non-negative integer, got -1" in err[0]


def test_a_real_pipe():
    questions = quiz.make_questions(3, 3)
    answers = f"{_right(questions[0])}\nnonsense\n"
    done = subprocess.run([sys.executable, "-m", "convlayer", "quiz", "--seed", "3", "--questions", "3"],
                          input=answers, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert "Right: " in done.stdout and "counted as wrong" in done.stdout
    assert "End of input after 2 of 3 questions." in done.stdout and "Score: 1 of 2 right." in done.stdout


def test_a_product_left_out_of_the_sum_is_named():
    seed, index = _find("value", lambda q: True)
    question = quiz.make_questions(seed, 3)[index]
    case, (i, j) = question.case, question.cell
    xp = np.pad(case.x, _pads(case))
    rows, cols = i * case.strides[0], j * case.strides[1]
    products = xp[rows:rows + case.kernel.shape[0], cols:cols + case.kernel.shape[1]] * case.kernel  # (kh, kw)
    a, b = np.unravel_index(np.argmax(np.abs(products)), products.shape)
    wrong = _value(case)[i, j] - products[a, b]
    _, out = _run(_answers_then(seed, index, f"{wrong:g}"), seed=seed)
    named = re.search(rf"{wrong:g} is (what '[^']+' gives|output\[|the sum with one product left out)", out)
    assert named, out
