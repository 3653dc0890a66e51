"""The crisis burst ``make bench`` measures: 1,000 new complaints from 1,000 authors on every
platform within a few minutes, 70 % paraphrases of four complaints (two English, two
Spanish) and the rest unrelated to each other.

The texts come from the templates below (written for the benchmark, a telecom brand: an
outage, a rejected promotion code, "sin conexión", "cobro duplicado"), varied by slots,
openers, closers, case and typos. They are not the crisis detector's own development set
(``tools/measure_crisis.py``, an airline), so the benchmark measures it on text it was not
tuned on. Each delivery's author is known, so every ticket's true cluster is known.

The unrelated 30 % are one-off questions and complaints from 150 templates (90 English, 60
Spanish), each sent by at most two authors of a 1,000-complaint burst (slots, openers and
closers vary them further). An earlier version drew them from 40 templates, so 14-15 people
sent the same sentence within minutes: that is a real cluster, and the detector reported two
of them as crises, which the scoring counted against it as "noise" problems.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

from bench.workload import Delivery, _feed_comment, _ig_comment, _messenger, _whatsapp, _x_dm
from local.samples import LINE_BOT_ID, PAGE_ID

# Each cluster: many ways a crowd says the same thing. Slots: {town} {hours} {code} {days}.
CLUSTERS: dict[str, list[str]] = {
    "en-outage": [
        "no internet since this morning, is there an outage in {town}?",
        "my fibre has been down for {hours} hours, nothing works",
        "internet keeps dropping every few minutes, router lights red",
        "is your network down? no signal and no internet in {town}",
        "whole street without internet for {hours} hours, when will it be fixed",
        "the router shows error {code} and there's no connection at all",
        "working from home and the internet is down AGAIN",
        "lost connection around 9am, still no internet, outage?",
        "mobile data and home wifi both dead, what is going on",
        "no broadband in {town} since last night, any update on the outage",
        "your service status page says fine but my internet has been out {hours} hours",
        "can't connect to anything, internet down for the whole building",
    ],
    "en-promo-code": [
        "the discount code from your email doesn't work at checkout",
        "promo code {code} says invalid, it was in your ad today",
        "your black friday code is rejected, what a scam",
        "tried the promotion code five times, always 'code expired'",
        "the 50% offer code won't apply to my order",
        "promo in your newsletter is not accepted on the website",
        "discount code fails at payment, it says not valid for this product",
        "your advertised voucher doesn't work, checkout ignores it",
        "coupon {code} gives an error, the promotion ends tonight",
        "why does the promotional code from your app not apply",
    ],
    "es-sin-conexion": [
        "llevo {hours} horas sin internet en {town}, ¿hay una avería?",
        "se me ha caído la fibra otra vez, no tengo conexión",
        "sin conexión desde esta mañana, el router marca error {code}",
        "¿está caída vuestra red? no tengo internet ni datos",
        "todo el barrio sin internet desde anoche, ¿cuándo lo arregláis?",
        "la conexión se corta cada cinco minutos, así no se puede teletrabajar",
        "no funciona internet en {town} desde hace {hours} horas",
        "el wifi y los datos móviles sin servicio, ¿qué pasa?",
        "avería en la fibra, sin internet todo el día",
        "me quedé sin conexión a internet y nadie me dice nada de la avería",
    ],
    "es-cobro-duplicado": [
        "me habéis cobrado la factura de este mes dos veces",
        "cobro duplicado de la cuota de {days} en mi cuenta",
        "tengo dos cargos de la misma factura, quiero que me devolváis uno",
        "el banco me muestra un recibo doble vuestro este mes",
        "me cobrasteis dos veces la tarifa, devolvedme el dinero",
        "recibo cobrado por duplicado, es una vergüenza",
        "doble cargo de la factura de internet, ¿quién me lo devuelve?",
        "pagué la factura y me la habéis vuelto a cobrar",
        "cargo repetido de vuestra compañía en mi tarjeta, reclamo el reembolso",
    ],
}
SHARES = {"en-outage": 0.28, "en-promo-code": 0.14, "es-sin-conexion": 0.18, "es-cobro-duplicado": 0.10}

# Unrelated: one-off questions and complaints about anything else, 150 of them, so that in a
# burst of 1,000 no sentence is sent by more than two authors (``crisis_burst`` deals each twice).
UNRELATED_EN = [
    "how do I change the name on my account?",
    "your shop in {town} closes too early on saturdays",
    "can I keep my number if I move to {town}?",
    "the technician never showed up for the appointment on {days}",
    "love the new tv channels, but the guide is confusing",
    "why is my contract ending date different from what the seller told me",
    "does the new phone plan include roaming in Canada?",
    "the letter you sent has my surname misspelled",
    "I want to cancel the extra sports package",
    "what time does customer support open on sundays",
    "the remote control for the decoder stopped responding",
    "I moved house, how do I transfer the landline",
    "your chatbot sent me in circles for twenty minutes",
    "the SIM card never arrived in the post",
    "can I get a paper invoice instead of email",
    "the seller at the {town} store was really rude to my mother",
    "how do I add my daughter as a user on the family plan",
    "voicemail is in the wrong language and I can't change it",
    "is there a student discount for the streaming add-on",
    "the parental controls reset themselves every week",
    "I got a call from someone saying they are from your company asking for my password",
    "my loyalty points disappeared from the app",
    "the installation left a hole in my wall and cables everywhere",
    "when will 5G reach {town}?",
    "the music streaming included in my plan asks me to pay",
    "my grandmother needs a phone with big buttons, which one do you sell",
    "the courier left the new handset with a neighbour I don't know",
    "how much does it cost to unlock a phone bought from you",
    "your hold music is the same ten seconds on repeat",
    "the eSIM QR code was sent to my old email address",
    "I was promised a free tablet when I renewed and it never came",
    "the smartwatch line will not pair with my watch",
    "can you move my payment date to the 15th",
    "the shop assistant in {town} sold me the wrong charger",
    "where do I recycle the old modem",
    "my late husband's contract is still active, how do I close it",
    "the speed test in your app crashes on android",
    "international calls to Morocco are not included like the ad said",
    "I need a letter confirming my address for the bank",
    "the tv box records the wrong programme every tuesday",
    "your website will not let me upload my ID for the new contract",
    "why do I need to sign again to upgrade my handset",
    "the replacement remote you posted is for a different decoder",
    "my son's prepaid top-up went to a stranger's number",
    "can I pause the movie package while I travel for three months",
    "the engineer wants to drill through a listed building wall, is there another way",
    "your shop staff cannot tell me when the iPhone will be in stock",
    "spam texts about parcels keep arriving on my work line",
    "who do I talk to about a mast being built next to the school",
    "my account shows a device I returned in {days}",
    "the welcome pack came in French",
    "I'd like to change the PIN for the adult channels",
    "is the satellite dish still needed with the new box",
    "the trade-in value you offered for my old phone dropped after I sent it",
    "the app logs me out every single time I open it",
    "can a friend collect my order at the {town} store",
    "the wifi extender you sent has a UK plug",
    "please stop calling me with sales offers at dinner time",
    "my elderly dad was sold a contract he cannot understand",
    "the insurance claim for my cracked screen has had no reply",
    "how do I set up call forwarding to my office",
    "the subtitles on the on-demand films are out of sync",
    "the direct debit form asks for a field that doesn't exist",
    "I cannot find the receipt for my headphones in the app",
    "do you sponsor the local football club in {town}? they asked me",
    "how long do you keep my call recordings",
    "your store in {town} has no wheelchair access",
    "the kids section of the tv app shows adverts for horror films",
    "my number was ported but my old provider still bills me",
    "the outdoor antenna blew down in the storm, is it covered",
    "can I choose a memorable phone number",
    "the email you send for every bill goes to my spam folder",
    "your survey after the call had no option for my answer",
    "the new terms and conditions are twenty pages, what changed",
    "my business line needs a second number for the fax",
    "the cinema ticket perk in my plan expired without warning",
    "the door-to-door salesman wouldn't leave my porch",
    "how do I get my deposit back after three years",
    "the live football stream is five minutes behind my neighbour's",
    "please delete the data you hold about my old account",
    "the battery of the phone you sold me swells up",
    "my pension club discount is not on the renewal quote",
    "the delivery slot for the router is on a day I work",
    "can I get the bill in braille for my uncle",
    "why was I asked for my mother's maiden name twice",
    "the gift card I bought for my nephew shows zero",
    "your radio advert is so loud it scares my dog",
    "the tv guide has the wrong times for the news",
    "I need an engineer who speaks Polish for my parents",
    "the returns label prints blank",
]
UNRELATED_ES = [
    "¿cómo cambio el titular del contrato?",
    "la tienda de {town} no tiene el móvil que anunciáis",
    "quiero darme de baja del paquete de fútbol",
    "el técnico no vino a la cita del {days} y nadie avisó",
    "¿puedo llevarme mi número si me mudo a {town}?",
    "el mando del descodificador no responde",
    "la carta que me mandasteis tiene mal mi apellido",
    "¿a qué hora abre atención al cliente los domingos?",
    "me llamaron diciendo que eran de vuestra empresa y pedían mi contraseña",
    "la tarjeta SIM nunca llegó por correo",
    "¿hay descuento para estudiantes en la tarifa?",
    "el vendedor me prometió un regalo que nunca llegó",
    "el contestador está en inglés y no sé cambiarlo",
    "me mudo de casa, ¿cómo traslado el teléfono fijo?",
    "los puntos de fidelidad desaparecieron de la aplicación",
    "mi abuela necesita un móvil sencillo con teclas grandes",
    "el repartidor dejó el paquete en el portal sin avisar",
    "¿cuánto cuesta liberar el teléfono que os compré?",
    "la música de espera se repite cada diez segundos",
    "el código QR de la eSIM llegó a un correo antiguo",
    "me regalabais una tablet por renovar y no ha llegado",
    "quiero cambiar el día de pago al quince",
    "en la tienda de {town} me vendieron un cargador equivocado",
    "¿dónde reciclo el módem viejo?",
    "mi padre falleció y su línea sigue activa, ¿cómo la cierro?",
    "las llamadas a Marruecos no están incluidas como decía el anuncio",
    "necesito un certificado de domicilio para el banco",
    "el descodificador graba el programa equivocado los martes",
    "la web no me deja subir el DNI para el contrato nuevo",
    "mi hijo hizo una recarga y fue a un número desconocido",
    "¿puedo pausar el paquete de cine mientras viajo tres meses?",
    "me llegan mensajes basura sobre paquetes en la línea del trabajo",
    "están instalando una antena al lado del colegio, ¿con quién hablo?",
    "el manual de bienvenida vino en francés",
    "quiero cambiar el PIN del control parental",
    "me bajasteis el valor de entrega del móvil viejo después de enviarlo",
    "la aplicación me cierra la sesión cada vez que la abro",
    "¿puede recoger mi pedido un amigo en la tienda de {town}?",
    "dejad de llamarme con ofertas a la hora de comer",
    "a mi padre le vendieron un contrato que no entiende",
    "el seguro de la pantalla rota no contesta desde hace semanas",
    "¿cómo desvío las llamadas a la oficina?",
    "los subtítulos de las películas van desfasados",
    "no encuentro el ticket de los auriculares en la app",
    "¿cuánto tiempo guardáis las grabaciones de mis llamadas?",
    "la tienda de {town} no tiene acceso para silla de ruedas",
    "la sección infantil de la tele muestra anuncios de terror",
    "el temporal tiró la antena del tejado, ¿lo cubre el seguro?",
    "¿puedo elegir un número fácil de recordar?",
    "la encuesta después de la llamada no tenía mi respuesta",
    "las condiciones nuevas ocupan veinte páginas, ¿qué ha cambiado?",
    "la entrada de cine de mi tarifa caducó sin aviso",
    "el comercial a domicilio no se iba de mi puerta",
    "¿cómo recupero la fianza después de tres años?",
    "borrad los datos que guardáis de mi cuenta antigua",
    "la batería del móvil que me vendisteis se ha hinchado",
    "la franja de entrega del router cae en mi día de trabajo",
    "la tarjeta regalo que compré para mi sobrino sale a cero",
    "la guía de la tele tiene mal la hora del telediario",
    "la etiqueta de devolución se imprime en blanco",
]
OPENERS_EN = ["", "", "@telco ", "hey @telco ", "Seriously? ", "ugh. ", "@telco help! ", "hi, "]
CLOSERS_EN = ["", "", "!!", " 😡", " #fail", " please help", " thanks for nothing", " fix it", "...", " 🙄"]
OPENERS_ES = ["", "", "@telco ", "hola @telco ", "En serio? ", "vaya tela. ", "buenas, "]
CLOSERS_ES = ["", "", "!!", " 😡", " #vergüenza", " ayuda por favor", " gracias por nada", " arregladlo ya", "..."]
TOWNS = ["Leeds", "Austin", "Valencia", "Bilbao", "Denver", "Cork", "Málaga", "Toledo", "Fresno", "Quito"]
DAYS = ["monday", "tuesday", "march", "april", "lunes", "martes", "marzo", "abril"]
# Chats, DMs and comments on every platform the bridge receives complaints from.
PLATFORMS = ("facebook_comment", "messenger", "instagram_comment", "whatsapp", "x_dm", "telegram", "line")


@dataclass
class Burst:
    """The deliveries and, per author (the platform's id of the person), their true cluster
    (None: unrelated)."""

    deliveries: list[Delivery] = field(default_factory=list)
    cluster_of: dict[str, str | None] = field(default_factory=dict)
    platform_of: dict[str, str] = field(default_factory=dict)
    text_of: dict[str, str] = field(default_factory=dict)
    template_of: dict[str, str] = field(default_factory=dict)


def paraphrase(template: str, rng: random.Random, *, spanish: bool) -> str:
    """One wording of ``template``: slots filled, an opener and a closer, maybe shouted or
    lower-cased, maybe without accents, maybe one typo."""
    text = template.format(
        town=rng.choice(TOWNS),
        hours=rng.randint(2, 9),
        code=rng.choice(["E42", "503", "SAVE50", "0x7", "BF24"]),
        days=rng.choice(DAYS),
    )
    openers, closers = (OPENERS_ES, CLOSERS_ES) if spanish else (OPENERS_EN, CLOSERS_EN)
    text = rng.choice(openers) + text + rng.choice(closers)
    roll = rng.random()
    if roll < 0.1:
        text = text.upper()
    elif roll < 0.4:
        text = text.lower()
    if spanish and rng.random() < 0.5:
        text = text.translate(str.maketrans("áéíóúÁÉÍÓÚ", "aeiouAEIOU"))
    words = text.split()
    if rng.random() < 0.3 and len(words) > 3:
        i = rng.randrange(len(words))
        if len(words[i]) > 3:
            j = rng.randrange(1, len(words[i]) - 1)
            words[i] = words[i][:j] + words[i][j + 1 :]
    return " ".join(words)


def _telegram(update_id: int, chat: int, text: str, t: int) -> dict[str, Any]:
    sender = {"id": chat, "is_bot": False, "first_name": "Customer", "last_name": str(chat)}
    return {
        "update_id": update_id,
        "message": {
            "message_id": 1,
            "from": sender,
            "chat": {"id": chat, "first_name": "Customer", "type": "private"},
            "date": t,
            "text": text,
        },
    }


def _line(event_id: str, user_id: str, text: str, t: int) -> dict[str, Any]:
    return {
        "destination": LINE_BOT_ID,
        "events": [
            {
                "type": "message",
                "mode": "active",
                "timestamp": t * 1000,
                "webhookEventId": event_id,
                "deliveryContext": {"isRedelivery": False},
                "replyToken": f"rt{event_id}",
                "source": {"type": "user", "userId": user_id},
                "message": {"type": "text", "id": f"9{event_id[-12:]}", "quoteToken": f"q{event_id}", "text": text},
            }
        ],
    }


def _delivery(kind: str, uid: str, text: str, t: int) -> tuple[Delivery, str]:
    """The platform's webhook for one complaint, and its author's platform id."""
    if kind == "facebook_comment":
        author, post = f"61{uid}", f"{PAGE_ID}_9{uid}"
        return ("meta", _feed_comment(post, f"9{uid}_1", post, author, text, t)), author
    if kind == "messenger":
        author = f"71{uid}"
        return ("meta", _messenger(f"m_burst_{uid}", author, PAGE_ID, text, t)), author
    if kind == "instagram_comment":
        author = f"81{uid}"
        return ("meta", _ig_comment(f"18{uid}", f"189{uid}", author, text, t)), author
    if kind == "whatsapp":
        author = f"1651{uid}"
        return ("meta", _whatsapp(f"wamid.BURST{uid}", author, text, t)), author
    if kind == "x_dm":
        author = f"32{uid}"
        return ("x", _x_dm(f"20{uid}", author, text, t)), author
    if kind == "telegram":
        chat = int(f"57{uid}")
        return ("telegram", _telegram(int(f"8{uid}"), chat, text, t)), str(chat)
    author = f"U{uid.rjust(32, 'c')}"
    return ("line", _line(f"01HB{uid}", author, text, t)), author


def crisis_burst(run: str, size: int = 1000, *, seed: int = 11, spread_seconds: int = 300) -> Burst:
    """``size`` complaints from ``size`` authors within ``spread_seconds`` ending now, 70 % in
    the four clusters (``SHARES``), the platforms taking turns."""
    rng = random.Random(seed)
    labels: list[str | None] = [name for name, share in SHARES.items() for _ in range(round(share * size))]
    labels += [None] * (size - len(labels))
    rng.shuffle(labels)
    start = int(time.time()) - spread_seconds
    burst = Burst()
    unrelated: list[tuple[str, bool]] = []  # a deck: every unrelated template twice, shuffled, dealt in turn
    for index, label in enumerate(labels):
        if label is not None:
            spanish = label.startswith("es")
            template = rng.choice(CLUSTERS[label])
        else:
            if not unrelated:
                unrelated = [(t, False) for t in UNRELATED_EN] * 2 + [(t, True) for t in UNRELATED_ES] * 2
                rng.shuffle(unrelated)
            template, spanish = unrelated.pop()
        text = paraphrase(template, rng, spanish=spanish)
        kind = PLATFORMS[index % len(PLATFORMS)]
        delivery, author = _delivery(kind, f"{run}{index:04d}", text, start + index * spread_seconds // size)
        burst.deliveries.append(delivery)
        burst.cluster_of[author] = label
        burst.platform_of[author] = kind
        burst.text_of[author] = text
        burst.template_of[author] = template
    return burst
