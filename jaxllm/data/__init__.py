"""Data: corpora -> clean documents -> splits -> tokens -> LM batches.

Typical use::

    docs = clean_corpus(load_corpus("pydoc"))
    train, val, test = split_corpus(docs, seed=0)
    tokenizer = train_tokenizer("bpe", train, vocab_size=1024)
    stream = encode_corpus(tokenizer, train)
    batch = lm_batch(stream, seed=0, step=0, batch_size=32, seq_len=128)

Labelled texts for classification::

    train, val, test = stratified_split(load_sentiment("movie-reviews"), seed=0)

English-Spanish verse pairs for translation (``make data`` fetches the Bibles)::

    splits = split_by_book(load_bible_pairs().pairs)  # "train", "valid", "test"

Labelled images for classification, and random shifts and rotations on the device::

    train, test = stratified_split(load_digits(), (0.8, 0.2), seed=0)  # or read_image_folders
    images = augment_images(key, check_image_batch(train.images, (8, 8, 1)), AugmentConfig())

Speech: WAV files, log-mel features in JAX, the set ``make data`` synthesises with espeak-ng::

    splits = load_speech_set()                     # {"train": [Utterance, ...], ...}
    audio, rate = read_wav("clip.wav", sample_rate=16000)  # mixed down, resampled
    features = log_mel(audio, MelConfig())         # float32[frames, 80]
"""

from jaxllm.data.audio import (
    AudioError,
    check_audible,
    read_wav,
    resample,
    write_wav,
)
from jaxllm.data.batches import encode_corpus, eval_batches, lm_batch, pad_sequences
from jaxllm.data.buckets import (
    Batches,
    BatchOrder,
    bucketed_batches,
    padded_length,
    padded_rows,
)
from jaxllm.data.clean import clean_corpus, deduplicate, normalize_text
from jaxllm.data.config import DataConfig, EmptySplitError, load_splits
from jaxllm.data.corpora import (
    NAMED_CORPORA,
    CorpusEncodingError,
    EmptyCorpusError,
    load_corpus,
    load_default_corpus,
    load_shakespeare,
    load_text,
    strip_gutenberg_boilerplate,
)
from jaxllm.data.image_augment import (
    AugmentConfig,
    affine_warp,
    augment_images,
    augment_params,
)
from jaxllm.data.images import (
    ImagesError,
    LabelledImages,
    check_image_batch,
    check_image_shape,
    load_digits,
    read_image_folders,
    write_image_folders,
)
from jaxllm.data.labelled import (
    NAMED_SENTIMENT_SETS,
    SENTIMENT_TASKS,
    Labelled,
    LabelledTexts,
    LabelsError,
    align_labels,
    load_sentiment,
    load_sentiment_split,
    load_shakespeare_speeches,
    play_speeches,
    read_label_folders,
    read_labelled_csv,
    read_labelled_jsonl,
    read_sst2_tsv,
    sentiment_data_dir,
    stratified_split,
)
from jaxllm.data.log_mel import (
    MelConfig,
    log_mel,
    log_mel_batch,
    mel_filterbank,
    mel_spectrogram,
    n_frames,
)
from jaxllm.data.masking import (
    MaskedBatch,
    MaskingConfig,
    mask_tokens,
    mlm_batch,
    mlm_eval_batches,
    word_ids_from_pieces,
)
from jaxllm.data.pair_batches import (
    EncodedPairs,
    PairBatches,
    encode_pairs,
    pair_batch,
    pair_eval_batches,
)
from jaxllm.data.parallel_text import (
    BIBLE_BOOKS,
    DEFAULT_TEST_BOOKS,
    DEFAULT_VALID_BOOKS,
    BibleCorpus,
    ParallelTextError,
    VersePair,
    bible_data_dir,
    load_bible_pairs,
    read_parallel_tsv,
    split_by_book,
    strip_markup,
    write_parallel_tsv,
)
from jaxllm.data.spec_augment import SpecAugmentConfig, spec_augment, spec_augment_masks
from jaxllm.data.speech_set import (
    SPEECH_ALPHABET,
    EspeakCommand,
    PlannedUtterance,
    SpeechSetConfig,
    SpeechSetError,
    Utterance,
    add_noise,
    build_speech_set,
    check_voices,
    find_espeak,
    load_speech_set,
    normalize_speech_text,
    plan_speech_set,
    speech_data_dir,
    speech_sentences,
    split_sentences,
    synthesize,
    tone_speaker,
    unpacked_espeak,
)
from jaxllm.data.splits import split_corpus
from jaxllm.data.tokenizers import (
    DEFAULT_BPE_VOCAB_SIZE,
    DEFAULT_WORDPIECE_VOCAB_SIZE,
    DOCUMENT_SEPARATOR,
    EOS_TOKEN,
    BPETokenizer,
    CharTokenizer,
    Tokenizer,
    WordPieceTokenizer,
    check_token_ids,
    check_tokenizer_fits,
    load_hf_tokenizer,
    load_tokenizer,
    train_tokenizer,
)
from jaxllm.data.vocab import (
    PAD_ID,
    UNK_ID,
    EncodedTexts,
    WordVocab,
    build_word_vocab,
    split_words,
)

__all__ = [
    "AugmentConfig",
    "ImagesError",
    "Labelled",
    "LabelledImages",
    "affine_warp",
    "augment_images",
    "augment_params",
    "check_image_batch",
    "check_image_shape",
    "load_digits",
    "read_image_folders",
    "write_image_folders",
    "EncodedPairs",
    "PairBatches",
    "encode_pairs",
    "pair_batch",
    "pair_eval_batches",
    "BIBLE_BOOKS",
    "BibleCorpus",
    "DEFAULT_TEST_BOOKS",
    "DEFAULT_VALID_BOOKS",
    "ParallelTextError",
    "VersePair",
    "bible_data_dir",
    "load_bible_pairs",
    "read_parallel_tsv",
    "split_by_book",
    "strip_markup",
    "write_parallel_tsv",
    "MaskedBatch",
    "MaskingConfig",
    "mask_tokens",
    "mlm_batch",
    "mlm_eval_batches",
    "Batches",
    "EncodedTexts",
    "PAD_ID",
    "SENTIMENT_TASKS",
    "UNK_ID",
    "WordVocab",
    "align_labels",
    "bucketed_batches",
    "build_word_vocab",
    "load_sentiment_split",
    "padded_length",
    "padded_rows",
    "split_words",
    "BPETokenizer",
    "CharTokenizer",
    "DEFAULT_BPE_VOCAB_SIZE",
    "DEFAULT_WORDPIECE_VOCAB_SIZE",
    "DOCUMENT_SEPARATOR",
    "DataConfig",
    "EOS_TOKEN",
    "CorpusEncodingError",
    "EmptyCorpusError",
    "EmptySplitError",
    "LabelledTexts",
    "LabelsError",
    "NAMED_CORPORA",
    "NAMED_SENTIMENT_SETS",
    "Tokenizer",
    "WordPieceTokenizer",
    "check_token_ids",
    "check_tokenizer_fits",
    "clean_corpus",
    "deduplicate",
    "encode_corpus",
    "eval_batches",
    "lm_batch",
    "load_corpus",
    "load_default_corpus",
    "load_sentiment",
    "load_shakespeare",
    "load_shakespeare_speeches",
    "load_splits",
    "load_text",
    "load_hf_tokenizer",
    "load_tokenizer",
    "normalize_text",
    "pad_sequences",
    "play_speeches",
    "read_label_folders",
    "read_labelled_csv",
    "read_labelled_jsonl",
    "read_sst2_tsv",
    "sentiment_data_dir",
    "split_corpus",
    "stratified_split",
    "strip_gutenberg_boilerplate",
    "train_tokenizer",
    "word_ids_from_pieces",
    "AudioError",
    "EspeakCommand",
    "MelConfig",
    "PlannedUtterance",
    "SPEECH_ALPHABET",
    "SpeechSetConfig",
    "SpeechSetError",
    "Utterance",
    "add_noise",
    "build_speech_set",
    "check_audible",
    "check_voices",
    "find_espeak",
    "load_speech_set",
    "log_mel",
    "log_mel_batch",
    "mel_filterbank",
    "mel_spectrogram",
    "n_frames",
    "normalize_speech_text",
    "plan_speech_set",
    "read_wav",
    "resample",
    "speech_data_dir",
    "speech_sentences",
    "split_sentences",
    "synthesize",
    "tone_speaker",
    "unpacked_espeak",
    "write_wav",
    "SpecAugmentConfig",
    "spec_augment",
    "spec_augment_masks",
    "BatchOrder",
]
