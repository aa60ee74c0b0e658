"""Recipes: a task end to end (config -> data -> model -> ``fit`` -> evaluation -> run folder).

Each recipe is an application of the core (``jaxllm.data``, ``models``, ``train``); they share
the run-folder and resume policy of :mod:`jaxllm.recipes.run_folder`.
"""

from jaxllm.recipes.classify import ClassifierRun, ClassifyConfig, train_classifier
from jaxllm.recipes.image_classify import (
    ImageClassifierRun,
    ImageClassifyConfig,
    load_image_classifier,
    train_image_classifier,
)
from jaxllm.recipes.lm import LMConfig, LMRun, load_lm_run, train_lm
from jaxllm.recipes.mlm import MLMConfig, MLMRun, load_mlm_run, train_mlm
from jaxllm.recipes.run_folder import prepare_run_dir, resumed_config
from jaxllm.recipes.speech import (
    SpeechRun,
    SpeechRunConfig,
    load_transcriber,
    train_speech_recognizer,
)
from jaxllm.recipes.transcriber import Transcriber
from jaxllm.recipes.translate import (
    TranslateConfig,
    TranslateRun,
    load_translator,
    train_translator,
)
from jaxllm.recipes.translator import Translator

__all__ = [
    "ClassifierRun",
    "ClassifyConfig",
    "ImageClassifierRun",
    "ImageClassifyConfig",
    "load_image_classifier",
    "train_image_classifier",
    "LMConfig",
    "LMRun",
    "MLMConfig",
    "MLMRun",
    "load_lm_run",
    "load_mlm_run",
    "prepare_run_dir",
    "resumed_config",
    "SpeechRun",
    "SpeechRunConfig",
    "Transcriber",
    "load_transcriber",
    "train_speech_recognizer",
    "TranslateConfig",
    "TranslateRun",
    "Translator",
    "load_translator",
    "train_translator",
    "train_classifier",
    "train_lm",
    "train_mlm",
]
