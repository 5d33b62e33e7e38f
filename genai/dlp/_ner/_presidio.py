"""How the bundled NER and our patterns plug into Presidio (imported only when warming).

Everything here subclasses Presidio, so importing this module imports presidio_analyzer
and spaCy; :mod:`genai.dlp._detect` imports it lazily.

* :class:`PipelineNlpEngine` — Presidio's spaCy engine over a pipeline *directory* (or a
  blank pipeline) that never tries ``spacy download``, gives lowercase lemmas when the
  pipeline has no lemmatizer (Presidio's context words match lemmas) and scores NER
  spans from the model's calibration table (``training.json``).
* :class:`NerRecognizer` — turns those spans into results, dropping spans with no letter
  (Presidio with ``en_core_web_lg`` "finds" people in numbers; a phone number is not an
  address), and scores names, places, organisations and addresses by their shape and
  context as well (:mod:`._evidence`: code and arithmetic are dropped, ordinary words
  need a context word).
* :class:`OfflineEmailRecognizer` — Presidio's e-mail recognizer with tldextract on its
  bundled suffix-list snapshot: no network access, ever.
* :class:`BoundedUrlRecognizer` — Presidio's URL recognizer, minus the matches cut out of
  a longer word (``Dataset.sa`` of ``Dataset.save_to_disk``).
* a few pattern recognizers Presidio lacks: international phone layouts, ages, ZIP codes
  beside a context word, weekdays/months/years.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from presidio_analyzer import (
    AnalyzerEngine,
    EntityRecognizer,
    LocalRecognizer,
    Pattern,
    PatternRecognizer,
    RecognizerRegistry,
    RecognizerResult,
)
from presidio_analyzer.nlp_engine import NerModelConfiguration, NlpArtifacts, SpacyNlpEngine
from presidio_analyzer.predefined_recognizers import (
    CreditCardRecognizer,
    CryptoRecognizer,
    DateRecognizer,
    EmailRecognizer,
    IbanRecognizer,
    IpRecognizer,
    PhoneRecognizer,
    UrlRecognizer,
    UsItinRecognizer,
    UsLicenseRecognizer,
    UsPassportRecognizer,
    UsSsnRecognizer,
)
from spacy.tokens import Doc

from . import model_meta, span_bin
from ._evidence import judge

NER_RECOGNIZER = "GenaiNerRecognizer"
# OntoNotes / CoNLL labels that are not personal data (ignored without a warning).
_IGNORED_LABELS = (
    "CARDINAL",
    "ORDINAL",
    "QUANTITY",
    "MONEY",
    "PERCENT",
    "PRODUCT",
    "EVENT",
    "WORK_OF_ART",
    "LAW",
    "LANGUAGE",
    "MISC",
)
_NUMERIC_OK = frozenset({"DATE_TIME", "AGE"})
# Spans whose shape and context are checked (see ._evidence); other labels keep the score.
_JUDGED = frozenset({"PERSON", "LOCATION", "ORGANIZATION", "STREET_ADDRESS"})
_LETTER = re.compile(r"[^\W\d_]")
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")
# English closed-class words that are never a name on their own (a model trained on
# synthetic sentences tags a capitalised "How" or "Please" at the start of a question as a
# PERSON): a span made of these only is dropped. Words that are also given names or places
# ("Will", "May", "Mark", "Bill") are not here.
_FUNCTION_WORDS_EN = """
    a an the this that these those some any each every no all both either neither
    i me my mine you your yours he him his she her hers it its we us our ours they them
    their theirs myself yourself himself herself itself ourselves themselves
    who whom whose what which where when why how whoever whatever whichever
    do does did done is are was were be been being am has have had having
    can could would should must shall might ought
    and or but nor so yet if then than because although though while whereas unless
    of in on at to for with from by about as into onto over under after before between
    through during without within upon against among around near
    hi hello hey dear please thanks thank yes ok okay sorry well oh
    not also just only very too there here
    i'm i've i'd i'll you're we're they're it's that's what's where's how's
"""
_NEVER_A_NAME_EN = frozenset(_FUNCTION_WORDS_EN.split())
_EDGE = " \t\r\n,;:.\"'()[]<>|*-"


class PipelineNlpEngine(SpacyNlpEngine):
    """Presidio's spaCy engine over a pipeline directory or a blank pipeline."""

    def __init__(
        self,
        *,
        language: str,
        path: Path | None,
        label_map: dict[str, str],
        calibration: dict[str, dict[str, float]],
    ) -> None:
        config = NerModelConfiguration(
            model_to_presidio_entity_mapping=label_map,
            labels_to_ignore=list(_IGNORED_LABELS),
            default_score=0.85,
        )
        name = str(path) if path is not None else f"blank:{language}"
        super().__init__(
            models=[{"lang_code": language, "model_name": name}], ner_model_configuration=config
        )
        self._language = language
        self._path = path
        self._calibration = calibration

    def load(self) -> None:
        import spacy

        if self._path is None:
            nlp = spacy.blank(self._language)
        else:
            nlp = spacy.load(self._path, exclude=["parser", "tagger", "senter", "attribute_ruler"])
        self.nlp = {self._language: nlp}  # type: ignore[assignment]  # Presidio types it None

    def _get_scores_for_entities(self, doc: Doc) -> list[float]:
        """Calibrated precision of the span's label and bin (see ``train.calibrate``)."""
        default = self.ner_model_configuration.default_score or 0.85
        scores = []
        for ent in doc.ents:
            bins = self._calibration.get(ent.label_)
            score = bins.get(span_bin(ent.text, len(ent))) if bins else None
            scores.append(default if score is None else min(0.95, max(0.3, score)))
        return scores

    def _doc_to_nlp_artifact(self, doc: Doc, language: str) -> NlpArtifacts:
        artifacts = super()._doc_to_nlp_artifact(doc, language)
        if not any(artifacts.lemmas):
            artifacts.lemmas = [token.lower_ for token in doc]
            artifacts.keywords = NlpArtifacts.set_keywords(self, artifacts.lemmas, language)
        return artifacts


class NerRecognizer(LocalRecognizer):
    """Reports the NLP engine's entity spans (trimmed, numbers-only names dropped)."""

    def __init__(self, *, entities: Iterable[str], language: str) -> None:
        super().__init__(
            supported_entities=sorted(entities), supported_language=language, name=NER_RECOGNIZER
        )

    def load(self) -> None:
        return None

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        if nlp_artifacts is None:
            return []
        results = []
        wanted = set(entities) & set(self.supported_entities)
        for ent, score in zip(nlp_artifacts.entities, nlp_artifacts.scores, strict=True):
            label = ent.label_
            start, end = ent.start_char, ent.end_char
            while start < end and text[start] in _EDGE:
                start += 1
            while end > start and text[end - 1] in _EDGE and not text[start:end].endswith("."):
                end -= 1
            if label not in wanted or start >= end:
                continue
            if label not in _NUMERIC_OK and not _LETTER.search(text, start, end):
                continue
            if (
                label not in _NUMERIC_OK
                and self.supported_language == "en"
                and (_closed_class(text[start:end]))
            ):
                continue
            if label in _JUDGED:
                judged = judge(
                    text, start, end, label, float(score), language=self.supported_language
                )
                if judged is None:
                    continue
                start, end, score_ = judged.start, judged.end, judged.score
            else:
                score_ = float(score)
            results.append(RecognizerResult(label, start, end, score_))
        return results


def _closed_class(span: str) -> bool:
    """Whether every word of a span is an English function word (no name among them)."""
    words = _WORD.findall(span.replace("’", "'"))
    return bool(words) and all(w.lower() in _NEVER_A_NAME_EN for w in words)


class OfflineEmailRecognizer(EmailRecognizer):
    """Presidio's e-mail recognizer; the TLD check uses tldextract's bundled snapshot."""

    def __init__(self, **kwargs: Any) -> None:
        import tldextract

        super().__init__(**kwargs)
        self._tld = tldextract.TLDExtract(
            cache_dir=None, suffix_list_urls=(), fallback_to_snapshot=True
        )

    def validate_result(self, pattern_text: str) -> bool:
        return self._tld(pattern_text).fqdn != ""


class BoundedUrlRecognizer(UrlRecognizer):
    """Presidio's URL recognizer without the matches it cuts out of a longer word: its
    host pattern ends at any known top-level domain, so ``Dataset.save_to_disk`` held the
    "URL" ``Dataset.sa`` and ``os.path.join`` held ``os.path.jo``."""

    def analyze(
        self,
        text: str,
        entities: list[str],
        nlp_artifacts: NlpArtifacts | None = None,
        regex_flags: int | None = None,
    ) -> list[RecognizerResult]:
        found = super().analyze(text, entities, nlp_artifacts, regex_flags)
        return [r for r in found if not _inside_a_word(text, r.start, r.end)]


def _inside_a_word(text: str, start: int, end: int) -> bool:
    after = text[end : end + 1]
    before = text[start - 1 : start] if start else ""
    return bool(after and (after.isalnum() or after == "_")) or bool(
        before and (before.isalnum() or before in "_.@")
    )


class IntlPhoneRecognizer(PatternRecognizer):
    """Phone numbers in the layouts ``phonenumbers`` misses outside its configured regions."""

    PATTERNS = [
        Pattern(
            "phone (groups)",
            r"(?<![\w+/.,-])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{1,4}\)[\s.-]?)?\d{1,4}"
            r"(?:[\s.-]\d{1,5}){1,5}(?:\s?(?:x|ext\.?)\s?\d{1,5})?(?![\w/-]|[.,]\d)",
            0.4,
        ),
        Pattern("phone (+digits)", r"(?<![\w+])\+\d{8,14}\b", 0.5),
    ]
    CONTEXT = ["phone", "number", "telephone", "tel", "cell", "mobile", "call", "fax", "whatsapp"]
    _DATE = re.compile(r"^\d{1,4}([./-])\d{1,2}\1\d{1,4}$")

    def __init__(self, language: str) -> None:
        super().__init__(
            supported_entity="PHONE_NUMBER",
            name="IntlPhoneRecognizer",
            patterns=self.PATTERNS,
            context=self.CONTEXT,
            supported_language=language,
        )

    def invalidate_result(self, pattern_text: str) -> bool:
        digits = sum(c.isdigit() for c in re.split(r"(?:x|ext\.?)", pattern_text)[0])
        return not 7 <= digits <= 15 or bool(self._DATE.match(pattern_text.strip()))


_MONTHS = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|"
    r"aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
_NOT_AN_AGE = (
    r"(?!\s*(?:%|percent|[$€£]|dollars|usd|eur|kg|km|am|pm|[:.,/]\d|minutes|hours|days|items))"
)
# entity -> (recognizer name, context words, [(pattern name, regex, score)]).
# Scores below MIN_PATTERN_SCORE (0.35) need a context word (+0.35) to be reported.
_PATTERNS: dict[str, tuple[str, list[str], list[tuple[str, str, float]]]] = {
    "AGE": (
        "AgeRecognizer",
        ["age", "aged", "old", "birthday", "turned"],
        [
            ("n years old", r"\b\d{1,3}(?=[\s-]*(?:years?|yrs?)[\s-]*old\b)", 0.85),
            ("n y/o", r"\b\d{1,3}(?=\s*(?:y/o|y\.o\.|yo|years? of age)\b)", 0.85),
            ("aged n", r"(?<=\b(?:aged?|age:|ages|age of)\s{0,3})\d{1,3}\b", 0.7),
            ("turned n", r"(?<=\bturn(?:s|ed|ing)?\s)\d{1,3}\b(?!\s*(?:%|degrees|times))", 0.6),
            ("I am n", r"(?<=\b(?:i'?m|i am|he'?s|she'?s|is)\s)\d{1,2}\b" + _NOT_AN_AGE, 0.4),
        ],
    ),
    "ZIP_CODE": (
        "ZipCodeRecognizer",
        ["zip", "zipcode", "postal", "postcode", "plz", "cep", "post code"],
        [
            ("zip5", r"\b\d{5}(?:-\d{3,4})?\b", 0.1),
            ("zip4", r"\b\d{4}\b", 0.05),
            ("zip 3+2", r"\b\d{3} \d{2}\b", 0.05),
            ("zip 2-3", r"\b\d{2}-\d{3}\b", 0.05),
            ("uk postcode", r"\b[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}\b", 0.1),
        ],
    ),
    "DATE_TIME": (
        "DateWordsRecognizer",
        ["born", "birth", "date", "dob", "year", "since", "founded", "joined", "graduated"],
        [
            ("weekday", r"\b(?:mon|tues?|wed(?:nes)?|thu(?:rs)?|fri|sat(?:ur)?|sun)day\b", 0.6),
            ("month d y", rf"\b{_MONTHS}\.?\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+\d{{4}})?\b", 0.6),
            (
                "d month y",
                rf"\b\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTHS}\.?(?:,?\s+\d{{4}})?\b",
                0.6,
            ),
            ("month year", rf"\b{_MONTHS}\.?,?\s+(?:19|20)\d{{2}}\b", 0.6),
            (
                "year after preposition",
                r"(?<=\b(?:in|since|from|until|till|by|born|of|year|circa|before|after)\s)"
                r"(?:19|20)\d{2}s?\b",
                0.5,
            ),
            ("year", r"\b(?:19|20)\d{2}\b", 0.2),
            ("clock time", r"\b\d{1,2}:\d{2}(?::\d{2})?(?:\s?[ap]\.?m\.?)?\b", 0.5),
            ("hour am/pm", r"\b\d{1,2}\s?[ap]\.?m\.?(?!\w)", 0.5),
        ],
    ),
}
_HONORIFIC = (
    r"\b(?:Mr|Mrs|Ms|Mx|Dr|Prof|Miss|Sir|Dame|Madam|Mme|Mlle|Herr|Frau|Sr|Sra|Fr|Rev)\.?"
    r"(?=\s+[A-Z\u00c0-\u024f])"
)
_CASE_SENSITIVE = re.DOTALL | re.MULTILINE


def _our_patterns(language: str) -> list[EntityRecognizer]:
    """Ages, ZIP codes, date words, honorifics, nationalities, international phones."""
    out: list[EntityRecognizer] = [
        PatternRecognizer(
            supported_entity=entity,
            name=name,
            patterns=[Pattern(*p) for p in patterns],
            context=context,
            supported_language=language,
        )
        for entity, (name, context, patterns) in _PATTERNS.items()
    ]
    out.append(
        PatternRecognizer(
            supported_entity="TITLE",
            name="HonorificRecognizer",
            patterns=[Pattern("honorific", _HONORIFIC, 0.6)],
            supported_language=language,
            global_regex_flags=_CASE_SENSITIVE,
        )
    )
    out.append(
        PatternRecognizer(
            supported_entity="NRP",
            name="NationalityRecognizer",
            deny_list=_nrp_words(),
            deny_list_score=0.6,
            supported_language=language,
            global_regex_flags=_CASE_SENSITIVE,
        )
    )
    out.append(IntlPhoneRecognizer(language))
    return out


def _nrp_words() -> list[str]:
    """Nationalities and religions in capitalised, lower and upper case, with plurals."""
    from ._vocab import NATIONALITIES

    religions = ("Christian", "Catholic", "Protestant", "Muslim", "Jewish", "Jew", "Buddhist")
    words = [*NATIONALITIES, *religions, "Hindu", "Sikh", "Jain"]
    out: set[str] = set()
    for word in words:
        forms = [word] if word[-1] in "shi" or word.endswith("ese") else [word, word + "s"]
        for form in forms:
            out.update({form, form.upper()} | ({form.lower()} if word != "Polish" else set()))
    return sorted(out, key=len, reverse=True)


def pattern_recognizers(language: str) -> list[EntityRecognizer]:
    """Presidio's generic and US recognizers (e-mail made offline) plus ours."""
    lang = language
    presidio: list[EntityRecognizer] = [
        CreditCardRecognizer(supported_language=lang),
        CryptoRecognizer(supported_language=lang),
        DateRecognizer(supported_language=lang),
        OfflineEmailRecognizer(supported_language=lang),
        IbanRecognizer(supported_language=lang),
        IpRecognizer(supported_language=lang),
        PhoneRecognizer(supported_language=lang),
        BoundedUrlRecognizer(supported_language=lang),
        UsItinRecognizer(supported_language=lang),
        UsLicenseRecognizer(supported_language=lang),
        UsPassportRecognizer(supported_language=lang),
        UsSsnRecognizer(supported_language=lang),
    ]
    return [*presidio, *_our_patterns(language)]


def _calibration(path: Path | None) -> dict[str, dict[str, float]]:
    """The bundled model's calibration table; other pipelines get the default score."""
    if path is None:
        return {}
    table: dict[str, dict[str, float]] = model_meta(path).get("calibration", {})
    return table


def build_engine(
    *,
    kind: str,
    path: Path | None,
    language: str,
    label_map: dict[str, str],
    ner_entities: frozenset[str],
    extra: Sequence[EntityRecognizer],
) -> AnalyzerEngine:
    """The AnalyzerEngine for one Detector: NLP engine, registry, recognizers."""
    recognizers: list[EntityRecognizer] = pattern_recognizers(language)
    spacy_path = path if kind in ("bundled", "spacy") else None
    nlp_engine = PipelineNlpEngine(
        language=language,
        path=spacy_path,
        label_map=label_map,
        calibration=_calibration(spacy_path),
    )
    if kind in ("bundled", "spacy"):
        recognizers.append(NerRecognizer(entities=ner_entities, language=language))
    elif kind == "hf":
        from presidio_analyzer.predefined_recognizers.ner.huggingface_ner_recognizer import (
            HuggingFaceNerRecognizer,
        )

        recognizers.append(
            HuggingFaceNerRecognizer(
                model_name=str(path),
                supported_language=language,
                label_mapping=label_map,
                supported_entities=sorted(ner_entities),
                name=NER_RECOGNIZER,
                device="cpu",
            )
        )
    recognizers.extend(extra)
    registry = RecognizerRegistry(recognizers=recognizers, supported_languages=[language])
    nlp_engine.load()
    return AnalyzerEngine(registry=registry, nlp_engine=nlp_engine, supported_languages=[language])
