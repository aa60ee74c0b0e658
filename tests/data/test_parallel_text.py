"""English-Spanish parallel text: markup stripping, verse pairing and its alignment check,
book splits, TSV files, and the two Bibles (tiny SWORD modules written here; the real ones when
`make data` has fetched them)."""

import re
import struct
import sys
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxllm.data import (
    BIBLE_BOOKS,
    DEFAULT_TEST_BOOKS,
    DEFAULT_VALID_BOOKS,
    VersePair,
    bible_data_dir,
    load_bible_pairs,
    read_parallel_tsv,
    split_by_book,
    strip_markup,
    write_parallel_tsv,
)
from jaxllm.data.corpora import CorpusEncodingError, EmptyCorpusError
from jaxllm.data.parallel_text import (
    DROP_REASONS,
    ENGLISH_MODULE,
    SPANISH_MODULE,
    Verse,
    pair_verses,
    strong_numbers,
)

# --- strip_markup ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("markup", "expected"),
    [
        (  # KJV Genesis 1:1 as the module stores it: Strong's numbers on every word
            'In the <w lemma="strong:H7225">beginning</w> <w lemma="strong:H0430">God</w> '
            '<w lemma="strong:H1254" morph="strongMorph:TH8804">created</w> the '
            '<w lemma="strong:H8064">heaven</w> <w lemma="strong:H0853">and</w> the '
            '<w lemma="strong:H0776">earth</w>. ',
            "In the beginning God created the heaven and the earth.",
        ),
        (  # milestones, a pilcrow, a quotation, added words, a footnote
            '<div type="x-milestone" subType="x-preverse" sID="pv1"/><div sID="p9" type="x-p"/> '
            '<div type="x-milestone" subType="x-preverse" eID="pv1"/><q marker="" who="Jesus">'
            '\u00b6 <w lemma="strong:G1063">For</w> <w lemma="strong:G2316">God</w> '
            '<transChange type="added">is</transChange> <w lemma="strong:G0025">love</w>.'
            '<note placement="foot"><reference type="annotateRef">3.16 </reference>love: or, '
            "charity</note></q> ",
            "For God is love.",
        ),
        (  # a psalm's superscription is text; an editor's section heading is not
            '<title canonical="true" type="psalm">A <w lemma="strong:H4210">Psalm</w> of David.'
            '</title> <lg sID="a"/> <l level="1" sID="b"/> <divineName>'
            '<w lemma="strong:H3068">LORD</w></divineName>, how are they increased!'
            '<l eID="b" level="1"/>',
            "A Psalm of David. LORD, how are they increased!",
        ),
        (
            '<title type="section" subType="x-preverse">The Creation</title>In the beginning',
            "In the beginning",
        ),
        (  # two elements meeting between letters part two words; one inside a word does not
            '<w lemma="strong:H8033">hay allí</w><transChange type="added">también</transChange>'
            '<w lemma="strong:H0916">bdelio</w> y <w lemma="strong:G4369">give</w>n, '
            'preguntándo<transChange type="added">le</transChange>.',
            "hay allí también bdelio y given, preguntándole.",
        ),
        (  # a USFM marker left by a converter, an XML entity, a variant reading
            'by my name \\nd <w lemma="strong:H3068">JEHOVAH</w></divineName> &amp; '
            '<rdg type="alternate">another</rdg>was I not known',
            "by my name JEHOVAH & was I not known",
        ),
    ],
)
def test_strip_markup_osis(markup, expected):
    assert strip_markup(markup) == expected


def test_strip_markup_gbf_and_thml():
    gbf = "God<WH0430> created<WH1254><WTH8804> the heaven<RF>Or, sky<Rf>.<CM>And the"
    assert strip_markup(gbf, "GBF") == "God created the heaven. And the"
    thml = (
        'God<sync type="Strongs" value="H0430" /> created<note>Heb. bara</note> '
        '<scripRef passage="Joh 1:1">John 1:1</scripRef>it.<br/>And'
    )
    assert strip_markup(thml, "ThML") == "God created it. And"
    with pytest.raises(ValueError, match="OSIS"):
        strip_markup("text", "USFM")


TAGS = st.sampled_from(
    [
        '<w lemma="strong:H0430">',
        "</w>",
        '<note type="x">a <hi>\u2603</hi></note>',
        '<div sID="x" type="x-p"/>',
        '<transChange type="added">',
        "</transChange>",
        "\u00b6",
        '<title type="section">\u2603</title>',
        "&amp;",
    ]
)
WORDS = st.text(alphabet=st.characters(categories=["L", "N", "Zs"]), max_size=8)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(TAGS, WORDS), max_size=20).map("".join))
def test_strip_markup_leaves_plain_normalised_text(markup):
    text = strip_markup(markup)
    assert "<" not in text and ">" not in text and "\u00b6" not in text
    assert text == " ".join(text.split())
    assert "\u2603" not in text  # notes and headings are dropped with their content


def test_strong_numbers_from_words_not_notes():
    osis = (
        '<w lemma="strong:G2424 G5547">Jesucristo</w> <w lemma="strong:H0430" morph="x">Dios</w>'
        '<note><w lemma="strong:G9999">x</w></note>'
    )
    assert strong_numbers(osis) == {"G2424", "G5547", "H430"}
    assert strong_numbers("God<WH0430> said<WH0559><WTH8799>", "GBF") == {"H430", "H559"}
    assert strong_numbers('God<sync type="Strongs" value="H0430" />', "ThML") == {"H430"}
    assert strong_numbers("plain text") == frozenset()


# --- pair_verses ---------------------------------------------------------------------------------


def bible(texts: dict[int, str], strongs: dict[int, set[str]] | None = None, book="Ruth"):
    """A one-chapter Bible: verse number -> text (and Strong's numbers)."""
    strongs = strongs or {}
    return {(book, 1, v): Verse(text, frozenset(strongs.get(v, ()))) for v, text in texts.items()}


def words(v: int) -> set[str]:
    """Strong's numbers that only verse ``v`` has."""
    return {f"H{100 * v + i}" for i in range(4)}


def test_pair_verses_drops_missing_and_empty_verses():
    source = bible({1: "a", 2: "", 3: "c", 4: "d", 5: ""})
    target = bible({1: "A", 2: "B", 3: "", 4: "D", 5: "", 6: "F"})
    corpus = pair_verses(source, target)
    assert corpus.pairs == (VersePair("Ruth", 1, 1, "a", "A"), VersePair("Ruth", 1, 4, "d", "D"))
    assert corpus.dropped == {
        **dict.fromkeys(DROP_REASONS, 0),
        "empty_source": 1,
        "empty_target": 1,
        "empty_both": 1,
        "missing_source": 1,
    }


def test_pair_verses_drops_a_shifted_run_and_the_merged_verse_ending_it():
    # As in Reina-Valera's Numbers 13: the target has nothing at verse 6, verses 7-9 hold the
    # source's 6-8, and verse 10 holds the source's 9 and 10 together.
    source_strongs = {v: words(v) for v in range(1, 11)}
    target_strongs = {v: words(v) for v in range(1, 6)}
    target_strongs |= {v: words(v - 1) for v in range(7, 10)}
    target_strongs[10] = words(9) | words(10)
    source = bible({v: f"en {v}" for v in range(1, 11)}, source_strongs)
    target = bible({v: "" if v == 6 else f"es {v}" for v in range(1, 11)}, target_strongs)
    corpus = pair_verses(source, target)
    assert [pair.verse for pair in corpus.pairs] == [1, 2, 3, 4, 5]
    assert corpus.dropped["empty_target"] == 1
    assert corpus.dropped["shifted"] == 3
    assert corpus.dropped["merged"] == 1


def test_pair_verses_keeps_refrains_and_verses_without_strongs_numbers():
    # Verses 2 and 4 repeat each other (a psalm's refrain); verse 3 has no Strong's numbers.
    strongs = {1: words(1), 2: words(2), 4: words(2), 5: words(5)}
    source = bible({v: f"en {v}" for v in range(1, 6)}, strongs)
    target = bible({v: f"es {v}" for v in range(1, 6)}, strongs)
    corpus = pair_verses(source, target)
    assert [pair.verse for pair in corpus.pairs] == [1, 2, 3, 4, 5]


VERSES = st.dictionaries(
    st.tuples(st.sampled_from(["Ruth", "Jonah", "John"]), st.integers(1, 3), st.integers(1, 6)),
    st.builds(
        Verse, st.sampled_from(["", "text"]), st.frozensets(st.sampled_from("H1 H2 H3".split()))
    ),
    max_size=30,
)


@settings(max_examples=100, deadline=None)
@given(VERSES, VERSES)
def test_pair_verses_accounts_for_every_reference(source, target):
    corpus = pair_verses(source, target)
    keys = [(pair.book, pair.chapter, pair.verse) for pair in corpus.pairs]
    assert set(corpus.dropped) == set(DROP_REASONS)
    assert len(keys) + sum(corpus.dropped.values()) == len(source.keys() | target.keys())
    assert keys == sorted(keys, key=lambda key: (BIBLE_BOOKS.index(key[0]), key[1:]))
    assert all(pair.source and pair.target for pair in corpus.pairs)


# --- split_by_book -------------------------------------------------------------------------------


@st.composite
def pairs_and_held_out_books(draw):
    books = draw(st.lists(st.sampled_from(BIBLE_BOOKS), max_size=40))
    pairs = [VersePair(book, 1, i + 1, f"en {i}", f"es {i}") for i, book in enumerate(books)]
    held_out = draw(st.lists(st.sampled_from(BIBLE_BOOKS), unique=True, max_size=10))
    cut = draw(st.integers(0, len(held_out)))
    return pairs, held_out[:cut], held_out[cut:]


@settings(max_examples=150, deadline=None)
@given(pairs_and_held_out_books())
def test_split_by_book_puts_every_pair_in_one_split(case):
    pairs, valid_books, test_books = case
    splits = split_by_book(pairs, valid_books, test_books)
    assert list(splits) == ["train", "valid", "test"]
    assert sorted(p.verse for split in splits.values() for p in split) == [p.verse for p in pairs]
    for split in splits.values():
        assert split == sorted(split, key=lambda pair: pair.verse)  # input order kept
    assert {p.book for p in splits["valid"]} <= set(valid_books)
    assert {p.book for p in splits["test"]} <= set(test_books)
    assert not {p.book for p in splits["train"]} & (set(valid_books) | set(test_books))


def test_split_by_book_refuses_unknown_overlapping_and_bare_names():
    with pytest.raises(
        ValueError, match="Unknown book names in test_books: \\['1 Samuel'\\].*I Samuel"
    ):
        split_by_book([], valid_books=("Ruth",), test_books=("1 Samuel",))
    with pytest.raises(ValueError, match="both valid_books and test_books"):
        split_by_book([], valid_books=("Ruth", "Mark"), test_books=("Mark",))
    with pytest.raises(ValueError, match="sequence of book names"):
        split_by_book([], valid_books="Ruth")


def test_default_held_out_books_are_known_disjoint_and_mixed():
    assert set(DEFAULT_VALID_BOOKS) <= set(BIBLE_BOOKS)
    assert set(DEFAULT_TEST_BOOKS) <= set(BIBLE_BOOKS)
    assert not set(DEFAULT_VALID_BOOKS) & set(DEFAULT_TEST_BOOKS)
    new_testament = set(BIBLE_BOOKS[BIBLE_BOOKS.index("Matthew") :])
    for books in (DEFAULT_VALID_BOOKS, DEFAULT_TEST_BOOKS):
        assert set(books) & new_testament and set(books) - new_testament


# --- TSV files -----------------------------------------------------------------------------------

SIDES = st.text(
    alphabet=st.characters(exclude_characters="\t\n\r", exclude_categories=["Cs"]), min_size=1
).filter(lambda text: text == text.strip() and text != "")


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(SIDES, SIDES), min_size=1, max_size=10))
def test_parallel_tsv_round_trip(tmp_path_factory, pairs):
    path = tmp_path_factory.mktemp("tsv") / "pairs.tsv"
    assert write_parallel_tsv(path, pairs) == path
    assert read_parallel_tsv(path) == pairs


def test_read_parallel_tsv_strips_sides_and_skips_blank_lines(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_bytes("\ufeffHello \t Hola\r\n\n  \nThe end.\tFin.".encode())
    assert read_parallel_tsv(path) == [("Hello", "Hola"), ("The end.", "Fin.")]


@pytest.mark.parametrize(
    ("content", "error", "message"),
    [
        ("a\tb\nno tab here\n", ValueError, "line 2 has 0 tabs"),
        ("a\tb\nc\td\ne\tf\tg\n", ValueError, "line 3 has 2 tabs"),
        ("a\t \n", ValueError, "line 1 has an empty target side"),
        ("a\tb\n\n\tb\n", ValueError, "line 3 has an empty source side"),
        ("\n \n", EmptyCorpusError, "holds no source<TAB>target lines"),
    ],
)
def test_read_parallel_tsv_names_the_bad_line(tmp_path, content, error, message):
    path = tmp_path / "pairs.tsv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(error, match=message):
        read_parallel_tsv(path)


def test_read_parallel_tsv_refuses_other_encodings_and_missing_files(tmp_path):
    path = tmp_path / "latin1.tsv"
    path.write_bytes("one\tuno\nyear\ta\u00f1o\n".encode("latin-1"))
    with pytest.raises(CorpusEncodingError, match="line 2"):
        read_parallel_tsv(path)
    with pytest.raises(FileNotFoundError, match="No parallel text file"):
        read_parallel_tsv(tmp_path / "absent.tsv")


@pytest.mark.parametrize("pair", [("a\tb", "c"), ("a", "two\nlines"), ("a", "  ")])
def test_write_parallel_tsv_refuses_what_cannot_round_trip(tmp_path, pair):
    path = tmp_path / "pairs.tsv"
    with pytest.raises(ValueError, match="Pair 1 has a"):
        write_parallel_tsv(path, [("fine", "bien"), pair])
    assert not path.exists()


# --- the Bibles: tiny SWORD modules written here -------------------------------------------------

# Where Genesis 1:v sits in a KJV-versified zText index: two testament headings, the book's
# heading and the chapter's, then the verses.
GENESIS_1_FIRST_INDEX = 4


def write_ztext_module(library: Path, module: str, verses: list[str]) -> None:
    """A zText module (Old Testament only) holding ``verses`` as Genesis 1:1, 1:2, ..."""
    conf = (
        f"[{module}]\nDataPath=./modules/texts/ztext/{module}/\nModDrv=zText\nSourceType=OSIS\n"
        "Encoding=UTF-8\nCompressType=ZIP\nBlockType=BOOK\nVersification=KJV\n"
    )
    (library / "mods.d").mkdir(parents=True, exist_ok=True)
    (library / "mods.d" / f"{module}.conf").write_text(conf, encoding="utf-8")
    folder = library / "modules" / "texts" / "ztext" / module
    folder.mkdir(parents=True)
    block = "".join(verses).encode()
    records = [struct.pack("<IIH", 0, 0, 0)] * GENESIS_1_FIRST_INDEX
    start = 0
    for verse in verses:
        records.append(struct.pack("<IIH", 0, start, len(verse.encode())))
        start += len(verse.encode())
    compressed = zlib.compress(block)
    (folder / "ot.bzv").write_bytes(b"".join(records))
    (folder / "ot.bzs").write_bytes(struct.pack("<III", 0, len(compressed), len(block)))
    (folder / "ot.bzz").write_bytes(compressed)


def test_load_bible_pairs_reads_sword_modules(tmp_path):
    pytest.importorskip("pysword")
    library = tmp_path / "bible"
    english = [
        'In the <w lemma="strong:H7225">beginning</w> <w lemma="strong:H0430">God</w>. ',
        '<w lemma="strong:H0776">And the earth</w>.<note>a note</note>',
        "Only in English.",
    ]
    spanish = ['<w lemma="strong:H7225">EN el principio</w> <w lemma="strong:H0430">Dios</w>.']
    spanish += ['<w lemma="strong:H0776">Y la tierra</w>.', ""]
    write_ztext_module(library, ENGLISH_MODULE, english)
    write_ztext_module(library, SPANISH_MODULE, spanish)
    corpus = load_bible_pairs(tmp_path)
    assert corpus.pairs == (
        VersePair("Genesis", 1, 1, "In the beginning God.", "EN el principio Dios."),
        VersePair("Genesis", 1, 2, "And the earth.", "Y la tierra."),
    )
    assert corpus.dropped["empty_target"] == 1
    assert corpus.dropped["empty_both"] == 23145 - 3  # the rest of the Old Testament


def test_load_bible_pairs_without_pysword_says_how_to_install_it(tmp_path, monkeypatch):
    for module in (ENGLISH_MODULE, SPANISH_MODULE):
        write_ztext_module(tmp_path / "bible", module, ["text"])
    monkeypatch.setitem(sys.modules, "pysword", None)
    monkeypatch.setitem(sys.modules, "pysword.modules", None)
    with pytest.raises(ModuleNotFoundError, match=re.escape("pip install 'jaxllm[translate]'")):
        load_bible_pairs(tmp_path)


def test_load_bible_pairs_without_the_modules_says_to_run_make_data(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="run `make data`"):
        load_bible_pairs(tmp_path)
    monkeypatch.setenv("JAXLLM_DATA_DIR", str(tmp_path / "env"))
    assert bible_data_dir() == tmp_path / "env" / "bible"
    with pytest.raises(FileNotFoundError, match="engKJV2006eb.conf"):
        load_bible_pairs()


# --- the real Bibles, where `make data` has fetched them -----------------------------------------

BIBLES_FETCHED = (bible_data_dir() / "mods.d" / f"{SPANISH_MODULE}.conf").is_file() and (
    bible_data_dir() / "mods.d" / f"{ENGLISH_MODULE}.conf"
).is_file()


@pytest.fixture(scope="module")
def bibles():
    pytest.importorskip("pysword")
    return load_bible_pairs()


@pytest.mark.skipif(not BIBLES_FETCHED, reason="no Bible modules: run `make data`")
def test_real_bibles_pair_about_31k_clean_verses(bibles):
    assert 30_500 < len(bibles.pairs) <= 31_102
    assert len(bibles.pairs) + sum(bibles.dropped.values()) == 31_102  # the KJV versification
    verses = {(p.book, p.chapter, p.verse): p for p in bibles.pairs}
    genesis = verses["Genesis", 1, 1]
    assert genesis.source == "In the beginning God created the heaven and the earth."
    assert genesis.target == "EN el principio crió Dios los cielos y la tierra."
    assert verses["John", 3, 16].source == (
        "For God so loved the world, that he gave his only begotten Son, that whosoever "
        "believeth in him should not perish, but have everlasting life."
    )
    assert verses["John", 3, 16].target.startswith("Porque de tal manera amó Dios al mundo")
    for pair in bibles.pairs:
        for text in (pair.source, pair.target):
            assert not set(text) & set("<>\u00b6\\"), pair
    assert list(dict.fromkeys(p.book for p in bibles.pairs)) == list(BIBLE_BOOKS)


@pytest.mark.skipif(not BIBLES_FETCHED, reason="no Bible modules: run `make data`")
def test_real_bibles_default_splits_hold_out_about_5_percent_each(bibles):
    splits = split_by_book(bibles.pairs)
    for name in ("valid", "test"):
        assert 0.04 < len(splits[name]) / len(bibles.pairs) < 0.06
    assert not {p.book for p in splits["train"]} & set(DEFAULT_VALID_BOOKS + DEFAULT_TEST_BOOKS)
