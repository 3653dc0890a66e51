"""Text similarity for grouping complaints: normalized word stems, cosine, group centroids.

Pure Python, no model: a complaint becomes the set of its content-word stems (lowercase,
accents folded, handles/URLs/numbers/emoji dropped, English and Spanish stop words out,
common endings stripped and words cut to a prefix so that "cancelled", "cancellation"
and "cancelado" meet). Two complaints are compared by the cosine of those sets; a group
by its centroid (how often each stem occurs among its members). ``language`` tells
English from Spanish by function words, so each language's complaints group apart.
Design notes and measured figures: ``docs/crisis.md``.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping

# Stripping a common ending, then cutting to a prefix, is a crude stemmer, but it works
# the same for English and Spanish and for the misspellings of angry customers
# ("cancelled"/"canceled", "cobrado"/"cobraron"/"cobro"). Measured in docs/crisis.md:
# 6 characters after stripping groups paraphrases best without merging unrelated words.
STEM_LENGTH = 6
MIN_STEM_BASE = 4  # an ending is stripped only if at least this much of the word remains
_ENDINGS_TEXT = (
    "ations ation ings ing edly ed ers er es s ly"  # English
    " iendo ando aron ieron asteis isteis ado ada ados adas ido ida idos idas"  # Spanish verbs
    " cion ciones mente amos emos imos an en ar er ir as os a o e"
)
_ENDINGS = sorted(_ENDINGS_TEXT.split(), key=len, reverse=True)  # the longest ending that fits goes
MIN_WORD_LENGTH = 2
# Two complaints, or a complaint and a group, are alike only if they share at least this many
# stems: one word in common ("order", "internet") is not a topic ("where is my order" and
# "can I pay for my order in instalments"; "doble cargo de la factura de internet" and an
# internet outage).
MIN_SHARED_STEMS = 2
CENTROID_TERMS = 40  # a group's centroid keeps its most frequent stems (bounded item size)

_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_HANDLE = re.compile(r"[@＠][\w.]+")
_EMAIL = re.compile(r"\S+@\S+\.\w+")
_WORD = re.compile(r"[a-z]+")  # after folding: numbers, emoji and punctuation are separators
# Codes, order and flight numbers ("SAVE50", "E42", "0x7"): an identifier says nothing about the
# topic, and its letters alone ("save", "bf") tied unrelated complaints that quoted one.
_CODE = re.compile(r"\b\w*\d\w*\b")
_APOSTROPHE = re.compile(r"(?<=[a-z])['’](?:s|t|re|ve|ll|d|m)\b")

# Function words of both languages, plus what any complaint says whatever it is about:
# greetings, pleas and outrage ("please help", "wow", "ridiculous", "vergüenza"). A crisis
# is a shared topic, not a shared mood.
_STOP_WORDS_TEXT = """
a about above after again against all also am an and any are aren as at be because been before being below
between both but by can cannot could couldn did didn do does doesn doing don during each few for from
further get gets got had hadn has hasn have haven having he her here hers herself him himself his how i if in
into is isn it its itself just let me more most my myself nor now of off on once only or other our ours
ourselves out over own same shan she should shouldn so some such than that the their theirs them themselves
then there these they this those through to too under until up very was wasn we were weren what when where
which while who whom why will with won would wouldn you your yours yourself yourselves im ive id ill youre
dont cant wont isnt didnt doesnt thats theres whats us oh ok okay yes yeah hey hi hello please pls plz thanks
thank thx lol via amp rt still even really one two no not never nobody nothing anyone someone
al algo algun alguna algunas alguno algunos ante antes aqui asi aun aunque bien cada como con contra cual
cuales cuando de del desde donde dos el ella ellas ello ellos en entre era eramos eran eres es esa esas ese
eso esos esta estaba estado estais estamos estan estar estas este esto estos estoy fue fueron fui ha habeis
haber habia han has hasta hay he hemos hola la las le les lo los mas me mi mis mucho muchos muy nada ni
nos nosotros o os otra otras otro otros para pero poco por porque que quien quienes se sea ser si sido sin
sobre sois somos son soy su sus tambien te teneis tenemos tener tengo ti tiene tienen toda todas todo todos
tu tus un una uno unos usted ustedes vosotros ya yo gracias favor porfa pf buenas buenos dias tardes noches
q xq pq k d x tb tmb nunca nadie alguien
help need needs fix wow seriously omg wtf ugh ridiculous terrible horrible worst awful unacceptable joke shame
disgrace again today tonight yet already anything everything guys
ayuda ayudar ayudad necesito arreglad solucionad solucionadlo verguenza fatal horrible pesimo pesima hoy otra vez
tios vaya tela serio
keep keeps kept give gives giving gave try tries trying tried lets make makes made want wants
puedo puede pueden podemos poder podido hacer hago hace hacen hecho deja dejan dejar da dan dar quiero quiere
"""
STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())
# The same, caught after stemming, where a crowd's wordings vary ("#fail", "fails", "failed",
# "doesn't work", "no funciona"; "arregladlo", "arregláis"): what any complaint says. Measured on the
# benchmark's burst (docs/crisis.md): they tied unrelated complaints into crises of their own.
STOP_STEMS = frozenset(["fail", "work", "funcio", "arregl", "solucio", "soluci"])

# Words that name the same thing in a complaint, in English and Spanish, across the trades the
# bridge serves (telecom, travel, shops, banks): each group's words count as one stem (the first
# word's), so "wifi", "broadband" and "fibra" meet "internet", "voucher" and "cupón" meet
# "discount", "cargo" meets "cobro". A bag of stems alone cannot see a synonym, and a crowd's
# wordings differ by exactly these words ("mobile data and home wifi both dead" beside "internet
# down"). Measured in docs/crisis.md.
_SYNONYMS_TEXT = """
internet wifi broadband fibre fiber fibra connection connections connexion conexion conexiones
  connectivity conectividad connect connected conectar conectado online signal senal coverage cobertura
outage outages down dead offline caido caida caidos caidas averia averias apagon blackout
router routers modem modems
promotion promo promos promotional promocion promociones promocional discount discounts descuento
  descuentos coupon coupons cupon cupones voucher vouchers offer offers oferta ofertas
charge charged charges cobro cobros cobrar cobrado cobrada cobraron cobrasteis cobrais
  debited
bill bills billing invoice invoices factura facturas facturacion recibo recibos
twice double doubled duplicate duplicated duplicado duplicada doble repeated repetido repetida
refund refunds refunded reimburse reimbursed reimbursement reembolso reembolsos reembolsar devolucion
  devolver devolvedme devolvais
cancelled canceled cancel cancellation cancellations cancelado cancelada cancelados canceladas
  cancelacion cancelar anulado anulada
delayed delay delays late retraso retrasado retrasada retrasos demora demorado
luggage baggage bag bags suitcase suitcases maleta maletas equipaje
flight flights vuelo vuelos
app apps aplicacion aplicaciones
payment payments pay paid pago pagos pagar pagado
money dinero
rejected reject declined refused invalid rechazado rechazada rechaza denied denegado denegada
order orders pedido pedidos
delivery deliveries shipping shipment envio envios entrega
parcel package packages paquete paquetes
website web webpage site
"""


# Frequent words of one language only (not "no", "me", "a", "he": both languages use them).
_ENGLISH_MARKERS = frozenset(
    [
        "the",
        "and",
        "is",
        "to",
        "my",
        "you",
        "your",
        "for",
        "of",
        "was",
        "have",
        "not",
        "this",
        "with",
        "on",
        "it",
        "at",
        "be",
        "are",
        "can",
        "why",
        "what",
        "how",
        "get",
        "just",
        "i",
        "im",
        "been",
        "has",
        "had",
        "will",
        "did",
        "do",
        "does",
        "dont",
        "cant",
        "its",
        "our",
        "we",
        "they",
        "from",
    ]
)
_SPANISH_MARKERS = frozenset(
    [
        "el",
        "la",
        "los",
        "las",
        "de",
        "que",
        "y",
        "en",
        "un",
        "una",
        "por",
        "para",
        "con",
        "es",
        "mi",
        "se",
        "lo",
        "le",
        "del",
        "al",
        "pero",
        "muy",
        "ya",
        "han",
        "hay",
        "estoy",
        "esta",
        "vuestro",
        "vuestra",
        "nos",
        "os",
        "mis",
        "sus",
        "como",
        "porque",
        "puedo",
        "cuando",
        "donde",
    ]
)
_SPANISH_LETTERS = re.compile("[ñÑ¿¡áéíóú]")


def normalize(text: str) -> str:
    """Lowercase, accents folded, URLs, @handles and e-mail addresses removed."""
    text = _EMAIL.sub(" ", text)
    text = _URL.sub(" ", text)
    text = _HANDLE.sub(" ", text)
    folded = unicodedata.normalize("NFKD", text.lower())
    folded = "".join(char for char in folded if not unicodedata.combining(char))
    return _APOSTROPHE.sub("", folded)


def stem(word: str) -> str:
    """A word's stem: one common English or Spanish ending stripped, then its first letters."""
    for ending in _ENDINGS:
        if word.endswith(ending) and len(word) - len(ending) >= MIN_STEM_BASE:
            word = word[: -len(ending)]
            break
    return word[:STEM_LENGTH]


def _synonyms(text: str) -> dict[str, str]:
    """Each listed word's stem -> its group's stem (the group's first word's)."""
    found: dict[str, str] = {}
    for group in re.split(r"\n(?=\S)", text.strip()):
        words = group.split()
        for word in words:
            found.setdefault(stem(word), stem(words[0]))
    return found


def stems(text: str) -> list[str]:
    """The content-word stems of a text, in order (numbers, emoji and stop words dropped,
    synonyms as one)."""
    found = (
        stem(word)
        for word in _WORD.findall(_CODE.sub(" ", normalize(text)))
        if len(word) >= MIN_WORD_LENGTH and word not in STOP_WORDS
    )
    return [SYNONYMS.get(stemmed, stemmed) for stemmed in found if stemmed not in STOP_STEMS]


SYNONYMS = _synonyms(_SYNONYMS_TEXT)


def language(text: str) -> str:
    """The text's language (ISO 639-1: ``en``, ``es``...), or ``""`` when it does not say.

    The triage's offline detector (fastText's compressed language-identification model) reads
    it; only when that model is unsure do the function words below decide (``en``/``es``). The
    function words alone left a complaint without any of them ("internet keeps dropping every
    few minutes, router lights red") of no language, free to join a Spanish crisis."""
    from chalicelib.triage.language import detect_language  # the model loads once per process

    return detect_language(text) or marker_language(text)


def marker_language(text: str) -> str:
    """``en``, ``es``, or ``""`` by function words alone (too short, other languages: ``""``)."""
    words = _WORD.findall(normalize(text))
    english = sum(1 for word in words if word in _ENGLISH_MARKERS)
    spanish = sum(1 for word in words if word in _SPANISH_MARKERS) + 2 * bool(_SPANISH_LETTERS.search(text))
    if english == spanish:
        return ""
    return "en" if english > spanish else "es"


def compatible(left: str, right: str) -> bool:
    """Whether two complaints' languages allow them in one group (an unknown one fits both)."""
    return left == right or not left or not right


def features(text: str) -> frozenset[str]:
    """What a complaint is compared by: the set of its content-word stems."""
    return frozenset(stems(text))


def cosine(left: frozenset[str], right: frozenset[str]) -> float:
    """Cosine similarity of two stem sets (0 when either is empty)."""
    shared = len(left & right)
    if shared < MIN_SHARED_STEMS:
        return 0.0
    return shared / math.sqrt(len(left) * len(right))


class Centroid:
    """A group's profile: the share of its members that use each stem (its top stems only)."""

    def __init__(self, weights: Mapping[str, float]) -> None:
        self.weights = dict(weights)
        self.norm = math.sqrt(sum(w * w for w in self.weights.values()))

    @classmethod
    def of(cls, members: Iterable[frozenset[str]], *, terms: int = CENTROID_TERMS) -> Centroid:
        """The centroid of some complaints' stem sets."""
        counts: Counter[str] = Counter()
        size = 0
        for member in members:
            counts.update(member)
            size += 1
        return cls.from_counts(counts, size, terms=terms)

    @classmethod
    def from_counts(cls, counts: Mapping[str, int], size: int, *, terms: int = CENTROID_TERMS) -> Centroid:
        """The centroid of ``size`` complaints whose stems occur ``counts`` times."""
        if not size:
            return cls({})
        # Most frequent first; ties broken by the stem so the same members give the same centroid.
        top = sorted(counts.items(), key=lambda pair: (-pair[1], pair[0]))[:terms]
        return cls({stem: count / size for stem, count in top})

    def similarity(self, member: frozenset[str]) -> float:
        """Cosine of a stem set (each stem weight 1) with this centroid."""
        shared = member & self.weights.keys()
        if len(shared) < MIN_SHARED_STEMS or not self.norm:
            return 0.0
        dot = sum(map(self.weights.__getitem__, shared))
        return dot / (self.norm * math.sqrt(len(member)))

    def overlap(self, other: Centroid) -> float:
        """Cosine of two centroids: whether two groups are about the same thing."""
        if not self.norm or not other.norm:
            return 0.0
        dot = sum(weight * other.weights.get(stem, 0.0) for stem, weight in self.weights.items())
        return dot / (self.norm * other.norm)

    def top(self, count: int = 8) -> list[str]:
        """The group's most used stems (what it is about, for a ticket's title)."""
        return [stem for stem, _ in sorted(self.weights.items(), key=lambda pair: (-pair[1], pair[0]))[:count]]
