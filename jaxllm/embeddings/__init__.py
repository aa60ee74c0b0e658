"""Word embeddings: word2vec (skip-gram and CBOW with negative sampling; ``sampling`` makes its
training examples) and their evaluation (nearest neighbours, word similarity, analogies).

    model = train_word2vec(sentences, Word2VecConfig(model="skipgram"))
    model.most_similar("integer", topn=5)
"""

from jaxllm.embeddings.evaluate import (
    analogies,
    format_evaluation,
    gensim_test_file,
    nearest_neighbours,
    word_similarity,
)
from jaxllm.embeddings.sampling import (
    cbow_windows,
    keep_probabilities,
    noise_distribution,
    noise_table,
    sample_negatives,
    skipgram_pairs,
)
from jaxllm.embeddings.word2vec import (
    MODELS,
    UnknownWordError,
    Vocab,
    Word2VecConfig,
    Word2VecModel,
    build_vocab,
    cbow_negative_sampling_loss,
    cbow_step,
    cbow_update,
    encode_corpus,
    init_embeddings,
    load_word2vec_format,
    negative_sampling_loss,
    save_word2vec_format,
    skipgram_step,
    skipgram_update,
    train_word2vec,
)

__all__ = [
    "analogies",
    "format_evaluation",
    "gensim_test_file",
    "nearest_neighbours",
    "word_similarity",
    "MODELS",
    "UnknownWordError",
    "Vocab",
    "Word2VecConfig",
    "Word2VecModel",
    "build_vocab",
    "cbow_negative_sampling_loss",
    "cbow_step",
    "cbow_update",
    "cbow_windows",
    "encode_corpus",
    "init_embeddings",
    "keep_probabilities",
    "load_word2vec_format",
    "negative_sampling_loss",
    "noise_distribution",
    "noise_table",
    "sample_negatives",
    "save_word2vec_format",
    "skipgram_pairs",
    "skipgram_step",
    "skipgram_update",
    "train_word2vec",
]
