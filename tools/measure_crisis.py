"""Measures crisis detection on real complaint bursts and on a synthetic benchmark-like burst.

    .venv/bin/python -m tools.measure_crisis            # all three measurements, figures printed
    .venv/bin/python -m tools.measure_crisis --json out.json

1. **Real bursts** (``../shared/triage/airline_en.jsonl``, read in place): every airline is
   one receiving account; its complaints are replayed in time order through the real
   ``CrisisDetector`` (in-memory store, the replay's clock). A *labelled burst* is an hour
   where one airline got at least ``--burst-min`` complaints of one ``negativereason`` and
   at least 3x that reason's hourly rate over the day before, found from the labels alone.
   Printed: which labelled bursts started a crisis, the crises no labelled burst explains
   (with their key words, to judge), and how pure each crisis is (share of its members
   with its majority reason = precision against the labels).
2. **Synthetic burst** like the lead's benchmark: 1,000 complaints from 1,000 authors on
   every platform within 45 minutes, 70 % paraphrases of four complaints (two English,
   two Spanish; many wordings, typos, handles, emoji), 30 % unrelated real negative tweets,
   after a calm day of other real complaints. Membership precision/recall per cluster.
3. **Cost**: microseconds per ``observe`` with a window holding a few thousand complaints.

The dataset writes "cancel"/"late" as "Cancelled Flight"/"Late Flight" (a known artifact of
its publication, e.g. "Cancelled Flightled"); the loader undoes that before replaying.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chalicelib.crisis import CrisisDetector, CrisisSettings, MemoryCrisisStore, Outcome
from chalicelib.crisis.store import MARK_ENTRIES, WRITE_ENTRIES
from chalicelib.crisis.window import BUCKET_SECONDS, WindowEntry
from chalicelib.models import Author, Direction, Kind, Platform, SocialMessage
from chalicelib.observability import logger

DATA_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "triage"
# The deployed stream event source hands the sync up to 2,000 records gathered over 2 s
# (``app.SYNC_BATCH_SIZE``): the detector's writes are flushed per such batch.
BATCH_SIZE = 2000
BATCH_WINDOW_SECONDS = 2.0
PLATFORMS = [p for p in Platform]
_ARTIFACTS = (
    (re.compile(r"Cancelled Flight", re.IGNORECASE), "Cancel"),
    (re.compile(r"Late Flight", re.IGNORECASE), "Late"),
)


@dataclass
class Complaint:
    """One replayed complaint and what it really is (its label or its synthetic cluster)."""

    id: str
    text: str
    account: str
    at: float
    label: str | None  # negativereason, or the synthetic cluster; None for unrelated noise
    platform: Platform = Platform.X
    author: str = ""

    def message(self) -> SocialMessage:
        return SocialMessage(
            platform=self.platform,
            kind=Kind.MENTION,
            direction=Direction.INBOUND,
            message_id=self.id,
            conversation_key=f"{self.platform.value}:thread:{self.id}",
            account_id=self.account,
            author=Author(platform_id=self.author or f"author-{self.id}"),
            text=self.text,
            created_at=datetime.fromtimestamp(self.at, tz=UTC),
        )


@dataclass
class Replay:
    """What a replay did: decisions per complaint, crises and their members."""

    members: dict[tuple[str, str], list[Complaint]] = field(default_factory=lambda: defaultdict(list))
    started: dict[tuple[str, str], float] = field(default_factory=dict)
    keywords: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    seconds: list[float] = field(default_factory=list)
    writes: int = 0  # DynamoDB writes the detector asked for (conditional ones that failed included)


class CountingStore(MemoryCrisisStore):
    """The in-memory store, counting the writes DynamoDB would take: one per call, except for the
    complaints of a batch (one update per quarter hour and ``WRITE_ENTRIES``) and their marks
    (one conditional update per page and ``MARK_ENTRIES``)."""

    WRITES = ("create", "add_members", "end", "attach_ticket", "acquire", "release")

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        for name in self.WRITES:
            setattr(self, name, self._counted(getattr(self, name)))

    def _counted(self, method: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            self.writes += 1
            return method(*args, **kwargs)

        return call

    def record_many(self, account_id: str, entries: Sequence[WindowEntry], *, keep_seconds: float) -> set[str]:
        self.writes += _updates(entries, WRITE_ENTRIES, one_page=True)
        return super().record_many(account_id, entries, keep_seconds=keep_seconds)

    def mark_many(self, account_id: str, entries: Sequence[WindowEntry], crisis_id: str) -> set[str]:
        self.writes += _updates([e for e in entries if e.home], MARK_ENTRIES)
        return super().mark_many(account_id, entries, crisis_id)


def _updates(entries: Sequence[WindowEntry], per_update: int, *, one_page: bool = False) -> int:
    """Updates of window pages that ``entries`` take, ``per_update`` complaints each: a batch's new
    complaints all go to one page (``one_page``), marks to the page each complaint is on."""
    if one_page:
        return math.ceil(len(entries) / per_update)
    per_page = Counter(e.home or e.created_at // BUCKET_SECONDS for e in entries)
    return sum(math.ceil(count / per_update) for count in per_page.values())


class ReplayClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def replay(complaints: list[Complaint], settings: CrisisSettings) -> Replay:
    """Every complaint through one detector, in time order, the clock at each complaint's time."""
    clock = ReplayClock()
    # One process replays everything: its own window is always current, no refresh needed.
    quiet = CrisisSettings(**{**vars(settings), "refresh_seconds": 1e12, "reload_seconds": 1e12})
    store = CountingStore()
    detector = CrisisDetector(store, quiet, clock=clock)
    by_id = {c.id: c for c in complaints}
    result = Replay()
    batch_began, in_batch = float("-inf"), 0
    for complaint in sorted(complaints, key=lambda c: c.at):
        if complaint.at - batch_began > BATCH_WINDOW_SECONDS or in_batch == BATCH_SIZE:  # the stream's next batch
            detector.flush()
            batch_began, in_batch = complaint.at, 0
        in_batch += 1
        clock.now = complaint.at
        began = time.perf_counter()
        decision = detector.observe(complaint.message())
        result.seconds.append(time.perf_counter() - began)
        if decision.outcome is Outcome.NONE or decision.crisis is None:
            continue
        key = (decision.crisis.account_id, decision.crisis.crisis_id)
        if decision.outcome is Outcome.STARTED and not decision.repeated:
            result.started[key] = complaint.at
            result.keywords[key] = decision.crisis.keywords
        result.members[key].extend(by_id[m.message_id] for m in decision.members)
    detector.flush()
    result.writes = store.writes
    return result


# --- the airline data ---------------------------------------------------------------------


def _undo_artifacts(text: str) -> str:
    for pattern, word in _ARTIFACTS:
        text = pattern.sub(word, text)
    return text


def load_en() -> list[dict[str, Any]]:
    return [json.loads(line) for line in (DATA_DIR / "airline_en.jsonl").open(encoding="utf-8")]


def load_es() -> list[dict[str, Any]]:
    return [json.loads(line) for line in (DATA_DIR / "airline_es.jsonl").open(encoding="utf-8")]


def en_complaints(rows: list[dict[str, Any]]) -> list[Complaint]:
    """The English set's negative tweets, one account per airline."""
    return [
        Complaint(
            id=row["id"],
            text=_undo_artifacts(row["text"]),
            account=row["airline"],
            at=datetime.strptime(row["created_at"], "%Y-%m-%d %H:%M:%S %z").timestamp(),
            label=row["negativereason"],
            author=row["id"],
        )
        for row in rows
        if row["label"] == "negative"
    ]


@dataclass(frozen=True)
class Burst:
    account: str
    reason: str
    hour: float  # start of the hour (epoch)
    count: int
    usual: float  # the reason's complaints per hour over the day before


def labelled_bursts(complaints: list[Complaint], *, minimum: int, multiple: float = 3.0) -> list[Burst]:
    """Hours where an airline got ≥ ``minimum`` complaints of one reason and ≥ ``multiple`` × its usual rate."""
    hourly: Counter[tuple[str, str, int]] = Counter()
    for c in complaints:
        if c.label and c.label != "Can't Tell":
            hourly[(c.account, c.label, int(c.at // 3600))] += 1
    bursts = []
    for (account, reason, hour), count in sorted(hourly.items()):
        usual = sum(hourly.get((account, reason, h), 0) for h in range(hour - 24, hour)) / 24
        if count >= minimum and count >= multiple * usual:
            bursts.append(Burst(account, reason, hour * 3600.0, count, usual))
    return bursts


def measure_real(rows: list[dict[str, Any]], settings: CrisisSettings, *, burst_min: int) -> dict[str, Any]:
    complaints = en_complaints(rows)
    result = replay(complaints, settings)
    bursts = labelled_bursts(complaints, minimum=burst_min, multiple=settings.baseline_multiple)
    member_of = {m.id: key[1] for key, members in result.members.items() for m in members}
    crises: list[dict[str, Any]] = []
    for key, members in result.members.items():
        majority, count = Counter(m.label or "none" for m in members).most_common(1)[0]
        crises.append(
            {
                "account": key[0],
                "crisis": key[1],
                "started": _when(result.started[key]),
                "size": len(members),
                "majority_reason": majority,
                "purity": round(count / len(members), 3),
                "keywords": result.keywords.get(key, []),
            }
        )
    found: list[dict[str, Any]] = []
    explained: set[str] = set()
    for burst in bursts:
        own = [
            c
            for c in complaints
            if c.account == burst.account and c.label == burst.reason and burst.hour <= c.at < burst.hour + 3600
        ]
        joined = Counter(member_of[c.id] for c in own if c.id in member_of)
        explained.update(joined)
        found.append(
            {
                "account": burst.account,
                "reason": burst.reason,
                "hour": _when(burst.hour),
                "complaints": burst.count,
                "usual_per_hour": round(burst.usual, 2),
                "in_a_crisis": round(sum(joined.values()) / len(own), 2),
                "crises": sorted(joined),
            }
        )
    burst_days = {(b.account, _when(b.hour)[:10]) for b in bursts}
    days = {(c.account, _when(c.at)[:10]) for c in complaints}
    calm_alarms = [c for c in crises if (c["account"], c["started"][:10]) not in burst_days]
    in_crises = sum(c["size"] for c in crises)
    return {
        "complaints": len(complaints),
        "labelled_bursts": len(bursts),
        # a burst is caught when at least half of its complaints joined a crisis
        "bursts_caught": sum(1 for f in found if f["in_a_crisis"] >= 0.5),
        "bursts_touched": sum(1 for f in found if f["crises"]),
        "crises": len(crises),
        "crises_without_a_labelled_burst": sum(1 for c in crises if c["crisis"] not in explained),
        "calm_airline_days": len(days - burst_days),
        "crises_on_calm_days": len(calm_alarms),
        "label_precision": round(sum(c["purity"] * c["size"] for c in crises) / in_crises, 3) if in_crises else None,
        "bursts": found,
        "crisis_list": crises,
        "per_message_us": _cost(result.seconds),
        "writes_per_complaint": round(result.writes / len(complaints), 3),
    }


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%d %H:%M")


def _cost(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {
        "p50": round(statistics.median(ordered) * 1e6, 1),
        "p99": round(ordered[int(len(ordered) * 0.99)] * 1e6, 1),
        "mean": round(statistics.fmean(ordered) * 1e6, 1),
    }


# --- the synthetic burst ------------------------------------------------------------------

# Four complaints, each in many wordings a crowd would use. Slots: {flight} {city} {hours}
# {code}; a paraphrase may share only one or two words with another.
CLUSTERS: dict[str, list[str]] = {
    "en-app-down": [
        "your app keeps crashing every time I try to check in",
        "can't log in to the app, it just shows an error",
        "the website is down and I can't check in for flight {flight}",
        "app won't load my boarding pass for {flight}",
        "is the app down? getting error {code} every time I try to check in",
        "app crashed twice and I still can't get my boarding pass",
        "online check-in is not working, the site keeps giving me an error",
        "been trying to check in online for {hours} hours, the website just spins",
        "your site is broken, check-in fails with error {code}",
        "the mobile app logs me out and won't let me check in",
        "boarding pass won't download from the app, flight leaves in {hours} hours",
        "after the app update nothing loads, can't check in",
        "website error when I try to check in, app crashing too",
        "why is your app not working?? can't get a boarding pass",
        "check in online impossible, app and website both down",
    ],
    "en-double-charge": [
        "I was charged twice for my booking",
        "you double charged my credit card for flight {flight}",
        "two charges on my card for the same ticket, refund one please",
        "why did I get charged twice for one flight?",
        "my bank shows a duplicate charge from you for the same booking",
        "payment went through twice, I need a refund for the second charge",
        "charged two times for the same reservation to {city}",
        "double charge on my card, this is ridiculous",
        "got a duplicate charge after booking online, refund the extra payment",
        "your system charged my card twice for one booking",
        "I see the same charge twice on my credit card statement",
        "charged double for my {city} flight, who do I call about the refund",
    ],
    "es-app-caida": [
        "la app no funciona, no puedo hacer el check-in",
        "no puedo facturar online, la web da error",
        "vuestra aplicación se cierra sola cada vez que intento hacer el check in",
        "la web está caída y no puedo descargar la tarjeta de embarque",
        "llevo {hours} horas intentando hacer el check-in online y la app no carga",
        "error {code} en la web al hacer el check in del vuelo {flight}",
        "la aplicación no me deja descargar la tarjeta de embarque",
        "¿está caída la app? no carga nada y no puedo facturar",
        "imposible hacer el check-in, la web y la app fallan",
        "la app se queda colgada y no me deja hacer el check in para {city}",
        "no funciona la web, error al intentar facturar online",
        "después de actualizar la app no carga la tarjeta de embarque",
    ],
    "es-cobro-doble": [
        "me habéis cobrado dos veces el mismo billete",
        "cobro duplicado en mi tarjeta por la reserva del vuelo {flight}",
        "me han cargado dos veces el pago del vuelo a {city}",
        "tengo dos cargos en la tarjeta por la misma reserva, quiero el reembolso",
        "el banco me muestra un cobro doble vuestro",
        "pagué una vez y me cobrasteis dos, devolvedme el dinero del cargo duplicado",
        "cobro doble en la tarjeta, es una vergüenza",
        "me cobraron el billete dos veces, ¿quién me devuelve el segundo cargo?",
        "reserva cobrada por duplicado en mi tarjeta de crédito",
        "doble cargo en mi cuenta por el mismo vuelo a {city}, quiero el reembolso",
    ],
}
CALM_DAY = 300  # unrelated complaints the day before the burst
SEEDS = (1, 2, 3, 4, 5, 6, 7, 8)  # five bursts, each with its own wordings, order and unrelated complaints
SHARES = {"en-app-down": 0.25, "en-double-charge": 0.15, "es-app-caida": 0.18, "es-cobro-doble": 0.12}
OPENERS_EN = ["", "", "@brand ", "hey @brand ", "@brand @help ", "Seriously? ", "wow. ", "@brand help! "]
CLOSERS_EN = ["", "", "!!", " 😡", " #fail", " please help", " thanks for nothing", " fix this", " 🙄🙄", "..."]
OPENERS_ES = ["", "", "@marca ", "hola @marca ", "@marca @ayuda ", "En serio? ", "vaya tela. "]
CLOSERS_ES = ["", "", "!!", " 😡", " #vergüenza", " ayuda por favor", " gracias por nada", " solucionadlo ya", "..."]
CITIES = ["Madrid", "Dallas", "Chicago", "Bogotá", "Miami", "Lima", "Boston", "Sevilla", "Denver", "México"]
# Unrelated real complaints must not be about the synthetic ones, or their labels would lie.
_TOPIC_WORDS = re.compile(
    r"\bapp|website|\bsite\b|\bweb\b|online|check.?in|boarding pass|error|crash|charg|bill|card|payment|twice|double|"
    r"refund|cobr|cargo|duplic|dos veces|pago|tarjeta|factur|reembols|devol",
    re.IGNORECASE,
)


def _paraphrase(template: str, rng: random.Random, spanish: bool) -> str:
    text = template.format(
        flight=f"{rng.choice(['AA', 'IB', 'UX', 'VY'])}{rng.randint(10, 9999)}",
        city=rng.choice(CITIES),
        hours=rng.randint(2, 6),
        code=rng.choice(["500", "503", "E42", "404", "1002"]),
    )
    openers, closers = (OPENERS_ES, CLOSERS_ES) if spanish else (OPENERS_EN, CLOSERS_EN)
    text = rng.choice(openers) + text + rng.choice(closers)
    roll = rng.random()
    if roll < 0.15:
        text = text.upper()
    elif roll < 0.45:
        text = text.lower()
    if spanish and rng.random() < 0.5:  # many write Spanish without accents
        text = text.translate(str.maketrans("áéíóúÁÉÍÓÚ", "aeiouAEIOU"))
    words = text.split()
    if rng.random() < 0.3 and len(words) > 3:  # one typo: a letter dropped or doubled
        i = rng.randrange(len(words))
        word = words[i]
        if len(word) > 3:
            j = rng.randrange(1, len(word) - 1)
            words[i] = word[:j] + word[j + 1 :] if rng.random() < 0.5 else word[:j] + word[j] + word[j:]
    return " ".join(words)


def _unrelated(rows_en: list[dict[str, Any]], rows_es: list[dict[str, Any]]) -> Iterator[str]:
    """Real negative complaints (English and Spanish, shuffled) about anything but the four."""
    texts = [_undo_artifacts(r["text"]) for r in rows_en + rows_es if r["label"] == "negative"]
    rng = random.Random(11)
    rng.shuffle(texts)
    return (t for t in texts if not _TOPIC_WORDS.search(t))


def synthetic_burst(
    rows_en: list[dict[str, Any]], rows_es: list[dict[str, Any]], *, seed: int, calm_day: bool = True, size: int = 1000
) -> list[Complaint]:
    """``size`` complaints within 45 minutes, 70 % the four, after a calm day of unrelated real
    complaints (or, without ``calm_day``, to an account with no history at all)."""
    rng = random.Random(seed)
    unrelated = _unrelated(rows_en, rows_es)
    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC).timestamp()
    complaints = []
    for i in range(CALM_DAY if calm_day else 0):  # the day before: one complaint every ~5 minutes
        complaints.append(Complaint(f"calm-{i}", next(unrelated), "brand", start - 86400 + i * 288, None, rng.choice(PLATFORMS)))
    labels: list[str | None] = [name for name, share in SHARES.items() for _ in range(round(share * size))]
    labels += [None] * (size - len(labels))
    rng.shuffle(labels)
    for i, label in enumerate(labels):
        text = _paraphrase(rng.choice(CLUSTERS[label]), rng, label.startswith("es")) if label else next(unrelated)
        at = start + rng.uniform(0, 2700)
        complaints.append(Complaint(f"burst-{i}", text, "brand", at, label, rng.choice(PLATFORMS), f"person-{i}"))
    return complaints


def measure_synthetic(
    rows_en: list[dict[str, Any]],
    rows_es: list[dict[str, Any]],
    settings: CrisisSettings,
    *,
    seed: int,
    calm_day: bool = True,
) -> dict[str, Any]:
    complaints = synthetic_burst(rows_en, rows_es, seed=seed, calm_day=calm_day)
    burst = [c for c in complaints if c.id.startswith("burst-")]
    result = replay(complaints, settings)
    clusters = Counter(c.label for c in complaints if c.label)
    # Each crisis stands for the cluster most of its members belong to, and its members from
    # other clusters or from the unrelated complaints are wrong (a crisis made mostly of
    # unrelated complaints is wrong as a whole). A cluster's recall counts only its biggest
    # crisis: a cluster split in two crises is two problem tickets.
    crisis_cluster = {key: Counter(m.label for m in members).most_common(1)[0][0] for key, members in result.members.items()}
    in_crises = sum(len(members) for members in result.members.values())
    correct = sum(
        sum(1 for m in members if m.label is not None and m.label == crisis_cluster[key])
        for key, members in result.members.items()
    )
    per_cluster = {}
    for cluster, size in sorted(clusters.items()):
        best = max(
            (
                sum(1 for m in members if m.label == cluster)
                for key, members in result.members.items()
                if crisis_cluster[key] == cluster
            ),
            default=0,
        )
        per_cluster[cluster] = {
            "complaints": size,
            "crises": sum(1 for key in result.members if crisis_cluster[key] == cluster),
            "recall": round(best / size, 3),
        }
    recalled = sum(round(v["recall"] * v["complaints"]) for v in per_cluster.values())
    return {
        "complaints": len(burst),
        "similar": sum(clusters.values()),
        "crises": len(result.members),
        "crises_of_unrelated_complaints": sum(1 for cluster in crisis_cluster.values() if cluster is None),
        "crisis_precision": round(correct / in_crises, 3) if in_crises else None,
        "crisis_recall": round(recalled / sum(clusters.values()), 3),
        "clusters": per_cluster,
        "per_message_us": _cost(result.seconds[len(complaints) - len(burst) :]),
        "writes_per_complaint": round(result.writes / len(complaints), 3),
    }


def measure_cost(rows_en: list[dict[str, Any]], settings: CrisisSettings, *, held: int, span: float) -> dict[str, Any]:
    """observe() cost for one account once ``held`` real complaints of the last ``span`` seconds are held."""
    complaints = en_complaints(rows_en)[: held + 1000]
    start = complaints[0].at
    for i, c in enumerate(complaints):
        c.account, c.at = "one", start + i * span / held
    result = replay(complaints, settings)
    return {"held": held, "over_minutes": round(span / 60), "per_message_us": _cost(result.seconds[held:])}


def summary(figures: dict[str, Any]) -> str:
    """The figures as a reader wants them (``--json`` writes everything)."""
    lines = ["settings: " + ", ".join(f"{k}={v}" for k, v in figures["settings"].items())]
    for name in ("after_a_calm_day", "no_history"):
        run = figures["synthetic"][name]
        lines.append(
            f"synthetic burst ({name.replace('_', ' ')}, {len(figures['synthetic']['seeds'])} seeds): "
            f"crisis_precision mean {run['crisis_precision']['mean']} (min {run['crisis_precision']['min']}), "
            f"crisis_recall mean {run['crisis_recall']['mean']} (min {run['crisis_recall']['min']}), "
            f"crises of unrelated complaints {run['crises_of_unrelated_complaints']}, "
            f"{run['writes_per_complaint']} DynamoDB writes per complaint; recall per cluster "
            + ", ".join(f"{k} {v}" for k, v in run["recall_per_cluster"].items())
        )
    real = figures["real"]
    lines.append(
        f"airline bursts: {real['bursts_caught']} of {real['labelled_bursts']} labelled bursts caught (half their"
        f" complaints in a crisis), {real['bursts_touched']} touched; {real['crises']} crises, "
        f"{real['crises_without_a_labelled_burst']} without a labelled burst, {real['crises_on_calm_days']} on "
        f"{real['calm_airline_days']} calm airline-days; members' label precision {real['label_precision']}; "
        f"{real['writes_per_complaint']} DynamoDB writes per complaint"
    )
    for crisis in real["crisis_list"]:
        lines.append(
            f"  {crisis['started']} {crisis['account']}: {crisis['size']} complaints, {crisis['purity']:.0%} "
            f"'{crisis['majority_reason']}', about {' '.join(crisis['keywords'])}"
        )
    for burst in real["bursts"]:
        if burst["crises"]:
            lines.append(
                f"  burst {burst['hour']} {burst['account']} '{burst['reason']}' ({burst['complaints']}, usually"
                f" {burst['usual_per_hour']}/h): {burst['in_a_crisis']:.0%} in a crisis"
            )
    for cost in figures["cost"]:
        us = cost["per_message_us"]
        lines.append(
            f"observe() with {cost['held']} complaints held over {cost['over_minutes']} min: "
            f"p50 {us['p50']} us, p99 {us['p99']} us, mean {us['mean']} us"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--burst-min", type=int, default=10, help="complaints of one reason in an hour to call it a burst")
    args = parser.parse_args(argv)
    logger.setLevel("WARNING")  # one "crisis started" line per crisis would bury the figures
    settings = CrisisSettings()
    rows_en, rows_es = load_en(), load_es()
    synthetic = {}
    for name, calm_day in (("after_a_calm_day", True), ("no_history", False)):
        runs = [measure_synthetic(rows_en, rows_es, settings, seed=seed, calm_day=calm_day) for seed in SEEDS]
        precision = [r["crisis_precision"] or 0.0 for r in runs]
        recall = [r["crisis_recall"] for r in runs]
        synthetic[name] = {
            "crisis_precision": {
                "mean": round(statistics.fmean(precision), 3),
                "min": min(precision),
                "runs": precision,
            },
            "crisis_recall": {"mean": round(statistics.fmean(recall), 3), "min": min(recall), "runs": recall},
            "crises_of_unrelated_complaints": sum(r["crises_of_unrelated_complaints"] for r in runs),
            "writes_per_complaint": round(statistics.fmean(r["writes_per_complaint"] for r in runs), 3),
            "recall_per_cluster": {
                cluster: round(statistics.fmean(r["clusters"][cluster]["recall"] for r in runs), 3) for cluster in SHARES
            },
            "runs": runs,
        }
    figures = {
        "settings": vars(settings),
        "synthetic": {"seeds": list(SEEDS), **synthetic},
        "real": measure_real(rows_en, settings, burst_min=args.burst_min),
        "cost": [
            # a few thousand complaints in the last hour (the worst case: all of them in the window) and over a day
            measure_cost(rows_en, settings, held=3000, span=settings.window_seconds * 0.9),
            measure_cost(rows_en, settings, held=3000, span=settings.baseline_seconds),
        ],
    }
    print(summary(figures))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
