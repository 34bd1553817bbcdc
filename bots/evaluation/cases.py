"""Writes for evaluation cases, and their CSV/JSON import and export.

Cases name their expected documents by id, with the title kept beside it; files name them by
title (what an admin can write), resolved within the bot's knowledge bases. Imports are all or
nothing: any bad line refuses the whole file, with every error numbered by its line.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from knowledge.models import Document

from ..models import Bot, EvalCase

MAX_CASES = 500
MAX_QUESTION_CHARS = 1000
MAX_KEYWORDS = 20
CSV_FIELDS = ["question", "expected_documents", "expected_keywords", "should_refuse"]
LIST_SEPARATOR = "|"
_TRUE = {"yes", "true", "1", "y"}
_FALSE = {"no", "false", "0", "n", ""}


class ImportErrors(ValidationError):
    """A refused import: `lines` holds one "Line N: ..." sentence per problem."""

    code = "eval_import_invalid"

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        super().__init__(lines, code=self.code)


@dataclass
class CaseInput:
    question: str
    expected_documents: list[dict[str, Any]]
    expected_keywords: list[str]
    should_refuse: bool


def _bot_documents(bot: Bot) -> list[Document]:
    return list(Document.objects.filter(knowledge_base__bots=bot).only("id", "title"))


def _clean_keywords(keywords: list[str]) -> list[str]:
    clean = [k.strip() for k in keywords if isinstance(k, str) and k.strip()]
    if len(clean) > MAX_KEYWORDS:
        raise ValueError(f"at most {MAX_KEYWORDS} keywords")
    return clean


def check_case(
    *, bot: Bot, question: Any, document_ids: list[int], keywords: list[str], should_refuse: bool
) -> CaseInput:
    """Validate one case of `bot`; raises ValidationError with field errors."""
    errors: dict[str, str] = {}
    if not isinstance(question, str) or not question.strip():
        errors["question"] = "A case needs a question."
    elif len(question) > MAX_QUESTION_CHARS:
        errors["question"] = f"A question can have at most {MAX_QUESTION_CHARS} characters."
    documents = {d.pk: d for d in _bot_documents(bot)}
    unknown = [i for i in document_ids if i not in documents]
    if unknown:
        errors["expected_documents"] = "Pick documents from this bot's knowledge bases."
    try:
        clean_keywords = _clean_keywords(keywords)
    except ValueError as exc:
        errors["expected_keywords"] = f"A case can have {exc}."
        clean_keywords = []
    if should_refuse and (document_ids or clean_keywords):
        errors["should_refuse"] = "A case that should be refused cannot also expect documents or keywords."
    if errors:
        raise ValidationError(errors)
    return CaseInput(
        question=question.strip(),
        expected_documents=[{"id": i, "title": documents[i].title} for i in dict.fromkeys(document_ids)],
        expected_keywords=clean_keywords,
        should_refuse=should_refuse,
    )


def eval_case_create(
    *, bot: Bot, question: str, document_ids: list[int], keywords: list[str], should_refuse: bool = False
) -> EvalCase:
    """Add a case to the bot's set. Tenant scope required; raises ValidationError (nothing saved)."""
    if EvalCase.objects.filter(bot=bot).count() >= MAX_CASES:
        raise ValidationError({"question": f"A bot can have at most {MAX_CASES} evaluation cases."})
    clean = check_case(
        bot=bot, question=question, document_ids=document_ids, keywords=keywords, should_refuse=should_refuse
    )
    return EvalCase.objects.create(bot=bot, **clean.__dict__)


def eval_case_update(
    *, case: EvalCase, question: str, document_ids: list[int], keywords: list[str], should_refuse: bool
) -> EvalCase:
    """Change a case. Dropping a deleted document from it is how its flag is cleared."""
    clean = check_case(
        bot=case.bot, question=question, document_ids=document_ids, keywords=keywords, should_refuse=should_refuse
    )
    for field, value in clean.__dict__.items():
        setattr(case, field, value)
    case.save(update_fields=list(clean.__dict__))
    return case


def eval_case_delete(*, case: EvalCase) -> None:
    case.delete()


@transaction.atomic
def eval_cases_create_many(*, bot: Bot, cases: list[CaseInput]) -> list[EvalCase]:
    """Save reviewed cases (starters or an import) in one transaction; the set's limit applies."""
    if EvalCase.objects.filter(bot=bot).count() + len(cases) > MAX_CASES:
        raise ValidationError({"question": f"A bot can have at most {MAX_CASES} evaluation cases."})
    return EvalCase.objects.bulk_create([EvalCase(bot=bot, tenant=bot.tenant, **c.__dict__) for c in cases])


# Import and export.


def _split(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    return [v.strip() for v in str(value or "").split(LIST_SEPARATOR) if v.strip()]


def _row_case(bot: Bot, row: dict[str, Any], by_title: dict[str, int]) -> CaseInput:
    """One imported row as a case; raises ValueError with a sentence."""
    refuse = row.get("should_refuse", False)
    if isinstance(refuse, str):
        if refuse.strip().lower() not in _TRUE | _FALSE:
            raise ValueError("should_refuse must be yes or no")
        refuse = refuse.strip().lower() in _TRUE
    if not isinstance(refuse, bool):
        raise ValueError("should_refuse must be true or false")
    titles = _split(row.get("expected_documents"))
    missing = [t for t in titles if t not in by_title]
    if missing:
        raise ValueError(f"no document titled {missing[0]!r} in this bot's knowledge bases")
    try:
        clean = check_case(
            bot=bot,
            question=row.get("question"),
            document_ids=[by_title[t] for t in titles],
            keywords=_split(row.get("expected_keywords")),
            should_refuse=refuse,
        )
    except ValidationError as exc:
        raise ValueError(" ".join(sum(exc.message_dict.values(), []))) from None
    return clean


def _json_items(text: str) -> list[tuple[int, Any]]:
    """The items of a JSON array with the line each starts on; ImportErrors if it is not one."""
    decoder = json.JSONDecoder()
    stripped = len(text) - len(text.lstrip())
    if not text.strip().startswith("["):
        raise ImportErrors(['Line 1: the file must hold a JSON list of cases, like [{"question": "..."}].'])
    position = stripped + 1
    items: list[tuple[int, Any]] = []
    while True:
        while position < len(text) and text[position] in " \t\r\n,":
            position += 1
        if position >= len(text):
            raise ImportErrors([f"Line {text.count(chr(10)) + 1}: the JSON list is not closed with ]."])
        if text[position] == "]":
            return items
        try:
            value, end = decoder.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            raise ImportErrors([f"Line {exc.lineno}: this is not valid JSON ({exc.msg})."]) from None
        items.append((text.count("\n", 0, position) + 1, value))
        position = end


def _csv_rows(text: str) -> list[tuple[int, dict[str, Any]]]:
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    if "question" not in header:
        raise ImportErrors([f"Line 1: the header must name the columns {', '.join(CSV_FIELDS)}."])
    unknown = [h for h in header if h not in CSV_FIELDS]
    if unknown:
        raise ImportErrors([f"Line 1: unknown column {unknown[0]!r}; the columns are {', '.join(CSV_FIELDS)}."])
    reader.fieldnames = header
    rows = []
    for row in reader:
        if None in row:
            rows.append((reader.line_num, {"__error__": "this row has more fields than the header"}))
        else:
            rows.append((reader.line_num, row))
    return rows


def eval_cases_import(*, bot: Bot, text: str, fmt: str) -> list[EvalCase]:
    """Import cases from CSV or JSON text. All or nothing: raises ImportErrors listing each bad
    line ("Line N: ...") and saves nothing then. Tenant scope required."""
    if fmt == "json":
        rows = _json_items(text)
    elif fmt == "csv":
        rows = _csv_rows(text)
    else:
        raise ImportErrors(["Line 1: the format must be csv or json."])
    by_title = {d.title: d.pk for d in _bot_documents(bot)}
    errors: list[str] = []
    cases: list[CaseInput] = []
    for line, row in rows:
        if not isinstance(row, dict):
            errors.append(f"Line {line}: each case must be an object with a question.")
            continue
        if "__error__" in row:
            errors.append(f"Line {line}: {row['__error__']}.")
            continue
        try:
            cases.append(_row_case(bot, row, by_title))
        except ValueError as exc:
            errors.append(f"Line {line}: {str(exc).rstrip('.')}.")
    if not rows and not errors:
        errors.append("Line 1: the file holds no cases.")
    if errors:
        raise ImportErrors(errors)
    try:
        return eval_cases_create_many(bot=bot, cases=cases)
    except ValidationError as exc:
        raise ImportErrors([f"Line 1: {' '.join(sum(exc.message_dict.values(), []))}"]) from None


def _export_row(case: EvalCase) -> dict[str, Any]:
    return {
        "question": case.question,
        "expected_documents": [d["title"] for d in case.expected_documents],
        "expected_keywords": list(case.expected_keywords),
        "should_refuse": case.should_refuse,
    }


def eval_cases_export(*, bot: Bot, fmt: str) -> str:
    """The bot's cases as CSV or JSON text that eval_cases_import reads back."""
    rows = [_export_row(c) for c in EvalCase.objects.filter(bot=bot).order_by("id")]
    if fmt == "json":
        return json.dumps(rows, indent=2, ensure_ascii=False) + "\n"
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS)
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {
                **row,
                "expected_documents": LIST_SEPARATOR.join(row["expected_documents"]),
                "expected_keywords": LIST_SEPARATOR.join(row["expected_keywords"]),
                "should_refuse": "yes" if row["should_refuse"] else "no",
            }
        )
    return out.getvalue()
