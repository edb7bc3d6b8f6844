"""The course's data, offline by default: real MNIST digits, digit captions, captioned shapes, spoken words."""
from .captions import DIGIT_TEMPLATES, caption_vocabulary, digit_caption, digit_captions
from .digits import DIGIT_NAMES, DIGIT_SOURCES, as_tensors, load_digits
from .shapes import (COLORS, HELDOUT_PAIRS, POSITIONS, SHAPES, SIZES, ShapeSpec, describe, make_shapes,
                     match_shape, read_scene, render, scene_dict, scene_of)
from .scenes import (ANSWERS, GRID, IMAGE_SIZE, PALETTE, POINT_WORDS, QUESTION_GROUPS, QUESTION_TYPES, SCENE_SPLITS, SceneObject,
                     answer_distribution, attribute_accuracy, candidate_questions, make_questions, make_scenes,
                     majority_baseline, objects_of, question_points, question_tokens, question_words, question_vocabulary, read_objects,
                     render_scene, scene_key, split_of)
from .speech import (DIGIT_WORDS, SAMPLE_RATE, SPEECH_SPLITS, VARIANTS, VOICES, SpeechSet, VoiceSetting, make_speech,
                     pad_clips, speech_available, synthesize)

__all__ = ["DIGIT_NAMES", "DIGIT_SOURCES", "DIGIT_TEMPLATES", "as_tensors", "caption_vocabulary",
           "digit_caption", "digit_captions", "load_digits", "COLORS", "HELDOUT_PAIRS", "POSITIONS",
           "SHAPES", "SIZES", "ShapeSpec", "describe", "make_shapes", "match_shape", "read_scene", "render",
           "scene_dict", "scene_of", "ANSWERS", "GRID", "IMAGE_SIZE", "PALETTE", "POINT_WORDS", "QUESTION_GROUPS",
           "QUESTION_TYPES", "SCENE_SPLITS", "SceneObject", "answer_distribution", "attribute_accuracy",
           "candidate_questions", "make_questions", "make_scenes", "majority_baseline", "objects_of",
           "question_points", "question_tokens", "question_words", "question_vocabulary", "read_objects", "render_scene", "scene_key", "split_of",
           "DIGIT_WORDS", "SAMPLE_RATE", "SPEECH_SPLITS", "VARIANTS", "VOICES", "SpeechSet", "VoiceSetting",
           "make_speech", "pad_clips", "speech_available", "synthesize"]
