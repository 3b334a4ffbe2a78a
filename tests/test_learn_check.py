"""``convlayer exercise`` and ``convlayer check``: a learner's file, run in a child process, gets the
name of the mistake it makes.

The learner files under tests/learn_cases/ are plain code as a learner writes it, each with one
classic mistake (or none); their ``# expect:`` lines say what check must find. Nothing in them
calls the catalogue. The trouble cases (a crash, a hang, a wrong signature...) are written here.

Regenerate the golden files after an intended change of wording:
    CONVLAYER_UPDATE_GOLDEN=1 pytest tests/test_learn_check.py
"""

import os
import re
import shlex
import textwrap
from pathlib import Path

import numpy as np
import pytest

from convlayer.cli import main
from convlayer.learn import check, exercise, mistakes, probes, reference

CASES = Path(__file__).parent / "learn_cases"
GOLDEN = Path(__file__).parent / "golden"
UPDATE = bool(os.environ.get("CONVLAYER_UPDATE_GOLDEN"))
CASE_FILES = sorted(CASES.glob("*.py"))


def expectations(path) -> dict:
    return dict(re.findall(r"^# expect: (\w+): (.+)$", path.read_text(encoding="utf-8"), re.M))


def named(diagnosis) -> str:
    """'pass', or the first catalogued mistake check names for this function."""
    if diagnosis.passed:
        return "pass"
    found = [f.mistake.name for f in diagnosis.findings if f.mistake is not None]
    return found[0] if found else "unnamed: " + "; ".join(f.title for f in diagnosis.findings)


def learner_file(tmp_path, source, name="mine.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def results():
    """check_file on every learner case, once (one child process each)."""
    return {path.name: check.check_file(path) for path in CASE_FILES}


# ---------------------------------------------------------------------------- mistakes, named


@pytest.mark.parametrize("path", CASE_FILES, ids=[p.stem for p in CASE_FILES])
def test_each_learner_file_gets_its_mistake_named(path, results):
    result = results[path.name]
    assert not result.problems
    assert {d.function: named(d) for d in result.diagnoses} == expectations(path)
    assert result.passed == all(v == "pass" for v in expectations(path).values())


def test_every_catalogued_mistake_has_a_learner_file():
    expected = {v for path in CASE_FILES for v in expectations(path).values()}
    assert {m.name for m in mistakes.FORWARD + mistakes.BACKWARD} <= expected


def test_several_correct_implementations_pass(results):
    for name in ("loops.py", "vectorized.py", "no_pad.py"):  # loops with np.pad; as_strided + einsum; bounds checks
        assert results[name].passed, check.render(results[name])
        assert {d.function for d in results[name].diagnoses} >= {"convolve", "conv2d"}
    assert all(mark == "✓" for mark in results["loops.py"].diagnoses[1].concepts.values())


def test_the_probes_tell_every_mistake_apart():
    """On the conv2d probes each forward mistake differs from the reference and from every other mistake."""
    cases = probes.make_probes("conv2d")
    outputs = {m.name: [m.compute(p.x, p.kernel, p.bias, p.strides, p.padding) for p in cases]
               for m in mistakes.FORWARD}
    outputs["reference"] = [reference.conv2d(p.x, p.kernel, p.bias, p.strides, p.padding) for p in cases]
    signatures = {name: tuple(np.round(y, 6).tobytes() + str(y.shape).encode() for y in ys)
                  for name, ys in outputs.items()}
    assert len(set(signatures.values())) == len(signatures)


def test_a_mistake_blames_its_concept_only(results):
    conv2d = next(d for d in results["pad_top_left.py"].diagnoses if d.function == "conv2d")
    assert conv2d.concepts == {"dot product + bias": "✓", "stride": "✓", "padding": "✗", "channels": "✓",
                               "filters": "✓", "shapes": "✓"}
    convolve = next(d for d in results["stride_ignored.py"].diagnoses if d.function == "convolve")
    assert convolve.concepts["stride"] == "✗" and convolve.concepts["channels"] == "-"


def test_the_first_differing_cell_and_its_sum(results):
    finding = next(d for d in results["bias_missing.py"].diagnoses if d.function == "conv2d").findings[0]
    probe, cell = finding.probe, finding.cell
    assert probe.name == "one channel, stride 1"  # the smallest probe that shows it
    want = reference.conv2d(probe.x, probe.kernel, probe.bias, probe.strides, probe.padding)
    assert cell.label == "out[0, 0, 0, 0]" and cell.expected == want[0, 0, 0, 0]
    assert cell.got == cell.expected - 1.5  # the bias, missing
    window = probe.x[0, :2, :3, 0] * probe.kernel[:, :, 0, 0]
    assert cell.terms.endswith(f"+ bias 1.5 = {check._num(window.sum() + 1.5)}")
    assert len(re.findall(r"×", cell.terms)) == window.size


def test_the_explain_command_spells_out_that_very_cell(results, capsys):
    for name, function in (("pad_top_left.py", "conv2d"), ("kernel_OIHW.py", "conv2d")):
        finding = next(d for d in results[name].diagnoses if d.function == function).findings[0]
        argv = shlex.split(finding.explain)
        assert argv[:2] == ["convlayer", "explain"]
        assert main(argv[1:]) == 0
        out = capsys.readouterr().out
        i, j = map(int, finding.cell.label[4:-1].split(", ")[1:3])
        assert f"-> output[{i}, {j}] = {check._num(finding.cell.expected)}" in out


def test_the_backward_explain_command_gives_that_gradient(results, capsys):
    finding = next(d for d in results["pad_total.py"].diagnoses if d.function == "conv2d_backward").findings[0]
    assert finding.cell.label == "dbias[0]" and finding.explain.startswith("convlayer explain --backward ")
    assert main(shlex.split(finding.explain)[1:]) == 0
    assert f"dbias = {finding.cell.terms.split(' = ')[0]} = {check._num(finding.cell.expected)}" in \
        capsys.readouterr().out


def test_backward_parts_are_checked_each(results):
    diagnosis = next(d for d in results["channels_overwrite.py"].diagnoses if d.function == "conv2d_backward")
    assert diagnosis.concepts == {"dx": "✗", "dkernel": "✓", "dbias": "✓"}
    finding = diagnosis.findings[0]
    assert finding.cell.label.startswith("dx[") and "kernel × dy" in finding.cell.terms


# ---------------------------------------------------------------------------- golden text


@pytest.mark.parametrize("name, source", [
    ("check_kernel_flipped", CASES / "flipped.py"),
    ("check_unmatched_shape", '''
        import numpy as np

        def conv2d(x, kernel, bias, strides=(1, 1), padding="valid"):
            sv, sh = (strides, strides) if isinstance(strides, int) else strides
            kh, kw, _, f = kernel.shape
            if padding == "same":
                ph = max((-(-x.shape[1] // sv) - 1) * sv + kh - x.shape[1], 0)
                pw = max((-(-x.shape[2] // sh) - 1) * sh + kw - x.shape[2], 0)
                x = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
            ho = (x.shape[1] - kh) // sv  # one short
            wo = (x.shape[2] - kw) // sh + 1
            out = np.zeros((x.shape[0], ho, wo, f))
            for i in range(ho):
                for j in range(wo):
                    window = x[:, i * sv:i * sv + kh, j * sh:j * sh + kw, :]
                    out[:, i, j, :] = np.einsum("nabc,abcf->nf", window, kernel) + bias
            return out
        '''),
])
def test_diagnoses_match_golden_text(name, source, tmp_path):
    path = source if isinstance(source, Path) else learner_file(tmp_path, source)
    result = check.check_file(path, function="conv2d")
    text = check.render_diagnosis(result.diagnoses[0]) + "\n"
    golden = GOLDEN / f"{name}.txt"
    if UPDATE:
        golden.write_text(text, encoding="utf-8")
    assert golden.is_file(), f"{golden} missing; run with CONVLAYER_UPDATE_GOLDEN=1 to create it"
    assert text == golden.read_text(encoding="utf-8")


# ---------------------------------------------------------------------------- trouble, said plainly


def test_a_crash_shows_the_learners_traceback_only(tmp_path, capsys):
    path = learner_file(tmp_path, '''\
        import numpy as np


        def conv2d(x, kernel, bias, strides=(1, 1), padding="valid"):
            out = np.zeros((x.shape[0], 2, 2, kernel.shape[3]))
            return helper(x, out)


        def helper(x, out):
            return out + x[0, 99]
        ''')
    assert main(["check", str(path)]) == 1
    out = capsys.readouterr().out
    assert "conv2d raised IndexError on probe one channel, stride 1" in out
    assert f'File "{path}", line 6, in conv2d' in out and f'File "{path}", line 10, in helper' in out
    assert "IndexError: index 99 is out of bounds" in out
    assert "convlayer" not in out.replace("convlayer check", "") and "sandbox" not in out
    assert "(7 of 7 probes raised an exception; the smallest is shown.)" in out


def test_a_hang_is_stopped_with_a_message(tmp_path, capsys):
    path = learner_file(tmp_path, '''\
        def conv2d(x, kernel, bias, strides=(1, 1), padding="valid"):
            i = 0
            while i < 3:
                pass
        ''')
    assert main(["check", str(path), "--timeout", "1"]) == 1
    out = capsys.readouterr().out
    assert "stopped after 1 s: does your loop end?" in out
    assert "conv2d had not returned on probe one channel, stride 1" in out


def test_exits_are_said_and_do_not_take_check_down(tmp_path):
    path = learner_file(tmp_path, '''\
        import os
        import sys

        print("my debugging print")

        def convolve(image, kernel, bias=0.0, stride=1, padding="valid"):
            sys.exit(3)

        def conv2d(x, kernel, bias, strides=(1, 1), padding="valid"):
            os._exit(4)
        ''')
    convolve, conv2d = check.check_file(path).diagnoses  # conv2d_backward is not defined: not mentioned
    assert convolve.findings[0].title.startswith("convolve raised SystemExit on probe one channel")
    assert conv2d.findings[0].title.startswith("conv2d ended the Python process on probe one channel")
    assert "exit status 4" in conv2d.findings[0].lines[0]


def test_none_crash_and_wrong_signature_in_one_file(tmp_path, capsys):
    path = learner_file(tmp_path, '''\
        import numpy as np

        def convolve(image, kernel, bias=0.0, stride=1, padding="valid"):
            out = np.zeros((2, 2))

        def conv2d(x, kernel, strides):
            return x

        def conv2d_backward(dy, x, kernel, strides=(1, 1), padding="valid"):
            sv, sh = strides
            return dy, kernel, dy.sum(axis=(0, 1, 2))
        ''')
    assert main(["check", str(path)]) == 1
    out = capsys.readouterr().out
    assert "convolve returned None on probe one channel, stride 1" in out and "Did you forget `return`?" in out
    assert "conv2d cannot take the contract's arguments: yours is conv2d(x, kernel, strides)" in out
    assert "Expected conv2d(x, kernel, bias, strides=(1, 1), padding='valid')" in out
    assert "conv2d_backward raised TypeError on probe 'same' with stride 2" in out
    assert "passes strides=2, an int: the contract says an int or a pair" in out
    assert "✗ dx differs from the reference" in out  # the probes that ran are still compared, part by part
    assert out.count("returned None") == 1 and "(4 of 4 probes gave the same; the smallest is shown.)" in out


def test_wrong_shape_nan_integers_and_a_bad_tuple(tmp_path):
    path = learner_file(tmp_path, '''\
        import numpy as np

        def convolve(image, kernel, bias=0.0, stride=1, padding="valid"):
            return np.full((2, 2), np.nan)

        def conv2d(x, kernel, bias, strides=(1, 1), padding="valid"):
            kh, kw, _, f = kernel.shape
            ho, wo = x.shape[1] - kh + 1, x.shape[2] - kw + 1
            out = np.zeros((x.shape[0], ho, wo, f), dtype=int)
            for i in range(ho):
                for j in range(wo):
                    out[:, i, j] = np.einsum("nabc,abcf->nf", x[:, i:i + kh, j:j + kw], kernel) + bias
            return out[..., 0]

        def conv2d_backward(dy, x, kernel, strides=(1, 1), padding="valid"):
            return dy, kernel
        ''')
    result = check.check_file(path)
    by_function = {d.function: d for d in result.diagnoses}
    assert by_function["convolve"].findings[0].kind == "nan"
    assert "returned nan at out[0, 0]" in by_function["convolve"].findings[0].title
    conv2d = by_function["conv2d"]
    assert [f.kind for f in conv2d.findings] == ["unmatched", "integers"] and conv2d.concepts["shapes"] == "✗"
    text = check.render_diagnosis(conv2d)
    assert "Your output has shape (1, 2, 2); expected (1, 2, 2, 1) (N, Ho, Wo, F)." in text
    backward = by_function["conv2d_backward"].findings[0]
    assert backward.kind == "object" and "returned a tuple of 2" in backward.title
    assert "Expected a tuple (dx, dkernel, dbias)" in backward.lines[0]


def test_integer_output_is_named(tmp_path):
    path = learner_file(tmp_path, '''\
        import numpy as np

        def convolve(image, kernel, bias=0.0, stride=1, padding="valid"):
            sv, sh = (stride, stride) if isinstance(stride, int) else stride
            kh, kw = kernel.shape
            if padding == "same":
                ph = max((-(-image.shape[0] // sv) - 1) * sv + kh - image.shape[0], 0)
                pw = max((-(-image.shape[1] // sh) - 1) * sh + kw - image.shape[1], 0)
                image = np.pad(image, ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)))
            ho, wo = (image.shape[0] - kh) // sv + 1, (image.shape[1] - kw) // sh + 1
            out = np.zeros((ho, wo))
            for i in range(ho):
                for j in range(wo):
                    out[i, j] = np.sum(image[i * sv:i * sv + kh, j * sh:j * sh + kw] * kernel) + bias
            return out.astype(int)  # pixels are whole numbers
        ''')
    finding = check.check_file(path, function="convolve").diagnoses[0].findings[0]
    assert finding.kind == "dtype" and "returns integers (int64)" in finding.title
    assert "the bias 1.5 is lost" in finding.lines[0] and finding.probe.name == "one channel, stride 1"


def test_missing_function_syntax_error_and_no_file(tmp_path, capsys):
    near = learner_file(tmp_path, "def conv_2d(x, kernel, bias, strides=(1, 1), padding='valid'):\n    return x\n")
    assert main(["check", str(near)]) == 1
    out = capsys.readouterr().out
    assert f"{near} defines no convolve, conv2d, conv2d_backward or MNISTModel" in out
    assert "conv_2d (did you mean conv2d?)" in out
    assert main(["check", str(near), "--function", "backward"]) == 1
    assert f"{near} defines no conv2d_backward" in capsys.readouterr().out

    broken = learner_file(tmp_path, "def conv2d(x, kernel, bias:\n    return x\n", "broken.py")
    assert main(["check", str(broken)]) == 1
    out = capsys.readouterr().out
    assert f"{broken} could not be run: a syntax error" in out and f'File "{broken}", line 1' in out
    assert "Traceback" not in out

    assert main(["check", str(tmp_path / "nothing.py")]) == 1
    err = capsys.readouterr().err
    assert err.strip() == (f"convlayer check: error: {tmp_path / 'nothing.py'}: no such file; write a starter with "
                           f"`convlayer exercise conv2d --out {tmp_path / 'nothing.py'}`.")
    assert main(["check", str(near), "--function", "conv3d"]) == 1
    assert "--function conv3d: check knows convolve, conv2d" in capsys.readouterr().err


# ---------------------------------------------------------------------------- the model


MODEL = '''\
from convlayer import tf


class MNISTModel(object):
    def __init__(self, input_dim, output_size):
        self.input_dim = input_dim
        self.output_size = output_size

    def model_layers(self, inputs, is_training):
        reshaped_inputs = tf.reshape(inputs, [-1, self.input_dim, self.input_dim, 1])
        conv1 = tf.keras.layers.Conv2D(filters=32, kernel_size=[5, 5], padding=PADDING, activation=tf.nn.relu,
                                       name='conv1')(reshaped_inputs)
        pool1 = tf.keras.layers.MaxPooling2D(pool_size=[2, 2], strides=2)(conv1)
        flat = tf.reshape(pool1, [-1, pool1.shape.as_list()[1] * pool1.shape.as_list()[2] * 32])
        return tf.keras.layers.Dense(units=self.output_size)(flat)
'''


def test_the_model_exercise(tmp_path, capsys):
    right = learner_file(tmp_path, MODEL.replace("PADDING", "'same'"), "right.py")
    assert main(["check", str(right)]) == 0
    assert "MNISTModel: ✓ as the lesson's" in capsys.readouterr().out

    wrong = learner_file(tmp_path, MODEL.replace("PADDING", "'valid'"), "wrong.py")
    diagnosis = check.check_file(wrong).diagnoses[0]
    assert diagnosis.concepts["padding"] == "✗" and diagnosis.concepts["filters"] == "✓"
    assert diagnosis.concepts["conv1 output shape"] == "✗" and diagnosis.concepts["logits shape"] == "✓"
    assert [f.title for f in diagnosis.findings] == [
        "conv1 padding is 'valid'; the lesson's is 'same'", "conv1 gives (2, 24, 24, 32); expected (2, 28, 28, 32)"]


# ---------------------------------------------------------------------------- exercise


@pytest.mark.parametrize("which, function", [("convolve", "convolve"), ("conv2d", "conv2d"),
                                             ("backward", "conv2d_backward"), ("model", "MNISTModel")])
def test_exercise_writes_a_starter_that_check_calls_not_written(which, function, tmp_path, capsys):
    out = tmp_path / f"mine_{which}.py"
    assert main(["exercise", which, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert str(out) in printed and f"convlayer check {out}" in printed
    text = out.read_text(encoding="utf-8")
    assert "raise NotImplementedError" in text and f"convlayer check {out}" in text
    if which != "model":
        assert f"def {function}(" in text and "HWIO" in text or which == "convolve"
        assert "bottom" in text and "right" in text and "an int, or a pair" in text
    result = check.check_file(out)
    assert [d.function for d in result.diagnoses] == [function]
    assert result.diagnoses[0].findings[0].kind == "not written" and not result.passed


def test_exercise_never_overwrites_without_force(tmp_path, capsys):
    out = tmp_path / "my.py"
    out.write_text("# my work\n")
    assert main(["exercise", "conv2d", "--out", str(out)]) == 1
    assert capsys.readouterr().err.strip() == (f"convlayer exercise: error: {out} already exists; pass --force to "
                                               "overwrite it, or --out another file.")
    assert out.read_text() == "# my work\n"
    assert main(["exercise", "conv2d", "--out", str(out), "--force"]) == 0
    assert "def conv2d(x, kernel, bias, strides=(1, 1), padding=\"valid\"):" in out.read_text()
    assert main(["exercise", "conv2d", "--out", str(tmp_path)]) == 1
    assert "is a folder" in capsys.readouterr().err


def test_exercise_default_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["exercise"]) == 0
    assert (tmp_path / "my_convolve.py").is_file() and exercise.STARTERS["convolve"]
