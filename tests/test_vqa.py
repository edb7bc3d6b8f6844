"""Visual question answering: the cross-attention model, the three VQA models, data, scores, and the
gated cross-attention exercise check (it rejects the common wrong blocks, accepts a right one written
differently)."""

import pytest
import torch

from course_lib.checks import ExerciseError
from course_lib.checks.vqa import check_gated_cross_attention
from course_lib.data.scenes import ANSWERS, QUESTION_TYPES
from course_lib.image_tokenizer import tokenizer_data, tokenizer_recipe
from course_lib.models.cross_attention import CrossAttentionDecoder, GatedCrossAttentionBlock
from course_lib.vqa import (ANSWER_WORD, KINDS, MAX_POINTS, accuracy_by_type, answer_ids, answer_logits, answer_sequences, encode_questions,
                            new_vqa_model, point_first, point_ids, predict, question_sequences, train_vqa, vqa_accuracy, vqa_loss, vqa_recipe, vqa_split,
                            vqa_vocabulary)
from course_lib.vocabulary import BOS, BOT, EOT, PAD


class _FakeTokenizer:
    """Stands in for the scenes tokenizer: 16 codes on an 8x8 grid (2x2 per scene cell), codes from
    the mean colour of each 4x4 pixel patch."""
    num_codes = 16
    grid = (8, 8)
    device = torch.device("cpu")
    hparams = {"dataset": "scenes"}

    def encode(self, images):
        cells = images.reshape(len(images), 3, 8, 4, 8, 4).mean(dim=(3, 5))      # (B, 3, 8, 8)
        return (cells.sum(1) * 5).long().clamp(0, 15)


@pytest.fixture(scope="module")
def tiny():
    recipe = vqa_recipe("smoke", n_layer=2, d_model=32, n_head=2, describe_steps=150, steps=60, n_train=40, n_test=20,
                        questions_per_scene=4)
    tok = _FakeTokenizer()
    train = vqa_split(recipe, tok, "train")
    test = vqa_split(recipe, tok, "test", vocab=train.vocab)
    return recipe, train, test


def test_vocabulary_holds_every_question_word_and_answer(tiny):
    _, train, _ = tiny
    words = set(train.vocab.tokenizer.words)
    assert set(ANSWERS) <= words
    assert len(answer_ids(train.vocab)) == len(ANSWERS)


def test_split_tensors_line_up(tiny):
    recipe, train, test = tiny
    n = len(train)
    assert n == 40 * 4 and len(test) == 20 * 4
    assert train.image.shape == (n, 64) and train.question.shape[0] == n
    assert bool((train.image >= train.vocab.image_offset).all())
    assert int(train.length.max()) == train.question.shape[1]
    # each row's answer and type are those of the questions dataset
    q = train.questions.with_format(None)[:5]
    for i in range(5):
        assert train.vocab.token_name(int(train.answer[i])) == q["answer"][i]
        assert QUESTION_TYPES[int(train.qtype[i])] == q["type"][i]
        assert train.vocab.decode_text(train.question[i, :train.length[i]].tolist()).replace(" ", "") == \
            q["text"][i].replace(" ", "")


def test_encode_questions_names_unknown_words(tiny):
    _, train, _ = tiny
    with pytest.raises(ValueError, match="unknown word 'pink'"):
        encode_questions(train.vocab, ["what shape is the pink object?"])
    ids, length = encode_questions(train.vocab, ["what shape is the pink object?"], unknown="unk")
    assert int(length[0]) == 7


def test_scene_description_with_counts():
    from course_lib.data.scenes import SceneObject, question_tokens
    from course_lib.vqa import scene_description
    scene = [SceneObject("circle", "red", "small", 0, 0), SceneObject("square", "green", "small", 2, 0),
             SceneObject("circle", "blue", "large", 3, 3)]
    assert scene_description(scene) == ("red small circle top left , green small square bottom left , "
                                        "blue large circle bottom right")
    text = scene_description(scene, counts=True)
    assert text.startswith("2 circles 1 squares 0 triangles 2 small 1 large : red small circle top left")
    assert question_tokens(text)[:11] == ["2", "circles", "1", "squares", "0", "triangles", "2", "small", "1", "large", ":"]


def test_question_sequences_layout():
    q = torch.tensor([[20, 21, 22], [23, 0, 0]])
    seq, pos = question_sequences(q, torch.tensor([3, 1]))
    assert seq.tolist() == [[BOS, BOT, 20, 21, 22, EOT], [BOS, BOT, 23, EOT, PAD, PAD]]
    assert pos.tolist() == [5, 3]


def test_answer_sequences_put_the_points_after_eot():
    q = torch.tensor([[20, 21, 22], [23, 0, 0], [24, 25, 0]])
    points = torch.tensor([[40, 41], [42, PAD], [PAD, PAD]])
    seq, pos = answer_sequences(q, torch.tensor([3, 1, 2]), points, torch.tensor([2, 1, 0]))
    assert seq.tolist() == [[BOS, BOT, 20, 21, 22, EOT, 40, 41], [BOS, BOT, 23, EOT, 42, PAD, PAD, PAD],
                            [BOS, BOT, 24, 25, EOT, PAD, PAD, PAD]]
    assert pos.tolist() == [7, 4, 4]


def test_split_points_are_the_questions_cells(tiny):
    """Each row's pointing words name the cells of question_points: the colour's object first."""
    from course_lib.data.scenes import POINT_WORDS, objects_of
    _, train, _ = tiny
    q = train.questions.with_format(None)[:]
    names = {int(i): w for i, w in zip(point_ids(train.vocab), POINT_WORDS)}
    word = train.vocab.encode_text(ANSWER_WORD)[0]
    for i in range(len(train)):
        *said, last = train.points[i, :int(train.n_points[i])].tolist()
        assert last == word                                     # the cells, the words said, then "answer"
        cells = [POINT_WORDS.index(names[t]) for t in said if t in names]
        assert cells == q["points"][i]
        assert said[len(cells):] == (train.vocab.encode_text(" ".join(q["say"][i])) if q["say"][i] else [])
        if q["type"][i] == "exists":                           # the colour's object and its shape, then the asked shape
            assert len(said) == 1 + 2 * len(cells) and train.vocab.token_name(said[-1]) in ("circle", "square", "triangle")
        assert bool((train.points[i, int(train.n_points[i]):] == PAD).all())
        objects = {o.row * 4 + o.col: o for o in objects_of(train.scenes[q["scene"][i]])}
        if q["type"][i] in ("shape", "size", "position"):
            assert len(cells) == 1 and objects[cells[0]].color in q["text"][i]
        if q["type"][i] == "count":
            assert cells == []
        if q["type"][i] in ("closest", "furthest"):
            assert len(cells) == 2 and q["answer"][i] in (objects[cells[1]].color, objects[cells[1]].shape)


@pytest.mark.parametrize("kind", KINDS)
def test_answer_logits_and_weights(tiny, kind):
    recipe, train, _ = tiny
    model = new_vqa_model(kind, recipe, train.vocab)
    batch = tuple(t[:6] for t in train.tensors())
    logits = answer_logits(model, batch)
    assert logits.shape == (6, len(train.vocab))
    logits2, weights = answer_logits(model.eval(), batch, need_weights=True)
    torch.testing.assert_close(logits2, answer_logits(model, batch), atol=1e-5, rtol=1e-4)
    assert len(weights) == model.config.n_layer
    w = weights[0]
    assert w.shape[:2] == (6, recipe["n_head"])
    torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[:2]), atol=1e-5, rtol=0)


def test_parameter_counts_are_similar(tiny):
    recipe, train, _ = tiny
    models = {k: new_vqa_model(k, recipe, train.vocab) for k in KINDS}
    counts = {k: m.num_parameters() for k, m in models.items()}
    assert max(counts["early"], counts["cross"]) / min(counts["early"], counts["cross"]) < 1.1, counts
    # the blind model is early fusion's language model without its vision encoder
    encoder = sum(p.numel() for p in models["early"].encoder.parameters())
    assert counts["blind"] + encoder == counts["early"], counts


@pytest.mark.parametrize("kind", ["early", "cross"])
def test_pointing_words_are_tied_to_their_cells(tiny, kind):
    """With tie_points, cellk's embedding is its own plus the encoder's row + column embedding of cell k;
    every other token's is untouched, and the tie adds no parameters."""
    recipe, train, _ = tiny
    plain = new_vqa_model(kind, {**recipe, "tie_points": False}, train.vocab)
    model = new_vqa_model(kind, {**recipe, "tie_points": True}, train.vocab)
    assert model.num_parameters() == plain.num_parameters()
    emb = model.transformer.tok_emb if kind == "early" else model.tok_emb
    ids = point_ids(train.vocab)
    rows, cols = model.encoder.cell_grid
    cell = torch.arange(rows * cols)
    shift = model.encoder.row_emb(cell // cols) + model.encoder.col_emb(cell % cols)
    torch.testing.assert_close(emb(ids[None])[0], emb.weight[ids] + shift)
    words = torch.tensor([i for i in range(len(train.vocab)) if i not in set(ids.tolist())])
    torch.testing.assert_close(emb(words[None])[0], emb.weight[words])
    # one table, two uses: a pointing word's gradient reaches the encoder's position tables
    emb(ids[None]).sum().backward()
    assert model.encoder.row_emb.weight.grad.abs().min() > 0 and model.encoder.col_emb.weight.grad.abs().min() > 0


def test_blind_model_ignores_the_image_and_padding(tiny):
    recipe, train, _ = tiny
    model = new_vqa_model("blind", recipe, train.vocab).eval()
    image, question, length, answer = (t[:4] for t in train.tensors()[:4])
    other = image.flip(0)
    wider = torch.cat([question, torch.full((4, 3), PAD)], 1)
    torch.testing.assert_close(answer_logits(model, (image, question, length)),
                               answer_logits(model, (other, wider, length)))


def test_early_fusion_answer_depends_on_the_image(tiny):
    recipe, train, _ = tiny
    for kind in ("early", "cross"):
        model = new_vqa_model(kind, recipe, train.vocab).eval()
        if kind == "cross":
            with torch.no_grad():
                for b in model.xblocks:
                    b.attn_gate.fill_(1.0)
        image, question, length, _ = (t[:4] for t in train.tensors()[:4])
        a = answer_logits(model, (image, question, length))
        b = answer_logits(model, ((image - train.vocab.image_offset + 1) % 16 + train.vocab.image_offset,
                                  question, length))
        assert not torch.allclose(a, b), kind


def test_cross_model_starts_as_a_text_only_model(tiny):
    """Gates at 0: the image cannot change anything (Flamingo's initialisation)."""
    recipe, train, _ = tiny
    model = new_vqa_model("cross", recipe, train.vocab).eval()
    image, question, length, _ = (t[:4] for t in train.tensors()[:4])
    torch.testing.assert_close(answer_logits(model, (image, question, length)),
                               answer_logits(model, (image.flip(0), question, length)))


@pytest.mark.parametrize("kind", ["early", "cross"])
def test_fusion_models_reject_bad_inputs(tiny, kind):
    recipe, train, _ = tiny
    model = new_vqa_model(kind, recipe, train.vocab)
    text, _ = question_sequences(train.question[:2], train.length[:2])
    with pytest.raises(ValueError, match="image must hold image-code ids"):
        model(text, torch.zeros(2, 64, dtype=torch.long))
    with pytest.raises(ValueError, match="image must have shape"):
        model(text, train.image[:2, :3])
    with pytest.raises(TypeError, match="config must be a TransformerConfig"):
        CrossAttentionDecoder({"d_model": 8})


def test_recipe_rejects_unknown_settings():
    with pytest.raises(ValueError, match="unknown recipe settings"):
        vqa_recipe("smoke", step=10)
    with pytest.raises(ValueError, match="kind"):
        new_vqa_model("late", vqa_recipe("smoke"), vqa_vocabulary(_FakeTokenizer()))


def test_training_lowers_the_loss_and_predictions_are_answers(tiny):
    recipe, train, test = tiny
    model = new_vqa_model("early", recipe, train.vocab)
    batch = train.tensors()
    with torch.no_grad():
        before = float(vqa_loss(model, batch)[0])
    train_vqa(model, train, recipe)
    with torch.no_grad():
        after = float(vqa_loss(model, batch)[0])
    assert after < 0.7 * before
    pred = predict(model, test)
    assert set(pred.tolist()) <= set(answer_ids(test.vocab).tolist())
    acc = vqa_accuracy(model, test)
    assert {"all", "non-relational", "relational", "counting"} <= set(acc)


def test_pointing_is_trained_and_read_greedily(tiny):
    """The pointing tokens add their own loss; at test time the model points at cells (greedy, each
    step among cells and answers) until it answers; without ``point`` it answers at <eot>."""
    recipe, train, test = tiny
    model = new_vqa_model("early", recipe, train.vocab)
    batch = tuple(t[:16] for t in train.tensors())
    loss, parts = vqa_loss(model, batch)
    assert set(parts) == {"answer", "points"}
    torch.testing.assert_close(loss, parts["answer"] + parts["points"])
    train_vqa(model, train, dict(recipe, steps=150))
    with torch.no_grad():
        after = vqa_loss(model.eval(), batch)[1]
    assert float(after["points"]) < 0.5 * float(parts["points"]), (parts, after)     # it learned to point
    points, n = point_first(model, tuple(t[:40] for t in test.tensors()))
    cells, word = set(point_ids(test.vocab).tolist()), test.vocab.encode_text(ANSWER_WORD)[0]
    shapes = set(test.vocab.encode_text("circle square triangle"))
    assert points.shape == (40, MAX_POINTS) and 1 <= int(n.min()) and int(n.max()) <= MAX_POINTS
    for row, k in zip(points.tolist(), n.tolist()):
        assert set(row[:k - 1]) <= cells | shapes and row[k - 1] == word and set(row[k:]) <= {PAD}
    answers, (p2, n2) = predict(model, test, return_points=True)
    assert torch.equal(p2[:40], points) and torch.equal(n2[:40], n)
    plain = new_vqa_model("early", dict(recipe, point=False), train.vocab)
    assert vqa_loss(plain, batch)[1] == {}
    assert int(point_first(plain, batch)[1].sum()) == 0


def test_training_is_deterministic(tiny):
    recipe, train, _ = tiny
    outs = []
    for _ in range(2):
        model = new_vqa_model("cross", recipe, train.vocab)
        train_vqa(model, train, dict(recipe, steps=15))
        outs.append(answer_logits(model.eval(), tuple(t[:5] for t in train.tensors())))
    torch.testing.assert_close(outs[0], outs[1], atol=0, rtol=0)


def test_after_describe_runs_between_the_stages(tiny):
    """train_vqa calls after_describe(model) once, after stage 1 and before stage 2, and returns its value;
    without stage 1 (describe_steps 0) it is not called."""
    recipe, train, _ = tiny
    model = new_vqa_model("cross", recipe, train.vocab)
    seen = []

    def look(m):
        seen.append((m is model,))
        return {"state": {k: v.clone() for k, v in m.state_dict().items()}}
    out = train_vqa(model, train, dict(recipe, describe_steps=4, steps=3), after_describe=look)
    assert len(seen) == 1 and seen[0][0]
    assert out["describe"].steps == 4 and out["answer"].steps == 3
    before = out["after_describe"]["state"]
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())   # stage 2 came after
    calls = []
    out = train_vqa(new_vqa_model("cross", recipe, train.vocab), train, dict(recipe, describe_steps=0, steps=2),
                    after_describe=calls.append)
    assert calls == [] and out["after_describe"] is None and out["describe"] is None


def test_accuracy_by_type_groups():
    correct = torch.tensor([True, False, True, True])
    qtype = torch.tensor([QUESTION_TYPES.index(t) for t in ("shape", "shape", "closest", "count")])
    acc = accuracy_by_type(correct, qtype)
    assert acc["shape"] == 0.5 and acc["closest"] == 1.0 and acc["count"] == 1.0
    assert acc["non-relational"] == 0.5 and acc["relational"] == 1.0 and acc["all"] == 0.75
    assert "size" not in acc


def test_scenes_tokenizer_recipe_and_data():
    r = tokenizer_recipe("scenes", "smoke")
    assert (r["channels"], r["image_size"], r["downsample"]) == (3, 32, 4)
    x = tokenizer_data("scenes", 6, split="test")
    assert x.shape == (6, 3, 32, 32) and 0 <= float(x.min()) and float(x.max()) <= 1


# ------------------------------------------------------------------ the gated cross-attention exercise
def _variant(forward):
    return type("Learner", (GatedCrossAttentionBlock,), {"forward": forward})


def _right_other_style(self, x, memory):
    gates = torch.tanh(torch.cat([self.attn_gate, self.mlp_gate]))
    attended, _ = self.xattn(self.ln1(x), memory, need_weights=True)
    x = torch.addcmul(x, gates[0].expand_as(attended), attended)
    return x + gates[1] * self.mlp(self.ln2(x))


WRONG = {
    "no gate": (lambda s, x, m: (lambda y: y + torch.tanh(s.mlp_gate) * s.mlp(s.ln2(y)))(x + s.xattn(s.ln1(x), m)[0]),
                "without the gate"),
    "gate without tanh": (lambda s, x, m: (lambda y: y + s.mlp_gate * s.mlp(s.ln2(y)))(x + s.attn_gate * s.xattn(s.ln1(x), m)[0]),
                          "tanh"),
    "sigmoid gates": (lambda s, x, m: (lambda y: y + torch.sigmoid(s.mlp_gate) * s.mlp(s.ln2(y)))(
        x + torch.sigmoid(s.attn_gate) * s.xattn(s.ln1(x), m)[0]), "identity"),
    "gates swapped": (lambda s, x, m: (lambda y: y + torch.tanh(s.attn_gate) * s.mlp(s.ln2(y)))(
        x + torch.tanh(s.mlp_gate) * s.xattn(s.ln1(x), m)[0]), "swapped"),
    "self-attention": (lambda s, x, m: (lambda y: y + torch.tanh(s.mlp_gate) * s.mlp(s.ln2(y)))(
        x + torch.tanh(s.attn_gate) * s.xattn(s.ln1(x), s.ln1(x))[0]), "attends to the text itself"),
    "memory normalised by ln1": (lambda s, x, m: (lambda y: y + torch.tanh(s.mlp_gate) * s.mlp(s.ln2(y)))(
        x + torch.tanh(s.attn_gate) * s.xattn(s.ln1(x), s.ln1(m))[0]), "memory went through ln1"),
    "gate on the residual": (lambda s, x, m: (lambda y: y + torch.tanh(s.mlp_gate) * s.mlp(s.ln2(y)))(
        torch.tanh(s.attn_gate) * (x + s.xattn(s.ln1(x), m)[0])), "gates at 0"),
    "parallel": (lambda s, x, m: x + torch.tanh(s.attn_gate) * s.xattn(s.ln1(x), m)[0]
                 + torch.tanh(s.mlp_gate) * s.mlp(s.ln2(x)), "parallel"),
    "ln1 twice": (lambda s, x, m: (lambda y: y + torch.tanh(s.mlp_gate) * s.mlp(s.ln1(y)))(
        x + torch.tanh(s.attn_gate) * s.xattn(s.ln1(x), m)[0]), "ln1 is used for both"),
}


@pytest.mark.parametrize("name", sorted(WRONG))
def test_gated_check_rejects(name, capsys):
    forward, message = WRONG[name]
    with pytest.raises(ExerciseError) as err:
        check_gated_cross_attention(_variant(forward))
    assert "[wrong]" in str(err.value) and message in str(err.value), str(err.value)


def test_gated_check_accepts_the_library_and_another_style(capsys):
    assert check_gated_cross_attention(GatedCrossAttentionBlock)
    assert check_gated_cross_attention(_variant(_right_other_style))
    assert "[ok]" in capsys.readouterr().out


def test_gated_check_todo_for_a_stub():
    def stub(self, x, memory):
        raise NotImplementedError("gate each sublayer")
    with pytest.raises(ExerciseError, match=r"\[todo\]"):
        check_gated_cross_attention(_variant(stub))


# ------------------------------------------------------------------ the answer-loss and choose-answer exercises
from course_lib.checks.vqa import check_answer_loss, check_choose_answer  # noqa: E402
import torch.nn.functional as F  # noqa: E402

LOSS_WRONG = {
    "last column": (lambda lg, p, a: F.cross_entropy(lg[:, -1], a), "LAST column"),
    "off by one": (lambda lg, p, a: F.cross_entropy(lg[torch.arange(len(p)), (p + 1).clamp(max=lg.shape[1] - 1)], a),
                   "off by one"),
    "sum": (lambda lg, p, a: F.cross_entropy(lg[torch.arange(len(p)), p], a, reduction="sum"), "summed"),
    "softmax first": (lambda lg, p, a: F.cross_entropy(lg[torch.arange(len(p)), p].softmax(-1), a), "softmax"),
    "per row": (lambda lg, p, a: F.cross_entropy(lg[torch.arange(len(p)), p], a, reduction="none"), "0-d tensor"),
    "a float": (lambda lg, p, a: float(F.cross_entropy(lg[torch.arange(len(p)), p], a)), "should be a tensor"),
}


@pytest.mark.parametrize("name", sorted(LOSS_WRONG))
def test_answer_loss_check_rejects(name):
    fn, message = LOSS_WRONG[name]
    with pytest.raises(ExerciseError) as err:
        check_answer_loss(fn)
    assert "[wrong]" in str(err.value) and message in str(err.value), str(err.value)


def test_answer_loss_check_accepts_another_style(capsys):
    def mine(logits, pos, answer):
        picked = torch.gather(logits, 1, pos.view(-1, 1, 1).expand(-1, 1, logits.shape[-1])).squeeze(1)
        logp = picked - picked.logsumexp(-1, keepdim=True)
        return -logp.gather(1, answer[:, None]).mean()
    assert check_answer_loss(mine)
    assert "[ok]" in capsys.readouterr().out


CHOOSE_WRONG = {
    "whole vocabulary": (lambda lg, al: lg.argmax(1), "whole vocabulary"),
    "positions not ids": (lambda lg, al: lg[:, al].argmax(1), "positions in `allowed`"),
    "argmin": (lambda lg, al: al[lg[:, al].argmin(1)], "argmin"),
}


@pytest.mark.parametrize("name", sorted(CHOOSE_WRONG))
def test_choose_answer_check_rejects(name):
    fn, message = CHOOSE_WRONG[name]
    with pytest.raises(ExerciseError) as err:
        check_choose_answer(fn)
    assert "[wrong]" in str(err.value) and message in str(err.value), str(err.value)


def test_choose_answer_check_accepts_another_style(capsys):
    def mine(logits, allowed):
        masked = torch.full_like(logits, float("-inf"))
        masked[:, allowed] = logits[:, allowed]
        return masked.argmax(dim=1)
    assert check_choose_answer(mine)
    assert "[ok]" in capsys.readouterr().out


def test_learner_hooks_are_what_runs(tiny):
    """The learner's loss trains, the learner's block builds the model, the learner's chooser scores."""
    recipe, train, test = tiny
    calls = {"loss": 0, "choose": 0, "block": 0}

    def loss(logits, pos, answer):
        calls["loss"] += 1
        return F.cross_entropy(logits[torch.arange(len(pos)), pos], answer)

    def choose(logits, allowed):
        calls["choose"] += 1
        return allowed[logits[:, allowed].argmax(1)]

    class Mine(GatedCrossAttentionBlock):
        def forward(self, x, memory, need_weights=False):
            calls["block"] += 1
            return super().forward(x, memory, need_weights)

    model = new_vqa_model("cross", recipe, train.vocab, gated_block=Mine)
    train_vqa(model, train, dict(recipe, describe_steps=0, steps=3), loss_fn=loss)
    vqa_accuracy(model, test, choose=choose)
    assert calls["loss"] == 3 and calls["choose"] >= 1 and calls["block"] > 0


# ------------------------------------------------------------------ the vision encoder and the prefix
def test_scene_encoder_merges_each_cells_codes():
    from course_lib.models.scene_encoder import SceneEncoder
    torch.manual_seed(0)
    enc = SceneEncoder(16, (8, 8), (4, 4), d_model=32, n_head=2, n_layer=0, n_classes=5).eval()
    codes = torch.randint(0, 16, (3, 64))
    out = enc(codes)
    assert out.shape == (3, 16, 32) and enc.cell_logits(codes).shape == (3, 16, 5)
    # without mixing blocks, cell (0, 1) depends on exactly its own 2x2 codes: 2,3 of rows 0 and 1
    changed = codes.clone()
    changed[:, [2, 3, 10, 11]] = (changed[:, [2, 3, 10, 11]] + 1) % 16
    diff = (enc(changed) - out).abs().amax(dim=(0, 2))
    assert diff[1] > 0 and bool((diff[torch.arange(16) != 1] == 0).all())
    # the order of the four codes matters (a concatenation, not a bag)
    swapped = codes.clone()
    swapped[:, [2, 3]] = codes[:, [3, 2]]
    assert not torch.allclose(enc(swapped)[:, 1], out[:, 1]) or bool((codes[:, 2] == codes[:, 3]).all())
    # with a bidirectional block, a change in the last cell reaches the first one
    mixed = SceneEncoder(16, (8, 8), (4, 4), d_model=32, n_head=2, n_layer=1).eval()
    later = codes.clone()
    later[:, 63] = (later[:, 63] + 1) % 16
    assert not torch.allclose(mixed(later)[:, 0], mixed(codes)[:, 0])


def test_scene_encoder_rejects_bad_inputs():
    from course_lib.models.scene_encoder import SceneEncoder
    with pytest.raises(ValueError, match="must divide code_grid"):
        SceneEncoder(16, (8, 8), (3, 3), d_model=8, n_head=2)
    enc = SceneEncoder(16, (8, 8), (4, 4), d_model=8, n_head=2)
    with pytest.raises(ValueError, match="64 codes per image"):
        enc(torch.zeros(2, 16, dtype=torch.long))
    with pytest.raises(ValueError, match="codes"):
        enc(torch.full((2, 64), 16, dtype=torch.long))
    with pytest.raises(ValueError, match="no head"):
        enc.cell_logits(torch.zeros(2, 64, dtype=torch.long))


def test_transformer_prefix_goes_before_the_text(tiny):
    recipe, train, _ = tiny
    model = new_vqa_model("early", recipe, train.vocab).eval()
    lm = model.transformer
    text, _ = question_sequences(train.question[:2], train.length[:2])
    prefix = torch.randn(2, 16, recipe["d_model"])
    logits = lm(text, prefix=prefix)
    assert logits.shape == (2, 16 + text.shape[1], len(train.vocab))
    # causal: the prefix's own logits do not depend on the text
    other = lm(text.flip(0), prefix=prefix)
    torch.testing.assert_close(logits[:, :16], other[:, :16])
    # with an empty prefix, the plain forward pass
    torch.testing.assert_close(lm(text, prefix=prefix[:, :0]), lm(text))
    with pytest.raises(ValueError, match="prefix must have shape"):
        lm(text, prefix=torch.randn(2, 16, 3))
    with pytest.raises(ValueError, match="not .*cache|cannot be used with a cache"):
        lm(text, cache=lm.new_cache(2), prefix=prefix)


def test_cell_labels_and_the_cell_loss(tiny):
    from course_lib.data.scenes import _scenes_list
    from course_lib.vqa import CELL_CLASSES, cell_labels, description_loss
    recipe, train, _ = tiny
    objects = _scenes_list(train.scenes)[0]
    labels = cell_labels([objects])[0]
    assert int((labels > 0).sum()) == len(objects)
    for o in objects:
        assert CELL_CLASSES[int(labels[o.row * 4 + o.col])] == f"{o.color} {o.shape} {o.size}"
    assert torch.equal(train.cells[0], labels)
    batch = tuple(t[:8] for t in train.describe_tensors())
    for kind in KINDS:
        model = new_vqa_model(kind, recipe, train.vocab)
        loss, parts = description_loss(model, batch)
        assert ("cells" in parts) == (kind != "blind")
        want = parts["words"] + parts.get("cells", 0.0)
        torch.testing.assert_close(loss.detach(), torch.as_tensor(want))
        assert description_loss(model, batch, cell_weight=0.0)[1].keys() == {"words"}


def test_cell_accuracy_reads_the_encoder_head(tiny):
    from course_lib.vqa import cell_accuracy
    recipe, train, _ = tiny
    model = new_vqa_model("cross", recipe, train.vocab)
    with torch.no_grad():                    # a head that always says "empty"
        model.encoder.head.weight.zero_()
        model.encoder.head.bias.zero_()
        model.encoder.head.bias[0] = 1.0
    acc = cell_accuracy(model, train)
    assert acc["empty"] == 1.0 and acc["objects"] == 0.0 and acc["color"] == 0.0
    with pytest.raises(ValueError, match="no vision encoder"):
        cell_accuracy(new_vqa_model("blind", recipe, train.vocab), train)


@pytest.mark.parametrize("kind", ["early", "cross"])
def test_a_training_step_reads_nothing_back_from_the_device(tiny, kind, as_on_a_gpu, monkeypatch):
    """VQA training (notebook 07), both fusions: the answer and pointing losses and the describe stage make
    no host read where reads cost a round trip (``as_on_a_gpu`` in conftest.py)."""
    from course_lib.vqa import description_loss
    recipe, train, _ = tiny
    model = new_vqa_model(kind, recipe, train.vocab).train()
    batch = tuple(t[:8] for t in train.tensors())
    for _ in range(2):
        loss, parts = vqa_loss(model, batch)
        loss.backward()
    description_loss(model, tuple(t[:8] for t in train.describe_tensors()))[0].backward()
    assert as_on_a_gpu == []
    monkeypatch.undo()                       # the CPU path (reads the mask) gives the same loss
    cpu_loss, cpu_parts = vqa_loss(model, batch)
    torch.testing.assert_close(loss, cpu_loss)
    assert parts.keys() == cpu_parts.keys()
