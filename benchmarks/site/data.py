"""The gallery's content and misbehaviour, as pure functions of (config, position).

Nothing here keeps state or touches the global ``random``: the server, the
ground truth and a benchmark in another process all compute the same item,
latency and failure schedule from the same config, so scores are exact.
Position 0 is the newest item; larger positions are older.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from landmark.benchmarks.site.config import SiteConfig

FIELDS = ("created", "prompt", "model", "seed", "dimensions")
OPTIONAL_FIELDS = ("prompt", "model", "seed", "dimensions")

DEFAULT_LABELS = {
    "created": "Creation Time",
    "prompt": "Prompt",
    "model": "Model",
    "seed": "Seed",
    "dimensions": "Dimensions",
}
# Every variant, after lower-casing and dropping a trailing ':', is one of the
# example job's labels (config/examples/gallery.yaml): variety a robust
# extractor must absorb, not labels nobody could know.
LABEL_VARIANTS = {
    "created": ("Creation Time", "Created", "Creation time:", "Generated on", "Created at"),
    "prompt": ("Prompt", "Prompt:", "Text prompt"),
    "model": ("Model", "Model name"),
    "seed": ("Seed", "Seed:"),
    "dimensions": ("Dimensions", "Size", "Resolution"),
}
DECOY_LABEL = "Model"

MODELS = (
    "Flux.1 dev",
    "Flux.1 schnell",
    "SDXL 1.0",
    "Stable Diffusion 3.5 Large",
    "Kandinsky 3",
    "Playground v2.5",
    "PixArt Sigma",
    "Hunyuan DiT",
)
SIZES = ((1024, 1024), (1024, 768), (768, 1024), (1344, 768), (832, 1216), (512, 512))
WORDS = (
    (
        "a quiet harbor at dawn, misty lighthouse, watercolor portrait of an old fox, neon city "
        "street in the rain, brutalist library, cathedral made of glass, tiny robot gardener, "
        "desert caravan under two moons, isometric village, cozy reading nook, paper lanterns, "
        "mountain monastery, koi pond, retro spaceship cockpit, autumn forest path, steampunk "
        "owl, studio lighting, golden hour, cinematic, highly detailed, soft focus, ink sketch, "
        "oil painting, volumetric fog, pastel colors, 35mm film, wide angle, macro photograph"
    )
    .replace(",", "")
    .split()
)
TITLE_WORDS = (
    "Amber",
    "Azure",
    "Silent",
    "Hidden",
    "Distant",
    "Golden",
    "Paper",
    "Velvet",
    "Crimson",
    "Frozen",
    "Wandering",
    "Lucid",
    "Harbor",
    "Garden",
    "Signal",
    "Lantern",
    "Orchard",
    "Meadow",
    "Comet",
    "Atlas",
    "Echo",
    "Drift",
    "Ember",
    "Fable",
)

BASE_TIME = datetime(2025, 6, 30, 18, 0, 0)
MAX_EXPONENTIAL = 10.0  # exponential jitter is capped at 10 x mean so no request hangs a run
ID_BITS = 40
_HALF = ID_BITS // 2
_HALF_MASK = (1 << _HALF) - 1


@dataclass(frozen=True, slots=True)
class Row:
    """One label/value pair of a detail view; ``hidden`` marks the decoy ("attribute"|"aria")."""

    label: str
    value: str
    hidden: str | None = None


@dataclass(frozen=True, slots=True)
class Item:
    id: str
    position: int
    title: str
    created: datetime
    prompt: str
    model: str
    seed: int
    dimensions: str
    missing: str | None
    labels: dict[str, str]
    decoy: Row | None

    @property
    def image_path(self) -> str:
        return f"/media/{self.id}.png"

    @property
    def thumb_path(self) -> str:
        return f"/thumb/{self.id}.png"

    def display(self, field: str) -> str:
        """The value as the page shows it."""
        if field == "created":
            return self.created.strftime("%Y-%m-%d %H:%M:%S")
        return str(getattr(self, field))

    def rows(self) -> list[Row]:
        """The rows a detail view shows, in order, the decoy (if any) just before the model row."""
        rows = []
        for field in FIELDS:
            if field == "model" and self.decoy is not None:
                rows.append(self.decoy)
            if field != self.missing:
                rows.append(Row(self.labels[field], self.display(field)))
        return rows


def unit(seed: int, position: int, purpose: str, attempt: int = 0) -> float:
    """A uniform draw in [0, 1) fixed by its arguments: one independent stream per purpose."""
    digest = hashlib.blake2b(f"{seed}:{position}:{purpose}:{attempt}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big") / 2**64


def class_prefix(seed: int) -> str:
    """Hashed class-name prefix ("x3f9a"): class names change with the seed, labels do not."""
    return "x" + hashlib.blake2b(f"class:{seed}".encode(), digest_size=2).hexdigest()


def item_id(seed: int, position: int) -> str:
    """A 10-hex-digit id: a keyed Feistel permutation of the position, so ids never collide."""
    left, right = position >> _HALF, position & _HALF_MASK
    for round_number in range(4):
        left, right = right, left ^ _feistel(seed, round_number, right)
    return f"{(left << _HALF) | right:010x}"


def position_of(config: SiteConfig, identifier: str) -> int | None:
    """Invert ``item_id``; None for anything that is not one of this gallery's ids."""
    if len(identifier) != ID_BITS // 4 or identifier.strip("0123456789abcdef"):
        return None
    value = int(identifier, 16)
    left, right = value >> _HALF, value & _HALF_MASK
    for round_number in reversed(range(4)):
        left, right = right ^ _feistel(config.seed, round_number, left), left
    position = (left << _HALF) | right
    return position if position < config.items else None


def _feistel(seed: int, round_number: int, half: int) -> int:
    digest = hashlib.blake2b(f"id:{seed}:{round_number}:{half}".encode(), digest_size=4)
    return int.from_bytes(digest.digest(), "big") & _HALF_MASK


@lru_cache(maxsize=4096)
def item_at(config: SiteConfig, position: int) -> Item:
    """The item at ``position``; content depends only on (seed, position), not on other knobs."""
    if not 0 <= position < config.items:
        raise IndexError(f"position {position} outside 0..{config.items - 1}")
    seed = config.seed
    rng = random.Random(f"content:{seed}:{position}")  # str seeds hash with sha512: stable
    title = f"{rng.choice(TITLE_WORDS)} {rng.choice(TITLE_WORDS)} #{position + 1}"
    created = _created(seed, position, rng)
    prompt = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14)))
    model_index = rng.randrange(len(MODELS))
    width, height = rng.choice(SIZES)
    image_seed = rng.randrange(2**32)
    decoy = None
    if config.decoys:
        wrong = MODELS[(model_index + 1 + rng.randrange(len(MODELS) - 1)) % len(MODELS)]
        hidden = "attribute" if unit(seed, position, "decoy") < 0.5 else "aria"
        decoy = Row(DECOY_LABEL, wrong, hidden)
    return Item(
        id=item_id(seed, position),
        position=position,
        title=title,
        created=created,
        prompt=prompt,
        model=MODELS[model_index],
        seed=image_seed,
        dimensions=f"{width} \u00d7 {height}",
        missing=_missing(config, position),
        labels=_labels(config, position),
        decoy=decoy,
    )


def _created(seed: int, position: int, rng: random.Random) -> datetime:
    """About an hour between items, strictly older with every position."""
    base = BASE_TIME - timedelta(days=seed % 365)
    return base - timedelta(seconds=position * 3600 + rng.randrange(3600))


def _missing(config: SiteConfig, position: int) -> str | None:
    if unit(config.seed, position, "missing") >= config.missing_rate:
        return None
    which = int(unit(config.seed, position, "missing-field") * len(OPTIONAL_FIELDS))
    return OPTIONAL_FIELDS[which]


def _labels(config: SiteConfig, position: int) -> dict[str, str]:
    if not config.label_variants:
        return dict(DEFAULT_LABELS)
    return {
        field: variants[int(unit(config.seed, position, f"label:{field}") * len(variants))]
        for field, variants in LABEL_VARIANTS.items()
    }


def is_slow(config: SiteConfig, position: int) -> bool:
    return unit(config.seed, position, "slow") < config.slow_rate


def failing_attempts(config: SiteConfig, position: int) -> int:
    """How many first requests for this item fail with HTTP 500 (0 for most items)."""
    if unit(config.seed, position, "fail") < config.fail_rate:
        return config.fail_attempts
    return 0


def latency_ms(config: SiteConfig, position: int, attempt: int = 1) -> float:
    """Injected latency of the ``attempt``-th request (1-based) for the item at ``position``."""
    factor = _jitter(config, unit(config.seed, position, "latency", attempt))
    slow = config.slow_factor if is_slow(config, position) else 1.0
    return config.latency_ms * factor * _age(config, position) * slow


def list_latency_ms(config: SiteConfig, offset: int) -> float:
    """Injected latency of a list page starting at ``offset`` (older pages wait longer too)."""
    factor = _jitter(config, unit(config.seed, offset, "list-latency"))
    return config.latency_ms * factor * _age(config, min(offset, config.items - 1))


def _jitter(config: SiteConfig, draw: float) -> float:
    if config.jitter == "uniform":
        return 0.5 + draw
    if config.jitter == "exponential":
        return min(MAX_EXPONENTIAL, -math.log1p(-draw))
    return 1.0


def _age(config: SiteConfig, position: int) -> float:
    return 1.0 + config.age_penalty * position / config.items


def truth_item(config: SiteConfig, position: int, base_url: str) -> dict:
    """What a perfect extractor returns for one item, plus the misbehaviour it had to survive."""
    item = item_at(config, position)
    fields: dict[str, object] = {
        "created": item.created.isoformat(timespec="seconds"),
        "prompt": item.prompt,
        "model": item.model,
        "seed": item.seed,
        "dimensions": item.dimensions,
    }
    if item.missing is not None:
        fields[item.missing] = None
    fields["image"] = base_url.rstrip("/") + item.image_path
    return {
        "id": item.id,
        "position": position,
        "fields": fields,
        "latency_ms": latency_ms(config, position, 1),
        "fails": failing_attempts(config, position),
    }


def truth(config: SiteConfig, base_url: str) -> list[dict]:
    """Ground truth for every item, newest first; image URLs are absolute under ``base_url``."""
    return [truth_item(config, position, base_url) for position in range(config.items)]
