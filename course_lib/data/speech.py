"""Spoken words, synthesised offline and reproducibly with eSpeak NG: a data set for speech as a token modality.

The voices are **synthetic formant voices** (eSpeak NG's Klatt-style synthesiser), not recordings of
people: clear, varied and free, but they sound robotic next to human speech.

The synthesiser is the shared library shipped inside the ``espeakng-loader`` wheel (pinned in
pyproject.toml), driven with ``ctypes``: ``espeak_Initialize`` in synchronous mode, a synth callback
collecting 16-bit samples at 22,050 Hz. eSpeak NG is GPL-3: the course depends on the wheel at run
time and never copies its library or data into the repository. Where the wheel cannot be imported or
its library cannot be loaded (e.g. no wheel for Linux aarch64), :func:`speech_available` returns
``(False, reason)`` and the synthesis functions raise ``RuntimeError`` with that reason.

Shapes and types:

* :func:`synthesize` -> one clip, ``np.ndarray`` float32 of shape ``(n_samples,)`` in [-1, 1] at
  ``SAMPLE_RATE`` (22,050 Hz); a digit word lasts ~0.3-0.8 s (with eSpeak's ~10 ms of leading and
  short trailing silence kept).
* :func:`make_speech` -> :class:`SpeechSet`: ``clips`` (list of N such arrays, lengths differ),
  ``labels`` (int64 ``(N,)``, indices into ``words``) and ``settings`` (N :class:`VoiceSetting`).
* :func:`pad_clips` -> a ``torch.Tensor`` float32 ``(N, n_samples)``, zero-padded at the end.

**Determinism.** The library keeps state between calls that ``espeak_Terminate`` does not reset
(measured: the same call gave different samples the 2nd and 3rd time in one process, from the first
voiced sample on), and loading a variant seeds its noise from the clock. Every clip therefore starts
from a freshly loaded library: ``dlopen``, initialise, set the voice and parameters,
``espeak_ng_SetRandSeed(0)`` and libc's ``srand(1)`` (the breathy Klatt variants draw noise from ``rand()``), synthesise, terminate, ``dlclose``. The same (word, voice, variant,
pitch, rate) then gives bit-identical samples, in any order, in any process (a test runs two). If
another module keeps the library loaded, the unload cannot reset it and a ``RuntimeWarning`` says so.
The library uses one core, so :func:`make_speech` hands a large set to worker processes (one per core,
at most 4), which return the same samples (a test compares them).

**Voices and splits.** A voice is an English accent (``VOICES``) with a variant (``VARIANTS``: the
human-sounding variant files shipped in the wheel's ``voices/!v``; robotic, whispered, test and
effect variants are left out), a pitch (0-100, eSpeak's default 50) and a rate (words per minute).
Splits are disjoint by variant: a hash of the variant's name puts it in train (61 variants), val
or test (13 each), whatever the seed (:func:`variant_split`). Train, val and test speak the
``TRAIN_ACCENTS``; the harder ``"test_accent"`` split speaks the ``HELD_OUT_ACCENTS`` with the test
variants, so neither its accent nor its variant was heard in training.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import re
import threading
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from ..validate import check_choice, check_int

SAMPLE_RATE = 22_050
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# The English accents in the wheel's lang/gmw (en-Shaw, the Shavian alphabet, is left out: it reads
# another script). Names as espeak_SetVoiceByName takes them.
VOICES = ("en", "en-us", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-us-nyc", "en-029", "en-gb-scotland")
HELD_OUT_ACCENTS = ("en-029", "en-gb-scotland")  # Caribbean and Scottish: the most distinct vowels
TRAIN_ACCENTS = tuple(v for v in VOICES if v not in HELD_OUT_ACCENTS)
# The variant files of espeak-ng-data/voices/!v in espeakng-loader 0.2.4 (104 files), less 17: the
# robotic ones (robosoft..robosoft8, UniRobot, anikaRobot, Demonic, croak, Tweaky), the whispers
# (whisper, whisperf), the unstable "fast" test voice and "Mr serious" (a space in its file name).
VARIANTS = (
    "Alex", "Alicia", "Andrea", "Andy", "Annie", "AnxiousAndy", "Denis", "Diogo", "Gene", "Gene2", "Henrique",
    "Hugo", "Jacky", "Lee", "Marco", "Mario", "Michael", "Mike", "Nguyen", "Reed", "RicishayMax", "RicishayMax2",
    "RicishayMax3", "Storm", "adam", "anika", "announcer", "antonio", "aunty", "belinda", "benjamin", "boris",
    "caleb", "david", "ed", "edward", "edward2", "f1", "f2", "f3", "f4", "f5", "grandma", "grandpa", "gustave",
    "ian", "iven", "iven2", "iven3", "iven4", "john", "kaukovalta", "klatt", "klatt2", "klatt3", "klatt4",
    "klatt5", "klatt6", "linda", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "marcelo", "max", "michel",
    "miguel", "mike2", "norbert", "pablo", "paul", "pedro", "quincy", "rob", "robert", "sandro", "shelby",
    "steph", "steph2", "steph3", "travis", "victor", "zac",
)
SPEECH_SPLITS = ("train", "val", "test", "test_accent")
_VARIANT_COUNTS = {"val": 13, "test": 13}  # of the 87 variants; train gets the other 61
PITCH_RANGE = (25, 75)  # eSpeak pitch parameter, 0-100 (50 = the voice's own); make_speech draws from it
RATE_RANGE = (130, 220)  # words per minute (eSpeak's default is 175)
MIN_PITCH, MAX_PITCH = 0, 100
MIN_RATE, MAX_RATE = 80, 450
MAX_WORD_CHARS = 40
_WORD_RE = re.compile(r"^[A-Za-z][A-Za-z' -]*$")
_PIN = "espeakng-loader==0.2.4"

# espeak_lib.h constants
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAM_RATE, _PARAM_PITCH = 1, 3
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
_LOCK = threading.Lock()  # the library is one global state: one clip at a time per process


@dataclass(frozen=True)
class VoiceSetting:
    """How one clip was spoken: ``voice`` in VOICES, ``variant`` in VARIANTS (or None: the accent's
    default voice), ``pitch`` 0-100, ``rate`` in words per minute (80-450). Every field is checked."""

    voice: str
    variant: str | None
    pitch: int
    rate: int

    def __post_init__(self):
        check_choice("voice", self.voice, VOICES)
        if self.variant is not None:
            check_choice("variant", self.variant, VARIANTS)
        check_int("pitch", self.pitch, min_value=MIN_PITCH, max_value=MAX_PITCH)
        check_int("rate", self.rate, min_value=MIN_RATE, max_value=MAX_RATE)


@dataclass
class SpeechSet:
    """Clips of spoken words: ``clips[i]`` (float32 ``(n_i,)`` in [-1, 1] at ``SAMPLE_RATE``) says
    ``words[labels[i]]`` with ``settings[i]``; ``split`` is the split they come from."""

    clips: list
    labels: np.ndarray
    settings: list
    words: tuple
    split: str

    def __len__(self) -> int:
        return len(self.clips)


# ----------------------------------------------------------------------------- the library
class _Engine:
    """The library's path, its data directory and the callback that collects samples.

    Each clip loads the library afresh (``dlopen``), synthesises, terminates and unloads it
    (``dlclose``): terminating and re-initialising alone is not enough, because static state (the
    pitch flutter's phase, among others) survives ``espeak_Terminate`` and made the same call give
    different samples the second time in a process. The unload only resets that state if nothing
    else holds the library loaded; :meth:`synthesize` checks that and warns once if it is not so.
    """

    def __init__(self, lib_path: str, data_path: str):
        self.lib_path = lib_path
        self.data_path = data_path.encode()
        self.chunks: list[np.ndarray] = []
        self.warned = False

        def collect(wav, n, _event):
            if n > 0 and wav:
                self.chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
            return 0  # 0: carry on synthesising

        self.callback = _CALLBACK(collect)  # kept referenced: the library holds a pointer to it

    def open(self):
        lib = ctypes.CDLL(self.lib_path)
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                     ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        return lib

    def close(self, lib) -> None:
        import _ctypes
        if hasattr(_ctypes, "dlclose"):
            _ctypes.dlclose(lib._handle)
            still = None
            try:  # RTLD_NOLOAD: a handle only if the library is still in memory
                still = ctypes.CDLL(self.lib_path, mode=getattr(os, "RTLD_NOLOAD", 4))
            except OSError:
                pass
            if still is not None:
                _ctypes.dlclose(still._handle)
                if not self.warned:
                    self.warned = True
                    warnings.warn("libespeak-ng stays loaded by another module (e.g. one that called "
                                  "espeakng_loader.load_library()), so its state carries over between clips: "
                                  "synthesized clips may not be bit-for-bit reproducible in this process",
                                  RuntimeWarning, stacklevel=4)
        else:  # Windows
            _ctypes.FreeLibrary(lib._handle)

    def synthesize(self, text: str, name: str, pitch: int, rate: int) -> np.ndarray:
        lib = self.open()
        try:
            rate_hz = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, self.data_path, 0)
            if rate_hz != SAMPLE_RATE:
                raise RuntimeError(f"eSpeak NG should synthesise at {SAMPLE_RATE} Hz; espeak_Initialize returned "
                                   f"{rate_hz}")
            lib.espeak_SetSynthCallback(self.callback)
            status = lib.espeak_SetVoiceByName(name.encode())
            if status != 0:
                raise RuntimeError(f"eSpeak NG could not set the voice {name!r} (espeak_SetVoiceByName returned "
                                   f"{status})")
            lib.espeak_SetParameter(_PARAM_RATE, rate, 0)
            lib.espeak_SetParameter(_PARAM_PITCH, pitch, 0)
            lib.espeak_ng_SetRandSeed(0)  # after the voice: loading a variant seeds the noise from the clock
            _seed_libc_rand()  # the Klatt voices' breath noise (variants caleb, Reed) draws from libc's rand()
            self.chunks = []
            data = text.encode("utf-8") + b"\0"
            status = lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            if status != 0:
                raise RuntimeError(f"eSpeak NG could not synthesise {text!r} (espeak_Synth returned {status})")
            lib.espeak_Synchronize()
            samples = np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.int16)
        finally:
            self.chunks = []
            lib.espeak_Terminate()
            self.close(lib)
        return samples


@functools.lru_cache(maxsize=1)
def _libc():
    import ctypes.util
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or None)
    except OSError:
        return None


def _seed_libc_rand() -> None:
    """``srand(1)``: libc's ``rand()`` back to its state at process start. eSpeak NG's Klatt synthesiser
    draws the breath noise of whispered/breathy variants (``caleb``, ``Reed``) from ``rand()``, whose
    state is process-wide and survives unloading the library: without this, those clips changed from
    the second synthesis in a process on (measured: 2 of 87 variants). Seeding 1 keeps the first
    clip of a fresh process as it was. (It also resets ``rand()`` for any other caller in the process.)"""
    libc = _libc()
    if libc is not None and hasattr(libc, "srand"):
        libc.srand(1)


@functools.lru_cache(maxsize=1)
def _load() -> tuple[_Engine | None, str]:
    try:
        import espeakng_loader
    except ImportError as err:
        return None, (f"speech synthesis needs the espeakng-loader wheel, which is not installed or has no build "
                      f"for this platform ({err}); install it with `pip install {_PIN}`")
    try:
        lib_path, data_path = espeakng_loader.get_library_path(), espeakng_loader.get_data_path()
    except Exception as err:  # the wheel raises RuntimeError when its data is missing
        return None, f"espeakng-loader is installed but incomplete ({err})"
    if not os.path.exists(lib_path):
        return None, f"espeakng-loader is installed but its library is missing ({lib_path})"
    try:
        engine = _Engine(lib_path, data_path)
        engine.close(engine.open())  # loads, finds every function, unloads
    except (OSError, AttributeError) as err:
        return None, f"the eSpeak NG library of espeakng-loader cannot be loaded on this machine ({err})"
    return engine, ""


def speech_available() -> tuple[bool, str]:
    """``(True, "")`` if eSpeak NG can be loaded from the espeakng-loader wheel, else ``(False,
    reason)`` with a one-line reason (for a notebook's message or a test's skip)."""
    engine, reason = _load()
    return engine is not None, reason


def _engine() -> _Engine:
    engine, reason = _load()
    if engine is None:
        raise RuntimeError(reason)
    return engine


def variant_directory() -> str:
    """The wheel's directory of voice variant files (``espeak-ng-data/voices/!v``)."""
    return os.path.join(_engine().data_path.decode(), "voices", "!v")


# ----------------------------------------------------------------------------- one clip
def _check_word(word) -> str:
    if not isinstance(word, str):
        raise TypeError(f"word must be a string such as 'seven'; got {type(word).__name__} {word!r:.60}")
    if not word.strip():
        raise ValueError("word must hold at least one letter; got an empty string")
    if len(word) > MAX_WORD_CHARS:
        raise ValueError(f"word must be at most {MAX_WORD_CHARS} characters; got {len(word)} ({word[:20]!r}...)")
    if not _WORD_RE.match(word):
        raise ValueError(f"word must be English letters (with spaces, hyphens or apostrophes between words), "
                         f"starting with a letter; got {word!r}")
    return word


def synthesize(word: str, *, voice: str = "en-us", variant: str | None = None, pitch: int = 50,
               rate: int = 175) -> np.ndarray:
    """Say ``word`` with eSpeak NG: float32 ``(n_samples,)`` in [-1, 1] at ``SAMPLE_RATE`` (22,050 Hz).

    ``voice``: an accent in VOICES; ``variant``: a name in VARIANTS, or None for the accent's own
    voice; ``pitch``: 0-100 (50 is the voice's own); ``rate``: words per minute, 80-450 (175 default).
    Deterministic: the same arguments give the same samples, bit for bit, in any process.
    """
    _check_word(word)
    return _to_float(_synthesize_int16(word, VoiceSetting(voice, variant, pitch, rate)))


def _synthesize_int16(word: str, setting: VoiceSetting) -> np.ndarray:
    """One checked clip as the library writes it: int16 ``(n_samples,)``."""
    engine = _engine()
    name = setting.voice if setting.variant is None else f"{setting.voice}+{setting.variant}"
    with _LOCK:
        return engine.synthesize(word, name, int(setting.pitch), int(setting.rate))


def _to_float(samples: np.ndarray) -> np.ndarray:
    return samples.astype(np.float32) / 32768.0


def _serve(fd: int) -> None:
    """A worker of :func:`make_speech` (``_WORKER``): reads a pickled list of (word, VoiceSetting) from
    stdin, writes the pickled int16 clips (half the bytes of float32) to file descriptor ``fd`` (the
    process's stdout; fd 1 itself now points at stderr, so nothing else printed can mix in)."""
    import pickle
    import sys
    jobs = pickle.load(sys.stdin.buffer)
    with os.fdopen(fd, "wb") as out:
        pickle.dump([_synthesize_int16(word, setting) for word, setting in jobs], out, protocol=pickle.HIGHEST_PROTOCOL)


_WORKER = "import os; fd = os.dup(1); os.dup2(2, 1); from course_lib.data.speech import _serve; _serve(fd)"


# Below this many clips make_speech synthesises in its own process by default: a worker (a fresh
# interpreter that imports torch first, ~4 s) would cost more than it saves.
PARALLEL_MIN_CLIPS = 1000


def _available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):   # macOS, Windows
        return os.cpu_count() or 1


def speech_workers(n_clips: int, workers: int | None = None) -> int:
    """How many processes :func:`make_speech` synthesises ``n_clips`` with: ``workers`` if given, else
    the cores this process may use (at most 4) for ``PARALLEL_MIN_CLIPS`` clips or more, else 1."""
    if workers is not None:
        return check_int("workers", workers, min_value=1)
    return min(_available_cores(), 4) if n_clips >= PARALLEL_MIN_CLIPS else 1


def _synthesize_all(jobs: list[tuple[str, VoiceSetting]], workers: int) -> list[np.ndarray]:
    """float32 clips for ``jobs``, in order: in this process, or split in ``workers`` contiguous chunks,
    each synthesised by a worker process. Every clip starts from a freshly loaded library (see the module doc), so
    the chunks give the same samples, bit for bit, as one process."""
    if workers <= 1 or len(jobs) <= 1:
        return [_to_float(_synthesize_int16(word, setting)) for word, setting in jobs]
    import pickle
    import subprocess
    import sys
    from concurrent.futures import ThreadPoolExecutor
    _engine()   # a missing wheel fails here, with its reason, not inside a worker
    size = -(-len(jobs) // workers)
    chunks = [jobs[i:i + size] for i in range(0, len(jobs), size)]
    # Fresh interpreters (not multiprocessing: it would fork this process's threads, or import the
    # caller's __main__ again), each given the package's own directory so it imports this same code.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))]
        + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    command = [sys.executable, "-c", _WORKER]

    def run(chunk):
        proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        out, err = proc.communicate(pickle.dumps(chunk, protocol=pickle.HIGHEST_PROTOCOL))
        if proc.returncode != 0:
            tail = err.decode(errors="replace").strip().splitlines()[-5:]
            raise RuntimeError(f"a speech synthesis worker failed (exit code {proc.returncode}): " + " | ".join(tail))
        return pickle.loads(out)

    with ThreadPoolExecutor(len(chunks)) as threads:
        return [_to_float(c) for clips in threads.map(run, chunks) for c in clips]


# ----------------------------------------------------------------------------- data sets
def variant_split(variant: str) -> str:
    """The split ("train", "val" or "test") whose clips use this variant, the same for every seed:
    the variants sorted by a hash of their names, the last 13 go to test, the 13 before to val, the
    other 61 to train (so the splits are disjoint by variant and none is left thin by chance)."""
    check_choice("variant", variant, VARIANTS)
    return _variant_splits()[variant]


@functools.lru_cache(maxsize=1)
def _variant_splits() -> dict[str, str]:
    ranked = sorted(VARIANTS, key=lambda v: hashlib.sha256(v.encode()).hexdigest())
    n_test, n_val = _VARIANT_COUNTS["test"], _VARIANT_COUNTS["val"]
    n_train = len(ranked) - n_val - n_test
    return {v: "train" if i < n_train else "val" if i < n_train + n_val else "test" for i, v in enumerate(ranked)}


def split_voices(split: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(accents, variants)`` that a split speaks with (see the module docstring)."""
    check_choice("split", split, SPEECH_SPLITS)
    variant_of = "test" if split == "test_accent" else split
    accents = HELD_OUT_ACCENTS if split == "test_accent" else TRAIN_ACCENTS
    return accents, tuple(v for v in VARIANTS if variant_split(v) == variant_of)


def make_speech(n_per_word: int, *, seed: int = 0, split: str = "train", words=DIGIT_WORDS,
                workers: int | None = None) -> SpeechSet:
    """``n_per_word`` clips of each word in ``words``, in a seeded random order.

    Each clip draws an accent and a variant of ``split`` (:func:`split_voices`), a pitch in
    ``PITCH_RANGE`` and a rate in ``RATE_RANGE``, from ``numpy.random.default_rng((seed, split))``: the
    same arguments give the same clips. Returns a :class:`SpeechSet` (``labels`` index ``words``).

    ``workers``: processes that synthesise (eSpeak NG runs on one core); default: the usable cores (at
    most 4) for 1,000 clips or more, else this process alone (:func:`speech_workers`). The clips are the
    same, bit for bit, whatever the number. Measured on a 2-core VM: 1,000 digit words in 8.6 s on one
    core; 6,000 in 47 s on one, 26 s on two.
    """
    n_per_word = check_int("n_per_word", n_per_word, min_value=0)
    seed = check_int("seed", seed, min_value=0)
    check_choice("split", split, SPEECH_SPLITS)
    if isinstance(words, str) or not isinstance(words, (list, tuple)):
        raise TypeError(f"words must be a list or tuple of strings; got {type(words).__name__} {words!r:.60}")
    if not words:
        raise ValueError("words must hold at least one word; got an empty sequence")
    for i, w in enumerate(words):
        try:
            _check_word(w)
        except (TypeError, ValueError) as err:
            raise type(err)(str(err).replace("word must", f"words[{i}] must", 1)) from None
    if len(set(words)) != len(words):
        raise ValueError(f"words must be different from each other; got {list(words)}")
    accents, variants = split_voices(split)
    rng = np.random.default_rng((seed, SPEECH_SPLITS.index(split)))
    labels = np.repeat(np.arange(len(words), dtype=np.int64), n_per_word)
    rng.shuffle(labels)
    settings = [VoiceSetting(accents[rng.integers(len(accents))], variants[rng.integers(len(variants))],
                             int(rng.integers(PITCH_RANGE[0], PITCH_RANGE[1] + 1)),
                             int(rng.integers(RATE_RANGE[0], RATE_RANGE[1] + 1))) for _ in labels]
    workers = speech_workers(len(labels), workers)
    clips = _synthesize_all([(words[label], s) for label, s in zip(labels, settings)], workers)
    return SpeechSet(clips, labels, settings, tuple(words), split)


def pad_clips(clips, n_samples: int | None = None) -> torch.Tensor:
    """Stack clips into float32 ``(N, n_samples)``, zero-padded at the end. ``n_samples`` defaults to
    the longest clip; a clip longer than ``n_samples`` is a ``ValueError`` (never silently cut)."""
    if not isinstance(clips, (list, tuple)):
        raise TypeError(f"clips must be a list of 1-D arrays; got {type(clips).__name__}")
    arrays = []
    for i, c in enumerate(clips):
        if not isinstance(c, (np.ndarray, torch.Tensor)) or c.ndim != 1:
            raise TypeError(f"clips[{i}] must be a 1-D NumPy array or tensor; got {type(c).__name__}"
                            + (f" of shape {tuple(c.shape)}" if hasattr(c, "shape") else ""))
        arrays.append(torch.as_tensor(np.asarray(c, dtype=np.float32)))
    longest = max((len(a) for a in arrays), default=0)
    if n_samples is None:
        n_samples = longest
    n_samples = check_int("n_samples", n_samples, min_value=1 if arrays else 0)
    if longest > n_samples:
        i = max(range(len(arrays)), key=lambda j: len(arrays[j]))
        raise ValueError(f"n_samples must be at least the longest clip's length; got {n_samples} but clips[{i}] "
                         f"has {longest} samples")
    out = torch.zeros(len(arrays), n_samples)
    for i, a in enumerate(arrays):
        out[i, :len(a)] = a
    return out
