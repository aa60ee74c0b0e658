"""``python -m jaxllm.interop import``: a Hugging Face checkpoint folder with its tokenizer
becomes a run folder that the recipes read back (generation, masked words) and resume."""

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from jaxllm.data import BPETokenizer, WordPieceTokenizer, clean_corpus, load_default_corpus  # noqa: E402
from jaxllm.generate import generate_text  # noqa: E402
from jaxllm.interop import CheckpointMismatchError  # noqa: E402
from jaxllm.interop.__main__ import main  # noqa: E402
from jaxllm.models.bert import BERT  # noqa: E402
from jaxllm.recipes import load_lm_run, load_mlm_run, train_lm  # noqa: E402
from jaxllm.recipes.lm import model_for  # noqa: E402
from jaxllm.train import LoopConfig  # noqa: E402


@pytest.fixture(scope="module")
def docs():
    return clean_corpus(load_default_corpus())[:100]


def gpt2_folder(path, docs, vocab_delta=0):
    tokenizer = BPETokenizer.train(docs, vocab_size=300)
    tokenizer.save_hf(path / "tokenizer.json")
    transformers.GPT2TokenizerFast(tokenizer_file=str(path / "tokenizer.json")).save_pretrained(
        path
    )
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=tokenizer.vocab_size + vocab_delta, n_positions=64, n_embd=32, n_layer=2,
        n_head=2, attn_implementation="eager",
    )  # fmt: skip
    model = transformers.GPT2LMHeadModel(config).eval()
    model.save_pretrained(path)
    return model, tokenizer


def test_imported_gpt2_generates_as_transformers_and_resumes_training(tmp_path, docs, capsys):
    model, tokenizer = gpt2_folder(tmp_path / "hf", docs)
    assert main(["import", str(tmp_path / "hf"), "--out", str(tmp_path / "runs" / "gpt2")]) == 0
    assert "run folder" in capsys.readouterr().out
    config, loaded_tokenizer, params = load_lm_run(tmp_path / "runs" / "gpt2")
    prompt = "The function returns"
    assert loaded_tokenizer.encode(prompt).tolist() == tokenizer.encode(prompt).tolist()
    ids = tokenizer.encode(prompt)
    with torch.no_grad():
        expected = model.generate(
            torch.from_numpy(ids[None].astype(np.int64)), max_new_tokens=10, do_sample=False,
            pad_token_id=0,
        )[0, len(ids):].tolist()  # fmt: skip
    ours = generate_text(model_for(config), params, loaded_tokenizer, [prompt],
                         max_new_tokens=10, greedy=True)[0]  # fmt: skip
    assert ours == tokenizer.decode(expected)

    loop = LoopConfig(num_steps=2, eval_every=2, log_every=1, progress=False)
    resumed = dataclasses.replace(config, resume=True, loop=loop, sample_tokens=0)
    run = train_lm(resumed)
    assert int(run.state.step) == 2 and run.after["loss"] < run.before["loss"]


def test_imported_bert_mlm_predicts_as_transformers(tmp_path, docs):
    tokenizer = WordPieceTokenizer.train(docs, vocab_size=400)
    tokenizer.save_hf(tmp_path / "tokenizer.json")
    hf_tokenizer = transformers.BertTokenizerFast(tokenizer_file=str(tmp_path / "tokenizer.json"))
    hf_tokenizer.save_pretrained(tmp_path / "hf")
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
    )  # fmt: skip
    model = transformers.BertForMaskedLM(config).eval()
    model.save_pretrained(tmp_path / "hf")
    assert main(["import", str(tmp_path / "hf"), "--out", str(tmp_path / "bert")]) == 0
    run_config, loaded, params = load_mlm_run(tmp_path / "bert")
    text = "the [MASK] of the function is returned."
    encoded = hf_tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        expected = model(**encoded).logits.numpy()
    ids = loaded.with_specials(loaded.encode(text), 64)
    assert ids.tolist() == encoded["input_ids"][0].tolist()
    ours = BERT(run_config.model).apply({"params": params}, jnp.asarray(ids[None]),
                                        method=BERT.mlm_logits)  # fmt: skip
    np.testing.assert_allclose(np.asarray(ours), expected, atol=1e-4)


def test_import_refuses_what_it_cannot_make_a_run_of(tmp_path, docs, capsys):
    gpt2_folder(tmp_path / "padded", docs, vocab_delta=3)
    assert main(["import", str(tmp_path / "padded"), "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "has 300 tokens but the gpt2 checkpoint has a 303-token vocabulary" in err
    assert not (tmp_path / "a").exists()

    gpt2_folder(tmp_path / "ok", docs)
    assert main(["import", str(tmp_path / "ok"), "--out", str(tmp_path / "b")]) == 0
    assert main(["import", str(tmp_path / "ok"), "--out", str(tmp_path / "b")]) == 2
    assert "already holds a run" in capsys.readouterr().err

    tokenizer = WordPieceTokenizer.train(docs, vocab_size=400)
    tokenizer.save_hf(tmp_path / "tokenizer.json")
    transformers.BertTokenizerFast(tokenizer_file=str(tmp_path / "tokenizer.json")).save_pretrained(
        tmp_path / "bertmodel"
    )
    config = transformers.BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16,
                                     num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=32)  # fmt: skip
    transformers.BertModel(config).save_pretrained(tmp_path / "bertmodel")
    from jaxllm.interop.run_folder import import_hf_run

    with pytest.raises(CheckpointMismatchError, match="no masked-word head"):
        import_hf_run(tmp_path / "bertmodel", tmp_path / "c")
    with pytest.raises(FileNotFoundError, match="config.json"):
        import_hf_run(tmp_path / "nothing", tmp_path / "d")
