"""Slot fillers for the synthetic NER corpus: one method per ``{SLOT}`` a template names.

Each filler returns ``(text, label)``; ``label`` is the entity type the NER learns, or
``None`` for values the pattern recognizers own (emails, cards, ...) and for decoys
(amounts, order numbers, products) that the NER must learn to leave alone. Values come
from Faker in many locales so the model sees names and places from far beyond en_US,
plus the hand-written lists in :mod:`._vocab`.
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import Callable
from datetime import datetime
from typing import Any

from faker import Faker

from . import _vocab as V

Value = tuple[str, str | None]
# Fixed bounds: Faker's relative dates ("-80y") depend on today and break reproducibility.
_OLDEST, _NEWEST = datetime(1945, 1, 1), datetime(2027, 12, 31)

# Locales whose Faker data is in Latin, Greek or Cyrillic script, with a weight: en_US is
# the most common in business text, the rest keep the model from learning "a name is
# Anglo-Saxon".
LOCALES: dict[str, int] = {
    "en_US": 10, "en_GB": 4, "en_AU": 2, "en_CA": 2, "en_IE": 1, "en_IN": 2, "en_NZ": 1,
    "de_DE": 3, "de_AT": 1, "de_CH": 1, "fr_FR": 3, "fr_CA": 1, "fr_CH": 1, "it_IT": 3,
    "es_ES": 3, "es_MX": 2, "es_AR": 1, "es_CO": 1, "pt_BR": 2, "pt_PT": 1, "nl_NL": 2,
    "nl_BE": 1, "sv_SE": 2, "da_DK": 2, "no_NO": 2, "fi_FI": 2, "pl_PL": 2, "cs_CZ": 2,
    "sk_SK": 1, "hu_HU": 1, "ro_RO": 1, "hr_HR": 1, "sl_SI": 1, "tr_TR": 1, "et_EE": 1,
    "lv_LV": 1, "lt_LT": 1, "id_ID": 1, "fil_PH": 1, "is_IS": 1, "ga_IE": 1, "zu_ZA": 1,
    "sw": 1, "tw_GH": 1, "az_AZ": 1, "vi_VN": 1, "el_GR": 1, "ru_RU": 1, "uk_UA": 1,
    "bg_BG": 1,
}  # fmt: skip
# Locales with romanised names only (their other data is not Latin script).
ROMANISED = ("ja_JP", "zh_CN")
# Latin, Greek and Cyrillic script (other scripts tokenise differently; out of scope).
_USABLE = re.compile(
    r"^[\x20-\x7e\u00a0-\u024f\u0370-\u03ff\u0400-\u04ff\u1e00-\u1eff\n'’«».,&/-]+$"
)


# What tells a reader that Faker's company() is a company and not a person's name.
_ORG_MARKER = re.compile(
    r",|&|\b(?:and|und|et|e|y|og|och|ja|és|i)\b|\b(?:Inc|LLC|Ltd|Limited|GmbH|AG|KG|KGaA|SE|"
    r"S\.?A\.?S?|SARL|SRL|S\.?r\.?l\.?|S\.?p\.?A\.?|Ltda|S\.?L\.?|Oyj?|AB|HB|KB|ApS|A/S|ASA|AS|"
    r"BA|B\.?V\.?|N\.?V\.?|VOF|plc|PLC|Co|Corp|Group|Sp\. z o\.o|s\.r\.o|a\.s|v\.o\.s|k\.s|"
    r"d\.o\.o|d\.d|s\.p|Kft|Zrt|Bt|Kht|Tbk|PT|PD|CV|QSC|MMC|Group|Holdings?)\b",
    re.IGNORECASE,
)


def _usable(text: str) -> bool:
    return bool(_USABLE.match(text))


class Filler:
    """Draws slot values reproducibly from one ``random.Random`` and seeded Fakers."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self._seed = seed
        self._fakers: dict[str, Faker] = {}
        self._locales = list(LOCALES)
        self._weights = list(LOCALES.values())
        self._us = self.faker("en_US")

    def faker(self, locale: str) -> Faker:
        """The seeded Faker of ``locale``, made on first use (Faker's imports are slow)."""
        fake = self._fakers.get(locale)
        if fake is None:
            fake = self._fakers[locale] = Faker(locale)
            index = [*LOCALES, *ROMANISED].index(locale)
            fake.seed_instance(self._seed * 1000 + index)
        return fake

    # -- helpers ----------------------------------------------------------------------

    def fake(self) -> Faker:
        """A Faker of a random locale, weighted by :data:`LOCALES`."""
        return self.faker(self.rng.choices(self._locales, self._weights)[0])

    def _draw(self, make: Callable[[Faker], Any], tries: int = 8) -> str:
        """A value in a usable script from a random locale (falls back to en_US)."""
        for _ in range(tries):
            try:
                value = str(make(self.fake())).strip()
            except AttributeError:
                continue
            if value and _usable(value):
                return value
        return str(make(self._us)).strip()

    def p(self, probability: float) -> bool:
        return self.rng.random() < probability

    def pick(self, options: tuple[str, ...] | list[str]) -> str:
        return self.rng.choice(options)

    def digits(self, n: int) -> str:
        return "".join(self.rng.choice(string.digits) for _ in range(n))

    # -- people -----------------------------------------------------------------------

    def first_name(self) -> str:
        if self.p(0.06):
            return self.faker(self.pick(ROMANISED)).first_romanized_name()
        return self._draw(lambda f: f.first_name())

    def last_name(self) -> str:
        if self.p(0.06):
            return self.faker(self.pick(ROMANISED)).last_romanized_name()
        return self._draw(lambda f: f.last_name())

    def PERSON(self) -> Value:
        first, last = self.first_name(), self.last_name()
        r = self.rng.random()
        if r < 0.62:
            name = f"{first} {last}"
        elif r < 0.72:
            name = f"{first} {self.rng.choice(string.ascii_uppercase)}. {last}"
        elif r < 0.80:
            name = f"{first} {self.first_name()} {last}"
        elif r < 0.86:
            name = f"{first} {last}-{self.last_name()}"
        elif r < 0.90:
            name = f"{last}, {first}"
        elif r < 0.94:
            name = f"{first[0]}. {last}"
        else:
            name = self._draw(lambda f: f.name())
            name = re.sub(r"^(Mr|Mrs|Ms|Miss|Dr|Prof)\.? ", "", name)
            name = re.sub(r",? (Jr\.|Sr\.|MD|DDS|PhD|DVM|I{1,3}|IV|V)$", "", name)
        return name, "PERSON"

    def FIRST(self) -> Value:
        return self.first_name(), "PERSON"

    def LAST(self) -> Value:
        return self.last_name(), "PERSON"

    def PREFIX(self) -> Value:
        return self.pick(
            (
                "Mr.",
                "Mr.",
                "Mrs.",
                "Ms.",
                "Ms.",
                "Dr.",
                "Dr.",
                "Prof.",
                "Miss",
                "Mr",
                "Mrs",
                "Ms",
                "Dr",
                "Sir",
                "Madam",
                "Mx.",
            )
        ), "TITLE"

    def JOB(self) -> Value:
        job = self._draw(lambda f: f.job()) if self.p(0.15) else self._us.job()
        job = job.split(",")[0].strip()
        if self.p(0.15):
            job = job.lower()
        return job, "TITLE"

    def NRP(self) -> Value:
        word = self.pick(V.NATIONALITIES) if self.p(0.8) else self.pick(V.RELIGIONS_POLITICS)
        if self.p(0.15):
            word += "s"
        if self.p(0.15):
            word = word.lower()
        return word, "NRP"

    # -- organisations ----------------------------------------------------------------

    def brand(self) -> str:
        word = "".join(self.pick(V.BRAND_SYLLABLES) for _ in range(self.rng.randint(2, 3)))
        return word.capitalize() if self.p(0.85) else word

    def ORG(self) -> Value:
        r = self.rng.random()
        if r < 0.30:
            name = self._draw(lambda f: f.company())
            if not _ORG_MARKER.search(name):  # "Pearson-Kramer", "Melo": people, for a reader
                name = f"{self.brand()} {self.pick(V.ORG_NOUNS)}"
        elif r < 0.45:
            name = self.pick(V.WELL_KNOWN_ORGS)
        elif r < 0.60:
            name = f"{self.brand()} {self.pick(V.ORG_NOUNS)}"
        elif r < 0.70:
            name = self.brand()
        elif r < 0.80:
            name = f"{self.pick(V.ORG_PREFIX_WORDS)} {self.pick(V.ORG_NOUNS)}"
        elif r < 0.88:
            name = f"{self.last_name()} {self.pick(V.ORG_NOUNS)}"
        elif r < 0.94:
            name = f"{self.brand()} {self.pick(V.ORG_SUFFIXES)}"
        else:
            letters = "".join(self.rng.choices(string.ascii_uppercase, k=self.rng.randint(2, 4)))
            name = ".".join(letters) + "." if self.p(0.3) else letters
        if self.p(0.1) and not name.isupper():
            name = f"{name} {self.pick(V.ORG_SUFFIXES)}"
        return name, "ORGANIZATION"

    # -- places -----------------------------------------------------------------------

    def city(self) -> str:
        return self.pick(V.WORLD_CITIES) if self.p(0.3) else self._draw(lambda f: f.city())

    def CITY(self) -> Value:
        return self.city(), "LOCATION"

    def COUNTRY(self) -> Value:
        r = self.rng.random()
        if r < 0.55:
            return self.pick(V.COUNTRIES_EN), "LOCATION"
        if r < 0.85:
            return self._us.country(), "LOCATION"
        return self._draw(lambda f: f.country()), "LOCATION"

    def STATE(self) -> Value:
        r = self.rng.random()
        if r < 0.4:
            return self._us.state(), "LOCATION"
        if r < 0.6:
            return self.pick(V.REGIONS_EN), "LOCATION"
        return self._draw(lambda f: f.administrative_unit()), "LOCATION"

    def LOC(self) -> Value:
        return self.rng.choice((self.CITY, self.CITY, self.COUNTRY, self.STATE))()

    def street(self) -> str:
        r = self.rng.random()
        if r < 0.08:
            return f"{self._us.building_number()} {self._draw(lambda f: f.street_address())}"
        if r < 0.6:
            return self._draw(lambda f: f.street_address())
        if r < 0.8:
            return f"{self._us.building_number()} {self._draw(lambda f: f.street_name())}"
        if r < 0.9:
            return f"{self._draw(lambda f: f.street_name())} {self.rng.randint(1, 250)}"
        return f"{self._us.street_address()} {self._us.secondary_address()}"

    def STREET(self) -> Value:
        return self.street(), "STREET_ADDRESS"

    def ADDRESS(self) -> Value:
        """A whole postal address: parts in one of several orders, any separators."""
        if self.p(0.25):
            text = self._draw(lambda f: f.address())
            if self.p(0.3):
                text = text.replace("\n", self.pick((", ", " ", "\n ")))
        elif self.p(0.05):
            us = self._us
            text = self.pick(
                (
                    f"{us.military_apo()}\nAPO {us.military_state()} {us.postcode()}",
                    f"{us.military_dpo()}\nDPO {us.military_state()} {us.postcode()}",
                    f"{us.military_ship()} {self.last_name()}\nFPO {us.military_state()}"
                    f" {us.postcode()}",
                )
            )
        else:
            text = self._compose_address()
        if self.p(0.04):
            text = text.upper()
        return text, "STREET_ADDRESS"

    def _compose_address(self) -> str:
        f, us = self.fake(), self._us
        street = self.street()
        if self.p(0.25):
            street += self.pick((" ", ", ", "\n", "\n ")) + us.secondary_address()
        city = self.city()
        postcode = f.postcode() if self.p(0.7) else us.postcode()
        state = self.pick((us.state_abbr(), us.state(), self.STATE()[0])) if self.p(0.35) else ""
        country = self.COUNTRY()[0] if self.p(0.4) else ""
        layout = self.rng.random()
        if layout < 0.4:  # street, city, state postcode, country
            tail = [city, f"{state} {postcode}".strip() if self.p(0.8) else state, country]
        elif layout < 0.7:  # street, postcode city, country
            tail = [f"{postcode} {city}", state, country]
        elif layout < 0.85:  # street, city, country postcode
            tail = [city, state, f"{country} {postcode}".strip()]
        else:  # street, city (short forms)
            tail = [city] if self.p(0.5) else [city, country]
        parts = [street, *(t for t in tail if t)]
        seps = (", ", ", ", "\n", "\n ", " ", ",\n", "\n, ")
        sep = self.pick(seps)
        text = parts[0]
        for part in parts[1:]:
            text += (self.pick(seps) if self.p(0.3) else sep) + part
        return text

    # -- pattern-owned values and decoys (label None for the NER) ---------------------

    def EMAIL(self) -> Value:
        user = self.pick(
            (
                f"{self.first_name()}{self.last_name()}",
                f"{self.first_name()}.{self.last_name()}",
                f"{self.first_name()[0]}{self.last_name()}",
                f"{self.first_name()}{self.digits(2)}",
                "info",
                "support",
                "billing",
                "hr",
                "no-reply",
            )
        ).lower()
        user = re.sub(r"[^a-z0-9.-]", "", user) or "user"
        return f"{user}@{self.DOMAIN()[0].lower()}", None

    def DOMAIN(self) -> Value:
        tld = self.pick(("com", "com", "org", "net", "io", "de", "fr", "co.uk", "nl", "se", "it"))
        return f"{self.brand().lower()}.{tld}", None

    def URL(self) -> Value:
        path = self.pick(("", "/", "/login", "/account/settings", f"/orders/{self.digits(6)}"))
        www = "www." if self.p(0.4) else ""
        return f"{self.pick(('https', 'http'))}://{www}{self.DOMAIN()[0]}{path}", None

    def PHONE(self) -> Value:
        return self._draw(lambda f: f.phone_number()), None

    def CARD(self) -> Value:
        number = self._us.credit_card_number()
        if self.p(0.3):
            number = " ".join(number[i : i + 4] for i in range(0, len(number), 4))
        return number, None

    def IBAN(self) -> Value:
        locale = self.pick(("en_GB", "de_DE", "fr_FR", "nl_NL", "es_ES", "it_IT", "pl_PL"))
        return self.faker(locale).iban(), None

    def IP(self) -> Value:
        return (self._us.ipv4() if self.p(0.8) else self._us.ipv6()), None

    def SSN(self) -> Value:
        return self._us.ssn(), None

    def DATE(self) -> Value:
        fmt = self.pick(
            (
                "%m/%d/%Y",
                "%d.%m.%Y",
                "%Y-%m-%d",
                "%B %d, %Y",
                "%d %B %Y",
                "%b %d",
                "%d/%m/%y",
                "%Y-%m-%d %H:%M:%S",
            )
        )
        when = self._us.date_time_between(start_date=_OLDEST, end_date=_NEWEST)
        return when.strftime(fmt), "DATE_TIME"

    def YEAR(self) -> Value:
        return str(self.rng.randint(1940, 2030)), "DATE_TIME"

    def WEEKDAY(self) -> Value:
        return self._us.day_of_week(), "DATE_TIME"

    def TIME(self) -> Value:
        return self.pick(
            (
                f"{self.rng.randint(1, 12)}pm",
                f"{self.rng.randint(7, 18)}:00",
                f"{self.rng.randint(1, 12)}:30 am",
                "noon",
            )
        ), None

    def AGE(self) -> Value:
        return str(self.rng.randint(16, 95)), "AGE"

    def ZIP(self) -> Value:
        return self._draw(lambda f: f.postcode()), None

    def AMOUNT(self) -> Value:
        value = f"{self.rng.randint(1, 99999):,}" if self.p(0.5) else str(self.rng.randint(1, 999))
        if self.p(0.5):
            value += f".{self.digits(2)}"
        return self.pick(
            (
                f"${value}",
                f"{value} EUR",
                f"€{value}",
                f"£{value}",
                f"{value} USD",
                value,
                f"{value} dollars",
            )
        ), None

    def NUM(self) -> Value:
        return self.pick(
            (
                self.digits(self.rng.randint(1, 4)),
                self.digits(self.rng.randint(5, 9)),
                f"#{self.digits(5)}",
                f"{self.rng.randint(1, 50)}",
            )
        ), None

    def ORDER_ID(self) -> Value:
        prefix = self.pick(("", "ORD-", "INV-", "TKT-", "#", "A", "REF"))
        return f"{prefix}{self.digits(self.rng.randint(5, 10))}", None

    def PRODUCT(self) -> Value:
        return self.pick(V.PRODUCTS), None

    def PROSE(self) -> Value:
        """An everyday sentence, or Faker's word salad of common English words."""
        if self.p(0.45):
            return self.pick(V.PROSE), None
        words = self._us.words(self.rng.randint(3, 18))
        if self.p(0.2):  # a headline or a title in Title Case
            return " ".join(w.capitalize() for w in words), None
        text = " ".join(words)
        return text[0].upper() + text[1:] + self.pick((".", ".", "!", "?", "", ",")), None

    def CAPWORD(self) -> Value:
        return self.pick(V.CAPITALISED_NON_ENTITIES), None

    def DL(self) -> Value:
        return (
            f"{self.rng.choice(string.ascii_uppercase)}{self.digits(self.rng.randint(7, 12))}",
            None,
        )
