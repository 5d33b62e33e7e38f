"""The shape-and-context rules the NER's spans pass (no model loaded: the rules alone)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from genai.dlp._ner._evidence import CONTEXT_BOOST, WEAK_SCORE, judge
from genai.dlp._ner._lexicon import LEXICON_PATH, build, common_words, is_common
from genai.dlp._ner._techwords import TECH_PATH, is_technical, technical_words
from genai.dlp._ner._techwords import build as build_tech

MODEL = 0.95  # what the NER's calibration table gives a span


def judged(text: str, value: str, label: str, **kwargs: str) -> tuple[str, float] | None:
    start = text.index(value)
    found = judge(text, start, start + len(value), label, MODEL, **kwargs)
    return None if found is None else (text[found.start : found.end], found.score)


@pytest.mark.parametrize(
    ("text", "value", "label"),
    [
        ("Call load_dataset() with streaming=True.", "load_dataset()", "ORGANIZATION"),
        ("Set `True` to keep it.", "`True`", "LOCATION"),
        ("Use Dataset.map to change rows.", "Dataset.map", "PERSON"),
        ("The BuilderConfig holds the options.", "BuilderConfig", "PERSON"),
        ("The splits are Split.TRAIN and Split.TEST.", "Split", "LOCATION"),
        ("Install 🤗 Datasets first.", "🤗 Datasets", "PERSON"),
        ("path = my_files/Reports", "Reports", "LOCATION"),
    ],
)
def test_code_is_never_a_name(text: str, value: str, label: str) -> None:
    assert judged(text, value, label) is None


@pytest.mark.parametrize(
    "text", ["2 plus 9", "3 greater than 7", "12 times 7", "15 divided by 3", "4 from 9", "6 x 8"]
)
def test_arithmetic_is_not_an_address(text: str) -> None:
    assert judged(f"What is {text}?", text, "STREET_ADDRESS") is None


@pytest.mark.parametrize(
    ("text", "value", "label"),
    [
        ("The columns are renamed in place.", "columns", "PERSON"),  # lower case, cased text
        ("Read the Tutorials first.", "Tutorials", "PERSON"),  # a common word
        ("Open the Conceptual Guides page.", "Conceptual Guides", "LOCATION"),
        ("Store it as CSV please.", "CSV", "LOCATION"),  # an acronym
        ("sunny", "sunny", "LOCATION"),  # one word of a lower-case text
        ("It will be sunny and warm.", "sunny", "LOCATION"),
        ("Ask the Datasets-server team.", "Datasets-server", "PERSON"),
        ("The ShopWorks team answered.", "ShopWorks", "ORGANIZATION"),
        ("See the Guides, see Audio pages.", "Guides, see Audio", "PERSON"),
        ("A Dataset is a class.", "A Dataset", "LOCATION"),  # an article and a common word
        # names of software (the technical vocabulary), with common words and acronyms
        ("Albumentations is a Python library.", "Albumentations", "ORGANIZATION"),
        ("It runs on Apache Beam, a library.", "Apache Beam", "PERSON"),
        ("Store it in Google Cloud Storage.", "Google Cloud Storage", "ORGANIZATION"),
        ("Train the model in PyTorch.", "PyTorch", "LOCATION"),
        ("Fetch the script from GitHub.", "GitHub", "LOCATION"),
        ("Read it from the HF Google bucket.", "HF Google", "ORGANIZATION"),
        ("The codes are 'de-DE', 'en-GB'.", "DE'", "ORGANIZATION"),  # quotes: an acronym
    ],
)
def test_ordinary_words_are_weak(text: str, value: str, label: str) -> None:
    assert judged(text, value, label) == (value, WEAK_SCORE)


def test_a_context_word_lifts_a_weak_span_but_not_a_lower_case_one() -> None:
    boosted = WEAK_SCORE + CONTEXT_BOOST
    assert judged("My name is Hope.", "Hope", "PERSON") in {("Hope", MODEL), ("Hope", boosted)}
    assert judged("my name is vitoria", "vitoria", "PERSON") == ("vitoria", boosted)
    assert judged("She works at Summit Partners.", "Summit Partners", "ORGANIZATION") == (
        "Summit Partners",
        boosted,
    )
    # a word cut at the edge of the context window is not a context word ("met" of "method")
    assert judged("Give the URI to the `from_sql()` method.", "URI", "PERSON") == (
        "URI",
        WEAK_SCORE,
    )
    # a software name too: "works at" makes a company of it
    assert judged("She works at Google now.", "Google", "ORGANIZATION") == ("Google", boosted)
    # in a cased text a lower-case span stays weak, whatever is near ("column names")
    assert judged("The column names are called split.", "split", "PERSON") == (
        "split",
        WEAK_SCORE,
    )


def test_names_places_and_addresses_keep_the_model_score() -> None:
    text = "Margarethe Olsson moved from Lisbon to 221 Elm Street, Springfield."
    assert judged(text, "Margarethe Olsson", "PERSON") == ("Margarethe Olsson", MODEL)
    assert judged(text, "Lisbon", "LOCATION") == ("Lisbon", MODEL)
    assert judged(text, "221 Elm Street, Springfield", "STREET_ADDRESS") == (
        "221 Elm Street, Springfield",
        MODEL,
    )
    lower = "eva kleist lives at 255 hersnapvej 18, københavn k"
    assert judged(lower, "eva kleist", "PERSON") == ("eva kleist", MODEL)
    assert judged(lower, "255 hersnapvej 18, københavn k", "STREET_ADDRESS") is not None


def test_lower_case_words_at_the_edges_of_a_name_are_cut_off() -> None:
    text = '"Not yet," says Liisa Lepistö today.'
    assert judged(text, "says Liisa Lepistö", "PERSON") == ("Liisa Lepistö", MODEL)
    assert judged("Mr. Leiva flew home.", "Leiva flew", "PERSON") == ("Leiva", MODEL)


def test_addresses_need_a_number_and_more_than_common_words() -> None:
    assert judged("Meet me at the corner.", "the corner", "STREET_ADDRESS") == (
        "the corner",
        WEAK_SCORE,
    )
    assert judged("take 2 steps back", "2 steps back", "STREET_ADDRESS") == (
        "2 steps back",
        WEAK_SCORE,
    )


def test_other_languages_get_only_the_code_and_context_rules() -> None:
    assert judged("Die Tabelle ist leer.", "Tabelle", "PERSON", language="de") == (
        "Tabelle",
        MODEL,
    )
    assert judged("Nutze load_dataset()", "load_dataset()", "PERSON", language="de") is None


def test_the_lexicon_holds_common_words_not_names() -> None:
    assert {"table", "tutorial", "storage", "sunny"} <= common_words()
    assert is_common("Tutorials") and is_common("TABLE") and is_common("storage's")
    for name in ("smith", "paris", "rose", "will", "baker", "john"):
        assert not is_common(name), name
    assert len(common_words()) > 50_000
    with gzip.open(LEXICON_PATH, "rt", encoding="utf-8") as file:
        assert file.readline().startswith("# common English words")
    assert (Path(LEXICON_PATH).parent / "SCOWL-LICENSE").is_file()


def test_the_lexicon_build_drops_proper_nouns_plurals_and_possessives() -> None:
    source = ["rose", "Rose", "table", "tables", "Paris", "cat's", "storage", "Zürich"]
    assert build(source) == ["storage", "table"]


def test_the_technical_vocabulary_names_software_not_people_or_places() -> None:
    for word in ("pytorch", "Albumentations", "Kornia", "GitHub", "dask", "tokenizers"):
        assert is_technical(word), word
    # names and places (Faker's and our lists) and common words are not in it
    for word in ("smith", "john", "maria", "paris", "timm", "berlin", "table", "storage"):
        assert not is_technical(word), word
    assert len(technical_words()) > 5_000
    with gzip.open(TECH_PATH, "rt", encoding="utf-8") as file:
        assert file.readline().startswith("# technical words")


def test_the_technical_vocabulary_build_splits_names_and_drops_names_and_common_words() -> None:
    projects = ["apache-beam", "google_cloud.storage", "py", "timm", "kornia", "Gradio"]
    assert build_tech(projects, exclude={"Timm"}) == ["apache", "google", "gradio", "kornia"]
