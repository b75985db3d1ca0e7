"""Variant `bare`: plain FastAPI, the endpoint with no dependencies."""

from __future__ import annotations

from fastapi import FastAPI

from bench.apps.common import PATH, read_item

app = FastAPI()
app.get(PATH)(read_item)
