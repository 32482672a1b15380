"""``studyhub rater add | list | revoke | link``: accounts, one-time tokens, single sign-on."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from studyhub.commands.render import texts
from studyhub.errors import InputError

__all__ = ["register_commands"]


def _parse_quals(quals: list[str]) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for q in quals:
        key, sep, value = q.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--qual {q!r} is not id=value; write e.g. --qual inspection_years=4")
        if key.strip() in parsed:
            raise InputError(f"--qual {key.strip()!r} is given twice; give each qualification once")
        parsed[key.strip()] = value
    return parsed


def register_commands(app: typer.Typer, state: Any, out: Console) -> None:
    """Add the ``rater`` command group to the main app."""
    rater_app = typer.Typer(
        help="Rater accounts: add, list, revoke, link to single sign-on.", no_args_is_help=True
    )
    app.add_typer(rater_app, name="rater")

    @rater_app.command("add")
    def add(
        name: Annotated[str, typer.Argument(help="A unique name or pseudonym.")],
        role: Annotated[str, typer.Option("--role", help="rater, monitor or admin.")] = "rater",
        qual: Annotated[
            list[str] | None,
            typer.Option("--qual", help="A qualification as id=value (repeatable)."),
        ] = None,
        study: Annotated[str | None, typer.Option("--study", help="Study id.")] = None,
        sso: Annotated[
            str | None,
            typer.Option(
                "--sso",
                help="The e-mail address the site's identity provider signs this person in "
                "with (st.login); see docs/single-sign-on.md.",
            ),
        ] = None,
    ) -> None:
        """Create an account and print its token once (only a hash is stored)."""
        from studyhub.rating.accounts import add_rater, pseudonym
        from studyhub.store.db import open_store

        quals = _parse_quals(qual or [])
        store = open_store(state.db, create=False)
        try:
            new = add_rater(
                store,
                study,
                name,
                role=role,
                qualifications=quals,
                sso_identity=sso,
                actor=state.actor,
            )
        finally:
            store.dispose()
        out.print(
            f"added {new.role} {new.name!r} (hint {new.hint}; in the audit log "
            f"{pseudonym(new.role, new.rater_id)})",
            markup=False,
        )
        if sso:
            out.print(f"single sign-on: {sso.strip().lower()}", markup=False)
        out.print(f"token: {new.token}", markup=False)
        out.print(
            "This token is shown once and cannot be recovered; hand it to the person over a "
            "private channel. If it is lost, revoke the account and add a new one.",
            markup=False,
        )

    @rater_app.command("list")
    def list_(
        study: Annotated[str | None, typer.Option("--study", help="Study id.")] = None,
    ) -> None:
        """Show accounts: names, audit pseudonyms, roles, token hints, times (never tokens)."""
        from studyhub.rating.accounts import list_raters
        from studyhub.store.db import open_store

        store = open_store(state.db, create=False)
        try:
            rows = list_raters(store, study)
        finally:
            store.dispose()
        table = Table(title="Accounts")
        for col in (
            "name",
            "pseudonym",
            "role",
            "hint",
            "single sign-on",
            "qualifications",
            "created",
            "revoked",
        ):
            table.add_column(col)
        for r in rows:
            table.add_row(
                *texts(
                    r.name,
                    r.pseudonym,
                    r.role,
                    r.hint,
                    r.sso_identity or "",
                    ", ".join(f"{k}={v}" for k, v in r.qualifications.items()),
                    r.created_at.isoformat(timespec="seconds"),
                    r.revoked_at.isoformat(timespec="seconds") if r.revoked_at else "",
                )
            )
        out.print(table)

    @rater_app.command("revoke")
    def revoke(
        name: Annotated[str, typer.Argument(help="The account's name.")],
        study: Annotated[str | None, typer.Option("--study", help="Study id.")] = None,
    ) -> None:
        """Revoke an account: its token is refused from now on."""
        from studyhub.rating.accounts import revoke_rater
        from studyhub.store.db import open_store

        store = open_store(state.db, create=False)
        try:
            info = revoke_rater(store, study, name, actor=state.actor)
        finally:
            store.dispose()
        when = info.revoked_at.isoformat(timespec="seconds") if info.revoked_at else "?"
        out.print(f"revoked {info.name!r} at {when}", markup=False)

    @rater_app.command("link")
    def link(
        name: Annotated[str, typer.Argument(help="The account's name.")],
        sso: Annotated[
            str | None,
            typer.Option("--sso", help="The e-mail address the identity provider signs in."),
        ] = None,
        unlink: Annotated[
            bool, typer.Option("--unlink", help="Remove the account's single sign-on link.")
        ] = False,
        study: Annotated[str | None, typer.Option("--study", help="Study id.")] = None,
    ) -> None:
        """Link an account to a single sign-on identity (or --unlink it)."""
        from studyhub.rating.sso import link_sso
        from studyhub.store.db import open_store

        if (sso is None) == (not unlink):
            raise InputError(
                "give exactly one of --sso ADDRESS (link the account) or --unlink (remove the "
                f"link); got {'both' if sso is not None else 'neither'}"
            )
        store = open_store(state.db, create=False)
        try:
            info = link_sso(store, study, name, None if unlink else sso, actor=state.actor)
        finally:
            store.dispose()
        if info.sso_identity:
            out.print(f"{info.name!r} signs in with {info.sso_identity}", markup=False)
        else:
            out.print(f"{info.name!r} has no single sign-on link (token only)", markup=False)
