"""Generate N seed-format files for benchmarks and load tests.

    python bench/seedgen.py DIR N [--seed 0] [--days 365]

Titles, publishers, outlets and bodies vary (a few hundred publishers, realistic paragraph counts),
so slugs, sources and full-text search behave as they would on a real corpus.
"""

import argparse
import os
import random
import time
from pathlib import Path

WORDS = (
    "government minister election court report economy market police president city council "
    "budget health school climate energy trade union strike border vote inflation bank rates "
    "housing transport storm flood hospital research study data security war peace talks "
    "summit treaty sanctions oil gas prices jobs workers company profits shares investors "
    "football league season coach players injury final record museum festival film music"
).split()
PUBLISHERS = [f"Publisher {n:03d}" for n in range(300)]
OUTLETS = [f"Outlet {n:02d} News" for n in range(60)]


def sentence(rng: random.Random) -> str:
    words = rng.choices(WORDS, k=rng.randint(8, 22))
    return " ".join(words).capitalize() + "."


def seed_text(index: int, rng: random.Random) -> tuple[str, str]:
    title = f"{' '.join(rng.choices(WORDS, k=rng.randint(4, 9))).title()} {index}"
    publisher = rng.choice(PUBLISHERS)
    paragraphs = [" ".join(sentence(rng) for _ in range(rng.randint(2, 5))) for _ in range(rng.randint(3, 9))]
    lines = [title, "", f"Originally published at: {title} | {publisher}", ""]
    for paragraph in paragraphs:
        lines += [paragraph, ""]
    if rng.random() < 0.8:
        lines.append(f"Read the full report at {rng.choice(OUTLETS)}.")
    return f"bench_{index:07d}", "\n".join(lines) + "\n"


def write_seeds(directory: Path, count: int, *, seed: int = 0, spread_days: int = 365) -> Path:
    """Write ``count`` seed files into ``directory`` (created), with spread-out modification times."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    now = time.time()
    for index in range(count):
        name, text = seed_text(index, rng)
        path = directory / f"{name}.txt"
        path.write_text(text, encoding="utf-8")
        mtime = now - rng.uniform(0, spread_days * 86400)
        os.utime(path, (mtime, mtime))
    return directory


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory", type=Path)
    parser.add_argument("count", type=int)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--days", type=int, default=365, help="spread publication times over this many past days")
    args = parser.parse_args()
    write_seeds(args.directory, args.count, seed=args.seed, spread_days=args.days)
    print(f"wrote {args.count} seed files to {args.directory}")


if __name__ == "__main__":
    main()
