"""Text normalisation without NeMo's grammars: numbers, money, times, dates, phone numbers, units
and abbreviations as words, in pure Python.

NeMo's grammars need pynini, which has no wheel for aarch64 (the DGX Spark), so this is what
normalises there, and wherever NeMo's grammar cannot load. Numbers are spelled by `num2words`,
currency names come from its tables; this module only finds the written forms and joins the
words. It covers English, German and Spanish fully; French, Italian, Vietnamese and Japanese get
the number forms `num2words` spells for them (cardinals, decimals, ordinals, percentages, money
where it names the currency, clock times).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from num2words import CONVERTER_CLASSES, num2words

MONTHS = {
    "en": "january february march april may june july august september october november december",
    "de": "Januar Februar März April Mai Juni Juli August September Oktober November Dezember",
    "es": "enero febrero marzo abril mayo junio julio agosto septiembre octubre noviembre "
    "diciembre",
    "fr": "janvier février mars avril mai juin juillet août septembre octobre novembre décembre",
    "it": "gennaio febbraio marzo aprile maggio giugno luglio agosto settembre ottobre novembre "
    "dicembre",
}
# Not inside a word or a number (Japanese, written without spaces, uses NUMBER_EDGE).
WORD_EDGE = r"(?<![\w.,])"
NUMBER_EDGE = r"(?<![\d.,])"
CURRENCY_SYMBOLS = {"$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY"}
# Where num2words' names differ from everyday speech.
CURRENCY_NAMES = {
    ("en", "EUR"): (("euro", "euros"), ("cent", "cents")),
    ("en", "GBP"): (("pound", "pounds"), ("penny", "pence")),
    ("en", "JPY"): (("yen", "yen"), ()),
}
# What follows a clock time: "pm" (its letter is the rule's third group), "Uhr".
CLOCK_SUFFIXES = {"en": r"\s*([apAP])(?:\.[mM]\.|[mM])(?!\w)", "de": r"\s*(Uhr)\b"}
# "5-10": "five to ten".
RANGE_WORDS = {"en": "to", "de": "bis", "es": "a", "fr": "à", "it": "a"}
# Phone numbers as each country writes them: read digit by digit, group by group.
PHONE_NUMBERS = {
    "en": r"(?:\+1[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4}",
    "de": r"(?:\+49[\s-]?\d{2,4}|0\d{2,4})[\s/-]\d{3,8}(?:[\s-]\d{1,5})?",
    "es": r"(?:\+34\s?)?\d{3}(?:\s\d{3}\s\d{3}|\s\d{2}\s\d{2}\s\d{2})",
}


@dataclass(frozen=True)
class Language:
    """How one language writes and says the forms this module reads."""

    code: str
    decimal_mark: str  # in written numbers: "." or ","
    point: str  # the word said for it
    decimals_as_number: bool = False  # "tres coma catorce" rather than "tres coma uno cuatro"
    minus: str = "minus"
    plus: str = "plus"
    percent: str = "percent"
    money_joiner: str = ""  # between the units and the cents: "und", "con"
    # "1.5 million": the words for thousands and up that may follow an amount of money, and what
    # joins them to the currency ("millones de dólares")
    scales: tuple[str, ...] = ()
    scale_joiner: str = ""
    spaced: bool = True  # False: words are written without spaces between them (Japanese)
    # abbreviation -> words; each matched as a whole token, case sensitive
    abbreviations: dict[str, str] = field(default_factory=dict)
    # unit symbol -> (singular, plural)
    units: dict[str, tuple[str, str]] = field(default_factory=dict)
    # between two numbers: "+" -> "plus"
    operators: dict[str, str] = field(default_factory=dict)
    # the words of a clock time from its hour, minute and "am"/"pm" (or "")
    clock: Callable[[FallbackNormalizer, int, int, str], str] | None = None


class FallbackNormalizer:
    """`normalize(text)` for one language; `supports(code)` says which languages it can do."""

    def __init__(self, language: str):
        if language not in LANGUAGES:
            raise ValueError(f"the fallback normaliser does not speak {language!r}")
        self.language = LANGUAGES[language]
        self.code = language
        self._converter = CONVERTER_CLASSES[language]
        self._months = MONTHS.get(language, "").split()
        self._rules = self._compile()

    @staticmethod
    def supports(language: str) -> bool:
        return language in LANGUAGES

    def normalize(self, text: str) -> str:
        for pattern, spell in self._rules:
            text = pattern.sub(spell, text)
        return re.sub(r"[ \t]{2,}", " ", text)

    # --- number words --------------------------------------------------------------------------

    def cardinal(self, n: int) -> str:
        words = num2words(n, lang=self.code)
        if self.code != "en":
            return words
        # American usage, as NeMo's grammar says it: "one hundred one", no commas.
        return words.replace(",", "").replace(" and ", " ").replace("-", " ")

    def ordinal(self, n: int) -> str:
        words = num2words(n, lang=self.code, to="ordinal")
        return words.replace("-", " ") if self.code == "en" else words

    def year(self, n: int) -> str:
        if self.code == "en" or (self.code == "de" and 1100 <= n < 2000):
            words = num2words(n, lang=self.code, to="year")
            return words.replace("-", " ")
        return self.cardinal(n)

    def digits(self, written: str) -> str:
        return self._join(*(self.cardinal(int(d)) for d in written if d.isdigit()))

    def number(self, written: str) -> str:
        """A written number, with its sign, thousands separators and decimals."""
        written = written.strip()
        sign = ""
        if written[:1] in "-−":
            sign, written = self.language.minus + " ", written[1:]
        whole, decimals = self._split(written)
        words = [self.cardinal(int(whole))]
        if decimals:
            spoken = self.cardinal(int(decimals)) if self._decimals_as_number(decimals) else None
            words += [self.language.point, spoken or self.digits(decimals)]
        return sign + self._join(*words)

    def _decimals_as_number(self, decimals: str) -> bool:
        return self.language.decimals_as_number and not decimals.startswith("0")

    def _split(self, written: str) -> tuple[str, str]:
        """(whole, decimals) digits of a written number in this language's marks."""
        mark = self.language.decimal_mark
        group = "," if mark == "." else "."
        if re.fullmatch(rf"\d{{1,3}}(?:\{group}\d{{3}})+(?:\{mark}\d+)?", written):
            written = written.replace(group, "")
        whole, _, decimals = written.partition(mark)
        if not decimals and mark == "," and re.fullmatch(r"\d+\.\d+", whole):
            whole, _, decimals = whole.partition(".")  # "3.14" in a decimal-comma language
        return whole, decimals

    def money(self, amount: str, code: str) -> str | None:
        forms = self._currency_names(code)
        if not forms:
            return None
        # A mark followed by exactly two digits is the cents, whichever mark the text uses.
        match = re.fullmatch(r"(.*?)[.,](\d{2})", amount)
        whole, cents = (match.group(1), int(match.group(2))) if match else (amount, 0)
        units = int(re.sub(r"\D", "", whole) or 0)
        (unit, units_plural), subunits = forms
        parts = []
        if units or not cents:
            parts.append(f"{self.cardinal(units)} {unit if units == 1 else units_plural}")
        if cents and subunits:
            if parts and self.language.money_joiner:
                parts.append(self.language.money_joiner)
            parts.append(f"{self.cardinal(cents)} {subunits[0] if cents == 1 else subunits[1]}")
        return " ".join(parts)

    def _currency_names(self, code: str):
        """((unit, units), (cent, cents)) for an ISO code, or None."""
        return CURRENCY_NAMES.get((self.code, code)) or getattr(
            self._converter, "CURRENCY_FORMS", {}
        ).get(code)

    def date(self, day: int, month: int, year: int | None, before: str = "") -> str | None:
        if not (1 <= month <= 12 and 1 <= day <= 31 and self._months):
            return None
        name = self._months[month - 1]
        year_words = self.year(year) if year else ""
        if self.code == "en":
            return f"{name} {self.ordinal(day)}" + (f", {year_words}" if year else "")
        if self.code == "de":
            return f"{self._german_ordinal(day, before)} {name} {year_words}".strip()
        if self.code == "es":
            return f"{self.cardinal(day)} de {name}" + (f" de {year_words}" if year else "")
        return f"{self.cardinal(day)} {name} {year_words}".strip()

    def _german_ordinal(self, n: int, before: str) -> str:
        # Dative after "am", "vom", "zum", ...: "am dritten Mai"; else "der dritte Mai".
        dative = before.lower() in {"am", "vom", "zum", "im", "dem", "den", "beim", "ab"}
        return self.ordinal(n) + ("n" if dative else "")

    # --- the rules, in the order they apply ----------------------------------------------------

    def _compile(self) -> list[tuple[re.Pattern, Callable[[re.Match], str]]]:
        lang = self.language
        edge = WORD_EDGE if lang.spaced else NUMBER_EDGE
        mark = re.escape(lang.decimal_mark)
        group = "," if lang.decimal_mark == "." else r"\."
        num = rf"(?:\d{{1,3}}(?:{group}\d{{3}})+|\d+)(?:{mark}\d+)?"
        signed = rf"[-−]?{num}"
        rules: list[tuple[str, Callable[[re.Match], str]]] = []

        if self.code == "en":
            rules.append((r"\bNo\.\s?(?=\d)", lambda m: "number "))
        if lang.abbreviations:
            keys = sorted(lang.abbreviations, key=len, reverse=True)
            alternatives = "|".join(re.escape(k) for k in keys)
            rules.append((rf"(?<!\w)(?:{alternatives})(?!\w)", self._abbreviation))
        if phone := PHONE_NUMBERS.get(self.code):
            rules.append((rf"(?<![\w+]){phone}(?![\w])", self._phone))
        rules.append((r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)", self._iso_date))
        rules += self._date_rules()
        if lang.clock:
            suffix = CLOCK_SUFFIXES.get(self.code, "()")
            rules.append((rf"(?<![\d:])(\d{{1,2}}):(\d{{2}})(?![\d:])(?:{suffix})?", self._clock))
            if self.code == "en":
                rules.append((rf"(?<![\w:.,])(\d{{1,2}}){suffix}", self._clock_hour))
            if self.code == "fr":
                rules.append((r"(?<!\w)(\d{1,2})h(\d{2})?()(?!\w)", self._clock))
        symbols = "".join(re.escape(s) for s in CURRENCY_SYMBOLS)
        money_amount = r"\d[\d.,]*\d|\d"
        scale = f"(?:\\s({'|'.join(lang.scales)}))?" if lang.scales else "()"
        rules.append((rf"([{symbols}])\s?({money_amount}){scale}(?!\w)", self._money_before))
        rules.append((rf"{edge}({money_amount}){scale}\s?([{symbols}])", self._money_after))
        rules.append((rf"{edge}({signed})\s?%", self._percent))
        if lang.units:
            keys = sorted(lang.units, key=len, reverse=True)
            alternatives = "|".join(re.escape(k) for k in keys)
            rules.append((rf"{edge}({signed})\s?({alternatives})(?!\w)", self._unit))
        rules += self._ordinal_rules()
        if self.code == "en":
            rules.append((r"(?<![\w/.,])(\d{1,2})/(\d{1,2})(?![\w/])", self._fraction))
        if lang.operators:
            ops = "".join(re.escape(o) for o in lang.operators)
            rules.append((rf"(?<=\d)\s*([{ops}])\s*(?=[-−]?\d)", self._operator))
            rules.append((r"(?<=\d) - (?=\d)", lambda m: f" {lang.minus} "))
        if self.code == "en":
            rules.append((rf"{edge}(1[1-9]\d0|20\d0)s\b", self._decade))
        if range_word := RANGE_WORDS.get(self.code):
            rules.append((r"(?<=\d)\s?[-–]\s?(?=\d)", lambda m: f" {range_word} "))
        rules.append((rf"{edge}(1[1-9]\d\d|20\d\d)(?![\w.,]\d|\d)", self._year))
        rules.append((rf"{edge}0\d+(?![.,]\d|\d)", lambda m: self.digits(m.group(0))))
        rules.append((rf"{edge}({signed})", self._number))
        # Digits inside a word: "A4", "H2O", "COVID-19".
        space = " " if lang.spaced else ""
        rules.append((r"\d+", lambda m: f"{space}{self.cardinal(int(m[0]))}{space}"))
        return [(re.compile(p), spell) for p, spell in rules]

    def _date_rules(self) -> list[tuple[str, Callable[[re.Match], str]]]:
        months = self._months
        if self.code == "en":
            names = "|".join(m.capitalize() for m in months)
            short = "|".join(m[:3].capitalize() for m in months)
            return [
                (
                    rf"\b({names}|{short})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?\b(?:,?\s+(\d{{4}}))?",
                    self._named_date,
                ),
                (r"(?<![\d/])(\d{1,2})/(\d{1,2})/(\d{4})(?![\d/])", self._us_date),
            ]
        if self.code == "de":
            names = "|".join(months)
            return [
                (r"(?:(\w+)\s+)?(?<!\d)(\d{1,2})\.(\d{1,2})\.(\d{4})(?!\d)", self._dotted_date),
                (rf"(?:(\w+)\s+)?(?<!\d)(\d{{1,2}})\.\s+({names})(?:\s+(\d{{4}}))?", self._de_date),
            ]
        if self.code == "es":
            return [(r"(?<![\d/])(\d{1,2})/(\d{1,2})/(\d{4})(?![\d/])", self._day_first_date)]
        return []

    def _ordinal_rules(self) -> list[tuple[str, Callable[[re.Match], str]]]:
        edge = WORD_EDGE  # only spaced languages have ordinal rules
        if self.code == "en":
            return [(rf"{edge}(\d+)(?:st|nd|rd|th)\b", lambda m: self.ordinal(int(m[1])))]
        if self.code == "de":
            # "der 2. Versuch": only after an article or preposition, so a sentence ending in a
            # number is not read as an ordinal.
            before = r"\b(der|die|das|den|dem|des|am|im|vom|zum|zur|beim)\s+"
            return [(rf"{before}(\d{{1,3}})\.(?=\s+\w)", self._de_ordinal)]
        if self.code == "es":
            return [(rf"{edge}(\d+)\.?([ºª])", self._es_ordinal)]
        if self.code == "fr":
            return [(rf"{edge}(\d+)(?:er|re|e|ème)\b", lambda m: self.ordinal(int(m[1])))]
        return []

    # --- what each rule says -------------------------------------------------------------------

    def _abbreviation(self, m: re.Match) -> str:
        return self.language.abbreviations[m.group(0)] + _kept_full_stop(m)

    def _phone(self, m: re.Match) -> str:
        spoken = []
        for group in re.findall(r"\+?\d+", m.group(0)):
            words = self.digits(group)
            spoken.append(f"{self.language.plus} {words}" if group.startswith("+") else words)
        return ", ".join(spoken)

    def _iso_date(self, m: re.Match) -> str:
        return self.date(int(m[3]), int(m[2]), int(m[1])) or self.digits(m.group(0))

    def _named_date(self, m: re.Match) -> str:
        month = [n[:3] for n in self._months].index(m[1][:3].lower()) + 1
        return self.date(int(m[2]), month, int(m[3]) if m[3] else None) or m.group(0)

    def _us_date(self, m: re.Match) -> str:
        return self.date(int(m[2]), int(m[1]), int(m[3])) or m.group(0)

    def _day_first_date(self, m: re.Match) -> str:
        return self.date(int(m[1]), int(m[2]), int(m[3])) or m.group(0)

    def _dotted_date(self, m: re.Match) -> str:
        before = m[1] or ""
        spoken = self.date(int(m[2]), int(m[3]), int(m[4]), before)
        return f"{before} {spoken}".lstrip() if spoken else m.group(0)

    def _de_date(self, m: re.Match) -> str:
        before = m[1] or ""
        month = self._months.index(m[3]) + 1
        spoken = self.date(int(m[2]), month, int(m[4]) if m[4] else None, before)
        return f"{before} {spoken}".lstrip() if spoken else m.group(0)

    def _de_ordinal(self, m: re.Match) -> str:
        return f"{m[1]} {self._german_ordinal(int(m[2]), m[1])}"

    def _es_ordinal(self, m: re.Match) -> str:
        words = self.ordinal(int(m[1]))
        return words[:-1] + "a" if m[2] == "ª" and words.endswith("o") else words

    def _clock(self, m: re.Match) -> str:
        hour, minute = int(m[1]), int(m[2] or 0)
        if hour > 24 or minute > 59:
            return m.group(0)
        return self.language.clock(self, hour, minute, m[3] or "") + _kept_full_stop(m)

    def _clock_hour(self, m: re.Match) -> str:
        hour = int(m[1])
        if not 1 <= hour <= 12:
            return m.group(0)
        return self.language.clock(self, hour, 0, m[2]) + _kept_full_stop(m)

    def _money_before(self, m: re.Match) -> str:
        return self._money(m[2], m[3], CURRENCY_SYMBOLS[m[1]], m.group(0))

    def _money_after(self, m: re.Match) -> str:
        return self._money(m[1], m[2], CURRENCY_SYMBOLS[m[3]], m.group(0))

    def _money(self, amount: str, scale: str | None, code: str, written: str) -> str:
        if scale:  # "$1.5 million": "one point five million dollars"
            if forms := self._currency_names(code):
                joiner = f" {self.language.scale_joiner}" if self.language.scale_joiner else ""
                return f"{self.number(amount)} {scale}{joiner} {forms[0][1]}"
            return written
        trailing = ""
        if amount[-1:] in ".,":  # a sentence's full stop after the amount
            amount, trailing = amount[:-1], amount[-1]
        return (self.money(amount, code) or written) + trailing

    def _percent(self, m: re.Match) -> str:
        return self._join(self.number(m[1]), self.language.percent)

    def _unit(self, m: re.Match) -> str:
        singular, plural = self.language.units[m[2]]
        one = re.fullmatch(r"[-−]?1", m[1]) is not None
        return self._join(self.number(m[1]), singular if one else plural)

    def _join(self, *words: str) -> str:
        return (" " if self.language.spaced else "").join(words)

    def _fraction(self, m: re.Match) -> str:
        top, bottom = int(m[1]), int(m[2])
        if bottom < 2 or top < 1:
            return m.group(0)
        name = {2: ("half", "halves"), 4: ("quarter", "quarters")}.get(bottom)
        singular, plural = name or (self.ordinal(bottom), self.ordinal(bottom) + "s")
        return f"{self.cardinal(top)} {singular if top == 1 else plural}"

    def _operator(self, m: re.Match) -> str:
        return f" {self.language.operators[m[1]]} "

    def _year(self, m: re.Match) -> str:
        return self.year(int(m[1]))

    def _number(self, m: re.Match) -> str:
        words = self.number(m[1])
        if not re.match(r"\s?[^\W\d_]", m.string[m.end() :]):
            return words
        # Before a noun: "veintiún gatos", "un gato", "ein Hund".
        if self.code == "es" and words.endswith("uno"):
            return words[:-3] + ("ún" if words.endswith("veintiuno") else "un")
        if self.code == "de" and words == "eins":
            return "ein"
        return words

    def _decade(self, m: re.Match) -> str:
        words = self.year(int(m[1]))
        return words[:-1] + "ies" if words.endswith("y") else words + "s"


def _kept_full_stop(m: re.Match) -> str:
    """The full stop of "Dr." or "p.m." that also ends the text, given back."""
    return "." if m.group(0).endswith(".") and not m.string[m.end() :].strip() else ""


def _english_clock(n: FallbackNormalizer, hour: int, minute: int, suffix: str) -> str:
    meridiem = f" {suffix.upper()}M" if suffix else ""
    if minute == 0:
        spoken = "o'clock" if not suffix and hour <= 12 else ("hundred" if not suffix else "")
        return f"{n.cardinal(hour)} {spoken}".strip() + meridiem
    minutes = f"oh {n.cardinal(minute)}" if minute < 10 else n.cardinal(minute)
    return f"{n.cardinal(hour)} {minutes}{meridiem}"


def _german_clock(n: FallbackNormalizer, hour: int, minute: int, _: str) -> str:
    return f"{n.cardinal(hour).replace('eins', 'ein')} Uhr" + (
        f" {n.cardinal(minute)}" if minute else ""
    )


def _spanish_clock(n: FallbackNormalizer, hour: int, minute: int, _: str) -> str:
    # Hours are feminine (las horas): "la una", "las veintiuna".
    words = n.cardinal(hour)
    words = words[:-3] + "una" if words.endswith("uno") else words
    said = {0: "en punto", 15: "y cuarto", 30: "y media"}.get(minute)
    return f"{words} {said or 'y ' + n.cardinal(minute)}"


def _french_clock(n: FallbackNormalizer, hour: int, minute: int, _: str) -> str:
    words = n.cardinal(hour).replace("un", "une") if hour in (1, 21) else n.cardinal(hour)
    return f"{words} heure{'s' if hour > 1 else ''}" + (f" {n.cardinal(minute)}" if minute else "")


def _italian_clock(n: FallbackNormalizer, hour: int, minute: int, _: str) -> str:
    return n.cardinal(hour) + (f" e {n.cardinal(minute)}" if minute else "")


def _words_clock(hours: str, minutes: str):
    def say(n: FallbackNormalizer, hour: int, minute: int, _: str) -> str:
        space = " " if n.language.spaced else ""
        spoken = f"{n.cardinal(hour)}{space}{hours}"
        return spoken + (f"{space}{n.cardinal(minute)}{space}{minutes}" if minute else "")

    return say


ENGLISH_UNITS = {
    "km": ("kilometer", "kilometers"),
    "m": ("meter", "meters"),
    "cm": ("centimeter", "centimeters"),
    "mm": ("millimeter", "millimeters"),
    "mi": ("mile", "miles"),
    "ft": ("foot", "feet"),
    "kg": ("kilogram", "kilograms"),
    "g": ("gram", "grams"),
    "mg": ("milligram", "milligrams"),
    "lb": ("pound", "pounds"),
    "lbs": ("pound", "pounds"),
    "oz": ("ounce", "ounces"),
    "l": ("liter", "liters"),
    "ml": ("milliliter", "milliliters"),
    "mph": ("mile per hour", "miles per hour"),
    "km/h": ("kilometer per hour", "kilometers per hour"),
    "°C": ("degree Celsius", "degrees Celsius"),
    "°F": ("degree Fahrenheit", "degrees Fahrenheit"),
    "°": ("degree", "degrees"),
    "KB": ("kilobyte", "kilobytes"),
    "MB": ("megabyte", "megabytes"),
    "GB": ("gigabyte", "gigabytes"),
    "TB": ("terabyte", "terabytes"),
    "ms": ("millisecond", "milliseconds"),
    "min": ("minute", "minutes"),
    "h": ("hour", "hours"),
    "hrs": ("hour", "hours"),
    "kWh": ("kilowatt hour", "kilowatt hours"),
    "W": ("watt", "watts"),
    "kW": ("kilowatt", "kilowatts"),
}
GERMAN_UNITS = {
    "km": ("Kilometer", "Kilometer"),
    "m": ("Meter", "Meter"),
    "cm": ("Zentimeter", "Zentimeter"),
    "mm": ("Millimeter", "Millimeter"),
    "kg": ("Kilogramm", "Kilogramm"),
    "g": ("Gramm", "Gramm"),
    "mg": ("Milligramm", "Milligramm"),
    "l": ("Liter", "Liter"),
    "ml": ("Milliliter", "Milliliter"),
    "km/h": ("Kilometer pro Stunde", "Kilometer pro Stunde"),
    "°C": ("Grad Celsius", "Grad Celsius"),
    "°": ("Grad", "Grad"),
    "GB": ("Gigabyte", "Gigabyte"),
    "MB": ("Megabyte", "Megabyte"),
    "min": ("Minute", "Minuten"),
    "Std.": ("Stunde", "Stunden"),
    "kWh": ("Kilowattstunde", "Kilowattstunden"),
}
SPANISH_UNITS = {
    "km": ("kilómetro", "kilómetros"),
    "m": ("metro", "metros"),
    "cm": ("centímetro", "centímetros"),
    "mm": ("milímetro", "milímetros"),
    "kg": ("kilogramo", "kilogramos"),
    "g": ("gramo", "gramos"),
    "mg": ("miligramo", "miligramos"),
    "l": ("litro", "litros"),
    "ml": ("mililitro", "mililitros"),
    "km/h": ("kilómetro por hora", "kilómetros por hora"),
    "°C": ("grado centígrado", "grados centígrados"),
    "°": ("grado", "grados"),
    "GB": ("gigabyte", "gigabytes"),
    "MB": ("megabyte", "megabytes"),
    "min": ("minuto", "minutos"),
    "h": ("hora", "horas"),
}

LANGUAGES = {
    "en": Language(
        "en",
        ".",
        "point",
        abbreviations={
            "Dr.": "doctor",
            "Mr.": "mister",
            "Mrs.": "misses",
            "Ms.": "miss",
            "Prof.": "professor",
            "Jr.": "junior",
            "Sr.": "senior",
            "etc.": "etcetera",
            "e.g.": "for example",
            "i.e.": "that is",
            "vs.": "versus",
            "approx.": "approximately",
        },
        scales=("thousand", "million", "billion", "trillion"),
        units=ENGLISH_UNITS,
        operators={"+": "plus", "=": "equals", "×": "times", "*": "times", "÷": "divided by"},
        clock=_english_clock,
    ),
    "de": Language(
        "de",
        ",",
        "Komma",
        percent="Prozent",
        money_joiner="und",
        abbreviations={
            "Dr.": "Doktor",
            "Prof.": "Professor",
            "Hr.": "Herr",
            "z. B.": "zum Beispiel",
            "z.B.": "zum Beispiel",
            "usw.": "und so weiter",
            "bzw.": "beziehungsweise",
            "ca.": "circa",
            "Nr.": "Nummer",
            "d. h.": "das heißt",
            "d.h.": "das heißt",
            "u. a.": "unter anderem",
            "u.a.": "unter anderem",
            "evtl.": "eventuell",
        },
        scales=("Tausend", "Million", "Millionen", "Milliarde", "Milliarden"),
        units=GERMAN_UNITS,
        operators={"+": "plus", "=": "gleich", "×": "mal", "*": "mal", "÷": "geteilt durch"},
        clock=_german_clock,
    ),
    "es": Language(
        "es",
        ",",
        "coma",
        decimals_as_number=True,
        minus="menos",
        plus="más",
        percent="por ciento",
        money_joiner="con",
        abbreviations={
            "Dr.": "doctor",
            "Dra.": "doctora",
            "Sr.": "señor",
            "Sra.": "señora",
            "Srta.": "señorita",
            "Ud.": "usted",
            "Uds.": "ustedes",
            "etc.": "etcétera",
            "p. ej.": "por ejemplo",
            "aprox.": "aproximadamente",
            "núm.": "número",
        },
        scales=("mil", "millón", "millones"),
        scale_joiner="de",
        units=SPANISH_UNITS,
        operators={"+": "más", "=": "igual a", "×": "por", "*": "por", "÷": "entre"},
        clock=_spanish_clock,
    ),
    "fr": Language(
        "fr",
        ",",
        "virgule",
        decimals_as_number=True,
        minus="moins",
        percent="pour cent",
        money_joiner="et",
        abbreviations={"M.": "monsieur", "Mme": "madame", "Dr": "docteur", "etc.": "et cetera"},
        operators={"+": "plus", "=": "égal", "×": "fois"},
        clock=_french_clock,
    ),
    "it": Language(
        "it",
        ",",
        "virgola",
        minus="meno",
        percent="per cento",
        money_joiner="e",
        abbreviations={
            "Sig.": "signor",
            "Sig.ra": "signora",
            "Dott.": "dottor",
            "ecc.": "eccetera",
        },
        operators={"+": "più", "=": "uguale", "×": "per"},
        clock=_italian_clock,
    ),
    "vi": Language(
        "vi", ",", "phẩy", minus="âm", percent="phần trăm", clock=_words_clock("giờ", "phút")
    ),
    "ja": Language(
        "ja",
        ".",
        "点",
        minus="マイナス",
        percent="パーセント",
        spaced=False,
        clock=_words_clock("時", "分"),
    ),
}
