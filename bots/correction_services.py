"""Writes for corrections: curated question-and-answer pairs the support team adds to a bot's
knowledge ("fix this answer"), their versions, and the FAQ import.

Every service runs inside the caller's tenant context (the scoped managers refuse otherwise) and
raises ValidationError with field keys, so a form, the CSV import and the shell refuse the same
bad input with the same sentences. The question is embedded with the model of the bot's first
knowledge base (the one the answer pipeline embeds each visitor question with), so matching a
turn costs no extra embedding.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from knowledge.egress import EgressRefused, check_url
from knowledge.embeddings import get_embedder
from knowledge.models import KnowledgeBase

from .models import (
    CORRECTION_ANSWER_MAX,
    CORRECTION_QUESTION_MAX,
    CORRECTION_URL_MAX,
    Bot,
    Correction,
    CorrectionVersion,
)

# An FAQ import bigger than this is refused as a whole (each row is embedded in the request).
IMPORT_MAX_ROWS = 500
IMPORT_MAX_BYTES = 1_000_000


def check_correction_fields(*, question: Any, answer: Any, source_url: Any = "") -> tuple[str, str, str]:
    """The cleaned (question, answer, source_url), or ValidationError keyed by field."""
    errors: dict[str, str] = {}
    question = question.strip() if isinstance(question, str) else ""
    answer = answer.strip() if isinstance(answer, str) else ""
    source_url = source_url.strip() if isinstance(source_url, str) else ""
    if not question:
        errors["question"] = "Write the question visitors ask."
    elif len(question) > CORRECTION_QUESTION_MAX:
        errors["question"] = f"The question is {len(question)} characters; keep it under {CORRECTION_QUESTION_MAX}."
    if not answer:
        errors["answer"] = "Write the answer the bot should give."
    elif len(answer) > CORRECTION_ANSWER_MAX:
        errors["answer"] = f"The answer is {len(answer)} characters; keep it under {CORRECTION_ANSWER_MAX}."
    if source_url:
        if len(source_url) > CORRECTION_URL_MAX:
            errors["source_url"] = f"The link is longer than {CORRECTION_URL_MAX} characters."
        else:
            try:
                # The same egress guard as every tenant URL: visitors are sent there.
                check_url(source_url)
            except EgressRefused as exc:
                errors["source_url"] = f"This link is refused: {exc} Use a public http(s) page."
    if errors:
        raise ValidationError(errors)
    return question, answer, source_url


def correction_embedding_model(*, bot: Bot) -> str:
    """The model the pipeline embeds the bot's visitor questions with: its first knowledge base's
    (turn_begin reads them by id), or the default model when it has none yet."""
    model = KnowledgeBase.objects.filter(bots=bot.pk).order_by("id").values_list("embedding_model", flat=True).first()
    return model or KnowledgeBase.EmbeddingModel.MINILM


def _flag(bot: Bot) -> None:
    has = Correction.objects.filter(bot_id=bot.pk, enabled=True).exists()
    Bot.objects.filter(pk=bot.pk).update(has_corrections=has)
    bot.has_corrections = has


def correction_create(*, bot: Bot, question: Any, answer: Any, source_url: Any = "", author: Any = None) -> Correction:
    """Add a correction (version 1, enabled) to `bot`. Raises ValidationError. Tenant scope required."""
    question, answer, source_url = check_correction_fields(question=question, answer=answer, source_url=source_url)
    model = correction_embedding_model(bot=bot)
    vector = get_embedder(model).embed_query(question)
    with transaction.atomic():
        correction = Correction.objects.create(
            bot=bot,
            question=question,
            answer=answer,
            source_url=source_url,
            embedding=vector,
            embedding_model=model,
            author=author,
        )
        CorrectionVersion.objects.create(
            correction=correction, number=1, question=question, answer=answer, source_url=source_url, author=author
        )
        _flag(bot)
    return correction


def correction_update(
    *, correction: Correction, question: Any, answer: Any, source_url: Any = "", author: Any = None
) -> Correction:
    """Save an edit as a new version, which becomes the live one; earlier versions stay readable.
    An edit that changes nothing adds no version. Locks the correction's row. Tenant scope required."""
    question, answer, source_url = check_correction_fields(question=question, answer=answer, source_url=source_url)
    if (question, answer, source_url) == (correction.question, correction.answer, correction.source_url):
        return correction
    model = correction_embedding_model(bot=correction.bot)
    vector = get_embedder(model).embed_query(question)
    with transaction.atomic():
        locked = Correction.objects.select_for_update().get(pk=correction.pk)
        locked.version += 1
        locked.question, locked.answer, locked.source_url = question, answer, source_url
        locked.embedding, locked.embedding_model = vector, model
        locked.updated = timezone.now()
        locked.save(
            update_fields=["version", "question", "answer", "source_url", "embedding", "embedding_model", "updated"]
        )
        CorrectionVersion.objects.create(
            correction=locked,
            number=locked.version,
            question=question,
            answer=answer,
            source_url=source_url,
            author=author,
        )
    return locked


def correction_set_enabled(*, correction: Correction, enabled: bool) -> Correction:
    """Enable or disable a correction: a disabled one is kept, and never matched."""
    with transaction.atomic():
        correction.enabled = enabled
        correction.updated = timezone.now()
        correction.save(update_fields=["enabled", "updated"])
        _flag(correction.bot)
    return correction


def correction_delete(*, correction: Correction) -> None:
    """Delete a correction and its versions."""
    bot = correction.bot
    with transaction.atomic():
        correction.delete()
        _flag(bot)


def correction_used(*, correction_id: int) -> None:
    """Count one more question answered from the correction (one UPDATE, no read)."""
    Correction.objects.filter(pk=correction_id).update(uses=F("uses") + 1)


@dataclass(frozen=True)
class ImportResult:
    created: int
    errors: list[str]  # "Line 3: ..." sentences; when any, nothing was imported


def corrections_import_csv(*, bot: Bot, data: bytes, author: Any = None) -> ImportResult:
    """Import `question,answer[,source_url]` rows (a header row with those names is skipped) as
    corrections, all or nothing: any bad line imports none and is reported by its line number.
    Tenant scope required."""
    if len(data) > IMPORT_MAX_BYTES:
        return ImportResult(0, [f"The file is larger than {IMPORT_MAX_BYTES // 1_000_000} MB; split it."])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return ImportResult(0, ["The file is not UTF-8 text; save it as CSV (UTF-8)."])
    rows: list[tuple[int, tuple[str, str, str]]] = []
    errors: list[str] = []
    reader = csv.reader(io.StringIO(text))
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if not rows and not errors and [c.strip().lower() for c in row[:2]] == ["question", "answer"]:
            continue
        if len(row) not in (2, 3):
            errors.append(f"Line {line}: expected question,answer[,source_url], found {len(row)} columns.")
            continue
        try:
            rows.append((line, check_correction_fields(question=row[0], answer=row[1], source_url=_at(row, 2))))
        except ValidationError as exc:
            errors.extend(f"Line {line}: {' '.join(messages)}" for messages in exc.message_dict.values())
    if len(rows) > IMPORT_MAX_ROWS:
        errors.append(f"The file has {len(rows)} rows; import at most {IMPORT_MAX_ROWS} at a time.")
    if not rows and not errors:
        errors.append("The file has no rows: write one question,answer pair per line.")
    if errors:
        return ImportResult(0, errors)
    with transaction.atomic():
        for _line, (question, answer, source_url) in rows:
            correction_create(bot=bot, question=question, answer=answer, source_url=source_url, author=author)
    return ImportResult(len(rows), [])


def _at(row: list[str], index: int) -> str:
    return row[index] if len(row) > index else ""
