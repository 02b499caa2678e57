"""Write data/interactions.csv: synthetic implicit feedback, the same file for the same seed.

Users and items get hidden taste vectors; a user interacts with items drawn with a probability that
grows with the match between the two tastes and with the item's popularity. The model's job is to
recover those tastes from the interactions alone. Run ``python make_data.py`` to rebuild the file;
replace it with your own ``user_id,item_id`` pairs to use real data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

OUTPUT = Path(__file__).resolve().parent / "data" / "interactions.csv"


def make_interactions(
    seed: int = 42,
    n_users: int = 300,
    n_items: int = 120,
    tastes: int = 6,
    min_per_user: int = 8,
    max_per_user: int = 30,
) -> pd.DataFrame:
    """One row per (user_id, item_id) interaction, sorted; ids are integers from 0."""
    rng = np.random.default_rng(seed)
    users = rng.normal(size=(n_users, tastes))
    items = rng.normal(size=(n_items, tastes))
    popularity = rng.normal(scale=0.5, size=n_items)
    affinity = 2.0 * users @ items.T / np.sqrt(tastes) + popularity
    rows = []
    for user in range(n_users):
        weights = np.exp(affinity[user] - affinity[user].max())
        count = int(rng.integers(min_per_user, max_per_user + 1))
        chosen = rng.choice(n_items, size=count, replace=False, p=weights / weights.sum())
        rows.extend((user, int(item)) for item in sorted(chosen))
    return pd.DataFrame(rows, columns=["user_id", "item_id"])


if __name__ == "__main__":
    OUTPUT.parent.mkdir(exist_ok=True)
    make_interactions().to_csv(OUTPUT, index=False)
    print(f"wrote {OUTPUT}")
