"""The omni model (issue 16): vocabulary layout with audio, task layouts, constraints, a tiny training run.

Everything here runs on synthetic codes (no eSpeak, no tokenizers) except the last test, which
synthesises a few clips and skips with speech_available()'s reason where the wheel is missing.
"""
import pytest
import torch

from course_lib.models.transformer import MixedTransformer, TransformerConfig
from course_lib.omni import (DIGIT_WORDS, S2I, S2T, T2S, I2S, TASKS, OmniData, block_size_for,
                             build_omni_vocabulary, digit_word_ids, new_omni_model, omni_loss, omni_recipe,
                             omni_sequences, omni_weights, target_constraint, target_length, task_prompts, train_omni)
from course_lib.vocabulary import (BOA, BOI, BOS, BOT, EOA, EOI, EOS, EOT, PAD, SPECIAL_TOKENS, MixedVocabulary,
                                   WordTokenizer)

K_IMG, K_AUD, GRID, T_AUD = 16, 12, (3, 3), 5


def vocab():
    return build_omni_vocabulary(K_IMG, GRID, K_AUD)


def test_vocabulary_layout_with_audio():
    v = vocab()
    assert v.special_tokens[:8] == SPECIAL_TOKENS and v.special_tokens[BOA] == "<boa>" and v.special_tokens[EOA] == "<eoa>"
    assert v.word_offset == 10 and v.image_offset == 10 + 14 and v.audio_offset == v.image_offset + K_IMG
    assert len(v) == v.audio_offset + K_AUD
    ids = torch.arange(len(v))
    mod = v.modality(ids)
    assert (mod[:7] == 0).all() and mod[7] == 1 and (mod[8:10] == 0).all() and (mod[10:24] == 1).all() and (mod[24:40] == 2).all() and (mod[40:] == 3).all()
    assert v.token_name(BOA) == "<boa>" and v.token_name(v.audio_offset + 3) == "<audio 3>"
    assert v.token_name(v.image_offset + 2) == "<code 2>"
    assert v.is_image(ids).sum() == K_IMG and v.is_audio(ids).sum() == K_AUD
    codes = torch.tensor([[0, 11, 5]])
    assert torch.equal(v.ids_to_audio_codes(v.audio_codes_to_ids(codes)), codes)
    with pytest.raises(ValueError):
        v.audio_codes_to_ids(torch.tensor([[K_AUD]]))
    with pytest.raises(ValueError):
        v.ids_to_codes(torch.full((1, 9), v.audio_offset))   # audio ids are not image codes
    assert v.decode_text(v.encode_text("say seven")) == "say seven"


def test_vocabulary_without_audio_unchanged():
    v = MixedVocabulary(WordTokenizer(["a", "b"]), 4, (2, 2))
    assert (v.word_offset, v.image_offset, len(v), v.audio_offset) == (8, 10, 14, None)
    assert not v.is_audio(torch.arange(14)).any() and v.is_image(torch.arange(14)).sum() == 4
    with pytest.raises(ValueError):
        v.allowed_mask("audio")
    m = MixedTransformer(TransformerConfig(vocab_size=14, image_offset=10, word_offset=8, grid=(2, 2)))
    assert m.mod_emb.num_embeddings == 3


def batch_inputs(v, B=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    digits = torch.randint(10, (B,), generator=g)
    img = v.image_offset + torch.randint(K_IMG, (B, 9), generator=g)
    aud = v.audio_offset + torch.randint(K_AUD, (B, T_AUD), generator=g)
    return digits, img, aud


def test_task_layouts():
    v = vocab()
    digits, img, aud = batch_inputs(v)
    word = digit_word_ids(v)[digits]
    p, t = task_prompts(v, T2S, digits, img, aud)
    assert p[0].tolist() == [BOS, BOT, v.encode_text("say")[0], int(word[0]), EOT, BOA]
    assert torch.equal(t[:, :T_AUD], aud) and (t[:, T_AUD] == EOA).all() and (t[:, -1] == EOS).all()
    p, t = task_prompts(v, S2T, digits, img, aud)
    assert p[0].tolist() == [BOS, BOA, *aud[0].tolist(), EOA, BOT, v.encode_text("write")[0]]
    assert t[0].tolist() == [int(word[0]), EOT, EOS]
    p, t = task_prompts(v, I2S, digits, img, aud)     # image -> word -> speech (inner monologue)
    assert p[0].tolist() == [BOS, BOI, *img[0].tolist(), EOI, BOT, v.encode_text("read")[0]]
    assert t[0].tolist() == [int(word[0]), EOT, BOA, *aud[0].tolist(), EOA, EOS]
    p, t = task_prompts(v, S2I, digits, img, aud)
    assert p[0].tolist() == [BOS, BOA, *aud[0].tolist(), EOA, BOT, v.encode_text("draw")[0]]
    assert t[0].tolist() == [int(word[0]), EOT, BOI, *img[0].tolist(), EOI, EOS]
    for task in range(4):
        assert task_prompts(v, task, digits, img, aud)[1].shape[1] == target_length(v, task, T_AUD) + 1
    block = block_size_for(v, T_AUD)
    task = torch.arange(8) % 4
    seq = omni_sequences(v, task, digits, img, aud, block)
    assert seq.shape == (8, block)
    for b in range(8):
        row = torch.cat(task_prompts(v, int(task[b]), digits[b:b + 1], img[b:b + 1], aud[b:b + 1]), 1)[0]
        assert torch.equal(seq[b, :len(row)], row) and (seq[b, len(row):] == PAD).all()
    assert seq[task == I2S].shape[1] == block and (seq[task == I2S][:, -1] == EOS).all()   # the longest fills the block
    # every span holds its own modality only
    mod = v.modality(seq)
    inside_audio = (seq == BOA).cumsum(1) - (seq == EOA).cumsum(1)
    assert ((mod == 3) == ((inside_audio == 1) & (seq != BOA))).all()


def test_weights_sum_to_one_and_favor_target():
    v = vocab()
    block = block_size_for(v, T_AUD)
    w = omni_weights(v, T_AUD, block, cond_weight=0.125, word_weight=0.25)
    assert torch.allclose(w.sum(1), torch.ones(4))
    digits, img, aud = batch_inputs(v, 4)
    for task in range(4):
        p, t = task_prompts(v, task, digits[:1], img[:1], aud[:1])
        P, L = p.shape[1], t.shape[1]
        assert torch.allclose(w[task, P - 1:P - 1 + L].sum(), torch.tensor(0.875))
        assert (w[task, P - 1 + L:] == 0).all()
        if task in (I2S, S2I):
            assert torch.isclose(w[task, P - 1], torch.tensor(0.875 * 0.25))   # the monologue word


def test_constraints_keep_spans_in_modality_and_length():
    v = vocab()
    digits, img, aud = batch_inputs(v)
    all_ids = torch.arange(len(v))
    for task in range(4):
        _, target = task_prompts(v, task, digits, img, aud)
        allowed = target_constraint(v, task, T_AUD)
        assert target.shape[1] - 1 == target_length(v, task, T_AUD)
        for step in range(target.shape[1] - 1):      # the true target is allowed, only its modality is
            mask = allowed(step, None)
            assert mask[target[:, step]].all()
            assert (v.modality(all_ids[mask]) == v.modality(target[0, step])).all()
            if v.modality(target[0, step]) == 0:
                assert mask.sum() == 1               # markers are forced
    text = target_constraint(v, S2T, T_AUD)(0, None)
    assert sorted(v.token_name(int(i)) for i in text.nonzero().flatten()) == sorted(DIGIT_WORDS)
    assert target_constraint(v, S2T, T_AUD)(1, None).nonzero().flatten().tolist() == [EOT]


def tiny_data(v, seed=0):
    g = torch.Generator().manual_seed(1)
    labels = torch.arange(40) % 10
    # codes that depend on the digit, so the tasks are learnable
    img = (labels[:, None, None] + torch.randint(0, 2, (40, 3, 3), generator=g)) % K_IMG
    aud = (labels[:, None] + torch.randint(0, 2, (40, T_AUD), generator=g)) % K_AUD
    return OmniData(v, img, labels, aud, labels, seed=seed)


def test_data_pairs_same_digit_and_balances_tasks():
    v = vocab()
    data = tiny_data(v)
    seq, task = data.batch(16)
    assert torch.bincount(task, minlength=4).tolist() == [4, 4, 4, 4]
    assert seq.shape == (16, data.block_size)
    a, b = data.batch(16)
    data2 = tiny_data(v)
    assert torch.equal(data2.batch(16)[0], seq) and torch.equal(data2.batch(16)[0], a)   # deterministic


def test_smoke_training_lowers_loss_and_is_deterministic():
    torch.set_num_threads(1)
    v = vocab()
    recipe = {**omni_recipe("smoke"), "steps": 60, "lr": 3e-3}
    losses, states = [], []
    for _ in range(2):
        data = tiny_data(v)
        model = new_omni_model(recipe, v, data.block_size)
        with torch.no_grad():
            before = float(omni_loss(model, tiny_data(v, seed=5).batch(64), data.weights, data.targets)[0])
        train_omni(model, data, recipe, device="cpu")
        with torch.no_grad():
            after = float(omni_loss(model, tiny_data(v, seed=5).batch(64), data.weights, data.targets)[0])
        losses.append((before, after))
        states.append(model.state_dict())
    assert losses[0][1] < 0.7 * losses[0][0], losses
    assert losses[0] == losses[1]
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert model.mod_emb.num_embeddings == 4


def test_real_clips_to_sequences_or_skip():
    """eSpeak clips -> log-mels -> (untrained) audio tokenizer -> omni sequences, end to end."""
    from course_lib.data.speech import speech_available
    ok, reason = speech_available()
    if not ok:
        pytest.skip(reason)
    from course_lib.audio_tokenizer import AudioTokenizer, audio_tokenizer_recipe
    from course_lib.speech_features import speech_log_mels
    torch.manual_seed(0)
    mels, labels = speech_log_mels("train", 1, seed=0)
    assert sorted(labels.tolist()) == list(range(10))
    tok = AudioTokenizer.from_hparams(audio_tokenizer_recipe("smoke"))
    codes = tok.encode(mels)
    v = build_omni_vocabulary(K_IMG, GRID, tok.num_codes)
    img = torch.randint(K_IMG, (10, 3, 3))
    data = OmniData(v, img, torch.arange(10), codes, labels)
    seq, task = data.batch(8)
    assert data.block_size == 9 + 10 + tok.num_tokens and seq.shape == (8, data.block_size)
    assert (v.modality(seq) == 3).sum(1).tolist() == [0 if t == -1 else tok.num_tokens for t in task.tolist()]


def test_task_mix_exact_per_batch():
    data = OmniData(vocab(), torch.zeros(10, 3, 3, dtype=torch.long), torch.arange(10),
                    torch.zeros(10, T_AUD, dtype=torch.long), torch.arange(10), task_mix=(0.25, 0.1, 0.25, 0.4))
    assert torch.bincount(data.batch(20)[1], minlength=4).tolist() == [5, 2, 5, 8]
    with pytest.raises(ValueError):
        OmniData(vocab(), torch.zeros(10, 3, 3, dtype=torch.long), torch.arange(10),
                 torch.zeros(10, T_AUD, dtype=torch.long), torch.arange(10), task_mix=(0.5, 0.5))


# ----------------------------------------------------------------------------- the audio-span exercise
from course_lib.checks import ExerciseError  # noqa: E402
from course_lib.checks.omni import check_audio_span_constraint  # noqa: E402
from course_lib.omni import audio_span_allowed  # noqa: E402


def span_wrong(fn, match):
    """check_audio_span_constraint rejects ``fn`` with a message matching ``match``."""
    with pytest.raises(ExerciseError, match=match) as err:
        check_audio_span_constraint(fn)
    assert str(err.value).startswith("[wrong] the audio-span constraint: for a vocabulary of")
    return str(err.value)


def span_by_comparison(vocab, i, n_audio):
    """A right answer written differently: comparisons on the ids, no slicing, no library mask."""
    ids = torch.arange(len(vocab))
    return ids >= vocab.audio_offset if i != n_audio else ids == EOA


def _slice(vocab, lo, hi):
    m = torch.zeros(len(vocab), dtype=torch.bool)
    m[lo:hi] = True
    return m


def test_check_audio_span_accepts_right_answers(capsys):
    assert check_audio_span_constraint(span_by_comparison)
    assert check_audio_span_constraint(audio_span_allowed)
    out = capsys.readouterr().out
    assert out.startswith("[ok] the audio-span constraint: positions 0..21: the 256 audio codes only; position 22")


def test_check_audio_span_names_the_mistake():
    eoa = lambda v: _slice(v, EOA, EOA + 1)
    codes = lambda v: _slice(v, v.audio_offset, len(v))
    # <eoa> one step early: the clip holds n_audio - 1 codes
    span_wrong(lambda v, i, n: codes(v) if i < n - 1 else eoa(v), match="closed one code too early.*off by one")
    # <eoa> one step late: codes still allowed at i == n_audio
    span_wrong(lambda v, i, n: codes(v) if i <= n else eoa(v), match="still allow the audio codes.*off by one")
    # <eoa> allowed together with the codes: variable length
    span_wrong(lambda v, i, n: codes(v) | eoa(v) if i < n else eoa(v), match="together with the audio codes")
    # image codes instead of audio codes
    span_wrong(lambda v, i, n: v.allowed_mask("image") if i < n else eoa(v), match="IMAGE codes")
    # an exclusive end one id too early
    span_wrong(lambda v, i, n: _slice(v, v.audio_offset, len(v) - 1) if i < n else eoa(v),
               match="last audio code .* is missing")
    # a range that starts at the last image code
    span_wrong(lambda v, i, n: _slice(v, v.audio_offset - 1, len(v)) if i < n else eoa(v), match="starts one id early")
    # <boa> closes the span
    span_wrong(lambda v, i, n: codes(v) if i < n else _slice(v, BOA, BOA + 1), match="OPENS an audio span")
    # the allowed ids instead of a mask, and a float mask
    span_wrong(lambda v, i, n: torch.arange(v.audio_offset, len(v)) if i < n else torch.tensor([EOA]),
               match="look like the allowed ids")
    span_wrong(lambda v, i, n: codes(v).float() if i < n else eoa(v).float(), match="dtype torch.float32")
    # anything else: the ids named
    msg = span_wrong(lambda v, i, n: codes(v) | _slice(v, 0, 1) if i < n else eoa(v), match="allows 1 id")
    assert "0 <pad>" in msg


def test_your_audio_span_drives_the_decoding():
    v = vocab()
    for task in range(4):
        default, yours = target_constraint(v, task, T_AUD), target_constraint(v, task, T_AUD,
                                                                            audio_span=span_by_comparison)
        for step in range(target_length(v, task, T_AUD) + 2):
            assert torch.equal(default(step, None), yours(step, None)), (TASKS[task], step)
    with pytest.raises(TypeError, match=r"audio_span\(vocab, 0, 5\) must have dtype torch.bool"):
        target_constraint(v, T2S, T_AUD, audio_span=lambda vv, i, n: torch.ones(len(vv)))
    with pytest.raises(TypeError, match="audio_span must be a function"):
        target_constraint(v, T2S, T_AUD, audio_span=3)


# ----------------------------------------------------------------------------- guidance for speech -> image
def _toy_pairs():
    """40 (digit, image codes, audio codes) triples whose codes say the digit, up to noise."""
    g = torch.Generator().manual_seed(1)
    labels = torch.arange(40) % 10
    img = (labels[:, None, None] + torch.randint(0, 2, (40, 3, 3), generator=g)) % K_IMG
    aud = (labels[:, None] + torch.randint(0, 2, (40, T_AUD), generator=g)) % K_AUD
    return labels, img, aud


def test_unconditional_drawing_rows_layout_weights_and_share():
    from course_lib.omni import UNCOND_DRAW, unconditional_draw_prompt
    v = vocab()
    labels, img, aud = _toy_pairs()
    data = OmniData(v, img, labels, aud, labels, task_mix=(0.0, 0.0, 0.0, 1.0), p_uncond_draw=0.25, seed=0)
    seq, task = data.batch(400)
    n_uncond = int((task == UNCOND_DRAW).sum())
    assert set(task.tolist()) == {S2I, UNCOND_DRAW} and 60 < n_uncond < 140   # ~25% of the drawings
    row = seq[task == UNCOND_DRAW][0]
    n_img = v.n_image_tokens
    assert row[:5].tolist() == unconditional_draw_prompt(v, 1)[0].tolist() == [BOS, BOT, v.encode_text("draw")[0], EOT, BOI]
    assert (v.modality(row[5:5 + n_img]) == 2).all()                      # the image, nothing heard, no word
    assert row[5 + n_img:7 + n_img].tolist() == [EOI, EOS] and (row[7 + n_img:] == PAD).all()
    assert data.weights.shape[0] == 6 and torch.allclose(data.weights.sum(1), torch.ones(6))
    w = data.weights[UNCOND_DRAW]
    assert (w[4:4 + n_img + 2] > 0).all() and (w[4 + n_img + 2:] == 0).all()
    assert data.targets[UNCOND_DRAW].sum() == n_img + 2
    loss, parts = omni_loss(new_omni_model(omni_recipe("smoke"), v, data.block_size), (seq, task),
                            data.weights, data.targets)
    assert torch.isfinite(loss) and set(parts) == set(TASKS)
    plain = OmniData(v, img, labels, aud, labels, task_mix=(0.0, 0.0, 0.0, 1.0), seed=0)
    assert (plain.batch(100)[1] == S2I).all()                              # p_uncond_draw 0: none


def test_unconditional_saying_rows_layout_weights_and_share():
    from course_lib.omni import UNCOND_DRAW, UNCOND_SAY, unconditional_prompt
    v = vocab()
    labels, img, aud = _toy_pairs()
    data = OmniData(v, img, labels, aud, labels, task_mix=(0.5, 0.0, 0.0, 0.5), p_uncond_say=0.25, seed=0)
    seq, task = data.batch(400)
    n_uncond = int((task == UNCOND_SAY).sum())
    assert set(task.tolist()) == {T2S, S2I, UNCOND_SAY} and 25 < n_uncond < 75   # ~25% of the 200 utterances
    row = seq[task == UNCOND_SAY][0]
    assert row[:5].tolist() == unconditional_prompt(v, T2S, 1)[0].tolist() == [BOS, BOT, v.encode_text("say")[0], EOT, BOA]
    assert (v.modality(row[5:5 + T_AUD]) == 3).all()                      # the speech, no digit word before it
    assert row[5 + T_AUD:7 + T_AUD].tolist() == [EOA, EOS] and (row[7 + T_AUD:] == PAD).all()
    w = data.weights[UNCOND_SAY]
    assert torch.isclose(w.sum(), torch.tensor(1.0)) and (w[4:4 + T_AUD + 2] > 0).all() and (w[4 + T_AUD + 2:] == 0).all()
    assert data.targets[UNCOND_SAY].sum() == T_AUD + 2 and not (task == UNCOND_DRAW).any()
    with pytest.raises(ValueError, match="guided task"):
        unconditional_prompt(v, S2T, 2)


def _spy_on_generate(monkeypatch) -> list:
    """Record (prompt length, steps, guidance_scale, uncond_prompt) of every omni.generate call."""
    import course_lib.omni as omni
    calls, real = [], omni.generate

    def spy(model_, prompt, steps, **kw):
        calls.append((prompt.shape[1], steps, kw.get("guidance_scale", 1.0), kw.get("uncond_prompt")))
        return real(model_, prompt, steps, **kw)
    monkeypatch.setattr(omni, "generate", spy)
    return calls


def test_speak_with_guidance_guides_the_audio_codes_only(monkeypatch):
    from course_lib.omni import speak
    v = vocab()
    data = tiny_data(v)
    model = new_omni_model({**omni_recipe("smoke"), "steps": 1}, v, data.block_size).eval()
    digits = torch.arange(6) % 10
    plain = speak(model, v, digits=digits, n_audio=T_AUD, temperature=0.0)
    assert torch.equal(plain, speak(model, v, digits=digits, n_audio=T_AUD, temperature=0.0, guidance_scale=1.0))
    calls = _spy_on_generate(monkeypatch)
    guided = speak(model, v, digits=digits, n_audio=T_AUD, temperature=0.0, guidance_scale=2.0)
    assert guided.shape == (6, T_AUD) and guided.min() >= 0 and guided.max() < K_AUD
    [(p, s, gs, u)] = calls                                               # no word first: straight to the codes
    assert p == 6 and s == T_AUD and gs == 2.0 and u[0].tolist() == [BOS, BOT, v.encode_text("say")[0], EOT, BOA]
    g0 = speak(model, v, digits=digits, n_audio=T_AUD, temperature=0.0, guidance_scale=0.0)   # scale 0: unconditional
    assert (g0 == g0[:1]).all()                                           # the same utterance whatever the digit
    with pytest.raises(ValueError, match="guidance_scale != 1 is for saying"):
        speak(model, v, image_codes=torch.zeros(2, *GRID, dtype=torch.long), n_audio=T_AUD, guidance_scale=2.0)


def test_draw_heard_with_guidance_writes_the_word_then_a_guided_image(monkeypatch):
    from course_lib.omni import draw_heard
    import course_lib.omni as omni
    v = vocab()
    data = tiny_data(v)
    model = new_omni_model({**omni_recipe("smoke"), "steps": 1}, v, data.block_size).eval()
    codes = torch.randint(K_AUD, (6, T_AUD))
    plain = draw_heard(model, v, codes, temperature=0.0)
    same = draw_heard(model, v, codes, temperature=0.0, guidance_scale=1.0)
    assert torch.equal(plain, same) and plain.shape == (6, *GRID)
    calls = _spy_on_generate(monkeypatch)
    guided = draw_heard(model, v, codes, temperature=0.0, guidance_scale=3.0)
    assert guided.shape == (6, *GRID) and guided.min() >= 0 and guided.max() < K_IMG
    (p1, s1, g1, u1), (p2, s2, g2, u2) = calls
    assert (s1, g1, u1) == (3, 1.0, None)                                  # word, <eot>, <boi> unguided
    assert p2 == p1 + 3 and s2 == v.n_image_tokens and g2 == 3.0 and u2.shape == (6, 5)
    with pytest.raises(ValueError, match="drawing .task s2i. and saying"):
        omni._guided_start(v, S2T, T_AUD)
    with pytest.raises(ValueError, match="guidance_scale"):
        draw_heard(model, v, codes, guidance_scale=-1.0)


def test_a_training_step_reads_nothing_back_from_the_device(as_on_a_gpu):
    """Omni training (notebook 08): drawing a batch on the data's device, the forward pass and the
    weighted loss make no host read where reads cost a round trip (``as_on_a_gpu`` in conftest.py)."""
    v = vocab()
    data = tiny_data(v)
    model = new_omni_model(omni_recipe("smoke"), v, data.block_size).train()
    data.batch(16)                           # the first batch of a size splits task_mix once, on the host
    as_on_a_gpu.clear()                      # building the data (checked once, on the host) is not the step
    for _ in range(2):
        loss, _ = omni_loss(model, data.batch(16), data.weights, data.targets)
        loss.backward()
    assert as_on_a_gpu == []


def test_read_back_scores_the_digit_words_after_the_models_own_reading_prompts():
    from course_lib.omni import read_back
    v = vocab()
    data = tiny_data(v)
    model = new_omni_model({**omni_recipe("smoke"), "steps": 1}, v, data.block_size).eval()
    clips = torch.randint(K_AUD, (5, T_AUD))
    images = torch.randint(K_IMG, (4, *GRID))
    heard, seen = read_back(model, v, audio_codes=clips), read_back(model, v, image_codes=images)
    assert heard.shape == (5, 10) and seen.shape == (4, 10) and heard.dtype == torch.float32
    # the same logits as the model's next-token scores after [BOS BOA audio EOA BOT write], digit words only
    prompt, _ = task_prompts(v, S2T, torch.zeros(5, dtype=torch.long),
                             torch.full((5, 9), v.image_offset), v.audio_codes_to_ids(clips))
    expected = model(prompt)[:, -1, digit_word_ids(v)]
    assert torch.allclose(heard, expected, atol=1e-5)
    assert torch.allclose(read_back(model, v, audio_codes=clips, batch_size=2), heard, atol=1e-5)
    with pytest.raises(ValueError, match="exactly one of audio_codes= .clips. or image_codes="):
        read_back(model, v)
    with pytest.raises(ValueError, match="exactly one of"):
        read_back(model, v, audio_codes=clips, image_codes=images)


def test_pick_best_keeps_the_candidate_read_most_surely_as_the_digit_asked(monkeypatch):
    import course_lib.omni as omni
    v = vocab()
    model = object()
    cands = torch.arange(2 * 3 * T_AUD).view(2, 3, T_AUD)           # P=2 prompts, n=3 candidates each
    logits = torch.zeros(6, 10)
    logits[1, 4] = 5.0                                              # prompt 0: candidate 1 reads as "four"
    logits[0, 4], logits[0, 7] = 5.0, 9.0                           # candidate 0: a larger logit, but for "seven"
    logits[5, 2] = 3.0                                              # prompt 1: candidate 2 reads as "two"
    seen = []
    monkeypatch.setattr(omni, "read_back", lambda m, vv, audio_codes=None, image_codes=None:
                        seen.append(audio_codes) or logits)
    best = omni.pick_best(model, v, cands, torch.tensor([4, 2]))
    assert torch.equal(best, torch.stack([cands[0, 1], cands[1, 2]]))
    assert torch.equal(seen[0], cands.flatten(0, 1))                # every candidate read, prompt by prompt
    with pytest.raises(ValueError, match=r"candidates must be \(P, n, T'\) audio codes or \(P, n, h, w\)"):
        omni.pick_best(model, v, cands[0], torch.tensor([4]))


def test_speak_and_draw_with_candidates_keep_one_of_their_own_candidates():
    from course_lib.omni import draw_heard, pick_best, speak, transcribe
    v = vocab()
    data = tiny_data(v)
    model = new_omni_model({**omni_recipe("smoke"), "steps": 1}, v, data.block_size).eval()
    digits = torch.tensor([3, 7, 1])
    all_said = speak(model, v, digits=digits.repeat_interleave(4), n_audio=T_AUD,
                     generator=torch.Generator().manual_seed(5)).view(3, 4, T_AUD)
    said = speak(model, v, digits=digits, n_audio=T_AUD, generator=torch.Generator().manual_seed(5), candidates=4)
    assert torch.equal(said, pick_best(model, v, all_said, digits))
    assert all(any(torch.equal(said[p], all_said[p, j]) for j in range(4)) for p in range(3))
    clips = torch.randint(K_AUD, (3, T_AUD))
    all_drawn = draw_heard(model, v, clips.repeat_interleave(2, 0), generator=torch.Generator().manual_seed(1)).view(3, 2, *GRID)
    drawn = draw_heard(model, v, clips, generator=torch.Generator().manual_seed(1), candidates=2)
    assert torch.equal(drawn, pick_best(model, v, all_drawn, transcribe(model, v, clips)))
    images = torch.randint(K_IMG, (2, *GRID))                       # reading aloud: the digit the model reads
    read = speak(model, v, image_codes=images, n_audio=T_AUD, generator=torch.Generator().manual_seed(2), candidates=3)
    assert read.shape == (2, T_AUD)
    with pytest.raises(ValueError, match="candidates must be >= 1; got 0"):
        speak(model, v, digits=digits, n_audio=T_AUD, candidates=0)
    with pytest.raises(ValueError, match="candidates must be >= 1; got 0"):
        draw_heard(model, v, clips, candidates=0)
