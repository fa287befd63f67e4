"""What of the emulated Telegram outlives a restart, and how it is put back.

Kept: people (users, their private chats, who blocked the bot), every message with its edit
history (the web chat shows them again), files (bytes as blobs, named by file_id), Stars
balances, invoices and charges (so refunds and the bot's reconciliation still find them), the
bot's commands and webhook, the update queue and the next update_id. Left out, as Telegram
itself forgets them within seconds: pending callback, inline and pre-checkout queries, chat
actions, rule counters and injected faults.

Update ids are handed out only after a snapshot holding them is on disk (`Delivery` calls
`before_handout`), so a bot that persisted its offset neither loses updates nor gets old ones
again, even when the emulator was killed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from sandbox.snapshot import Document, Picture
from sandbox.telegram.delivery import Webhook
from sandbox.telegram.files import FileStore, StoredFile
from sandbox.telegram.state import ChargeRecord, InvoiceRecord, MessageRecord, World

if TYPE_CHECKING:
    from sandbox.telegram.delivery import Delivery

FORMAT = 1
_FILE_FIELDS = (
    "file_id",
    "file_unique_id",
    "file_path",
    "mime_type",
    "file_name",
    "width",
    "height",
)


def _record(record: MessageRecord) -> dict[str, Any]:
    """Every field of the record (a field added to `MessageRecord` is kept without a change
    here: the restore passes them back by name)."""
    return {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}


def _files(store: FileStore) -> dict[str, Any]:
    sets: dict[int, list[str]] = {}
    for sizes in store.photo_sets.values():
        sets.setdefault(id(sizes), [s.file_id for s in sizes])
    return {
        "counter": store._counter,
        "items": [{k: getattr(f, k) for k in _FILE_FIELDS} for f in store.files.values()],
        "photo_sets": list(sets.values()),
    }


def take(world: World, delivery: Delivery) -> Picture:
    """The world as a JSON document plus the files' bytes."""
    hook = delivery.webhook
    document: Document = {
        "format": FORMAT,
        "users": list(world.users.values()),
        "chats": list(world.chats.values()),
        "blocked": sorted(world.blocked),
        "messages": [
            [chat_id, [_record(r) for r in box.values()]] for chat_id, box in world.messages.items()
        ],
        "next_message": list(world._next_message.items()),
        "next_update": world._next_update,
        "updates": world.updates,
        "allowed_updates": sorted(world.allowed_updates),
        "commands": world.commands,
        "stars": list(world.stars.items()),
        "invoices": [
            {f.name: getattr(i, f.name) for f in dataclasses.fields(i) if f.name != "paying"}
            for i in world.invoices.values()
        ],
        "charges": [
            {f.name: getattr(c, f.name) for f in dataclasses.fields(c)}
            for c in world.charges.values()
        ],
        "files": _files(world.files),
        "webhook": None if hook is None else {k: getattr(hook, k) for k in ("url", "secret_token")},
    }
    blobs: Mapping[str, bytes] = {fid: f.data for fid, f in world.files.files.items()}
    return document, blobs


def restore(world: World, delivery: Delivery, document: Document, blob: Any) -> list[str]:
    """Put a saved world back; `blob(name)` reads a file's bytes. Returns missing file ids."""
    if document.get("format") != FORMAT:
        raise ValueError(f"unknown Telegram snapshot format {document.get('format')!r}")
    world.users = {int(u["id"]): u for u in document["users"]}
    world.chats = {int(c["id"]): c for c in document["chats"]}
    world.blocked = set(document["blocked"])
    world.messages = {
        int(chat_id): {int(r["message"]["message_id"]): MessageRecord(**r) for r in records}
        for chat_id, records in document["messages"]
    }
    world._next_message = {int(chat): int(n) for chat, n in document["next_message"]}
    world._next_update = int(document["next_update"])
    world.updates = list(document["updates"])
    world.allowed_updates = frozenset(document["allowed_updates"])
    world.commands = dict(document["commands"])
    world.stars = {int(uid): int(balance) for uid, balance in document["stars"]}
    world.invoices = {}
    for fields in document["invoices"]:
        invoice = InvoiceRecord(**fields)
        world.invoices[(invoice.chat_id, invoice.message_id)] = invoice
    world.charges = {c["charge_id"]: ChargeRecord(**c) for c in document["charges"]}
    missing = _restore_files(world.files, document["files"], blob)
    hook = document.get("webhook")
    if hook is not None:
        delivery.webhook = Webhook(hook["url"], hook["secret_token"])
    return missing


def _restore_files(
    store: FileStore, saved: dict[str, Any], blob: Callable[[str], bytes | None]
) -> list[str]:
    missing: list[str] = []
    store.files.clear()
    store.by_path.clear()
    store.photo_sets.clear()
    store._counter = int(saved["counter"])
    for item in saved["items"]:
        data = blob(item["file_id"])
        if data is None:
            missing.append(item["file_id"])
            continue
        stored = StoredFile(data=data, **item)
        store.files[stored.file_id] = stored
        store.by_path[stored.file_path] = stored
    for ids in saved["photo_sets"]:
        sizes = [store.files[i] for i in ids if i in store.files]
        for stored in sizes:
            store.photo_sets[stored.file_id] = sizes
    return missing
