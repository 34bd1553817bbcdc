"""The abstract base every tenant-owned model inherits, and its scoped manager."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django.db import connections, models

from .context import get_current_tenant, get_current_tenant_or_none, tenant_context


class CrossTenantWrite(RuntimeError):
    """A row was saved under a different tenant than the one in context."""


class NotTenantScoped(TypeError):
    """A ScopedQuery was built from a queryset that its tenant does not filter."""


class TenantScopedQuerySet(models.QuerySet):
    pass


class TenantScopedManager(models.Manager):
    """Filters every query by the tenant in context; raises TenantNotSet without one.

    Not used in migrations (historical models get a plain manager), and operators say
    `.unscoped()` explicitly.
    """

    use_in_migrations = False

    def get_queryset(self) -> TenantScopedQuerySet:
        tenant = get_current_tenant()
        return TenantScopedQuerySet(self.model, using=self._db).filter(tenant_id=tenant.pk)

    def unscoped(self) -> TenantScopedQuerySet:
        """Every tenant's rows. For operators, admin, migrations and auth look-ups only."""
        return TenantScopedQuerySet(self.model, using=self._db)


class TenantScopedModel(models.Model):
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")

    objects = TenantScopedManager()

    class Meta:
        abstract = True

    # Forward relations (chunk.document) use Django's plain base manager: the row holding
    # the foreign key was itself fetched through the scope. bulk_create skips save(), so
    # callers pass tenant explicitly there.

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.claim_for_current_tenant()
        super().save(*args, **kwargs)

    def claim_for_current_tenant(self) -> None:
        """The write check of save(), for code that writes the row another way (an INSERT folded
        into a larger statement): take the tenant in context, refuse a row of another tenant."""
        current = get_current_tenant_or_none()
        if self.tenant_id is None and current is not None:
            self.tenant = current
        if current is not None and self.tenant_id != current.pk:
            raise CrossTenantWrite(
                f"{type(self).__name__} belongs to tenant {self.tenant_id}, but the current tenant is {current.pk}."
            )


# Stand-ins for a ScopedQuery's values while it is compiled: no row has these ids, and no text or
# date the application stores looks like them. Located among the compiled parameters, they mark
# where each execution's values go.
_STANDIN_TENANT_ID = -7_919_000_001
_STANDIN_TEXT = "\x00scoped-query-parameter-{}"


def _standin(kind: type, index: int) -> Any:
    if kind is int:
        return _STANDIN_TENANT_ID - 1 - index
    if kind is str:
        return _STANDIN_TEXT.format(index)
    if kind is date:
        return date(1, 1, 1) + timedelta(days=index)
    raise TypeError(f"ScopedQuery parameters are int, str or date, not {kind.__name__}.")


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


@dataclass(frozen=True)
class _Compiled:
    sql: str
    slots: tuple[tuple[str, Any], ...]  # per parameter: ("tenant", None), ("param", name) or ("const", value)
    names: tuple[str, ...]
    compiler: Any  # Django's SQLCompiler, kept for its result converters


class ScopedQuery:
    """A tenant-scoped `.values()` queryset, compiled to SQL once per process and shape, then run
    with each call's values: for the answer pipeline's hot path, where Django compiling the same
    query every turn costs more CPU than Postgres running it.

    `build(**shape, **params)` builds the queryset through the scoped managers (`Model.objects`),
    so every model in it, subqueries included, is filtered by the tenant. It runs once per shape
    (values compiled into the SQL text, such as a LIMIT or the length of an IN list), under a
    stand-in tenant and with stand-in parameter values; those are located among the compiled
    parameters. A queryset whose SQL does not filter by the tenant is refused then. Each execution
    puts the tenant in context (TenantNotSet without one) and the call's values in their places.
    """

    def __init__(self, build: Callable[..., models.QuerySet], **param_types: type) -> None:
        self._build = build
        self._param_types = param_types
        self._compiled: dict[Hashable, _Compiled] = {}

    def _compile(self, shape: dict[str, Any]) -> _Compiled:
        key = tuple(sorted(shape.items()))
        compiled = self._compiled.get(key)
        if compiled is not None:
            return compiled
        from .models import Tenant

        standins = {name: _standin(kind, i) for i, (name, kind) in enumerate(self._param_types.items())}
        with tenant_context(Tenant(pk=_STANDIN_TENANT_ID)):
            queryset = self._build(**shape, **standins)
        query = queryset.query
        if query.values_select == () and not query.annotation_select:
            raise TypeError("ScopedQuery runs .values() querysets.")
        compiler = query.get_compiler(queryset.db)
        sql, params = compiler.as_sql()
        slots: list[tuple[str, Any]] = []
        for value in params:
            if _same(value, _STANDIN_TENANT_ID):
                slots.append(("tenant", None))
                continue
            name = next((n for n, s in standins.items() if _same(value, s)), None)
            slots.append(("param", name) if name is not None else ("const", value))
        if ("tenant", None) not in slots:
            raise NotTenantScoped(
                f"The {query.model.__name__} query is not filtered by the tenant; build it with .objects."
            )
        missing = set(standins) - {name for kind, name in slots if kind == "param"}
        if missing:
            raise ValueError(f"ScopedQuery parameters not found in the compiled query: {sorted(missing)}")
        names = (*query.extra_select, *query.values_select, *query.annotation_select)
        compiled = _Compiled(sql, tuple(slots), names, compiler)
        self._compiled[key] = compiled  # a race compiles twice, to the same result
        return compiled

    def statement(self, *, shape: dict[str, Any] | None = None, **params: Any) -> tuple[str, list[Any]]:
        """The SQL and parameters for the tenant in context (TenantNotSet without one)."""
        compiled = self._compile(shape or {})
        tenant_id = get_current_tenant().pk
        if set(params) != set(self._param_types):
            raise TypeError(f"ScopedQuery takes {sorted(self._param_types)}, got {sorted(params)}.")
        values = []
        for kind, value in compiled.slots:
            values.append(tenant_id if kind == "tenant" else params[value] if kind == "param" else value)
        return compiled.sql, values

    def rows(self, raw: list[tuple[Any, ...]], *, shape: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Rows fetched for statement() as .values() returns them (Django's converters applied)."""
        compiled = self._compile(shape or {})
        names = compiled.names
        return [dict(zip(names, row, strict=True)) for row in compiled.compiler.results_iter(results=[raw])]

    def fetch(self, *, shape: dict[str, Any] | None = None, **params: Any) -> list[dict[str, Any]]:
        """Run it on its own (statement() is for folding it into a larger round trip)."""
        sql, values = self.statement(shape=shape, **params)
        compiled = self._compile(shape or {})
        with connections[compiled.compiler.using].cursor() as cursor:
            cursor.execute(sql, values)
            return self.rows(cursor.fetchall(), shape=shape)
