"""Spoken words from eSpeak NG: shapes, determinism across processes, disjoint splits, clear errors.

Every test that synthesises skips, with speech_available()'s one-line reason, where the
espeakng-loader wheel cannot be loaded (e.g. Linux aarch64).
"""
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from course_lib.data import speech
from course_lib.data.speech import (DIGIT_WORDS, HELD_OUT_ACCENTS, SAMPLE_RATE, SPEECH_SPLITS, TRAIN_ACCENTS, VARIANTS,
                                    VOICES, VoiceSetting, make_speech, pad_clips, speech_available, split_voices,
                                    synthesize, variant_split)

ROOT = Path(__file__).resolve().parents[1]
AVAILABLE, REASON = speech_available()
needs_espeak = pytest.mark.skipif(not AVAILABLE, reason=REASON)


@needs_espeak
def test_synthesize_shape_dtype_and_range():
    x = synthesize("seven", voice="en-us", variant="m3", pitch=40, rate=150)
    assert isinstance(x, np.ndarray) and x.dtype == np.float32 and x.ndim == 1
    assert 0.2 * SAMPLE_RATE < len(x) < 1.5 * SAMPLE_RATE  # one word
    assert -1.0 <= x.min() < -0.05 and 0.05 < x.max() <= 1.0  # audible, not clipped beyond [-1, 1]


@needs_espeak
def test_settings_change_the_sound():
    base = synthesize("three", voice="en", variant="f2", pitch=50, rate=175)
    slow = synthesize("three", voice="en", variant="f2", pitch=50, rate=100)
    assert len(slow) > 1.3 * len(base)  # slower speech is longer
    for other in (synthesize("three", voice="en", variant="f2", pitch=80, rate=175),
                  synthesize("three", voice="en", variant="m1", pitch=50, rate=175),
                  synthesize("three", voice="en-gb-scotland", variant="f2", pitch=50, rate=175),
                  synthesize("four", voice="en", variant="f2", pitch=50, rate=175)):
        n = min(len(other), len(base))
        assert not np.array_equal(other[:n], base[:n])


@needs_espeak
def test_voices_and_variants_exist_in_the_wheel():
    present = set(os.listdir(speech.variant_directory()))
    assert set(VARIANTS) <= present, sorted(set(VARIANTS) - present)
    assert len(VARIANTS) >= 80 and {"m1", "m7", "f1", "f5", "klatt"} <= set(VARIANTS)
    lang = Path(speech.variant_directory()).parents[1] / "lang" / "gmw"
    names = {line.split()[1].lower() for f in lang.iterdir() for line in f.read_text().splitlines()
             if line.startswith("language ")}
    assert set(VOICES) <= names, sorted(set(VOICES) - names)


_CHILD = """
import hashlib, sys
from course_lib.data.speech import synthesize
calls = [("seven", "en-us", "m3", 40, 150), ("zero", "en-029", "Storm", 70, 200), ("three", "en", "Andy", 50, 175),
         ("nine", "en-gb-scotland", "klatt4", 25, 130), ("two", "en-us-nyc", "f2", 60, 210), ("seven", "en-us", "m3", 40, 150)]
order = range(len(calls)) if sys.argv[1] == "forward" else reversed(range(len(calls)))
out = {}
for i in order:
    word, voice, variant, pitch, rate = calls[i]
    x = synthesize(word, voice=voice, variant=variant, pitch=pitch, rate=rate)
    out.setdefault(i, hashlib.sha256(x.tobytes()).hexdigest())
    assert out[i] == hashlib.sha256(x.tobytes()).hexdigest()
print(" ".join(out[i] for i in range(len(calls))))
"""


@needs_espeak
def test_bit_identical_across_processes():
    """Two separate processes synthesise the same settings in opposite orders: the same bytes. Within
    one process a repeated call (the last one) gives the first's bytes: no state leaks between clips."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", _CHILD, order], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for order in ("forward", "backward")]
    results = [p.communicate(timeout=60) for p in procs]
    for p, (_, err) in zip(procs, results):
        assert p.returncode == 0, err
    first, second = (out.split() for out, _ in results)
    assert first == second
    assert first[0] == first[-1] and len(set(first)) == 5
    here = hashlib.sha256(synthesize("three", voice="en", variant="Andy", pitch=50, rate=175).tobytes()).hexdigest()
    assert here == first[2]  # and in this process, after whatever ran before


def test_splits_are_disjoint_by_variant_and_accent():
    voices = {s: split_voices(s) for s in SPEECH_SPLITS}
    train, val, test = (set(voices[s][1]) for s in ("train", "val", "test"))
    assert not (train & val) and not (train & test) and not (val & test)
    assert train | val | test == set(VARIANTS)
    assert (len(train), len(val), len(test)) == (61, 13, 13)
    assert set(voices["test_accent"][1]) == test and set(voices["test_accent"][0]) == set(HELD_OUT_ACCENTS)
    assert not set(TRAIN_ACCENTS) & set(HELD_OUT_ACCENTS) and set(TRAIN_ACCENTS) | set(HELD_OUT_ACCENTS) == set(VOICES)
    assert all(variant_split(v) == "val" for v in val)


@needs_espeak
def test_make_speech_is_seeded_and_respects_the_split():
    a = make_speech(2, seed=3, split="val")
    b = make_speech(2, seed=3, split="val")
    c = make_speech(2, seed=4, split="val")
    assert len(a) == 20 and a.labels.dtype == np.int64 and a.words == DIGIT_WORDS
    assert sorted(a.labels.tolist()) == sorted(list(range(10)) * 2)
    assert a.settings == b.settings and all(np.array_equal(x, y) for x, y in zip(a.clips, b.clips))
    assert a.settings != c.settings
    accents, variants = split_voices("val")
    assert all(s.voice in accents and s.variant in variants for s in a.settings)
    held = make_speech(1, seed=0, split="test_accent", words=("red", "blue"))
    assert held.words == ("red", "blue") and all(s.voice in HELD_OUT_ACCENTS for s in held.settings)
    batch = pad_clips(a.clips)
    assert batch.shape == (20, max(map(len, a.clips))) and batch.dtype == torch.float32
    assert torch.equal(batch[0, :len(a.clips[0])], torch.from_numpy(a.clips[0]))
    assert make_speech(0, split="test").clips == []


@needs_espeak
def test_worker_processes_give_the_same_clips_bit_for_bit():
    """make_speech's workers (fresh interpreters, each given a contiguous chunk) return exactly the
    clips of one process, in the same order, as float32 like synthesize's."""
    one = make_speech(2, seed=5, split="train", workers=1)
    three = make_speech(2, seed=5, split="train", workers=3)
    assert one.settings == three.settings and len(three.clips) == 20
    assert all(b.dtype == np.float32 and np.array_equal(a, b) for a, b in zip(one.clips, three.clips))


def test_speech_workers_default_and_explicit(monkeypatch):
    monkeypatch.setattr(speech, "_available_cores", lambda: 16)
    assert speech.speech_workers(speech.PARALLEL_MIN_CLIPS - 1) == 1      # a worker's start-up would cost more
    assert speech.speech_workers(speech.PARALLEL_MIN_CLIPS) == 4          # the usable cores, at most 4
    assert speech.speech_workers(10, workers=3) == 3
    monkeypatch.setattr(speech, "_available_cores", lambda: 1)
    assert speech.speech_workers(10 ** 6) == 1


@needs_espeak
def test_a_failing_worker_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(speech, "_WORKER", "import sys; sys.stderr.write('espeak exploded'); sys.exit(3)")
    with pytest.raises(RuntimeError, match=r"speech synthesis worker failed \(exit code 3\): espeak exploded"):
        make_speech(1, split="val", workers=2)


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(word=7), TypeError, "word must be a string"),
    (dict(word=""), ValueError, "word must hold at least one letter"),
    (dict(word="seven<audio>"), ValueError, "word must be English letters"),
    (dict(word="x" * 41), ValueError, "word must be at most 40"),
    (dict(voice="en-au"), ValueError, r"voice must be one of \["),
    (dict(voice="en-US"), ValueError, "Did you mean 'en-us'"),
    (dict(variant="robosoft"), ValueError, "variant must be one of"),
    (dict(variant="nonexistent"), ValueError, "variant must be one of"),
    (dict(pitch=101), ValueError, "pitch must be <= 100; got 101"),
    (dict(pitch=50.0), TypeError, "pitch must be an int"),
    (dict(rate=20), ValueError, "rate must be >= 80; got 20"),
    (dict(rate=True), TypeError, "rate must be an int"),
])
def test_synthesize_rejects_bad_arguments(kwargs, exc, match):
    kwargs = {"word": "seven", **kwargs}
    word = kwargs.pop("word")
    with pytest.raises(exc, match=match):
        synthesize(word, **kwargs)  # checked before the library is touched: no skip needed


@pytest.mark.parametrize("args, kwargs, exc, match", [
    ((-1,), {}, ValueError, "n_per_word must be >= 0"),
    ((2.0,), {}, TypeError, "n_per_word must be an int"),
    ((1,), dict(split="tests"), ValueError, "split must be one of .* Did you mean 'test'"),
    ((1,), dict(seed=-2), ValueError, "seed must be >= 0"),
    ((1,), dict(words="seven"), TypeError, "words must be a list or tuple of strings"),
    ((1,), dict(words=()), ValueError, "words must hold at least one word"),
    ((1,), dict(words=("one", 2)), TypeError, r"words\[1\] must be a string"),
    ((1,), dict(words=("one", "one")), ValueError, "words must be different"),
    ((1,), dict(workers=0), ValueError, "workers must be >= 1; got 0"),
    ((1,), dict(workers=2.0), TypeError, "workers must be an int"),
])
def test_make_speech_rejects_bad_arguments(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        make_speech(*args, **kwargs)


def test_other_bad_arguments():
    with pytest.raises(ValueError, match="variant must be one of"):
        variant_split("whisper")
    with pytest.raises(ValueError, match="voice must be one of"):
        VoiceSetting("fr", None, 50, 175)
    with pytest.raises(ValueError, match=r"n_samples must be at least the longest clip's length; got 3 but clips\[1\]"):
        pad_clips([np.zeros(2, np.float32), np.zeros(5, np.float32)], 3)
    with pytest.raises(TypeError, match=r"clips\[0\] must be a 1-D"):
        pad_clips([np.zeros((2, 2))])


def test_unavailable_library_gives_a_one_line_reason():
    """Where the wheel does not import, speech_available says why in one line and synthesis raises it
    (run in a child process where importing espeakng_loader fails, as on a platform without a wheel)."""
    child = (
        "import sys; sys.modules['espeakng_loader'] = None\n"  # makes `import espeakng_loader` raise ImportError
        "from course_lib.data.speech import speech_available, synthesize\n"
        "ok, reason = speech_available(); print(ok); print(reason)\n"
        "try:\n    synthesize('seven')\nexcept RuntimeError as err:\n    print('raised', err)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    ok, reason, raised = r.stdout.splitlines()
    assert ok == "False" and "pip install espeakng-loader==" in reason
    assert raised == f"raised {reason}"


@needs_espeak
def test_warns_when_another_module_keeps_the_library_loaded():
    import ctypes
    import _ctypes

    import espeakng_loader
    engine = speech._engine()
    held = ctypes.CDLL(espeakng_loader.get_library_path())  # as espeakng_loader.load_library() would
    try:
        engine.warned = False
        with pytest.warns(RuntimeWarning, match="may not be bit-for-bit reproducible"):
            synthesize("one")
    finally:
        _ctypes.dlclose(held._handle)
        engine.warned = False


@needs_espeak
def test_breathy_klatt_variants_repeat_bit_for_bit():
    """caleb and Reed draw their breath noise from libc's rand(): seeded per clip, every repeat is identical,
    even after other clips and other calls to rand() in between."""
    import ctypes
    import ctypes.util
    libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
    for variant in ("caleb", "Reed"):
        first = synthesize("seven", voice="en-us", variant=variant, pitch=50, rate=170)
        synthesize("two", voice="en-us", variant="caleb", pitch=40, rate=150)
        libc.rand()
        again = synthesize("seven", voice="en-us", variant=variant, pitch=50, rate=170)
        assert np.array_equal(first, again), variant
