"""What data/interactions.csv must look like: Pave validates every data version against it before training.

One row per interaction (a view, a click, a purchase): implicit feedback, no ratings.
"""

import pandera.pandas as pa
from pandera.typing import Series


class InteractionSchema(pa.DataFrameModel):
    """A user interacted with an item; each pair appears once. Ids are integers from 0."""

    user_id: Series[int] = pa.Field(ge=0)
    item_id: Series[int] = pa.Field(ge=0)

    class Config:
        strict = True
        coerce = True
        unique = ["user_id", "item_id"]  # noqa: RUF012 - pandera reads it as a plain class attribute
