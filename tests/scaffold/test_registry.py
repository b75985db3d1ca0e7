"""The registry edit on layouts a team may have made: only the import and the list change."""

from __future__ import annotations

import re

import pytest

from scaffold.errors import Conflict, UsageProblem
from scaffold.registry import register_router


def test_a_parenthesised_import_keeps_its_comments_and_takes_the_name_in_order() -> None:
    source = (
        "from fastapi import APIRouter\n"
        "\n"
        "from shop.routers import (\n"
        "    alpha,  # first\n"
        "    zeta,\n"
        ")\n"
        "\n"
        "routers = [\n"
        "    alpha.router,  # the first router\n"
        "    zeta.router,\n"
        "\n"
        "    # more to come\n"
        "]\n"
    )

    edited = register_router(source, "shop", "orders", "routers/__init__.py")

    assert edited == (
        "from fastapi import APIRouter\n"
        "\n"
        "from shop.routers import (\n"
        "    alpha,  # first\n"
        "    orders,\n"
        "    zeta,\n"
        ")\n"
        "\n"
        "routers = [\n"
        "    alpha.router,  # the first router\n"
        "    zeta.router,\n"
        "    orders.router,\n"
        "\n"
        "    # more to come\n"
        "]\n"
    )


def test_lines_grown_past_100_columns_are_laid_out_one_item_a_line() -> None:
    names = ["a" * 30, "b" * 30]
    source = (
        f"from shop.routers import {', '.join(names)}\n"
        "\n"
        f"routers = [{', '.join(name + '.router' for name in names)}]\n"
    )

    edited = register_router(source, "shop", "c" * 30, "routers/__init__.py")

    a, b, c = names[0], names[1], "c" * 30
    assert edited == (
        f"from shop.routers import (\n    {a},\n    {b},\n    {c},\n)\n"
        "\n"
        f"routers = [\n    {a}.router,\n    {b}.router,\n    {c}.router,\n]\n"
    )


def test_short_one_line_layouts_stay_on_one_line() -> None:
    source = "from shop.routers import items\n\nrouters = [items.router]\n"

    edited = register_router(source, "shop", "orders", "routers/__init__.py")

    assert edited == (
        "from shop.routers import items, orders\n\nrouters = [items.router, orders.router]\n"
    )


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("routers = make_routers()\n", "has no `routers = [...]` list"),
        ("from fastapi import APIRouter\n", "has no `routers = [...]` list"),
        ("from shop.routers import orders\n\nrouters = []\n", "'orders' is already taken"),
        ("routers = [\n", "cannot parse routers/__init__.py"),
    ],
)
def test_a_registry_it_cannot_edit_is_a_conflict(source: str, message: str) -> None:
    with pytest.raises(Conflict, match=re.escape(message)):
        register_router(source, "shop", "orders", "routers/__init__.py")


@pytest.mark.parametrize(
    "source",
    [
        "def orders():\n    pass\n\nrouters = []\n",
        "from fastapi import APIRouter as orders\n\nrouters = []\n",
        "orders = 1\nrouters = []\n",
    ],
)
def test_a_name_the_registry_binds_for_itself_is_bad_usage(source: str) -> None:
    with pytest.raises(UsageProblem, match="bad endpoint name 'orders': routers/__init__.py binds"):
        register_router(source, "shop", "orders", "routers/__init__.py")
