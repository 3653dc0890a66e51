"""The page: one self-contained HTML file (inline CSS and SVG, no script), in English or Spanish."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from html import escape

from chalicelib.channels.registry import platform_label
from chalicelib.models import Platform
from chalicelib.reporting.charts import Column, Measure, column_chart, line_chart, target_chart
from chalicelib.reporting.model import AttentionItem, Channel, Report, TimesSummary
from chalicelib.reporting.units import format_count, format_duration, format_time

LANGUAGES = ("en", "es")

# Sentences with a count have a singular and a plural form.
LABELS: dict[str, dict[str, str | tuple[str, str]]] = {
    "en": {
        "title": "Response times",
        "generated": "Generated {now} UTC from the table {table}. Period: {start} to {end} UTC.",
        "totals": "{messages} customer messages; {conversations} conversations started in the period.",
        "attention": "What needs attention now",
        "attention_none": "Nothing needs attention: no parked messages, no failed answers, nobody waiting past the SLA.",
        "parked": (
            (
                "{count} message parked (oldest {oldest}): the helpdesk keeps failing or refusing it and its "
                "conversation waits behind it. Fix the cause, then run make redrive."
            ),
            (
                "{count} messages parked (oldest {oldest}): the helpdesk keeps failing or refusing them and their "
                "conversations wait behind them. Fix the cause, then run make redrive."
            ),
        ),
        "set_aside": (
            (
                "{count} message set aside after the helpdesk refused it for too long (oldest {oldest}): "
                "retried on every redrive, blocking nothing."
            ),
            (
                "{count} messages set aside after the helpdesk refused them for too long (oldest {oldest}): "
                "retried on every redrive, blocking nothing."
            ),
        ),
        "replies_failed": ("{count} answer not sent: {reason}. {advice}.", "{count} answers not sent: {reason}. {advice}."),
        "replies_unknown": (
            (
                "{count} answer may or may not have reached the customer: {reason}. "
                "Check the conversation before sending it again."
            ),
            (
                "{count} answers may or may not have reached their customers: {reason}. "
                "Check the conversations before sending them again."
            ),
        ),
        "past_sla": (
            "{count} customer waiting longer than the SLA (longest {oldest}).",
            "{count} customers waiting longer than the SLA (longest {oldest}).",
        ),
        "crisis": ("{count} crisis going on.", "{count} crises going on."),
        "tokens_failing": (
            "{count} account's credentials refused by its platform: reconnect it, every answer on it fails until then.",
            "{count} accounts' credentials refused by their platforms: reconnect them, every answer on them fails until then.",
        ),
        "volume": "Customer messages per channel",
        "volume_desc": "Customer messages per {bucket}, same scale for every channel.",
        "volume_none": "No customer messages in this period.",
        "numbers": "The numbers",
        "channel": "Channel",
        "start": "From (UTC)",
        "messages": "Messages",
        "first_response": "First response time per channel",
        "first_response_desc": "p50 and p90 of the time from a conversation's first customer message to the first answer, "
        "for conversations that started in this period; the dashed line is the SLA target.",
        "first_response_none": "No answered conversation in this period yet.",
        "resolution": "Resolution time per channel",
        "resolution_desc": "p50 and p90 of the time from the first customer message to the ticket's solving.",
        "resolution_none": "No resolution times yet: the table does not record when tickets are solved.",
        "answered": "Answered",
        "solved": "Solved",
        "sla": "SLA",
        "sla_line": "SLA {value}",
        "no_target": "no target",
        "within_sla": "Within SLA",
        "waiting": "Slowest open conversations",
        "waiting_desc": "Customers whose latest messages have no answer yet, longest waiting first ({shown} of {total}).",
        "waiting_none": "Nobody is waiting for an answer.",
        "conversation": "Conversation",
        "waiting_since": "Waiting since (UTC)",
        "waited": "Waiting",
        "answered_before": "Answered before",
        "parked_col": "Parked",
        "yes": "yes",
        "no": "no",
        "failed": "Answers that did not reach the customer",
        "failed_desc": "Agents' answers the platform refused, or that may not have arrived, by reason.",
        "failed_none": "Every answer reached its customer in this period.",
        "reason": "Reason",
        "count": "Count",
        "state": "State",
        "latest": "Latest (UTC)",
        "latest_note": "Latest note",
        "conversations": "Conversations",
        "crises": "Crises",
        "crises_desc": "Each crisis's size (complaints about it) over time.",
        "crises_unavailable": "Crisis detection is not connected yet: no data.",
        "crises_none": "No crisis in this period.",
        "crisis_active": "going on",
        "crisis_over": "over",
        "size": "Size",
        "time": "Time (UTC)",
        "public": "public",
        "private": "private",
        "footer": "Percentiles are nearest-rank: p90 is the time 90 % of conversations stayed within. "
        "Times are UTC. First response: the first answer sent through the helpdesk, or the brand's own "
        "message on the platform.",
        "bucket_300": "5 minutes",
        "bucket_900": "15 minutes",
        "bucket_3600": "hour",
        "bucket_10800": "3 hours",
        "bucket_21600": "6 hours",
        "bucket_86400": "day",
        "bucket_604800": "week",
        "state_failed": "failed",
        "state_unknown": "unknown",
        "state_retry": "retrying",
        "state_held": "waiting for approval",
        "kind_token_expired": "the account's token expired",
        "kind_token_revoked": "the platform no longer accepts the account's token",
        "kind_permission_missing": "a permission is missing",
        "kind_window_closed": "the reply window closed",
        "kind_rate_limited": "too many sends (rate limit)",
        "kind_target_deleted": "the customer's message was deleted",
        "kind_rejected": "refused by the platform",
        "kind_unavailable": "the platform did not answer",
        "kind_interrupted": "sending was interrupted",
        "kind_unknown": "no reason recorded",
        "kind_awaiting_approval": "a sensitive public answer waits for a lead's approval",
        "advice_token_expired": "Reconnect the account",
        "advice_token_revoked": "Reconnect the account",
        "advice_permission_missing": "Grant the permission, then reconnect the account",
        "advice_window_closed": "Use a message template, or wait for the customer to write again",
        "advice_rate_limited": "It is retried by itself",
        "advice_target_deleted": "Answer in a new message if it is still needed",
        "advice_rejected": "Read the note on the ticket",
        "advice_unavailable": "Check the platform's status; the agent can send it again",
        "advice_interrupted": "Check the conversation before sending it again",
        "advice_unknown": "Read the note on the ticket",
        "advice_awaiting_approval": "A lead adds the tag socialdesk_approved (send) or socialdesk_withdrawn (drop)",
    },
    "es": {
        "title": "Tiempos de respuesta",
        "generated": "Generado el {now} UTC a partir de la tabla {table}. Periodo: del {start} al {end} UTC.",
        "totals": "{messages} mensajes de clientes; {conversations} conversaciones iniciadas en el periodo.",
        "attention": "Qué necesita atención ahora",
        "attention_none": "Nada necesita atención: ningún mensaje aparcado, ninguna respuesta fallida, nadie espera más "
        "que el SLA.",
        "parked": (
            (
                "{count} mensaje aparcado (el más antiguo hace {oldest}): el helpdesk sigue fallando o rechazándolo "
                "y su conversación espera detrás. Corrige la causa y ejecuta make redrive."
            ),
            (
                "{count} mensajes aparcados (el más antiguo hace {oldest}): el helpdesk sigue fallando o "
                "rechazándolos y sus conversaciones esperan detrás. Corrige la causa y ejecuta make redrive."
            ),
        ),
        "set_aside": (
            (
                "{count} mensaje apartado tras ser rechazado demasiado tiempo (el más antiguo hace {oldest}): "
                "se reintenta en cada redrive sin bloquear nada."
            ),
            (
                "{count} mensajes apartados tras ser rechazados demasiado tiempo (el más antiguo hace {oldest}): "
                "se reintentan en cada redrive sin bloquear nada."
            ),
        ),
        "replies_failed": (
            "{count} respuesta no enviada: {reason}. {advice}.",
            "{count} respuestas no enviadas: {reason}. {advice}.",
        ),
        "replies_unknown": (
            (
                "{count} respuesta puede haber llegado o no al cliente: {reason}. "
                "Revisa la conversación antes de volver a enviarla."
            ),
            (
                "{count} respuestas pueden haber llegado o no a sus clientes: {reason}. "
                "Revisa las conversaciones antes de volver a enviarlas."
            ),
        ),
        "past_sla": (
            "{count} cliente espera más que el SLA (el que más, {oldest}).",
            "{count} clientes esperan más que el SLA (el que más, {oldest}).",
        ),
        "crisis": ("{count} crisis en curso.", "{count} crisis en curso."),
        "tokens_failing": (
            "{count} cuenta con credenciales rechazadas por su plataforma: vuelve a conectarla; hasta entonces falla toda respuesta.",
            "{count} cuentas con credenciales rechazadas por sus plataformas: vuelve a conectarlas; hasta entonces falla toda respuesta.",
        ),
        "volume": "Mensajes de clientes por canal",
        "volume_desc": "Mensajes de clientes por {bucket}, con la misma escala para todos los canales.",
        "volume_none": "No hay mensajes de clientes en este periodo.",
        "numbers": "Las cifras",
        "channel": "Canal",
        "start": "Desde (UTC)",
        "messages": "Mensajes",
        "first_response": "Tiempo de primera respuesta por canal",
        "first_response_desc": "p50 y p90 del tiempo entre el primer mensaje del cliente y la primera respuesta, para las "
        "conversaciones iniciadas en este periodo; la línea discontinua es el objetivo de SLA.",
        "first_response_none": "Aún no hay conversaciones respondidas en este periodo.",
        "resolution": "Tiempo de resolución por canal",
        "resolution_desc": "p50 y p90 del tiempo entre el primer mensaje del cliente y la resolución del ticket.",
        "resolution_none": "Aún no hay tiempos de resolución: la tabla no registra cuándo se resuelven los tickets.",
        "answered": "Respondidas",
        "solved": "Resueltas",
        "sla": "SLA",
        "sla_line": "SLA {value}",
        "no_target": "sin objetivo",
        "within_sla": "Dentro del SLA",
        "waiting": "Conversaciones abiertas más lentas",
        "waiting_desc": "Clientes cuyos últimos mensajes aún no tienen respuesta, primero los que más esperan "
        "({shown} de {total}).",
        "waiting_none": "Nadie espera una respuesta.",
        "conversation": "Conversación",
        "waiting_since": "Espera desde (UTC)",
        "waited": "Espera",
        "answered_before": "Respondida antes",
        "parked_col": "Aparcada",
        "yes": "sí",
        "no": "no",
        "failed": "Respuestas que no llegaron al cliente",
        "failed_desc": "Respuestas de agentes que la plataforma rechazó o que quizá no llegaron, por motivo.",
        "failed_none": "Todas las respuestas llegaron a su cliente en este periodo.",
        "reason": "Motivo",
        "count": "Cantidad",
        "state": "Estado",
        "latest": "Última (UTC)",
        "latest_note": "Última nota",
        "conversations": "Conversaciones",
        "crises": "Crisis",
        "crises_desc": "El tamaño de cada crisis (quejas sobre ella) a lo largo del tiempo.",
        "crises_unavailable": "La detección de crisis aún no está conectada: no hay datos.",
        "crises_none": "No hay crisis en este periodo.",
        "crisis_active": "en curso",
        "crisis_over": "terminada",
        "size": "Tamaño",
        "time": "Hora (UTC)",
        "public": "público",
        "private": "privado",
        "footer": "Los percentiles son de rango más cercano: p90 es el tiempo dentro del cual quedó el 90 % de las "
        "conversaciones. Las horas están en UTC. Primera respuesta: la primera enviada desde el helpdesk, o el "
        "propio mensaje de la marca en la plataforma.",
        "bucket_300": "5 minutos",
        "bucket_900": "15 minutos",
        "bucket_3600": "hora",
        "bucket_10800": "3 horas",
        "bucket_21600": "6 horas",
        "bucket_86400": "día",
        "bucket_604800": "semana",
        "state_failed": "fallida",
        "state_unknown": "desconocido",
        "state_retry": "reintentando",
        "state_held": "pendiente de aprobación",
        "kind_token_expired": "el token de la cuenta caducó",
        "kind_token_revoked": "la plataforma ya no acepta el token de la cuenta",
        "kind_permission_missing": "falta un permiso",
        "kind_window_closed": "la ventana de respuesta se cerró",
        "kind_rate_limited": "demasiados envíos (límite de frecuencia)",
        "kind_target_deleted": "el mensaje del cliente se borró",
        "kind_rejected": "rechazada por la plataforma",
        "kind_unavailable": "la plataforma no respondió",
        "kind_interrupted": "el envío se interrumpió",
        "kind_unknown": "sin motivo registrado",
        "kind_awaiting_approval": "una respuesta pública delicada espera la aprobación de un responsable",
        "advice_token_expired": "Vuelve a conectar la cuenta",
        "advice_token_revoked": "Vuelve a conectar la cuenta",
        "advice_permission_missing": "Concede el permiso y vuelve a conectar la cuenta",
        "advice_window_closed": "Usa una plantilla de mensaje o espera a que el cliente vuelva a escribir",
        "advice_rate_limited": "Se reintenta sola",
        "advice_target_deleted": "Responde en un mensaje nuevo si aún hace falta",
        "advice_rejected": "Lee la nota del ticket",
        "advice_unavailable": "Comprueba el estado de la plataforma; el agente puede volver a enviarla",
        "advice_interrupted": "Revisa la conversación antes de volver a enviarla",
        "advice_unknown": "Lee la nota del ticket",
        "advice_awaiting_approval": "Un responsable añade la etiqueta socialdesk_approved (enviar) o socialdesk_withdrawn (descartar)",
    },
}

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:#1d2430;margin:24px auto;
max-width:760px;padding:0 12px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 6px;border-bottom:1px solid #d5dae1;padding-bottom:4px}
h3{font-size:14px;margin:14px 0 2px}.meta,.desc{color:#5a6473;margin:2px 0 8px}
#attention{background:#fff7e6;border:1px solid #f0c36d;border-radius:6px;padding:8px 14px}
#attention.calm{background:#eef8f0;border-color:#9fd3ac}#attention ul{margin:4px 0;padding-left:20px}
#attention li{margin:4px 0}.subjects{color:#5a6473;font-size:12px;overflow-wrap:anywhere}
table{border-collapse:collapse;margin:6px 0 10px;font-size:13px}th,td{border:1px solid #d5dae1;padding:3px 7px;
text-align:left;vertical-align:top}td.num{text-align:right;font-variant-numeric:tabular-nums}th{background:#f2f4f7}
td.key{overflow-wrap:anywhere;max-width:300px}
svg.chart{display:block;max-width:100%;height:auto}.grid{stroke:#e4e8ee}.axis{stroke:#8a94a3}
.tick,.label,.value,.sla-label{font:11px system-ui,"DejaVu Sans",sans-serif;fill:#5a6473}.label{fill:#1d2430}
.bar{fill:#3d6fb0}.bar.late{fill:#d9534f}.sla{stroke:#b52b27;stroke-width:2;stroke-dasharray:6 4}.sla-label{fill:#b52b27}
.line{fill:none;stroke:#b5562b;stroke-width:2}.dot{fill:#b5562b}footer{color:#5a6473;font-size:12px;margin:28px 0}
"""


class Page:
    """Renders a ``Report`` in one language."""

    def __init__(self, report: Report, lang: str = "en") -> None:
        if lang not in LANGUAGES:
            raise ValueError(f"language must be one of {', '.join(LANGUAGES)}, not {lang!r}")
        self.report = report
        self.lang = lang
        self.labels = LABELS[lang]

    def text(self, name: str, **values: object) -> str:
        label = self.labels[name]
        assert isinstance(label, str), name
        return escape(label.format(**values))

    def counted(self, name: str, count: int, **values: object) -> str:
        forms = self.labels[name]
        assert not isinstance(forms, str), name
        one, many = forms
        return escape((one if count == 1 else many).format(count=format_count(count, self.lang), **values))

    def optional(self, prefix: str, name: str) -> str:
        """A failure kind or state in words; one the page does not know is shown as it is."""
        return self.text(f"{prefix}_{name}") if f"{prefix}_{name}" in self.labels else escape(name)

    def channel(self, channel: Channel) -> str:
        try:
            platform = platform_label(Platform(channel.platform))
        except ValueError:
            platform = channel.platform
        return f"{escape(platform)} · {self.text(channel.visibility)}"

    def render(self) -> str:
        report = self.report
        return "".join(
            [
                f'<!doctype html><html lang="{self.lang}"><head><meta charset="utf-8">',
                '<meta name="viewport" content="width=device-width, initial-scale=1">',
                f"<title>{self.text('title')}</title><style>{STYLE}</style></head><body>",
                f"<h1>{self.text('title')}</h1>",
                '<p class="meta">'
                + self.text(
                    "generated",
                    now=format_time(report.generated_at),
                    table=report.table_name or "?",
                    start=format_time(report.window_start),
                    end=format_time(report.generated_at),
                )
                + " "
                + self.text(
                    "totals",
                    messages=format_count(report.inbound_total, self.lang),
                    conversations=format_count(report.conversations_total, self.lang),
                )
                + "</p>",
                self.attention(),
                self.volume(),
                self.times("first_response", report.first_response, "answered"),
                self.times("resolution", report.resolution, "solved"),
                self.waiting(),
                self.failed(),
                self.crises(),
                f"<footer>{self.text('footer')}</footer></body></html>",
            ]
        )

    # --- sections ---------------------------------------------------------------------------

    def attention(self) -> str:
        items = self.report.attention
        if not items:
            return (
                f'<section id="attention" class="calm"><h2>{self.text("attention")}</h2>'
                f"<p>{self.text('attention_none')}</p></section>"
            )
        lines = "".join(self.attention_line(item) for item in items)
        return f'<section id="attention"><h2>{self.text("attention")}</h2><ul>{lines}</ul></section>'

    def attention_line(self, item: AttentionItem) -> str:
        oldest = format_duration(item.oldest_seconds) if item.oldest_seconds is not None else "?"
        if item.kind in ("replies_failed", "replies_unknown"):
            sentence = self.counted(
                item.kind,
                item.count,
                reason=self.labels.get(f"kind_{item.detail}", item.detail),
                advice=self.labels.get(f"advice_{item.detail}", self.labels["advice_unknown"]),
            )
        else:
            sentence = self.counted(item.kind, item.count, oldest=oldest)
        subjects = "".join(f"<li>{escape(subject)}</li>" for subject in item.subjects)
        return (
            f'<li data-kind="{escape(item.kind)}">{sentence}'
            + (f'<ul class="subjects">{subjects}</ul>' if subjects else "")
            + "</li>"
        )

    def section_head(self, name: str) -> str:
        """A section's opening tag (its id is ``name`` with dashes) and its heading."""
        return f'<section id="{_anchor(name)}"><h2>{self.text(name)}</h2>'

    def nothing(self, head: str, words: str) -> str:
        """The whole section when it has nothing to show: its heading and why."""
        return head + f"<p>{self.text(words)}</p></section>"

    def volume(self) -> str:
        report = self.report
        head = self.section_head("volume")
        if not report.volume:
            return self.nothing(head, "volume_none")
        bucket = self.labels.get(f"bucket_{report.bucket_seconds}", format_duration(report.bucket_seconds))
        daily = report.bucket_seconds >= 86400
        y_top = max(max(series.counts) for series in report.volume)
        parts = [head, f'<p class="desc">{self.text("volume_desc", bucket=bucket)}</p>']
        previous_day = None
        labels = []
        for start in report.bucket_starts:
            # A time alone while the day stays the same; the date when it changes.
            labels.append(start.strftime("%m-%d") if daily or start.date() != previous_day else start.strftime("%H:%M"))
            previous_day = start.date()
        for series in report.volume:
            name = self.channel(series.channel)
            columns = [
                Column(
                    value=count,
                    label=label,
                    start=start.isoformat().replace("+00:00", "Z"),
                    title=f"{format_time(start)}: {format_count(count, self.lang)}",
                )
                for start, count, label in zip(report.bucket_starts, series.counts, labels, strict=True)
            ]
            parts.append(f"<h3>{name} ({format_count(series.total, self.lang)})</h3>")
            parts.append(
                column_chart(
                    f"volume-{series.channel.key.replace(':', '-')}",
                    columns,
                    y_top=y_top,
                    title=name,
                    desc=self.text("volume_desc", bucket=bucket),
                    attrs={
                        "data-chart": "volume",
                        "data-channel": series.channel.key,
                        "data-bucket-seconds": str(report.bucket_seconds),
                    },
                )
            )
        header = [self.text("start")] + [self.channel(series.channel) for series in report.volume]
        rows = "".join(
            f"<tr><td>{format_time(start)}</td>"
            + "".join(f'<td class="num">{format_count(series.counts[i], self.lang)}</td>' for series in report.volume)
            + "</tr>"
            for i, start in enumerate(report.bucket_starts)
        )
        parts.append(f"<details><summary>{self.text('numbers')}</summary>{_table('volume-table', header, rows)}</details>")
        return "".join(parts) + "</section>"

    def times(self, section: str, summaries: tuple[TimesSummary, ...], count_label: str) -> str:
        head = self.section_head(section)
        if not summaries:
            return self.nothing(head, section + "_none")
        parts = [head, f'<p class="desc">{self.text(section + "_desc")}</p>']
        rows = []
        for summary in summaries:
            name = self.channel(summary.channel)
            target = summary.sla_seconds
            parts.append(f"<h3>{name}</h3>")
            parts.append(
                target_chart(
                    f"{section}-{summary.channel.key.replace(':', '-')}",
                    [Measure("p50", summary.p50), Measure("p90", summary.p90)],
                    target=target,
                    target_label=self.text("sla_line", value=format_duration(target)) if target else "",
                    title=f"{self.text(section)}: {name}",
                    desc=self.text(section + "_desc"),
                    attrs={"data-chart": section, "data-channel": summary.channel.key},
                )
            )
            within = (
                f"{format_count(summary.within_sla, self.lang)} ({summary.within_sla / summary.count:.0%})"
                if summary.within_sla is not None
                else ""
            )
            rows.append(
                f'<tr data-channel="{summary.channel.key}"><td>{name}</td>'
                f'<td class="num">{format_count(summary.count, self.lang)}</td>'
                f'<td class="num" data-p50="{summary.p50:g}">{format_duration(summary.p50)}</td>'
                f'<td class="num" data-p90="{summary.p90:g}">{format_duration(summary.p90)}</td>'
                f'<td class="num">{format_duration(target) if target else self.text("no_target")}</td>'
                f'<td class="num">{within}</td></tr>'
            )
        header = [self.text("channel"), self.text(count_label), "p50", "p90", self.text("sla"), self.text("within_sla")]
        parts.append(_table(f"{_anchor(section)}-table", header, "".join(rows)))
        return "".join(parts) + "</section>"

    def waiting(self) -> str:
        report = self.report
        head = self.section_head("waiting")
        if not report.waiting:
            return self.nothing(head, "waiting_none")
        rows = "".join(
            f'<tr class="{"late" if w.past_sla else ""}"><td class="key">{escape(w.label)}</td>'
            f"<td>{self.channel(w.channel)}</td><td>{format_time(w.waiting_since)}</td>"
            f'<td class="num">{format_duration(w.waiting_seconds)}</td>'
            f'<td class="num">{format_duration(w.sla_seconds) if w.sla_seconds else self.text("no_target")}</td>'
            f"<td>{self.text('yes' if w.answered_before else 'no')}</td><td>{self.text('yes' if w.parked else 'no')}</td></tr>"
            for w in report.waiting
        )
        columns = ("conversation", "channel", "waiting_since", "waited", "sla", "answered_before", "parked_col")
        desc = self.text("waiting_desc", shown=len(report.waiting), total=report.waiting_total)
        return (
            head + f'<p class="desc">{desc}</p>' + _table("waiting-table", [self.text(c) for c in columns], rows) + "</section>"
        )

    def failed(self) -> str:
        groups = self.report.failed_replies
        head = self.section_head("failed")
        if not groups:
            return self.nothing(head, "failed_none")
        rows = "".join(
            f'<tr data-kind="{escape(group.failure_kind)}"><td>{self.optional("kind", group.failure_kind)}</td>'
            f'<td class="num">{format_count(group.count, self.lang)}</td>'
            f"<td>{', '.join(self.optional('state', state) for state in group.states)}</td>"
            f"<td>{format_time(group.latest_at) if group.latest_at else ''}</td><td>{escape(group.latest_note)}</td>"
            f'<td class="key">{"<br>".join(escape(c) for c in group.conversations)}</td></tr>'
            for group in groups
        )
        columns = ("reason", "count", "state", "latest", "latest_note", "conversations")
        return (
            head
            + f'<p class="desc">{self.text("failed_desc")}</p>'
            + _table("failed-table", [self.text(c) for c in columns], rows)
            + "</section>"
        )

    def crises(self) -> str:
        crises = self.report.crises
        head = self.section_head("crises")
        if crises is None:
            return self.nothing(head, "crises_unavailable")
        if not crises:
            return self.nothing(head, "crises_none")
        parts = [head, f'<p class="desc">{self.text("crises_desc")}</p>']
        for index, crisis in enumerate(crises):
            state = self.text("crisis_active" if crisis.active else "crisis_over")
            parts.append(f"<h3>{escape(crisis.name)} ({state})</h3>")
            parts.append(
                line_chart(
                    f"crisis-{index}",
                    [(moment, float(size)) for moment, size in crisis.sizes],
                    title=crisis.name,
                    desc=self.text("crises_desc"),
                    time_label=_short_time,
                    attrs={"data-chart": "crisis"},
                )
            )
            rows = "".join(f'<tr><td>{format_time(moment)}</td><td class="num">{size}</td></tr>' for moment, size in crisis.sizes)
            parts.append(_table(None, [self.text("time"), self.text("size")], rows))
        return "".join(parts) + "</section>"


def _anchor(name: str) -> str:
    return name.replace("_", "-")


def _table(table_id: str | None, header: Sequence[str], rows: str) -> str:
    """A table: one header row (``header`` cells are HTML) and the body's ``rows``."""
    opening = f'<table id="{table_id}">' if table_id else "<table>"
    cells = "".join(f"<th>{cell}</th>" for cell in header)
    return f"{opening}<thead><tr>{cells}</tr></thead><tbody>{rows}</tbody></table>"


def _short_time(moment: datetime) -> str:
    return moment.strftime("%m-%d %H:%M")


def render(report: Report, lang: str = "en") -> str:
    """The whole page."""
    return Page(report, lang).render()
