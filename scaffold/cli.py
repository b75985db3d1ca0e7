"""The `appkit-scaffold` command line; each command imports its work only when it runs."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from scaffold.errors import ScaffoldError

PROG = "appkit-scaffold"
_PROJECT_DIR = click.option(
    "--project-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The service (or a folder in it); default: the current folder.",
)


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="""\b
Examples:
  appkit-scaffold new orders-service --data database=sqlite
  appkit-scaffold add-endpoint orders --method post --path /orders --rate-limit 10/60
  appkit-scaffold add-resource order --field sku:str(40):unique --field total:decimal
  appkit-scaffold check
  appkit-scaffold upgrade --to v0.2.0 --dry-run""",
)
def cli() -> None:
    """Start appkit services, add endpoints to them, check and upgrade them."""


@cli.command(
    "add-endpoint",
    epilog="""\b
Examples:
  appkit-scaffold add-endpoint orders --method post
  appkit-scaffold add-endpoint order --path /orders/{order_id} --scopes orders:read
  appkit-scaffold add-endpoint status --public --dry-run""",
)
@click.argument("name")
@click.option(
    "--method",
    type=click.Choice(["GET", "POST", "PUT", "PATCH", "DELETE"], case_sensitive=False),
    default="GET",
    show_default=True,
    help="HTTP method (any case).",
)
@click.option(
    "--path", default=None, help="Route path, such as /orders/{order_id}. [default: /NAME]"
)
@click.option("--public", is_flag=True, help="No key needed: leave out the protected chain.")
@click.option("--rate-limit", default=None, metavar="N/S", help="This route's own limit.")
@click.option("--scopes", default=None, metavar="A,B", help="Scopes a key needs for this route.")
@click.option(
    "--dry-run", is_flag=True, help="Show the files and the registry diff; write nothing."
)
@_PROJECT_DIR
def add_endpoint_command(
    name: str,
    method: str,
    path: str | None,
    public: bool,
    rate_limit: str | None,
    scopes: str | None,
    dry_run: bool,
    project_dir: Path | None,
) -> int:
    """Add endpoint NAME: src/<package>/routers/NAME.py, tests/test_NAME.py, and its registration.

    All or nothing: anything in the way refuses the whole change and leaves every file as it was.
    """
    from scaffold.add import add_endpoint
    from scaffold.endpoint import Endpoint, parse_scopes
    from scaffold.project import find_service

    endpoint = Endpoint(
        name=name,
        method=method.upper(),
        path=path or "",
        public=public,
        rate_limit=rate_limit,
        scopes=parse_scopes(scopes),
    )
    endpoint.check()
    service = find_service(project_dir or Path.cwd())
    return add_endpoint(service, endpoint, dry_run)


@cli.command(
    "add-resource",
    epilog="""\b
Fields: name:type[?][:unique][:index], type one of str, str(N), text, int, bigint, float,
decimal, decimal(P,S), bool, date, datetime, uuid, json; ? makes it nullable.
\b
Examples:
  appkit-scaffold add-resource order --field sku:str(40):unique --field total:decimal(12,2)
  appkit-scaffold add-resource person --plural people --field name:str --scoped
  appkit-scaffold add-resource note --field body:text --field due:date? --dry-run""",
)
@click.argument("name")
@click.option(
    "--field",
    "fields",
    multiple=True,
    metavar="SPEC",
    help="A column, name:type[?][:unique][:index] (repeatable, at least one).",
)
@click.option(
    "--plural", default=None, help="Table, router and path name. [default: NAME + s, es or ies]"
)
@click.option("--scoped", is_flag=True, help="Reads need scope PLURAL:read, writes PLURAL:write.")
@click.option("--rate-limit", default=None, metavar="N/S", help="Each route's own limit.")
@click.option("--dry-run", is_flag=True, help="Show the files and the diffs; write nothing.")
@_PROJECT_DIR
def add_resource_command(
    name: str,
    fields: tuple[str, ...],
    plural: str | None,
    scoped: bool,
    rate_limit: str | None,
    dry_run: bool,
    project_dir: Path | None,
) -> int:
    """Add a database-backed resource NAME: model, migration, CRUD router, schemas, tests.

    All or nothing: anything in the way refuses the whole change and leaves every file as it was.
    """
    from scaffold.add_resource import add_resource
    from scaffold.fields import parse_fields
    from scaffold.project import find_service
    from scaffold.resource import Resource

    resource = Resource(
        name=name,
        fields=parse_fields(list(fields)),
        plural=plural or "",
        scoped=scoped,
        rate_limit=rate_limit,
    )
    resource.check()
    service = find_service(project_dir or Path.cwd())
    return add_resource(service, resource, dry_run)


@cli.command(
    "new",
    epilog="""\b
Examples:
  appkit-scaffold new orders-service
  appkit-scaffold new billing --data package_name=billing --data database=sqlite
  appkit-scaffold new orders --template https://github.com/acme/appkit""",
)
@click.argument("dest", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--data",
    "data",
    multiple=True,
    metavar="KEY=VALUE",
    help="An answer to a template question (repeatable); the rest take their defaults.",
)
@click.option(
    "--template",
    envvar="APPKIT_TEMPLATE",
    default=None,
    metavar="REPOSITORY",
    help="appkit's git repository (URL or path; env APPKIT_TEMPLATE): render its tag for the "
    "installed runtime and record it, so `copier update` can follow later versions.",
)
@click.option("--vcs-ref", default=None, help="Template git ref, when the template is a checkout.")
def new_command(
    dest: Path, data: tuple[str, ...], template: str | None, vcs_ref: str | None
) -> int:
    """Render a new service into DEST from the template that ships with appkit-runtime.

    The project name defaults to DEST's folder name.
    """
    from scaffold.new import new_service, parse_data

    return new_service(dest, parse_data(data), vcs_ref, template)


@cli.command(
    "check",
    epilog="""\b
Example (in a service's CI):
  appkit-scaffold check --project-dir .""",
)
@_PROJECT_DIR
def check_command(project_dir: Path | None) -> int:
    """List every problem of a service; exit 1 if there is any.

    Routes whose limiter or metrics run before auth, a runtime that does not match the template
    version, conflict markers in tracked files, a missing answers file.
    """
    from scaffold.check import check

    return check(project_dir or Path.cwd())


@cli.command(
    "upgrade",
    epilog="""\b
Examples:
  appkit-scaffold upgrade --dry-run
  appkit-scaffold upgrade --to v0.2.0""",
)
@click.option(
    "--to", "to", default=None, metavar="vX.Y.Z", help="Template version; default: latest."
)
@click.option("--dry-run", is_flag=True, help="Update a temporary copy and report; touch nothing.")
@_PROJECT_DIR
def upgrade_command(to: str | None, dry_run: bool, project_dir: Path | None) -> int:
    """Update the service to a later template version and summarise what changed."""
    from scaffold.upgrade import upgrade

    return upgrade(project_dir or Path.cwd(), to, dry_run)


def run(argv: list[str] | None = None) -> int:
    """Run the command line and return its exit code: refusals print one line, never a trace.

    Exit 2 for bad usage, 1 for a conflict (or what a command returns).
    """
    try:
        code = cli.main(args=argv, prog_name=PROG, standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as error:
        click.echo(error.ctx.get_help() if error.ctx else "", err=True)
        return 2
    except click.UsageError as error:
        where = error.ctx.command_path if error.ctx else PROG
        _refuse(f"{where}: {error.format_message()}")
        return 2
    except click.ClickException as error:
        _refuse(f"{PROG}: {error.format_message()}")
        return error.exit_code
    except click.Abort:
        _refuse(f"{PROG}: aborted")
        return 1
    except ScaffoldError as error:
        _refuse(f"{PROG}: {error}")
        return error.exit_code
    return int(code or 0)


def main() -> None:
    """The console script `appkit-scaffold`."""
    sys.exit(run())


def _refuse(line: str) -> None:
    click.echo(" ".join(line.split()), err=True)


if __name__ == "__main__":
    main()
