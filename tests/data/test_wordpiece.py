"""WordPiece tokenizers (trained here, or BERT's / GPT-2's tokenizer.json from Hugging Face),
checked against ``transformers``' own fast tokenizers."""

import json

import jax.numpy as jnp
import numpy as np
import pytest

from jaxllm.data import (
    EOS_TOKEN,
    BPETokenizer,
    Tokenizer,
    WordPieceTokenizer,
    check_tokenizer_fits,
    encode_corpus,
    load_hf_tokenizer,
    word_ids_from_pieces,
)

transformers = pytest.importorskip("transformers")

TEXTS = [
    "The unbelievable playwright wrote playfully, didn't he?",
    "Héllo WORLD: naïve café-goers played 42 games.",
    "",
    "   spaces\tand\nnewlines   ",
]


def test_wordpiece_has_bert_special_tokens_and_the_protocol(wordpiece_tokenizer):
    tokenizer = wordpiece_tokenizer
    assert isinstance(tokenizer, Tokenizer) and tokenizer.kind == "wordpiece"
    assert tokenizer.special_ids.tolist() == [0, 1, 2, 3, 4]
    assert tokenizer.decode(tokenizer.special_ids) == "[PAD] [UNK] [CLS] [SEP] [MASK]"
    assert tokenizer.eos_id == tokenizer.sep_id
    ids = tokenizer.encode("Return the value")
    assert ids.dtype == np.int32 and not np.isin(ids, tokenizer.special_ids).any()
    assert tokenizer.decode(ids) == "return the value"  # BERT's lower-casing


def test_with_specials_frames_and_truncates(wordpiece_tokenizer):
    tokenizer = wordpiece_tokenizer
    ids = tokenizer.encode("one two three four five six")
    framed = tokenizer.with_specials(ids, max_len=5)
    assert framed.tolist() == [tokenizer.cls_id, *ids[:3].tolist(), tokenizer.sep_id]
    with pytest.raises(ValueError, match="max_len"):
        tokenizer.with_specials(ids, max_len=2)


def test_documents_are_separated_by_sep(wordpiece_tokenizer):
    stream = encode_corpus(wordpiece_tokenizer, ["first text", "second text"])
    assert (stream == wordpiece_tokenizer.sep_id).sum() == 1


def test_word_ids_point_at_each_word_start(tmp_path):
    reference = _bert_fast_tokenizer(tmp_path, lowercase=True)
    tokenizer = WordPieceTokenizer(reference.backend_tokenizer)
    ids = tokenizer.encode("playing the player wrote played zz")
    pieces = [tokenizer.hf_tokenizer.id_to_token(int(i)) for i in ids]
    word_ids = np.asarray(word_ids_from_pieces(jnp.asarray(ids)[None], tokenizer.continues_word))
    expected, start = [], 0
    for position, piece in enumerate(pieces):
        start = start if piece.startswith("##") else position
        expected.append(start)
    assert any(piece.startswith("##") for piece in pieces)
    assert word_ids[0].tolist() == expected


def _bert_fast_tokenizer(tmp_path, lowercase: bool):
    """A ``transformers`` BertTokenizerFast over a small vocab.txt, as a checkpoint ships it."""
    pieces = ["the", "play", "##ing", "##ed", "##er", "wr", "##ote", "hello", "world", ",", "."]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *pieces, *"abcdefghijklmnopqrstuvwxyz"]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    return transformers.BertTokenizerFast(str(tmp_path / "vocab.txt"), do_lower_case=lowercase)


@pytest.mark.parametrize("lowercase", [True, False])
def test_bert_tokenizer_json_encodes_like_transformers(tmp_path, lowercase):
    reference = _bert_fast_tokenizer(tmp_path, lowercase)
    reference.save_pretrained(tmp_path / "checkpoint")
    tokenizer = load_hf_tokenizer(tmp_path / "checkpoint")
    assert isinstance(tokenizer, WordPieceTokenizer)
    assert tokenizer.vocab_size == len(reference)
    for text in TEXTS + ["Hello, the world played. THE PLAYER wrote!"]:
        expected = reference(text, add_special_tokens=False)["input_ids"]
        assert tokenizer.encode(text).tolist() == expected
        framed = reference(text)["input_ids"]
        assert tokenizer.with_specials(tokenizer.encode(text), 512).tolist() == framed


def test_gpt2_tokenizer_json_encodes_like_transformers(tmp_path, bpe_tokenizer):
    bpe_tokenizer.save_hf(tmp_path / "tokenizer.json")
    reference = transformers.GPT2TokenizerFast(tokenizer_file=str(tmp_path / "tokenizer.json"))
    reference.save_pretrained(tmp_path / "checkpoint")
    tokenizer = load_hf_tokenizer(tmp_path / "checkpoint" / "tokenizer.json")
    assert isinstance(tokenizer, BPETokenizer)
    assert tokenizer.decode([tokenizer.eos_id]) == EOS_TOKEN
    for text in TEXTS + [f"one{EOS_TOKEN}two 🙂"]:
        assert tokenizer.encode(text).tolist() == reference(text)["input_ids"]
        assert tokenizer.decode(tokenizer.encode(text)) == text


def test_load_hf_tokenizer_errors(tmp_path, wordpiece_tokenizer):
    with pytest.raises(FileNotFoundError, match="save_pretrained"):
        load_hf_tokenizer(tmp_path)
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a Hugging Face tokenizer.json"):
        load_hf_tokenizer(tmp_path)
    content = json.loads(wordpiece_tokenizer.hf_tokenizer.to_str())
    content["model"] = {"type": "WordLevel", "vocab": {"[UNK]": 0, "a": 1}, "unk_token": "[UNK]"}
    (tmp_path / "tokenizer.json").write_text(json.dumps(content))
    with pytest.raises(ValueError, match="WordLevel tokenizer; jaxllm reads BPE and WordPiece"):
        load_hf_tokenizer(tmp_path)


def test_wordpiece_without_mask_token_is_refused():
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import models

    vocab = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "a": 4}
    with pytest.raises(ValueError, match=r"no '\[MASK\]' token"):
        WordPieceTokenizer(HFTokenizer(models.WordPiece(vocab, unk_token="[UNK]")))


def test_check_tokenizer_fits_names_both_sizes(wordpiece_tokenizer):
    check_tokenizer_fits(wordpiece_tokenizer, wordpiece_tokenizer.vocab_size)
    with pytest.raises(ValueError, match=r"has 1000 tokens but the BERT has a 1024-token"):
        check_tokenizer_fits(wordpiece_tokenizer, 1024, "the BERT")


def test_wordpiece_training_is_deterministic(pydoc_docs):
    """``tokenizers``' trainer alone numbers ``##`` pieces in hash-map order and can learn
    another vocabulary each time (huggingface/tokenizers#1794); jaxllm's must not."""
    fingerprints = {
        WordPieceTokenizer.train(pydoc_docs, vocab_size=4000).fingerprint() for _ in range(3)
    }
    assert len(fingerprints) == 1


def test_trained_wordpiece_frames_like_bert_in_transformers(tmp_path, wordpiece_tokenizer):
    wordpiece_tokenizer.save_hf(tmp_path / "tokenizer.json")
    reference = transformers.BertTokenizerFast(tokenizer_file=str(tmp_path / "tokenizer.json"))
    text = "Return the [MASK] value, unbelievably."
    ids = wordpiece_tokenizer.encode(text)
    assert reference(text)["input_ids"] == wordpiece_tokenizer.with_specials(ids, 512).tolist()
    assert (ids == wordpiece_tokenizer.mask_id).sum() == 1
