"""Deterministic synthetic posts with copy-paste campaigns (English and Chinese), for the
Spark tests and benchmarks: about 60% of posts are edited copies of templates (one per 50
posts, about 30 copies each: no band bucket reaches the lookup's per-probe cap, so an index
of one segment and one of many answer alike)."""

from __future__ import annotations

import json
import random
from typing import Dict, Iterator, List

PLATFORMS = ["weibo", "twitter", "facebook", "youtube", "reddit", "telegram"]


def _vocab(rng: random.Random, n: int) -> List[str]:
    syl = ["ka", "lo", "mi", "ten", "ra", "su", "vel", "dor", "ex", "pin", "qua", "zu", "ber", "nol", "tri"]
    words = set()
    while len(words) < n:
        words.add("".join(rng.choice(syl) for _ in range(rng.randint(1, 4))))
    return sorted(words)


def generate(n: int, seed: int = 1) -> Iterator[Dict]:
    """`n` posts: id, text, account, platform, ts."""
    rng = random.Random(seed)
    words = _vocab(rng, 4000)
    han = [chr(0x4E00 + k) for k in range(0, 6000, 2)]
    n_templates = max(10, n // 50)
    templates = []
    for _ in range(n_templates):
        if rng.random() < 0.3:
            templates.append([rng.choice(han) for _ in range(rng.randint(12, 40))])
        else:
            templates.append([rng.choice(words) for _ in range(rng.randint(10, 30))])
    for i in range(n):
        if rng.random() < 0.6:
            t = list(templates[rng.randrange(n_templates)])
            zh = len(t[0]) == 1
            for _ in range(rng.randint(0, 2)):
                t[rng.randrange(len(t))] = rng.choice(han if zh else words)
            text = ("" if zh else " ").join(t)
            r = rng.random()
            if r < 0.3:
                text += f" #{rng.choice(words)}"
            elif r < 0.5:
                text = f"【{rng.randint(0, 9999):04d}】" + text
            elif r < 0.6:
                text += f" https://t.co/{rng.randrange(10**8):x}"
        else:
            if rng.random() < 0.3:
                text = "".join(rng.choice(han) for _ in range(rng.randint(8, 40)))
            else:
                text = " ".join(rng.choice(words) for _ in range(rng.randint(5, 30)))
        yield {
            "id": f"p{i}",
            "text": text,
            "account": f"u{rng.randrange(max(1, n // 20)):06d}",
            "platform": rng.choice(PLATFORMS),
            "ts": 1672531200 + rng.randrange(86400 * 60),
        }


def write_jsonl(posts, path) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for p in posts:
            f.write(json.dumps(p, ensure_ascii=False) + "\n")
