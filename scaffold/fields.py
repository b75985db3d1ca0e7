"""A resource's fields: `name:type[?][:modifier...]` parsed and checked, each with the pieces
the model, the migration, the schemas and the tests need.

The pieces are plain strings handed to the snippets, so the rendered code is all in the
template and this module only knows the column types.
"""

from __future__ import annotations

import json
import keyword
import re
from dataclasses import dataclass

from scaffold.errors import UsageProblem

# Set by the database on every resource; a field cannot take these names.
RESERVED = ("id", "created_at", "updated_at")
TYPES = (
    "str",
    "text",
    "int",
    "bigint",
    "float",
    "decimal",
    "bool",
    "date",
    "datetime",
    "uuid",
    "json",
)
MODIFIERS = ("unique", "index")
STR_LENGTH = 255
DECIMAL = (12, 2)
INT32 = 2**31
INT64 = 2**63
NO_NUL = 'pattern=r"^[^\\x00]*$"'

# Attributes of SQLAlchemy's declarative base and of Pydantic's BaseModel.
_TAKEN = {"metadata", "registry", "copy", "dict", "json", "parse_obj", "parse_raw"}
_TAKEN |= {"parse_file", "from_orm", "construct", "schema", "schema_json", "validate"}
_TAKEN |= {"update_forward_refs"}
# SQLAlchemy's keyword constructor takes the row as `self`: Model(self=1) is a TypeError.
_TAKEN |= {"self"}
# Names the generated classes' annotations and column types use.
_TAKEN |= {"sa", "datetime", "date", "decimal", "uuid", "mapped_column"}
MAX_NAME = 30
_NAME = re.compile(r"[a-z_][a-z0-9_]*")
_TYPE = re.compile(r"(?P<type>[a-z]+)(?:\((?P<args>[^()]*)\))?(?P<nullable>\??)")


@dataclass(frozen=True)
class Field:
    """One column of a resource and the field of its schemas."""

    name: str
    type: str
    nullable: bool = False
    unique: bool = False
    index: bool = False
    length: int = STR_LENGTH
    digits: tuple[int, int] = DECIMAL

    @property
    def python_type(self) -> str:
        """The annotation of the model's column (modules imported whole: `datetime`...)."""
        return {
            "str": "str",
            "text": "str",
            "int": "int",
            "bigint": "int",
            "float": "float",
            "decimal": "decimal.Decimal",
            "bool": "bool",
            "date": "datetime.date",
            "datetime": "datetime.datetime",
            "uuid": "uuid.UUID",
            "json": "Any",
        }[self.type]

    @property
    def column_type(self) -> str:
        """The SQLAlchemy type, as `alembic revision --autogenerate` renders it."""
        return {
            "str": f"sa.String(length={self.length})",
            "text": "sa.Text()",
            "int": "sa.Integer()",
            "bigint": "sa.BigInteger()",
            "float": "sa.Double()",
            "decimal": f"sa.Numeric(precision={self.digits[0]}, scale={self.digits[1]})",
            "bool": "sa.Boolean()",
            "date": "sa.Date()",
            "datetime": "sa.DateTime(timezone=True)",
            "uuid": "sa.Uuid()",
            "json": "sa.JSON()",
        }[self.type]

    @property
    def constraint(self) -> tuple[str, str] | None:
        """A named constrained type (`Int32`, `Str80`...) matching the column, so that no
        value reaches the database as a 500; `None` when the plain type is enough."""
        precision, scale = self.digits
        return {
            "str": (f"Str{self.length}", f"str, Field(max_length={self.length}, {NO_NUL})"),
            "text": ("Text", f"str, Field({NO_NUL})"),
            "int": ("Int32", f"int, Field(ge={-INT32}, le={INT32 - 1})"),
            "bigint": ("Int64", f"int, Field(ge={-INT64}, le={INT64 - 1})"),
            "float": ("Finite", "float, Field(allow_inf_nan=False)"),
            "decimal": (
                f"Decimal{precision}x{scale}",
                f"Decimal, Field(max_digits={precision}, decimal_places={scale})",
            ),
        }.get(self.type)

    @property
    def schema_type(self) -> str:
        """The type of the field in the Create and Update schemas."""
        if self.constraint:
            return self.constraint[0]
        plain = {"date": "date", "datetime": "AwareUtc", "uuid": "UUID", "json": "JsonValue"}
        return plain.get(self.type, self.python_type)

    @property
    def out_type(self) -> str:
        """The type of the field as read back (datetimes in UTC: SQLite keeps no zone)."""
        base = {"decimal": "Decimal", "date": "date", "datetime": "Utc", "uuid": "UUID"}
        name = base.get(self.type, "JsonValue" if self.type == "json" else self.python_type)
        return f"{name} | None" if self.nullable else name

    def sample(self, n: int) -> object:
        """A valid JSON value for the field, different for each `n` from 1 to 28."""
        if self.type in ("str", "text"):
            text = f"{self.name}-{n}"
            return text if len(text) <= self.length else str(n)[-self.length :]
        if self.type == "int":
            return n
        if self.type == "bigint":
            return 2**40 + n
        if self.type == "float":
            return n + 0.5
        if self.type == "decimal":
            precision, scale = self.digits
            return str(n) if precision > scale else f"0.{n}"
        if self.type == "bool":
            return n % 2 == 0
        if self.type == "date":
            return f"2024-01-{n:02d}"
        if self.type == "datetime":
            return f"2024-01-01T00:00:{n:02d}+00:00"
        if self.type == "uuid":
            return f"00000000-0000-4000-8000-{n:012d}"
        return {"n": n}

    @property
    def context(self) -> dict[str, object]:
        """What the snippets read of the field."""
        return {
            "name": self.name,
            "type": self.type,
            "nullable": self.nullable,
            "unique": self.unique,
            "index": self.index,
            "python_type": self.python_type,
            "column_type": self.column_type,
            "schema_type": self.schema_type,
            "constraint": self.constraint,
            "out_type": self.out_type,
            "samples": [python_literal(self.sample(n)) for n in range(1, 6)],
        }


def python_literal(value: object) -> str:
    """`value` as Python source in `ruff format`'s style (double quotes)."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dict):
        items = ", ".join(f"{json.dumps(k)}: {python_literal(v)}" for k, v in value.items())
        return "{" + items + "}"
    return repr(value)


def parse_field(spec: str) -> Field:
    """`price:decimal(10,2)?:index` as a `Field`; `UsageProblem` naming what is wrong."""
    name, _, rest = spec.partition(":")
    if not rest:
        raise UsageProblem(f"bad field {spec!r}: use name:type, such as title:str(80)")
    _check_name(spec, name)
    type_part, *modifiers = rest.split(":")
    match = _TYPE.fullmatch(type_part)
    if match is None or match["type"] not in TYPES:
        raise UsageProblem(f"bad field {spec!r}: unknown type; use one of {', '.join(TYPES)}")
    kind, args = match["type"], match["args"]
    field = Field(name=name, type=kind, nullable=bool(match["nullable"]))
    if args is not None:
        field = _with_args(spec, field, args)
    for modifier in modifiers:
        if modifier not in MODIFIERS:
            raise UsageProblem(
                f"bad field {spec!r}: unknown modifier {modifier!r}; use unique or index"
            )
        if getattr(field, modifier):
            raise UsageProblem(f"bad field {spec!r}: {modifier!r} is given twice")
        field = Field(**{**field.__dict__, modifier: True})
    if field.type == "json" and (field.unique or field.index):
        raise UsageProblem(f"bad field {spec!r}: a json column cannot be unique or indexed")
    if field.type == "bool" and field.unique:
        raise UsageProblem(f"bad field {spec!r}: a bool column cannot be unique (two values)")
    return field


def parse_fields(specs: list[str]) -> list[Field]:
    """Every `--field`, in order; at least one, each name once."""
    if not specs:
        raise UsageProblem("give at least one --field name:type")
    fields = [parse_field(spec) for spec in specs]
    seen: set[str] = set()
    for field in fields:
        if field.name in seen:
            raise UsageProblem(f"bad field {field.name!r}: it is given twice")
        seen.add(field.name)
    return fields


def _check_name(spec: str, name: str) -> None:
    if not _NAME.fullmatch(name) or len(name) > MAX_NAME:
        raise UsageProblem(
            f"bad field {spec!r}: the name must be up to {MAX_NAME} lowercase letters, digits, _"
        )
    if keyword.iskeyword(name) or keyword.issoftkeyword(name) or name.startswith("_"):
        raise UsageProblem(f"bad field {spec!r}: {name!r} is a Python keyword or private name")
    if name in RESERVED:
        raise UsageProblem(
            f"bad field {spec!r}: {', '.join(RESERVED)} are set by the database on every resource"
        )
    if name in _TAKEN or name.startswith("model_"):
        raise UsageProblem(f"bad field {spec!r}: {name!r} is taken by SQLAlchemy or Pydantic")


def _with_args(spec: str, field: Field, args: str) -> Field:
    numbers = [part.strip() for part in args.split(",")]
    if not all(part.isdigit() for part in numbers):
        raise UsageProblem(f"bad field {spec!r}: the sizes in ( ) must be whole numbers")
    values = [int(part) for part in numbers]
    if field.type == "str" and len(values) == 1:
        if not 1 <= values[0] <= 10_485_760:
            raise UsageProblem(f"bad field {spec!r}: a str length must be 1 to 10485760")
        return Field(**{**field.__dict__, "length": values[0]})
    if field.type == "decimal" and len(values) == 2:
        precision, scale = values
        if not (1 <= precision <= 1000 and 0 <= scale <= precision):
            raise UsageProblem(
                f"bad field {spec!r}: decimal(P,S) needs 1 <= P <= 1000 and 0 <= S <= P"
            )
        return Field(**{**field.__dict__, "digits": (precision, scale)})
    raise UsageProblem(
        f"bad field {spec!r}: only str(N) and decimal(P,S) take sizes, such as str(80)"
    )
