"""The service the reliability tests run under uvicorn: `protected()` routes, a database
route, and plain routes that must keep answering while a dependency fails.

Everything is configured by `APPKIT_*` variables that the tests set for the subprocess.
"""

from __future__ import annotations

import logging

from fastapi import Depends, FastAPI
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from appkit_runtime.db import get_session
from appkit_runtime.fastapi import (
    AddJobToMetrics,
    AuthenticateKey,
    ProjectRateLimiter,
    protected,
)
from appkit_runtime.fastapi.fastapi import get_fastapi_app

# Every record reaches stderr, which the tests search for key material.
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
logging.getLogger("appkit_runtime").setLevel(logging.DEBUG)

app: FastAPI = get_fastapi_app("reliability")
FAIL_CLOSED = [
    Depends(AuthenticateKey()),
    Depends(ProjectRateLimiter(fail_open=False)),
    Depends(AddJobToMetrics()),
]


class NewItem(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    quantity: int = Field(ge=0, le=1000)


@app.get("/items/{item_id}", dependencies=protected())
async def read_item(item_id: int) -> dict[str, int]:
    return {"item_id": item_id}


@app.post("/items", dependencies=protected(), status_code=201)
async def create_item(item: NewItem) -> dict[str, str | int]:
    return {"name": item.name, "quantity": item.quantity}


@app.get("/search", dependencies=protected())
async def search(q: str = "", limit: int = 10) -> dict[str, str | int]:
    return {"q": q, "limit": limit}


@app.get("/closed/{item_id}", dependencies=FAIL_CLOSED)
async def read_item_fail_closed(item_id: int) -> dict[str, int]:
    return {"item_id": item_id}


@app.get("/db", dependencies=protected())
async def read_database(session: AsyncSession = Depends(get_session)) -> dict[str, int]:
    return {"answer": (await session.execute(text("SELECT 41 + 1"))).scalar_one()}


@app.get("/work")
def sync_work() -> dict[str, bool]:
    """A plain sync route: it needs a worker thread, as many real endpoints do."""
    return {"ok": True}
