"""``genai.init`` and ``genai.connect``: the Python entry points of the core layer."""

from __future__ import annotations

import time
from dataclasses import dataclass
from types import TracebackType

from sqlalchemy import func, select

from genai._context import Context
from genai._names import check_user_name
from genai.errors import StoreUnavailable, UsageError
from genai.files import private_dir, tighten
from genai.registry import Registry
from genai.settings import Settings
from genai.store import Store, check_schema, current_revision, head_revision, upgrade
from genai.store import schema as t
from genai.store._migrate import lock_schema
from genai.tenancy import Audit, Keys, Projects, Quotas, Secrets, Usage, Users

__all__ = ["Client", "InitResult", "connect", "init"]


@dataclass(frozen=True)
class InitResult:
    database: str
    revision_before: str | None
    revision: str
    admin: str | None  # the admin registered by this call, if any
    home: str


def init(settings: Settings | None = None, *, admin: str | None = None) -> InitResult:
    """Create or upgrade the metadata store, and register the first platform admin.

    Safe to run again: it upgrades the schema when needed and registers ``admin``
    (default: ``settings.user``) only while the platform has no admin at all.
    """
    settings = settings or Settings()
    name = check_user_name(admin or settings.user)
    private_dir(settings.home)  # 0700: it holds the database, vectors, keys and artifacts
    for attempt in range(_INIT_ATTEMPTS):
        try:
            return _init(settings, name)
        except StoreUnavailable as error:
            # SQLite: a second `genai init` that opens a brand-new file while the first
            # turns on WAL can be told "locked" at once, with no wait; its next try finds
            # the schema made and only checks it
            if "locked" not in str(error) or attempt == _INIT_ATTEMPTS - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


_INIT_ATTEMPTS = 5


def _init(settings: Settings, name: str) -> InitResult:
    store = Store(settings.resolved_database_url)
    try:
        before = current_revision(store)
        upgrade(store)
        created = None
        with store.session() as s:
            lock_schema(store, s)  # another `genai init` may be registering the admin now
            admins = s.scalar(select(func.count()).where(t.Principal.is_admin.is_(True)))
            if not admins:
                row = s.scalars(
                    select(t.Principal).where(t.Principal.kind == "user", t.Principal.name == name)
                ).one_or_none()
                if row is None:
                    s.add(t.Principal(kind="user", name=name, is_admin=True))
                else:
                    row.is_admin = True
                s.add(
                    t.AuditEvent(
                        actor=f"user:{name}",
                        action="platform.init",
                        resource=f"user:{name}",
                        details={"admin": True},
                    )
                )
                created = name
        return InitResult(
            database=store.url if "@" not in store.url else store.url.split("@", 1)[1],
            revision_before=before,
            revision=head_revision(),
            admin=created,
            home=str(settings.home),
        )
    finally:
        store.dispose()


class Client:
    """The platform as one principal sees it.

    Every call authorizes that principal against the project it names. Build one with
    :func:`connect`; close it (or use it in a ``with`` block) to release connections.
    """

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self.settings = ctx.settings
        self.projects = Projects(ctx)
        self.users = Users(ctx)
        self.keys = Keys(ctx)
        self.quotas = Quotas(ctx)
        self.usage = Usage(ctx)
        self.audit = Audit(ctx)
        self.secrets = Secrets(ctx)
        self.registry = Registry(ctx)

    @property
    def store(self) -> Store:
        return self._ctx.store

    @property
    def context(self) -> Context:
        """What this client's services share (settings, store, the caller's identity):
        for services of other packages built on the same client."""
        return self._ctx

    def close(self) -> None:
        self._ctx.store.dispose()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        who = f"key {self._ctx._api_key[:13]}…" if self._ctx._api_key else f"user {self._ctx._user}"
        return f"<genai.Client {who} on {self._ctx.store.dialect}>"


def connect(
    settings: Settings | None = None,
    *,
    user: str | None = None,
    api_key: str | None = None,
    store: Store | None = None,
) -> Client:
    """A client acting as ``user`` (default ``settings.user``) or as an API key's principal.

    The database must be initialised (``genai init`` / :func:`genai.init`).
    """
    settings = settings or Settings()
    if user is not None and api_key is not None:
        raise UsageError("connect as a user or with an API key, not both")
    if api_key is None:
        user = check_user_name(user or settings.user)
    tighten(settings.home)  # one an older version made readable by others
    store = store or Store(settings.resolved_database_url)
    check_schema(store)
    return Client(Context(settings, store, user=user, api_key=api_key))
