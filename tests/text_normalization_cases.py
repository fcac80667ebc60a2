# ruff: noqa: E501 (a table: one sentence to a line)
"""Written sentences and how a person says them, in English, German and Spanish: the table the
text normalisers are measured on (tests/unit/test_tts_fallback_normalizer.py,
tests/bench/text_normalization.py).

`nemo` marks the rows NeMo's grammar says right today (nemo_text_processing 1.2.0): there the
fallback and NeMo's grammar must agree exactly, up to case, punctuation and spacing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Case:
    language: str
    written: str
    spoken: str
    nemo: bool  # NeMo's grammar gives `spoken` too


def spoken_key(text: str) -> str:
    """What is heard: case, punctuation, hyphens and spacing dropped ("ein und zwanzig" and
    "einundzwanzig" sound alike)."""
    return re.sub(r"[\s\-.,;:!?¿¡'\"()]+", "", text.lower())


def _cases(language: str, table: str) -> list[Case]:
    rows = []
    for line in table.strip().splitlines():
        written, spoken, nemo = (part.strip() for part in line.split("|"))
        rows.append(Case(language, written, spoken, nemo == "yes"))
    return rows


ENGLISH = _cases(
    "en",
    """
It costs $12.50. | It costs twelve dollars fifty cents. | yes
The total is $1,250. | The total is one thousand two hundred fifty dollars. | no
I paid $0.99 for it. | I paid ninety nine cents for it. | yes
That is €5 in total. | That is five euros in total. | yes
I have 21 cats. | I have twenty one cats. | yes
There are 1,000 people here. | There are one thousand people here. | yes
Pi is about 3.14. | Pi is about three point one four. | yes
The answer is 84. | The answer is eighty four. | yes
12 times 7 is 84. | twelve times seven is eighty four. | yes
She finished 1st in the race. | She finished first in the race. | yes
This is the 22nd time. | This is the twenty second time. | yes
It is 3:30 pm and costs $12.50. | It is three thirty PM and costs twelve dollars fifty cents. | yes
The meeting is at 10:15 am. | The meeting is at ten fifteen AM. | yes
Call me at 3pm. | Call me at three PM. | yes
It is 8:05 am. | It is eight oh five AM. | no
We met on Jan 5, 2024. | We met on january fifth, twenty twenty four. | yes
The date is January 21, 2025. | The date is january twenty first, twenty twenty five. | yes
He was born in 1987. | He was born in nineteen eighty seven. | yes
Prices rose 45% this year. | Prices rose forty five percent this year. | yes
The battery is at 7.5%. | The battery is at seven point five percent. | yes
Call 555-123-4567. | Call five five five, one two three, four five six seven. | yes
My number is (555) 123-4567. | My number is five five five, one two three, four five six seven. | yes
It is 25 km away. | It is twenty five kilometers away. | yes
The box weighs 3 kg. | The box weighs three kilograms. | yes
It is 72°F outside. | It is seventy two degrees Fahrenheit outside. | yes
Call Dr. Smith. | Call doctor Smith. | yes
Mr. Jones is here. | mister Jones is here. | yes
Apples, pears, etc. | Apples, pears, etcetera. | yes
The file is 5 GB. | The file is five gigabytes. | no
The speed limit is 65 mph. | The speed limit is sixty five miles per hour. | yes
Add 2.5 cups of flour. | Add two point five cups of flour. | yes
The deadline is 2024-03-15. | The deadline is march fifteenth, twenty twenty four. | yes
It is -5 degrees. | It is minus five degrees. | yes
That is 1/2 of it. | That is one half of it. | yes
Wait 10 min please. | Wait ten minutes please. | yes
It is 100 m long. | It is one hundred meters long. | no
The cost is 12 + 7 = 19. | The cost is twelve plus seven equals nineteen. | yes
It costs $1.5 million. | It costs one point five million dollars. | yes
We are open 9-5 on weekdays. | We are open nine to five on weekdays. | no
Music from the 1990s. | Music from the nineteen nineties. | yes
I paid £3.20. | I paid three pounds twenty pence. | yes
The gate is No. 7. | The gate is number seven. | no
It is 3:30 PM on Friday, November 27, 2026. | It is three thirty PM on Friday, november twenty seventh, twenty twenty six. | yes
The result is 12 × 7 = 84. | The result is twelve times seven equals eighty four. | yes
""",
)

GERMAN = _cases(
    "de",
    """
Es kostet 12,50 €. | Es kostet zwölf Euro und fünfzig Cent. | no
Ich habe 21 Katzen. | Ich habe einundzwanzig Katzen. | yes
Das sind 1.000 Menschen. | Das sind eintausend Menschen. | no
Es ist 15:30 Uhr. | Es ist fünfzehn Uhr dreißig. | yes
Heute ist der 3. Mai 2024. | Heute ist der dritte Mai zweitausendvierundzwanzig. | no
Der Preis stieg um 45 %. | Der Preis stieg um fünfundvierzig Prozent. | yes
Die Strecke ist 25 km lang. | Die Strecke ist fünfundzwanzig Kilometer lang. | yes
Das Paket wiegt 3 kg. | Das Paket wiegt drei Kilogramm. | yes
Rufen Sie Dr. Müller an. | Rufen Sie Doktor Müller an. | yes
Wir brauchen z. B. Milch. | Wir brauchen zum Beispiel Milch. | no
Pi ist etwa 3,14. | Pi ist etwa drei Komma eins vier. | no
Er wurde 1987 geboren. | Er wurde neunzehnhundertsiebenundachtzig geboren. | no
Es kostet 5 Euro. | Es kostet fünf Euro. | yes
Das ist der 2. Versuch. | Das ist der zweite Versuch. | yes
Es hat 20 °C. | Es hat zwanzig Grad Celsius. | yes
Es ist 8 Uhr. | Es ist acht Uhr. | yes
Das Treffen ist am 15.03.2024. | Das Treffen ist am fünfzehnten März zweitausendvierundzwanzig. | no
Die Nummer ist 0151 2345678. | Die Nummer ist null eins fünf eins, zwei drei vier fünf sechs sieben acht. | yes
Um 7:45 Uhr fährt der Zug. | Um sieben Uhr fünfundvierzig fährt der Zug. | yes
Das Auto fährt 120 km/h. | Das Auto fährt einhundertzwanzig Kilometer pro Stunde. | yes
""",
)

SPANISH = _cases(
    "es",
    """
Cuesta 12,50 €. | Cuesta doce euros con cincuenta céntimos. | no
Tengo 21 gatos. | Tengo veintiún gatos. | yes
Hay 1.000 personas. | Hay mil personas. | yes
Son las 15:30. | Son las quince y media. | yes
Hoy es 3 de mayo de 2024. | Hoy es tres de mayo de dos mil veinticuatro. | yes
Los precios subieron un 45 %. | Los precios subieron un cuarenta y cinco por ciento. | yes
Está a 25 km. | Está a veinticinco kilómetros. | yes
Pesa 3 kg. | Pesa tres kilogramos. | yes
El Dr. García llega hoy. | El doctor García llega hoy. | yes
La Sra. López está aquí. | La señora López está aquí. | yes
Pi es aproximadamente 3,14. | Pi es aproximadamente tres coma catorce. | yes
Nació en 1987. | Nació en mil novecientos ochenta y siete. | yes
Cuesta 5 euros. | Cuesta cinco euros. | yes
Llame al 555 123 456. | Llame al cinco cinco cinco, uno dos tres, cuatro cinco seis. | no
Hace 20 °C. | Hace veinte grados centígrados. | no
Frutas, verduras, etc. | Frutas, verduras, etcétera. | no
Es el 1.º de la lista. | Es el primero de la lista. | yes
La reunión es el 15/03/2024. | La reunión es el quince de marzo de dos mil veinticuatro. | yes
Tengo 1 perro. | Tengo un perro. | yes
El precio es de $1,5 millones. | El precio es de uno coma cinco millones de dólares. | yes
""",
)

CASES = ENGLISH + GERMAN + SPANISH
