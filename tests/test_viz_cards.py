"""Filter cards and filter surgery (``convlayer show cards|ablation``) on the suite's digits model."""

import hashlib
import json
import tracemalloc

import numpy as np
import pytest

from convlayer import checkpoint
from convlayer.cli import main
from convlayer.models import MNISTModel
from convlayer.viz import cards


@pytest.fixture(scope="module")
def trained(digits_run):
    ck = checkpoint.load(digits_run / "best.npz")
    data = ck.test_data()
    return ck, np.asarray(data.x_test, np.float32), np.asarray(data.y_test)


def _brute_force_top(acts, k):
    """Per filter: each image's strongest position, then the k strongest images (ties: lower image)."""
    n, h, w, f = acts.shape
    flat = acts.reshape(n, h * w, f)
    pos = flat.argmax(axis=1)  # (n, f)
    value = flat.max(axis=1)
    result = []
    for j in range(f):
        images = np.argsort(-value[:, j], kind="stable")[:k]
        result.append([(int(i), int(pos[i, j] // w), int(pos[i, j] % w), float(value[i, j])) for i in images])
    return result


@pytest.mark.parametrize("layer, filters", [("conv1", None), ("conv2", [0, 7, 63])])
def test_top_patches_are_the_true_top(trained, layer, filters):
    ck, x, y = trained
    x, y = x[:150], y[:150]
    stats = cards.filter_stats(ck.model, layer, x, y, 10, filters=filters, batch_size=32)  # 5 batches merged
    acts = cards.layer_output(ck.model, layer, x)[..., stats.filters]  # (150, H, W, k), all at once
    expected = _brute_force_top(acts, 9)
    for j, index in enumerate(stats.filters):
        got = [(int(stats.top_image[i, j]), int(stats.top_row[i, j]), int(stats.top_col[i, j]),
                float(stats.top_activation[i, j])) for i in range(9)]
        assert [g[:3] for g in got] == [e[:3] for e in expected[j]], f"filter {index}"
        np.testing.assert_allclose([g[3] for g in got], [e[3] for e in expected[j]], rtol=1e-5)
        # no image outside the top 9 has a stronger position than the 9th
        others = np.setdiff1d(np.arange(150), stats.top_image[:, j])
        assert acts[others, :, :, j].max() <= stats.top_activation[-1, j] + 1e-5
    assert (np.diff(stats.top_activation, axis=0) <= 0).all()


def test_fewer_images_than_top_leaves_empty_rows(trained):
    ck, x, y = trained
    stats = cards.filter_stats(ck.model, "conv1", x[:4], y[:4], 10, filters=[1])
    assert sorted(stats.top_image[:4, 0]) == [0, 1, 2, 3]
    assert (stats.top_image[4:, 0] == -1).all()
    document = cards.stats_json(stats, (8, 8))
    assert len(document["filters"][0]["top"]) == 4


def test_receptive_field_geometry():
    model = MNISTModel(28, 10)
    assert cards.receptive_field(model, "conv1") == cards.ReceptiveField((5, 5), (1, 1), (-2, -2))
    # conv2 unit r: pool1 units r-2..r+2, i.e. conv1 units 2r-4..2r+5, i.e. pixels 2r-6..2r+7
    field = cards.receptive_field(model, "conv2")
    assert field == cards.ReceptiveField((14, 14), (2, 2), (-6, -6))
    assert field.box(0, 0, (28, 28)) == (0, 0, 8, 8)
    assert field.box(5, 13, (28, 28)) == (4, 20, 18, 28)


@pytest.mark.parametrize("layer", ["conv1", "conv2"])
def test_receptive_field_alone_gives_the_activation(trained, layer):
    """Zero every pixel outside a unit's field: its activation is unchanged; shrink the field: it changes."""
    ck, x, y = trained
    stats = cards.filter_stats(ck.model, layer, x[:200], y[:200], 10, filters=list(range(0, 32, 4)))
    changed = 0
    for j, index in enumerate(stats.filters):
        for i in range(3):
            image, row, col = (int(a[i, j]) for a in (stats.top_image, stats.top_row, stats.top_col))
            top, left, bottom, right = stats.field.box(row, col, (8, 8))
            alone = np.zeros_like(x[image])
            alone[top:bottom, left:right] = x[image, top:bottom, left:right]
            value = cards.layer_output(ck.model, layer, alone[None])[0, row, col, index]
            np.testing.assert_allclose(value, stats.top_activation[i, j], rtol=1e-5, atol=1e-6)
            # one row fewer at the top (if it is inside the image) must matter for some units
            smaller = alone.copy()
            smaller[top] = 0
            if top == stats.field.box(row, col)[0]:
                changed += not np.isclose(cards.layer_output(ck.model, layer, smaller[None])[0, row, col, index],
                                          value, rtol=1e-5, atol=1e-6)
    assert changed > 0


def test_class_means_match_a_direct_computation(trained):
    ck, x, y = trained
    stats = cards.filter_stats(ck.model, "conv2", x, y, 10, batch_size=100)
    acts = cards.layer_output(ck.model, "conv2", x)  # (N, 4, 4, 64)
    direct = np.stack([acts[y == c].mean(axis=(0, 1, 2)) for c in range(10)])  # (10, 64)
    np.testing.assert_allclose(stats.class_mean, direct, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("layer, index", [("conv1", 3), ("conv2", 10)])
def test_optimized_input_excites_its_filter(trained, layer, index):
    ck, x, _ = trained
    before_weights = [w.copy() for w in ck.model.get_weights()]
    image, before, after = cards.optimize_input(ck.model, layer, index, seed=2)
    assert image.shape == (8, 8) and image.min() >= 0 and image.max() <= 1
    assert after > before * 1.5 and after > 0
    # recomputed independently: the returned image really gives that activation
    np.testing.assert_allclose(cards.layer_output(ck.model, layer, image[None])[0, ..., index].mean(), after,
                               rtol=1e-5)
    again, _, _ = cards.optimize_input(ck.model, layer, index, seed=2)
    np.testing.assert_array_equal(again, image)  # seeded
    assert all(np.array_equal(a, b) for a, b in zip(before_weights, ck.model.get_weights()))


def test_cards_command_writes_png_and_json(digits_run, tmp_path, capsys):
    source = digits_run / "best.npz"
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    out, js = tmp_path / "cards.png", tmp_path / "cards.json"
    assert main(["show", "cards", str(source), "--layer", "conv2", "--filters", "0,5", "--json", str(js),
                 "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("conv2: top 9 patches and class means of 2 filters over 359 digits test images in")
    assert lines[1:] == [str(js), str(out)]
    document = json.loads(js.read_text())
    assert document["layer"] == "conv2" and [f["index"] for f in document["filters"]] == [0, 5]
    for entry in document["filters"]:
        assert set(entry) >= {"index", "top", "class_mean"}
        assert len(entry["top"]) == 9 and len(entry["class_mean"]) == 10
        for top in entry["top"]:
            assert set(top) >= {"image", "row", "col", "activation"}
            assert 0 <= top["image"] < 359 and 0 <= top["row"] < 4 and 0 <= top["col"] < 4
        assert [t["activation"] for t in entry["top"]] == sorted((t["activation"] for t in entry["top"]),
                                                                reverse=True)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 20_000
    assert hashlib.sha256(source.read_bytes()).hexdigest() == digest


def _zeroed_by_hand(path, layer, index):
    ck = checkpoint.load(path)
    conv = ck.model.get_layer(layer)
    conv.params["kernel"][..., index] = 0
    conv.params["bias"][index] = 0
    return ck.model


@pytest.mark.parametrize("layer, index", [("conv1", 5), ("conv2", 17)])
def test_ablation_matches_a_model_zeroed_by_hand(digits_run, trained, layer, index):
    ck, x, y = trained
    before = [w.copy() for w in ck.model.get_weights()]
    result = cards.ablation(ck.model, layer, x, y, filters=[index, 0], batch_size=128)
    hand = _zeroed_by_hand(digits_run / "best.npz", layer, index)
    assert result.zeroed[index] == pytest.approx(hand.evaluate(x, y)["accuracy"], abs=1e-12)
    assert result.baseline == pytest.approx(ck.model.evaluate(x, y)["accuracy"], abs=1e-12)
    assert all(np.array_equal(a, b) for a, b in zip(before, ck.model.get_weights()))  # restored, never touched


def test_replacing_a_filter_matches_by_hand(digits_run, trained):
    ck, x, y = trained
    replacements = cards.parse_set(["5=sobel_x", "2=1 1 1;0 0 0;-1 -1 -1"], ck.model.get_layer("conv1"))
    result = cards.ablation(ck.model, "conv1", x, y, replacements=replacements, zero_each=False)
    hand = checkpoint.load(digits_run / "best.npz").model
    conv = hand.get_layer("conv1")
    conv.params["kernel"][..., 5] = 0
    conv.params["kernel"][1:4, 1:4, 0, 5] = [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]
    conv.params["kernel"][..., 2] = 0
    conv.params["kernel"][1:4, 1:4, 0, 2] = [[1, 1, 1], [0, 0, 0], [-1, -1, -1]]
    conv.params["bias"][[2, 5]] = 0
    predictions = hand.predict(x).argmax(axis=1)
    np.testing.assert_array_equal(result.replaced_predictions, predictions)
    assert result.replaced == pytest.approx((predictions == y).mean())
    assert result.zeroed == {}


def test_parse_kernel():
    np.testing.assert_array_equal(cards.parse_kernel("identity", (5, 5)), np.pad([[0, 0, 0], [0, 1, 0], [0, 0, 0]],
                                                                                  1))
    np.testing.assert_array_equal(cards.parse_kernel("1,2,3;4,5,6;7,8,9", (3, 3)), np.arange(1, 10).reshape(3, 3))
    assert cards.parse_kernel("BLUR", (5, 5)).sum() == pytest.approx(1)
    three = cards.parse_set(["0=sobel_y"], MNISTModel(8, 10).get_layer("conv2"))[0]
    assert three.shape == (5, 5, 32) and (three == three[:, :, :1]).all()  # every input channel


def test_ablation_command(digits_run, tmp_path, capsys):
    source = digits_run / "best.npz"
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    assert main(["show", "ablation", str(source), "--limit", "120", "--out", str(tmp_path / "a.png")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("digits, 120 test images: accuracy ")
    rows = [line for line in lines if "zeroed:" in line]
    assert len(rows) == 32
    values = [float(line.split("zeroed:")[1].split("%")[0]) for line in rows]
    assert values == sorted(values)
    assert lines[-1] == str(tmp_path / "a.png") and (tmp_path / "a.png").stat().st_size > 10_000
    assert main(["show", "ablation", str(source), "--limit", "120", "--set", "5=sobel_x",
                 "--out", str(tmp_path / "s.png")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("with 5=sobel_x (bias 0): ") and "points)" in lines[1]
    assert sum(line.count("%") for line in lines) >= 20  # per-class accuracy before -> after
    assert (tmp_path / "s.png").is_file()
    assert hashlib.sha256(source.read_bytes()).hexdigest() == digest


@pytest.mark.parametrize("args, message", [
    (["ablation", "--set", "5"], "expected FILTER=KERNEL"),
    (["ablation", "--set", "x=sobel_x"], "the filter must be a number 0..31"),
    (["ablation", "--set", "32=blur"], "conv1 has filters 0..31"),
    (["ablation", "--set", "5=sharpen"], "neither a kernel name (sobel_x, sobel_y, blur, identity)"),
    (["ablation", "--set", "5=1,2;3"], "rows of equal length"),
    (["ablation", "--set", "5=1,2;3,4"], "a 2x2 kernel does not fit centred in the layer's 5x5 kernel"),
    (["ablation", "--set", "5=blur", "--set", "5=identity"], "names filter 5 twice"),
    (["ablation", "--layer", "dense"], "no Conv2D layer 'dense'; its Conv2D layers are conv1, conv2"),
    (["cards", "--filters", "0,a"], "expected filter numbers separated by commas"),
    (["cards", "--filters", "0,64", "--layer", "conv2"], "conv2 has filters 0..63; got [64]"),
    (["cards", "--json", "out.txt"], "should end in .json"),
])
def test_mistakes_are_one_line(digits_run, tmp_path, capsys, args, message):
    command = ["show", args[0], str(digits_run / "best.npz"), *args[1:], "--out", str(tmp_path / "x.png")]
    assert main(command) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "x.png").exists()


def test_a_pass_has_bounded_memory(trained):
    """Peak memory of a pass does not grow with the number of images: one batch at a time."""
    ck, x, y = trained
    many = np.concatenate([x] * 5)  # (1795, 8, 8)
    labels = np.concatenate([y] * 5)
    peaks = []
    for count in (200, len(many)):
        tracemalloc.start()
        cards.filter_stats(ck.model, "conv1", many[:count], labels[:count], 10, batch_size=100)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    all_at_once = len(many) * 8 * 8 * 32 * 4  # conv1's activations of every image, float32
    assert peaks[1] < 1.5 * peaks[0]
    assert peaks[1] < all_at_once / 2
