"""What things cost in credits and what credits cost in Telegram Stars, read from the env.

Prices live in config, not code, so an operator can change a package without a release.
The bot quotes a price when the user confirms a job and puts it into the request event;
the trainer charges exactly that quote when it reserves the FAL submission (see
`services/kit/credits.py`), so what the user saw is what they pay.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from services.kit.config import ConfigError, Env

_PACKAGE = re.compile(r"^([a-z0-9_]{1,16}):(\d{1,5}):(\d{1,6})$")
DEFAULT_PACKAGES = "avatar:250:50,images20:50:20,images100:200:100"
#: Telegram's limits for one XTR invoice.
MAX_STARS = 10_000


@dataclass(frozen=True, slots=True)
class Package:
    """`stars` buys `credits`; the id is what invoices and buttons carry."""

    id: str
    stars: int
    credits: int


def parse_packages(raw: str) -> tuple[Package, ...]:
    """`id:stars:credits` separated by commas, e.g. `avatar:250:50,images20:50:20`."""
    packages: list[Package] = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        match = _PACKAGE.match(item)
        if match is None:
            raise ConfigError(
                f"CREDIT_PACKAGES: expected id:stars:credits (id a-z0-9_), got {item!r}"
            )
        package = Package(match[1], int(match[2]), int(match[3]))
        if not 1 <= package.stars <= MAX_STARS or package.credits < 1:
            raise ConfigError(
                f"CREDIT_PACKAGES: {package.id}: stars must be 1-{MAX_STARS}, credits >= 1"
            )
        if any(p.id == package.id for p in packages):
            raise ConfigError(f"CREDIT_PACKAGES: package {package.id!r} is listed twice")
        packages.append(package)
    if not packages:
        raise ConfigError("CREDIT_PACKAGES: at least one package is needed")
    return tuple(packages)


@dataclass(frozen=True, kw_only=True)
class Pricing:
    training: int = 50
    per_image: int = 1
    trial: int = 10
    packages: tuple[Package, ...] = parse_packages(DEFAULT_PACKAGES)
    #: A Stars purchase may be refunded this long after payment if none of it was spent.
    refund_days: int = 14
    #: An invoice older than this is refused at pre-checkout (a stale or replayed payload).
    invoice_ttl_minutes: int = 60

    @classmethod
    def from_env(cls, env: Env) -> Pricing:
        return cls(
            training=env.integer("CREDITS_TRAINING", 50),
            per_image=env.integer("CREDITS_PER_IMAGE", 1),
            trial=env.integer("CREDITS_TRIAL", 10),
            packages=parse_packages(env.text("CREDIT_PACKAGES", DEFAULT_PACKAGES)),
            refund_days=env.integer("STARS_REFUND_DAYS", 14),
            invoice_ttl_minutes=env.integer("STARS_INVOICE_TTL_MINUTES", 60, minimum=1),
        )

    def generation(self, num_images: int) -> int:
        return self.per_image * num_images

    def package(self, package_id: str) -> Package | None:
        return next((p for p in self.packages if p.id == package_id), None)
