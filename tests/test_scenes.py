"""Sort-of-CLEVR-like scenes (course_lib.data.scenes): determinism, geometry, exact answers, splits, read-back."""
import random

import numpy as np
import pytest
import torch

from course_lib.data import (ANSWERS, GRID, IMAGE_SIZE, PALETTE, QUESTION_TYPES, SceneObject, answer_distribution,
                             attribute_accuracy, candidate_questions, make_questions, make_scenes, majority_baseline,
                             objects_of, question_tokens, question_vocabulary, read_objects, render_scene, scene_key,
                             split_of)
from course_lib.data.scenes import check_objects

CELL = IMAGE_SIZE // GRID
_SHAPE_OF = {"circle": "circle", "disk": "circle", "circles": "circle", "disks": "circle", "square": "square",
             "box": "square", "squares": "square", "boxes": "square", "triangle": "triangle", "triangles": "triangle"}
_SIZE_OF = {"small": "small", "little": "small", "large": "large", "big": "large"}


@pytest.fixture(scope="module")
def val_scenes():
    return make_scenes(150, seed=5, split="val")


def _all_scenes(ds):
    return [objects_of(ds[i]) for i in range(len(ds))]


def _blur(x, kernel):
    k = kernel.expand(3, 1, 3, 3)
    return torch.nn.functional.conv2d(torch.nn.functional.pad(x, (1, 1, 1, 1), mode="replicate"), k, groups=3)


def test_scenes_deterministic_and_seeded():
    a, b, c = make_scenes(12, seed=3), make_scenes(12, seed=3), make_scenes(12, seed=4)
    assert torch.equal(a[:]["image"], b[:]["image"]) and a[:]["key"] == b[:]["key"]
    assert a[:]["key"] != c[:]["key"] and not torch.equal(a[:]["image"], c[:]["image"])
    assert a[:]["image"].shape == (12, 3, IMAGE_SIZE, IMAGE_SIZE) and a[:]["image"].dtype == torch.float32
    q1, q2, q3 = make_questions(a, 6, seed=0), make_questions(b, 6, seed=0), make_questions(a, 6, seed=1)
    assert q1[:]["text"] == q2[:]["text"] and q1[:]["answer"] == q2[:]["answer"]
    assert q1[:]["text"] != q3[:]["text"]


def test_scenes_well_formed_no_overlap(val_scenes):
    x = val_scenes[:]["image"]
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    for i, objects in enumerate(_all_scenes(val_scenes)):
        assert 3 <= len(objects) <= 5
        assert len({o.color for o in objects}) == len(objects)  # distinct colours
        assert len({(o.row, o.col) for o in objects}) == len(objects)  # distinct cells
        occupied = torch.zeros(GRID, GRID, dtype=torch.bool)
        for o in objects:
            occupied[o.row, o.col] = True
            assert float(x[i, :, o.row * CELL:(o.row + 1) * CELL, o.col * CELL:(o.col + 1) * CELL].max()) > 0.5
        # every lit pixel lies inside its object's cell, with a dark rim between neighbouring cells
        cell_mask = occupied.repeat_interleave(CELL, 0).repeat_interleave(CELL, 1)
        assert float(x[i][:, ~cell_mask].abs().max()) == 0.0
    # each object alone, at the largest jitter draws: nothing spills out of its cell
    rng = random.Random(0)
    for shape in ("circle", "square", "triangle"):
        for _ in range(30):
            image = torch.from_numpy(render_scene([SceneObject(shape, "yellow", "large", 1, 2)], rng))
            outside = image.clone()
            outside[:, CELL:2 * CELL, 2 * CELL:3 * CELL] = 0
            assert float(outside.max()) == 0.0 and float(image.max()) > 0.5


def test_splits_disjoint_by_construction():
    keys = {s: set(make_scenes(n, seed=seed, split=s)[:]["key"])
            for s, n, seed in (("train", 300, 0), ("val", 80, 1), ("test", 80, 2))}
    assert not keys["train"] & keys["val"] and not keys["train"] & keys["test"] and not keys["val"] & keys["test"]
    ds = make_scenes(20, seed=7, split="test")
    assert all(split_of(objs) == "test" and scene_key(objs) == k for objs, k in zip(_all_scenes(ds), ds[:]["key"]))
    # the key ignores object order and jitter
    objs = _all_scenes(ds)[0]
    assert scene_key(list(reversed(objs))) == scene_key(objs)


# ---------------------------------------------------------------- exact answers, worked out by hand
# scene A: red circle (0,0) small; green square (0,3) large; blue triangle (3,0) small.
# From red: green and blue both at squared distance 9 -> a tie: no closest/furthest question about red.
# From green: red 9, blue 18 -> closest red circle, furthest blue triangle.
# From blue: red 9, green 18 -> closest red circle, furthest green square.
SCENE_A = [SceneObject("circle", "red", "small", 0, 0), SceneObject("square", "green", "large", 0, 3),
           SceneObject("triangle", "blue", "small", 3, 0)]
ANSWERS_A = {
    ("shape", "red"): "circle", ("shape", "green"): "square", ("shape", "blue"): "triangle",
    ("size", "red"): "small", ("size", "green"): "large", ("size", "blue"): "small",
    ("x", "red"): "left", ("x", "green"): "right", ("x", "blue"): "left",
    ("y", "red"): "top", ("y", "green"): "top", ("y", "blue"): "bottom",
    ("closest", "green", "color"): "red", ("closest", "green", "shape"): "circle",
    ("closest", "blue", "color"): "red", ("closest", "blue", "shape"): "circle",
    ("furthest", "green", "color"): "blue", ("furthest", "green", "shape"): "triangle",
    ("furthest", "blue", "color"): "green", ("furthest", "blue", "shape"): "square",
    ("same", "red"): "0", ("same", "green"): "0", ("same", "blue"): "0",
    ("count", "circle"): "1", ("count", "square"): "1", ("count", "triangle"): "1",
    ("count", "small"): "2", ("count", "large"): "1",
    **{("exists", c, s): "yes" if (c, s) in {("red", "circle"), ("green", "square"), ("blue", "triangle")} else "no"
       for c in PALETTE for s in ("circle", "square", "triangle")},
}
# scene B: purple square (0,0) large; red circle (1,1) small; yellow circle (1,2) small; cyan circle (3,3) large.
# From purple: red 2, yellow 5, cyan 18. From red: yellow 1, purple 2, cyan 8. From yellow: red 1,
# purple 5, cyan 5 -> furthest is a tie (no question). From cyan: yellow 5, red 8, purple 18.
SCENE_B = [SceneObject("square", "purple", "large", 0, 0), SceneObject("circle", "red", "small", 1, 1),
           SceneObject("circle", "yellow", "small", 1, 2), SceneObject("circle", "cyan", "large", 3, 3)]
ANSWERS_B = {
    ("shape", "purple"): "square", ("shape", "red"): "circle", ("shape", "yellow"): "circle",
    ("shape", "cyan"): "circle", ("size", "purple"): "large", ("size", "red"): "small",
    ("size", "yellow"): "small", ("size", "cyan"): "large",
    ("x", "purple"): "left", ("x", "red"): "left", ("x", "yellow"): "right", ("x", "cyan"): "right",
    ("y", "purple"): "top", ("y", "red"): "top", ("y", "yellow"): "top", ("y", "cyan"): "bottom",
    ("closest", "purple", "color"): "red", ("closest", "purple", "shape"): "circle",
    ("furthest", "purple", "color"): "cyan", ("furthest", "purple", "shape"): "circle",
    ("closest", "red", "color"): "yellow", ("closest", "red", "shape"): "circle",
    ("furthest", "red", "color"): "cyan", ("furthest", "red", "shape"): "circle",
    ("closest", "yellow", "color"): "red", ("closest", "yellow", "shape"): "circle",
    ("closest", "cyan", "color"): "yellow", ("closest", "cyan", "shape"): "circle",
    ("furthest", "cyan", "color"): "purple", ("furthest", "cyan", "shape"): "square",
    ("same", "purple"): "0", ("same", "red"): "2", ("same", "yellow"): "2", ("same", "cyan"): "2",
    ("count", "circle"): "3", ("count", "square"): "1", ("count", "triangle"): "0",
    ("count", "small"): "2", ("count", "large"): "2",
    **{("exists", c, s): "yes" if (c, s) in {("purple", "square"), ("red", "circle"), ("yellow", "circle"),
                                              ("cyan", "circle")} else "no"
       for c in PALETTE for s in ("circle", "square", "triangle")},
}


def _key(qtype, text):
    """What a question asks, parsed from its words (independently of the generator)."""
    words = question_tokens(text)
    colors = [w for w in words if w in PALETTE]
    if qtype in ("shape", "size"):
        return (qtype, colors[0])
    if qtype == "position":
        return ("x" if "left" in words else "y", colors[0])
    if qtype == "exists":
        return ("exists", colors[0], next(_SHAPE_OF[w] for w in words if w in _SHAPE_OF))
    if qtype in ("closest", "furthest"):
        return (qtype, colors[0], "shape" if "shape" in words else "color")
    if qtype == "same_shape_count":
        return ("same", colors[0])
    what = next(_SHAPE_OF.get(w) or _SIZE_OF[w] for w in words if w in _SHAPE_OF or w in _SIZE_OF)
    return ("count", what)


def _cand_key(t, p):
    """candidate_questions' (type, params) in the keys of ANSWERS_A / ANSWERS_B."""
    if t == "position":
        return p
    if t in ("shape", "size"):
        return (t, p[1])
    if t == "same_shape_count":
        return ("same", p[0])
    if t == "count":
        return ("count", p[1])
    return (t, *p)  # exists, closest, furthest


def test_answers_match_hand_computed_scenes():
    assert check_objects(SCENE_A) and check_objects(SCENE_B)
    q = make_questions([SCENE_A, SCENE_B], per_scene=32, seed=0)
    asked = {0: set(), 1: set()}
    for text, answer, qtype, scene in zip(q[:]["text"], q[:]["answer"], q[:]["type"], q[:]["scene"].tolist()):
        key = _key(qtype, text)
        assert answer == (ANSWERS_A, ANSWERS_B)[scene][key], (scene, text, answer)
        asked[scene].add(key)
    assert {k[0] for k in asked[0] | asked[1]} >= {"shape", "size", "x", "y", "exists", "closest", "furthest",
                                                   "same", "count"}
    # every exactly answerable question of scene A, and nothing else (no tie questions)
    every = {(t, p): a for t, p, a in candidate_questions(SCENE_A)}
    assert len(every) == len(candidate_questions(SCENE_A))
    assert {_cand_key(t, p): a for (t, p), a in every.items()} == ANSWERS_A  # same questions, same answers
    assert not any(t in ("closest", "furthest") and p[0] == "red" for t, p, _ in candidate_questions(SCENE_A))
    assert not any(t == "furthest" and p[0] == "yellow" for t, p, _ in candidate_questions(SCENE_B))


def test_question_points_on_a_hand_computed_scene():
    """Scene B (cells: purple 0, red 5, yellow 6, cyan 15): the cells to look at before answering."""
    from course_lib.data.scenes import _SHAPE_WORDS, POINT_WORDS, question_points, question_tokens, question_words
    assert len(POINT_WORDS) == 16 and POINT_WORDS[0] == "cella" and POINT_WORDS[15] == "cellp"
    assert question_points(SCENE_B, "shape", ("shape", "red")) == (5,)
    assert question_points(SCENE_B, "position", ("y", "cyan")) == (15,)
    assert question_points(SCENE_B, "exists", ("red", "circle")) == (5,)      # the red object: a circle
    assert question_points(SCENE_B, "exists", ("red", "square")) == (5,)      # the red object, whatever its shape
    assert question_points(SCENE_B, "exists", ("green", "circle")) == ()      # no green at all
    assert question_points(SCENE_B, "closest", ("purple", "color")) == (0, 5)
    assert question_points(SCENE_B, "furthest", ("red", "shape")) == (5, 15)
    assert question_points(SCENE_B, "closest", ("cyan", "shape")) == (15, 6)
    assert question_points(SCENE_B, "same_shape_count", ("cyan",)) == (15,)
    assert question_points(SCENE_B, "count", ("shape", "circle")) == ()
    with pytest.raises(ValueError, match="qtype"):
        question_points(SCENE_B, "colour", ("red",))
    assert question_words(SCENE_B, "exists", ("red", "circle")) == ("circle", "circle")   # seen, asked: "yes"
    assert question_words(SCENE_B, "exists", ("red", "square")) == ("circle", "square")   # ... "no"
    assert question_words(SCENE_B, "exists", ("green", "circle")) == ("circle",)          # no green: only the asked
    assert question_words(SCENE_B, "same_shape_count", ("purple",)) == ("square",)
    assert all(question_words(SCENE_B, t, p) == () for t, p in (("shape", ("shape", "red")), ("count", ("shape", "circle")),
                                                                   ("closest", ("purple", "color"))))
    with pytest.raises(ValueError, match="qtype"):
        question_words(SCENE_B, "colour", ("red",))
    q = make_questions([SCENE_A, SCENE_B], per_scene=32, seed=0).with_format(None)[:]
    assert all(len(p) == (2 if t in ("closest", "furthest") else 0 if t == "count" else len(p))
               for t, p in zip(q["type"], q["points"]))
    for i, t in enumerate(q["type"]):
        objects, said, cells = [SCENE_A, SCENE_B][q["scene"][i]], q["say"][i], q["points"][i]
        pointed = [o for o in objects if o.row * 4 + o.col in cells]
        if t == "exists":                         # the pointed object's shape (if any), then the asked one
            asked = [w for w in ("circle", "square", "triangle") if set(_SHAPE_WORDS[w]) & set(question_tokens(q["text"][i]))]
            assert said == [o.shape for o in pointed] + asked and (q["answer"][i] == "yes") == (len(said) == 2 and said[0] == said[1])
        elif t == "same_shape_count":
            assert said == [pointed[0].shape]
        else:
            assert said == []
    assert {len(p) for p in q["points"]} == {0, 1, 2}


def test_no_tie_questions_on_random_scenes(val_scenes):
    for objects in _all_scenes(val_scenes)[:60]:
        for qtype, params, answer in candidate_questions(objects):
            if qtype in ("closest", "furthest"):
                src = next(o for o in objects if o.color == params[0])
                d = sorted(((o.row - src.row) ** 2 + (o.col - src.col) ** 2, o.color) for o in objects if o is not src)
                best = d[0] if qtype == "closest" else d[-1]
                assert sum(x[0] == best[0] for x in d) == 1
                target = next(o for o in objects if o.color == best[1])
                assert answer == getattr(target, params[1])


def test_questions_vocabulary_types_and_balance(val_scenes):
    q = make_questions(val_scenes, per_scene=8, seed=0)
    assert len(q) == 8 * len(val_scenes)
    vocab = set(question_vocabulary())
    for text in q["text"]:
        assert set(question_tokens(text)) <= vocab, text
    assert set(q["answer"]) <= set(ANSWERS) and set(q["type"]) == set(QUESTION_TYPES)
    assert [ANSWERS[i] for i in q[:]["answer_id"].tolist()] == q[:]["answer"]
    dist = answer_distribution(q)
    per_type = [sum(d.values()) for d in dist.values()]
    assert max(per_type) - min(per_type) <= 2, per_type  # round-robin over types
    base = majority_baseline(q)
    assert all(v <= 0.51 for k, v in base.items()), base  # no type is answerable by one constant
    assert dist["exists"]["yes"] == pytest.approx(dist["exists"]["no"], abs=2)


def test_read_objects_recovers_rendered_scenes(val_scenes):
    scenes = _all_scenes(val_scenes)
    x = val_scenes[:]["image"]
    assert all(read_objects(x[i]) == s for i, s in enumerate(scenes))
    assert read_objects(torch.zeros(3, IMAGE_SIZE, IMAGE_SIZE)) == []
    # every shape x size x colour, unjittered, as a numpy array
    for z, colors in (("small", list(PALETTE)), ("large", list(PALETTE)[::-1])):
        scene = [SceneObject(s, c, z, i // GRID, i % GRID)
                 for i, (s, c) in enumerate(zip(("circle", "square", "triangle") * 2, colors))]
        assert read_objects(render_scene(scene, jitter=False)) == scene


def test_read_objects_tolerates_mild_blur(val_scenes):
    """Tokenizer reconstructions are slightly blurred: >= 97% of attributes must survive a 3x3
    Gaussian (sigma 0.7) and a 3x3 box filter (measured: 100% and 99.98% on 1,000 scenes)."""
    scenes = _all_scenes(val_scenes)
    x = val_scenes[:]["image"]
    g = torch.exp(-torch.arange(-1, 2.0) ** 2 / (2 * 0.7 ** 2))
    for kernel in (g[:, None] * g[None] / g.sum() ** 2, torch.full((3, 3), 1 / 9)):
        blurred = _blur(x, kernel)
        acc = np.mean([attribute_accuracy(read_objects(blurred[i]), s) for i, s in enumerate(scenes)])
        assert acc >= 0.97, acc
    assert attribute_accuracy([], SCENE_A) == 0.0 and attribute_accuracy(SCENE_A, SCENE_A) == 1.0


def test_scenes_bad_arguments():
    with pytest.raises(ValueError, match="n must be >= 1; got 0"):
        make_scenes(0)
    with pytest.raises(ValueError, match=r"split must be one of \['train', 'val', 'test'\]; got 'dev'"):
        make_scenes(3, split="dev")
    with pytest.raises(ValueError, match="seed must be >= 0; got -1"):
        make_scenes(3, seed=-1)
    with pytest.raises(TypeError, match="n must be an int; got float 3.0"):
        make_scenes(3.0)
    with pytest.raises(ValueError, match=r"color must be one of .*got 'orange'"):
        SceneObject("circle", "orange", "small", 0, 0)
    with pytest.raises(ValueError, match="row must be <= 3; got 4"):
        SceneObject("circle", "red", "small", 4, 0)
    with pytest.raises(ValueError, match="objects must have different colours; got objects\\[0\\] and objects\\[1\\]"):
        check_objects([SceneObject("circle", "red", "small", 0, 0), SceneObject("square", "red", "small", 0, 1)])
    with pytest.raises(ValueError, match="objects must lie in different cells"):
        check_objects([SceneObject("circle", "red", "small", 0, 0), SceneObject("square", "blue", "small", 0, 0)])
    with pytest.raises(ValueError, match="per_scene must be >= 1; got 0"):
        make_questions([SCENE_A], per_scene=0)
    with pytest.raises(TypeError, match="scenes must be a make_scenes dataset or a non-empty list"):
        make_questions([])
    with pytest.raises(ValueError, match=r"scenes\[0\]: objects must have different colours"):
        make_questions([[SceneObject("circle", "red", "small", 0, 0), SceneObject("square", "red", "small", 1, 1)]])
    with pytest.raises(ValueError, match=r"image must have shape \(3, S, S\) with S a multiple of 4"):
        read_objects(torch.zeros(3, 30, 30))
    with pytest.raises(ValueError, match="image must be finite"):
        read_objects(torch.full((3, 32, 32), float("nan")))
    with pytest.raises(TypeError, match="rng must be a random.Random"):
        render_scene(SCENE_A, rng=0)
    assert render_scene([], rng=random.Random(0)).max() == 0.0
