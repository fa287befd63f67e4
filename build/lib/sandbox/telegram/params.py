"""Bot API request parameters: query string, form, multipart or JSON bodies."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from sandbox.telegram.rules import ApiError, bad_request

__all__ = ["Params", "Upload", "read_params"]


@dataclass(slots=True, frozen=True)
class Upload:
    """A file part of a multipart request."""

    filename: str | None
    content_type: str | None
    data: bytes


@dataclass(slots=True)
class Params:
    """Typed access to one call's parameters; nested objects may arrive as JSON strings."""

    values: dict[str, Any] = field(default_factory=dict)
    files: dict[str, Upload] = field(default_factory=dict)

    def __contains__(self, name: str) -> bool:
        return name in self.values or name in self.files

    def get_str(self, name: str) -> str | None:
        value = self.values.get(name)
        if value is None:
            return None
        return value if isinstance(value, str) else json.dumps(value)

    def required(self, name: str) -> Any:
        value = self.values.get(name)
        if value is None or value == "":
            raise bad_request(f"{name} is empty", "missing_parameter")
        return value

    def get_int(self, name: str, default: int | None = None) -> int | None:
        value = self.values.get(name)
        if value is None or value == "":
            return default
        try:
            return int(value)
        except (TypeError, ValueError):
            raise bad_request(f"invalid {name} specified", "invalid_parameter") from None

    def get_float(self, name: str, default: float = 0.0) -> float:
        value = self.values.get(name)
        try:
            return default if value in (None, "") else float(value)
        except (TypeError, ValueError):
            raise bad_request(f"invalid {name} specified", "invalid_parameter") from None

    def get_bool(self, name: str) -> bool:
        value = self.values.get(name)
        if isinstance(value, str):
            return value.lower() in ("true", "1")
        return bool(value)

    def get_json(self, name: str) -> Any:
        value = self.values.get(name)
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                raise bad_request(f"can't parse {name} JSON object", "invalid_parameter") from None
        return value

    def upload(self, ref: Any, field_name: str) -> Upload | None:
        """The uploaded file a value refers to (`attach://name` or the field's own part)."""
        if isinstance(ref, str) and ref.startswith("attach://"):
            found = self.files.get(ref.removeprefix("attach://"))
            if found is None:
                raise bad_request(f"file {ref} not found in the request", "invalid_parameter")
            return found
        if ref is None:
            return self.files.get(field_name)
        return None


async def read_params(request: web.Request) -> Params:
    """Collect a call's parameters from the query string and the body."""
    params = Params(values=dict(request.query))
    if request.method != "POST" or not request.can_read_body:
        return params
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except ValueError:
            raise ApiError(400, "Bad Request: can't parse JSON body", "invalid_parameter") from None
        if isinstance(body, dict):
            params.values.update(body)
        return params
    form = await request.post()
    for key, value in form.items():
        if isinstance(value, web.FileField):
            params.files[key] = Upload(value.filename, value.content_type, value.file.read())
        elif isinstance(value, str):
            params.values[key] = value
        else:
            params.values[key] = bytes(value).decode("utf-8", "replace")
    return params
