import random
from collections import Counter
from unittest import mock

import numpy as np
import pytest
import torch

from course_lib.data import (COLORS, HELDOUT_PAIRS, SHAPES, SIZES, ShapeSpec, as_tensors, caption_vocabulary,
                             describe, digit_caption, digit_captions, load_digits, make_shapes, match_shape, read_scene,
                             render, scene_of)


def test_digits_split_shapes_and_stratification(digits):
    x, y = as_tensors(digits["train"])
    xt, yt = as_tensors(digits["test"])
    assert x.shape == (4500, 1, 28, 28) and xt.shape == (500, 1, 28, 28)
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert 0.0 <= x.min() and x.max() <= 1.0 and x.max() > 0.99
    assert Counter(yt.tolist()) == {d: 50 for d in range(10)}  # stratified: 50 per digit
    assert digits["train"].features["label"].names[7] == "seven"


def test_digits_split_is_deterministic_and_seeded(digits):
    again = load_digits(verbose=False)
    assert torch.equal(as_tensors(again["test"])[0], as_tensors(digits["test"])[0])
    other = load_digits(seed=1, verbose=False)
    assert not torch.equal(as_tensors(other["test"])[1], as_tensors(digits["test"])[1])
    # no image is in both splits
    tr = {hash(r.numpy().tobytes()) for r in as_tensors(digits["train"])[0]}
    assert not any(hash(r.numpy().tobytes()) in tr for r in as_tensors(digits["test"])[0])


def test_digits_hub_fallback_says_so(capsys):
    with mock.patch("course_lib.data.digits._hub_split", side_effect=ConnectionError("offline")):
        dd = load_digits("fashion-mnist")
    out = capsys.readouterr().out
    assert "Could not reach the Hugging Face hub for 'fashion-mnist' (ConnectionError)" in out
    assert "using the offline 'mnist-5k' digits instead" in out
    assert len(dd["train"]) == 4500


def test_digits_bad_arguments():
    with pytest.raises(ValueError, match=r"source must be one of \['mnist-5k', 'mnist', 'fashion-mnist'\]; got 'emnist'"):
        load_digits("emnist")
    with pytest.raises(ValueError, match="test_size must be >= 10; got 0"):
        load_digits(test_size=0)
    with pytest.raises(TypeError, match="split must be a digits datasets.Dataset"):
        as_tensors(torch.zeros(3))


def test_digit_captions():
    assert digit_caption(7, template=0) == "a handwritten seven"
    assert digit_caption(8, template=3) == "an eight"
    assert digit_caption(7, template=2) == "the number 7"
    assert digit_captions([1, 2, 3], seed=5) == digit_captions([1, 2, 3], seed=5)
    caps = digit_captions([4] * 200, seed=0)
    assert len(set(caps)) >= 6 and all(("four" in c) or ("4" in c) for c in caps)
    assert "seven" in caption_vocabulary()
    with pytest.raises(ValueError, match="label must be <= 9; got 10"):
        digit_caption(10)


def test_shapes_deterministic_and_well_formed():
    a = make_shapes(20, seed=3)
    b = make_shapes(20, seed=3)
    assert torch.equal(a[:]["image"], b[:]["image"]) and a[:]["caption"] == b[:]["caption"]
    assert not torch.equal(make_shapes(20, seed=4)[:]["image"], a[:]["image"])
    row = a[0]
    assert row["image"].shape == (3, 24, 24) and row["image"].dtype == torch.float32
    assert 0 <= row["image"].min() and row["image"].max() <= 1
    assert make_shapes(4, seed=0, image_size=32)[0]["image"].shape == (3, 32, 32)


def test_shapes_heldout_pairs_respected():
    train = make_shapes(300, seed=0, split="train", two_shape_fraction=0.3)
    held = make_shapes(100, seed=0, split="heldout")
    for row in train:
        assert not any((s.shape, s.color) in HELDOUT_PAIRS for s in scene_of(row))
    for row in held:
        assert all((s.shape, s.color) in HELDOUT_PAIRS for s in scene_of(row))
    # every shape and colour is still seen in training
    seen = [s for row in train for s in scene_of(row)]
    assert {s.shape for s in seen} == set(SHAPES) and {s.color for s in seen} == set(COLORS)
    assert any(int(r["n_shapes"]) == 2 for r in train)


def test_captions_mention_attributes_with_synonyms():
    scene = [ShapeSpec("circle", "red", "large", "top left")]
    rng = random.Random(0)
    captions = {describe(scene, rng) for _ in range(100)}
    assert len(captions) > 5
    for c in captions:
        assert "red" in c and ("circle" in c or "disk" in c) and ("big" in c or "large" in c)
        assert "left" in c
    assert describe(scene, variant=0) == "a large red circle in the top left corner"


def test_read_scene_recovers_attributes():
    ds = make_shapes(300, seed=11, split="all")
    exact = sum(read_scene(r["image"]) == scene_of(r)[0] for r in ds) / len(ds)
    assert exact >= 0.99, exact
    assert read_scene(torch.zeros(3, 24, 24)) is None


def test_match_shape_prefers_the_drawn_shape():
    for shape in SHAPES:
        for size in SIZES:
            image = render([ShapeSpec(shape, "green", size, "center")], jitter=False)
            g = match_shape(image)
            assert g["shape"] == shape, (shape, size, g["distances"])
            assert g["distances"][shape] < 0.1 < min(d for s, d in g["distances"].items() if s != shape)
            assert abs(g["radius"] - {"small": 0.14, "large": 0.23}[size]) < 0.02, g["radius"]
    assert match_shape(np.zeros((3, 24, 24), dtype=np.float32)) is None


def test_read_scene_tolerates_blur():
    """A tokenizer's reconstructions are slightly blurred: a 3x3 Gaussian blur (sigma 0.7) must
    not change what read_scene reads."""
    ds = make_shapes(300, seed=11, split="all")
    x = ds[:]["image"].float()
    k = torch.exp(-torch.arange(-1, 2.0) ** 2 / (2 * 0.7 ** 2))
    k = (k[:, None] * k[None] / k.sum() ** 2).expand(3, 1, 3, 3)
    blurred = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (1, 1, 1, 1), mode="replicate"), k, groups=3)
    exact = sum(read_scene(blurred[i]) == scene_of(ds[i])[0] for i in range(len(ds))) / len(ds)
    assert exact >= 0.95, exact


def test_shapes_bad_arguments():
    with pytest.raises(ValueError, match=r"color must be one of \['red', 'green', 'blue', 'yellow'\]; got 'purple'"):
        ShapeSpec("circle", "purple", "small", "center")
    with pytest.raises(ValueError, match=r"shape must be one of .*got 'hexagon'"):
        ShapeSpec("hexagon", "red", "small", "center")
    with pytest.raises(ValueError, match=r"split must be one of \['train', 'heldout', 'all'\]; got 'test'"):
        make_shapes(3, split="test")
    with pytest.raises(ValueError, match="n must be >= 1; got 0"):
        make_shapes(0)
    with pytest.raises(ValueError, match="two_shape_fraction must be <= 1.0"):
        make_shapes(3, two_shape_fraction=1.5)
    with pytest.raises(ValueError, match=r"image must have shape \(3, S, S\)"):
        read_scene(np.zeros((1, 24, 24), dtype=np.float32))
    with pytest.raises(ValueError, match="image_size must be >= 12; got 4"):
        render([ShapeSpec("circle", "red", "small", "center")], image_size=4)
