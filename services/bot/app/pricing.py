"""What things cost in credits and what credits cost in Telegram Stars, read from the env.

Prices live in config, not code, so an operator can change a package without a release.
The bot quotes a price when the user confirms a job and puts it into the request event;
the trainer charges exactly that quote when it reserves the FAL submission (see
`services/kit/credits.py`), so what the user saw is what they pay.

A training's price depends on its quality preset (`FalPriority`): `CREDITS_TRAINING_SPEED`,
`CREDITS_TRAINING_QUALITY` (`CREDITS_TRAINING`, its older name, is still read) and
`CREDITS_TRAINING_HIGH_RES`. The packages must be coherent: more Stars never buy credits at
a worse rate, or a user paying more would get less per Star (refused at start).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import pairwise

from contracts import FalPriority
from services.kit.config import ConfigError, Env

_PACKAGE = re.compile(r"^([a-z0-9_]{1,16}):(\d{1,5}):(\d{1,6})$")
#: Each bigger package gives more credits per Star: 2.5, 2 and 1.67 Stars a credit.
DEFAULT_PACKAGES = "starter:50:20,standard:200:100,pro:500:300"
#: Telegram's limits for one XTR invoice.
MAX_STARS = 10_000


@dataclass(frozen=True, slots=True)
class Package:
    """`stars` buys `credits`; the id is what invoices and buttons carry."""

    id: str
    stars: int
    credits: int


def parse_packages(raw: str) -> tuple[Package, ...]:
    """`id:stars:credits` separated by commas, e.g. `starter:50:20,standard:200:100`."""
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
    check_coherent(packages)
    return tuple(packages)


def check_coherent(packages: list[Package]) -> None:
    """Refuse packages where paying more Stars buys credits at a worse rate (or two
    packages at one price): compared by cross-multiplying, so no rounding decides."""
    by_stars = sorted(packages, key=lambda p: (p.stars, p.credits))
    for cheaper, dearer in pairwise(by_stars):
        if dearer.stars == cheaper.stars:
            raise ConfigError(
                f"CREDIT_PACKAGES: {cheaper.id} and {dearer.id} both cost {dearer.stars} Stars"
            )
        if dearer.stars * cheaper.credits > cheaper.stars * dearer.credits:
            raise ConfigError(
                f"CREDIT_PACKAGES: {dearer.id} ({dearer.stars} Stars for {dearer.credits}) "
                f"gives fewer credits per Star than the cheaper {cheaper.id} "
                f"({cheaper.stars} for {cheaper.credits})"
            )


UPSCALE_BLOCK_PIXELS = 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class Pricing:
    #: The `quality` preset's training price (the default preset).
    training: int = 50
    training_speed: int = 30
    training_high_res: int = 60
    per_image: int = 1
    #: An upscale ×2 / ×4 of a picture up to 1024 × 1024 (every generated one); a larger
    #: source costs this per started 1024 × 1024 block (FAL bills output megapixels).
    upscale_2x: int = 5
    upscale_4x: int = 20
    #: A reference photo re-drawn with the avatar (one picture of at most ~1 megapixel:
    #: FAL bills image-to-image like a FLUX picture, plus the photo's upload and storage).
    reference: int = 2
    #: A 5-second video of a picture (FAL: $0.28 a clip, docs/generation.md "Animation").
    animation: int = 25
    trial: int = 10
    packages: tuple[Package, ...] = parse_packages(DEFAULT_PACKAGES)
    #: A Stars purchase may be refunded this long after payment if none of it was spent.
    refund_days: int = 14
    #: An invoice older than this is refused at pre-checkout (a stale or replayed payload).
    invoice_ttl_minutes: int = 60

    @classmethod
    def free_jobs(cls) -> Pricing:
        """Trainings and pictures at no charge (tests that are not about credits)."""
        return cls(
            training=0, training_speed=0, training_high_res=0, per_image=0, upscale_2x=0,
            upscale_4x=0, reference=0, animation=0,
        )  # fmt: skip

    @classmethod
    def from_env(cls, env: Env) -> Pricing:
        legacy = env.integer("CREDITS_TRAINING", 50, minimum=0)
        quality = env.integer("CREDITS_TRAINING_QUALITY", legacy, minimum=0)
        pricing = cls(
            training=quality,
            training_speed=env.integer("CREDITS_TRAINING_SPEED", 30, minimum=0),
            training_high_res=env.integer("CREDITS_TRAINING_HIGH_RES", 60, minimum=0),
            per_image=env.integer("CREDITS_PER_IMAGE", 1),
            upscale_2x=env.integer("CREDITS_UPSCALE_2X", 5, minimum=0),
            upscale_4x=env.integer("CREDITS_UPSCALE_4X", 20, minimum=0),
            reference=env.integer("CREDITS_REFERENCE", 2, minimum=0),
            animation=env.integer("CREDITS_ANIMATION", 25, minimum=0),
            trial=env.integer("CREDITS_TRIAL", 10),
            packages=parse_packages(env.text("CREDIT_PACKAGES", DEFAULT_PACKAGES)),
            refund_days=env.integer("STARS_REFUND_DAYS", 14),
            invoice_ttl_minutes=env.integer("STARS_INVOICE_TTL_MINUTES", 60, minimum=1),
        )
        if not pricing.training_speed <= pricing.training <= pricing.training_high_res:
            raise ConfigError(
                "CREDITS_TRAINING_SPEED <= CREDITS_TRAINING_QUALITY <= CREDITS_TRAINING_HIGH_RES "
                f"expected, got {pricing.training_speed}, {pricing.training}, "
                f"{pricing.training_high_res}"
            )
        return pricing

    def training_price(self, priority: FalPriority) -> int:
        """The credits a training with this preset is quoted (and charged) at."""
        if priority is FalPriority.SPEED:
            return self.training_speed
        if priority is FalPriority.HIGH_RES_ONLY:
            return self.training_high_res
        return self.training

    def generation(self, num_images: int) -> int:
        return self.per_image * num_images

    def upscale(self, factor: int, width: int, height: int) -> int:
        """An upscale's price: the factor's price per started 1024 × 1024 block of source."""
        blocks = max(1, -(-width * height // UPSCALE_BLOCK_PIXELS))
        return (self.upscale_4x if factor == 4 else self.upscale_2x) * blocks

    def package(self, package_id: str) -> Package | None:
        return next((p for p in self.packages if p.id == package_id), None)
